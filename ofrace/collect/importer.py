"""``ofrace import``: a snapshot from sosreports and raw OVSDB files, no cluster needed.

Where it sits: a third way (beside reading nodes now, and loading a snapshot file)
to produce the same ``Snapshot`` the collect stage produces.  Each node sosreport
becomes the node document the agent would have sent (``sosreport.read_node``) and
then a ``Chassis`` through ``cluster.chassis_from_agent``; the NB and SB come from
the raw database files (``ovsdb_file``) of a DB host's sosreport or given as they
are, reduced to the tables ``collect`` reads.  A node sosreport is matched to its SB
Chassis row by system-id (external_ids:system-id of its Open_vSwitch row) and named
as that chassis' hostname, as a lab's or an inventory's nodes are.

Inputs are untrusted: archives are opened by ``archive.extract`` into one private
temporary directory, removed before returning; nothing else is written.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ofrace.collect import secrets
from ofrace.collect.archive import extract, is_archive
from ofrace.collect.cluster import NORTHBOUND_TABLES, SOUTHBOUND_TABLES, chassis_from_agent
from ofrace.collect.node_document import DocumentError
from ofrace.collect.ovsdb_file import OvsdbFile, read_ovsdb_file
from ofrace.collect.sosreport import (
    DATABASE_FILES,
    SosReport,
    cut_member,
    is_sosreport,
    read_node,
    wanted_member,
)
from ofrace.errors import InputError
from ofrace.memory import building
from ofrace.snapshot import Chassis, Database, Problem, Snapshot, check_rows

DATABASES = {"OVN_Southbound": "southbound", "OVN_Northbound": "northbound"}
MAX_DEPTH = 4        # how deep a directory is searched for sosreports and DB files


@dataclass
class SourceReport:
    """What one input turned out to hold, and how it was used."""

    label: str
    kind: str                          # "node sosreport", "DB host sosreport", "database"
    matched: str = ""                  # how a node sosreport was matched to its chassis
    chassis: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class ChassisReport:
    name: str
    source: str | None                 # the sosreport it came from (None: none)
    found: list[str] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)   # (what, what it prevents)


@dataclass
class ImportReport:
    sources: list[SourceReport] = field(default_factory=list)
    chassis: list[ChassisReport] = field(default_factory=list)
    databases: dict[str, str] = field(default_factory=dict)        # name → where from
    missing: list[tuple[str, str]] = field(default_factory=list)   # cluster-wide


# What each missing read costs, in words (the bridge's keys as the agent names them).
PREVENTS = {
    "flows": "no trace through this chassis (a packet reaching it is 'unknown')",
    "groups": "a group action (OVN's load balancers, ECMP) ends the trace as unknown "
              "(sos 4.0 dumps groups only for the OpenFlow versions in Bridge.protocols, "
              "none when it is empty as on br-int; current sos dumps them)",
    "tlv_map": "Geneve options are taken as the sender's tun_metadata fields",
    "meters": "meters are not shown",
    "ports_desc": "port link state and names come from OVSDB only",
    "fdb": "NORMAL forwarding learns from scratch",
    "conntrack": "no connection table: a --reply or established trace cannot use the "
                 "node's real entries",
    "ovsdb": "no bridges, ports or interfaces: where ports live is unknown",
    "ovn_version": "OVN release facts are guessed",
}


def import_snapshot(paths: list[str]) -> tuple[Snapshot, ImportReport]:
    """Read every input; raise InputError (one line naming the file) if one is unusable."""
    if not paths:
        raise InputError("give at least one sosreport, directory or database file")
    report = ImportReport()
    workdir = Path(tempfile.mkdtemp(prefix="ofrace-import-"))
    try:
        sosreports, databases = [], []
        for n, given in enumerate(paths):
            found = _open_input(Path(given), workdir / str(n))
            sosreports += found[0]
            databases += found[1]
        with building():
            return _build(sosreports, databases, report), report
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _open_input(path: Path, scratch: Path) -> tuple[list[SosReport], list[tuple[str, Path]]]:
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_file() and is_archive(path):
        scratch.mkdir(parents=True)
        extract(path, scratch, wanted_member, cut_member)
        sos, dbs = _search(scratch, str(path))
        if not sos and not dbs:
            raise InputError(f"{path}: no sosreport (sos_commands/) and no OVSDB database "
                             "file in it")
        return sos, dbs
    if path.is_file():
        return [], [(str(path), path)]
    sos, dbs = _search(path, str(path))
    for n, inner in enumerate(sorted(p for p in _walk(path) if is_archive(p))):
        more = _open_input(inner, scratch / f"inner{n}")
        sos += more[0]
        dbs += more[1]
    if not sos and not dbs:
        raise InputError(f"{path}: no sosreport (sos_commands/) and no OVSDB database file "
                         "in it")
    return sos, dbs


def _walk(root: Path, depth: int = 0):
    if depth > MAX_DEPTH:
        return
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.is_symlink():
            continue        # a directory given as input is read without following links
        if entry.is_dir():
            yield from _walk(entry, depth + 1)
        elif entry.is_file():
            yield entry


def _search(root: Path, label: str) -> tuple[list[SosReport], list[tuple[str, Path]]]:
    """Sosreports (directories holding sos_commands/) and loose database files."""
    sosreports, databases = [], []
    roots = [root] if is_sosreport(root) else [
        d for d in _dirs(root) if is_sosreport(d)]
    archive = not Path(label).is_dir()
    for sos_root in roots:
        if sos_root == root:
            name = label
        elif archive:
            name = Path(label).name + ("" if len(roots) == 1 else f":{sos_root.name}")
        else:
            name = str(Path(label) / sos_root.relative_to(root))
        sosreports.append(SosReport(sos_root, name))
    for path in _walk(root):
        if path.name in DATABASE_FILES and not any(r in path.parents for r in roots):
            databases.append((f"{label}:{path.relative_to(root)}" if path != root else label,
                              path))
    return sosreports, databases


def _dirs(root: Path, depth: int = 0):
    if depth > MAX_DEPTH:
        return
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            yield entry
            if not is_sosreport(entry):
                yield from _dirs(entry, depth + 1)


def _build(sosreports: list[SosReport], loose: list[tuple[str, Path]],
           report: ImportReport) -> Snapshot:
    snapshot = Snapshot()
    files: dict[str, list[tuple[str, OvsdbFile]]] = {"southbound": [], "northbound": []}
    for sos in sosreports:
        for filename in ("ovnsb_db.db", "ovnnb_db.db"):
            path = sos.database(filename)
            if path is None and sos.cut(filename):
                report.missing.append((f"{sos.label}: {filename}", sos.cut(filename)))
            if path is not None:
                files["southbound" if "sb" in filename else "northbound"].append(
                    (f"{sos.label}:{path.relative_to(sos.root)}", read_ovsdb_file(path)))
    for label, path in loose:
        db = read_ovsdb_file(path)
        which = DATABASES.get(db.name)
        if which is None:
            report.sources.append(SourceReport(label, "database", notes=[
                f"a {db.name or 'unknown'} database: not used (a node's conf.db counts "
                "only inside its sosreport)"]))
            continue
        files[which].append((label, db))
    for which, tables in (("southbound", SOUTHBOUND_TABLES), ("northbound", NORTHBOUND_TABLES)):
        if not files[which]:
            _database_from_listings(snapshot, which, tables, sosreports, report)
        if files[which]:
            label, db = max(files[which], key=lambda item: item[1].last_date or 0)
            database = _database(which, tables, label, db)
            secrets.redact_database(database, snapshot.redacted)
            setattr(snapshot, which, database)
            report.databases[which] = label
            note = (f"{db.format}, {db.records} records"
                    + (f", {db.uncommitted} uncommitted entries left out"
                       if db.uncommitted else ""))
            report.sources.append(SourceReport(label, f"{which} database", notes=[note] + [
                f"{other}: another copy, older: not used" for other, _ in files[which]
                if other != label]))
    _add_nodes(snapshot, sosreports, report)
    _add_absent_chassis(snapshot, report)
    _cluster_gaps(snapshot, report)
    return snapshot


def _database_from_listings(snapshot: Snapshot, which: str, tables, sosreports,
                            report: ImportReport) -> None:
    """No raw file: the DB host sosreport's ``ovn-{nb,sb}ctl list <Table>`` text."""
    ctl = "ovn-sbctl" if which == "southbound" else "ovn-nbctl"
    for sos in sosreports:
        if "ovn_central" not in sos.plugins():
            continue
        data = sos.listings(ctl, tables)
        if not data:
            continue
        try:
            check_rows(data, which)
        except InputError as exc:
            raise InputError(f"{sos.label}: {ctl} list: {exc}") from None
        missing = [t for t in tables if t not in data]
        database = Database(name=which, remote=f"text {sos.label}", via="import",
                            tables=data, missing_tables=missing)
        secrets.redact_database(database, snapshot.redacted)
        setattr(snapshot, which, database)
        label = f"{sos.label}: {ctl} list"
        report.databases[which] = label
        report.sources.append(SourceReport(label, f"{which} text listings", notes=[
            f"{len(data)} tables; not listed: {', '.join(missing)}" if missing
            else f"{len(data)} tables"]))
        if which == "southbound" and "Logical_Flow" in missing:
            report.missing.append(("SB Logical_Flow", "sos does not list it: traces run on "
                                   "the OpenFlow tables, but stages are not named and the "
                                   "audit's lflow accounting is missing"))
        return


def _database(which: str, tables, label: str, db: OvsdbFile) -> Database:
    data = db.tables([t for t in tables])
    try:
        check_rows(data, which)
    except InputError as exc:
        raise InputError(f"{label}: {exc}") from None
    result = Database(name=which, remote=f"file {label}", via="import",
                      schema_version=db.version, schema=db.schema, tables=data,
                      missing_tables=[t for t in tables if t not in data])
    result.started = result.finished = (db.last_date / 1000) if db.last_date else None
    return result


def _sb_chassis(snapshot: Snapshot) -> dict[str, dict]:
    rows = snapshot.southbound.tables.get("Chassis", []) if snapshot.southbound else []
    return {row["name"]: row for row in rows}


def _add_nodes(snapshot: Snapshot, sosreports: list[SosReport], report: ImportReport) -> None:
    sb = _sb_chassis(snapshot)
    for sos in sosreports:
        plugins = sos.plugins()
        if not ({"openvswitch", "ovn_host"} & set(plugins)):
            kind = "DB host sosreport" if "ovn_central" in plugins else "sosreport"
            report.sources.append(SourceReport(sos.label, kind, notes=sos.notes or [
                f"plugins {', '.join(plugins) or 'none of openvswitch, ovn_host, ovn_central'}"]))
            continue
        doc, files = read_node(sos)
        system_id = doc.get("system_id")
        row = sb.get(system_id) if system_id else None
        if row is not None:
            name = row.get("hostname") or (row.get("external_ids") or {}).get("hostname") \
                or doc.get("hostname") or system_id
            how = f"system-id {system_id} = SB Chassis {row['name']} (hostname {name})"
        else:
            name = doc.get("hostname") or system_id or sos.label
            how = (f"system-id {system_id} is not a Chassis in the SB" if system_id and sb
                   else "no SB to match against" if system_id
                   else "no system-id (no OVSDB rows in the sosreport)")
        name = _unique(name, snapshot.chassis)
        try:
            chassis = chassis_from_agent(name, f"sosreport {sos.label}", doc)
        except DocumentError as exc:
            raise InputError(f"{sos.label}: {exc}") from None
        secrets.redact_chassis(chassis, [], snapshot.redacted)
        chassis.commands = []        # no command ran: the sosreport's files answered
        if chassis.ovn_version is None and snapshot.southbound is not None:
            _version_from_northd(chassis, snapshot, report)
        snapshot.chassis[name] = chassis
        source = SourceReport(sos.label, "node sosreport", matched=how, chassis=name,
                              files=dict(files.used), notes=list(sos.notes))
        if files.ovsdb_source:
            source.files["ovsdb"] = files.ovsdb_source
        report.sources.append(source)
        report.chassis.append(_chassis_report(chassis, sos.label, doc))
    snapshot.chassis = dict(sorted(snapshot.chassis.items()))


def _unique(name: str, taken) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    return candidate


def _version_from_northd(chassis: Chassis, snapshot: Snapshot, report: ImportReport) -> None:
    """ovn-controller's release unknown: northd's, from SB_Global, said as a guess."""
    rows = snapshot.southbound.tables.get("SB_Global") or [{}]
    version = (rows[0].get("options") or {}).get("northd_internal_version", "")
    release = version.split("-")[0]
    if release:
        chassis.ovn_version = f"ovn-controller {release}"
        chassis.problems.append(Problem(
            where=chassis.name, what="ovn version", error=f"ovn-controller's version is not "
            f"in the sosreport: taken as northd's ({release}, SB_Global)"))


def _chassis_report(chassis: Chassis, label: str, doc: dict) -> ChassisReport:
    result = ChassisReport(chassis.name, label)
    if chassis.ovsdb_read:
        counts = ", ".join(f"{len(rows)} {t}" for t, rows in chassis.ovsdb.items() if rows)
        result.found.append(f"OVSDB ({counts})")
    else:
        result.missing.append(("OVSDB rows", PREVENTS["ovsdb"]))
    for bridge in chassis.bridges.values():
        read = [f"{len(bridge.flows)} flows" if not bridge.errors.get("flows") else None,
                f"{len(bridge.groups)} groups" if not bridge.errors.get("groups") else None,
                "TLV map" if not bridge.errors.get("tlv_map") else None]
        result.found.append(f"{bridge.name}: " + ", ".join(r for r in read if r))
        for key, error in sorted(bridge.errors.items()):
            result.missing.append((f"{bridge.name} {key}", PREVENTS.get(key, error)))
    if chassis.integration_bridge not in chassis.bridges:
        result.missing.append((chassis.integration_bridge, PREVENTS["flows"]))
    if chassis.conntrack is not None:
        result.found.append(f"conntrack ({chassis.conntrack.count(chr(10))} entries)")
    else:
        result.missing.append(("conntrack", PREVENTS["conntrack"]))
    if not doc.get("ovn_version"):
        result.missing.append(("ovn-controller version", PREVENTS["ovn_version"]
                               + (f" ({chassis.ovn_version.split()[-1]}, northd's)"
                                  if chassis.ovn_version else "")))
    return result


def _add_absent_chassis(snapshot: Snapshot, report: ImportReport) -> None:
    """SB chassis no sosreport was given for: in the snapshot as unread, with why."""
    present = {ch.system_id for ch in snapshot.chassis.values()}
    for name, row in sorted(_sb_chassis(snapshot).items()):
        if name in present:
            continue
        shown = _unique(row.get("hostname") or name, snapshot.chassis)
        why = (f"no sosreport of this chassis (system-id {name}) was given: its OpenFlow "
               "tables are not in the snapshot")
        snapshot.chassis[shown] = Chassis(
            name=shown, transport="import", reachable=False, system_id=name,
            problems=[Problem(where=shown, what="import", error=why)])
        result = ChassisReport(shown, None)
        result.missing.append(("sosreport", PREVENTS["flows"]))
        report.chassis.append(result)
    snapshot.chassis = dict(sorted(snapshot.chassis.items()))


def _cluster_gaps(snapshot: Snapshot, report: ImportReport) -> None:
    if snapshot.southbound is None:
        report.missing.append(("Southbound database", "nothing can be traced or audited: "
                               "give the DB host's sosreport (ovn_central) or ovnsb_db.db"))
    if snapshot.northbound is None:
        report.missing.append(("Northbound database", "no NB names or NB checks in audit; "
                               "traces still run"))
    if not any(ch.reachable for ch in snapshot.chassis.values()):
        report.missing.append(("node sosreports", "no OpenFlow tables: audit's logical side "
                               "still answers, no trace"))
    for problem in snapshot.problems:
        report.missing.append((problem.where, problem.error))
