"""``ofrace import``: a snapshot from sosreports and raw OVSDB files, no cluster needed.

Where it sits: a third way (beside reading nodes now, and loading a snapshot file)
to produce the same ``Snapshot`` the collect stage produces.  Each node sosreport
becomes the node document the agent would have sent (``sosreport.read_node``) and
then a ``Chassis`` through ``cluster.chassis_from_agent``; the NB and SB come from
the raw database files (``ovsdb_file``) of a DB host's sosreport or given as they
are, reduced to the tables ``collect`` reads.  A node sosreport is matched to its SB
Chassis row by system-id (external_ids:system-id of its Open_vSwitch row) and named
as that chassis' hostname, as a lab's or an inventory's nodes are.

An OpenShift network must-gather (``mustgather``: in interconnect mode every node's
zone NB and SB, as ``<pod>_nbdb``/``_sbdb`` in ``ovnk_database_store.tar.gz``) gives
zones instead of the one central pair: each pod's NB/SB pair is a ``Zone`` named as
its NB_Global.name (ovn-kubernetes: the node), as ``collect`` names a live zone.  A
node sosreport then joins the zone whose SB holds its system-id as a local Chassis
row (not ``is-remote``, which ovn-ic's copies of other zones' gateways are).  A zone
file that cannot be read is one line naming it; the other zones are still imported.
An IC-SB file (``OVN_IC_Southbound``) given as well becomes the snapshot's
``interconnect``.

Inputs are untrusted: archives (a must-gather's store archive, and single ``.gz``
files, too) are opened by ``archive`` into one private temporary directory, removed
before returning; nothing else is written.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ofrace.collect import mustgather, secrets
from ofrace.collect.archive import extract, gunzip, is_archive
from ofrace.collect.cluster import (
    INTERCONNECT_TABLES,
    NORTHBOUND_TABLES,
    SOUTHBOUND_TABLES,
    chassis_from_agent,
)
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
from ofrace.snapshot import Chassis, Database, Problem, Snapshot, Zone, check_rows

DATABASES = {"OVN_Southbound": "southbound", "OVN_Northbound": "northbound",
             "OVN_IC_Southbound": "interconnect"}
SCHEMAS = {"southbound": "OVN_Southbound", "northbound": "OVN_Northbound"}
MAX_DEPTH = 4        # how deep a directory is searched for sosreports and DB files
IC_DATABASE_FILES = ("ovn_ic_sb_db.db",)    # the IC-SB, as ovn-ctl names its file


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
class Inputs:
    """What the inputs hold: sosreports, loose database files (label, path), and a
    must-gather's zone files."""

    sosreports: list[SosReport] = field(default_factory=list)
    databases: list[tuple[str, Path]] = field(default_factory=list)
    zone_files: list[mustgather.MustGatherFile] = field(default_factory=list)

    def add(self, other: Inputs) -> None:
        self.sosreports += other.sosreports
        self.databases += other.databases
        self.zone_files += other.zone_files

    def __bool__(self) -> bool:
        return bool(self.sosreports or self.databases or self.zone_files)


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
        inputs = Inputs()
        for n, given in enumerate(paths):
            inputs.add(_open_input(Path(given), workdir / str(n)))
        with building():
            return _build(inputs, report), report
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _wanted(name: str) -> bool:
    return wanted_member(name) or mustgather.wanted_member(name)


NOTHING = "no sosreport (sos_commands/), no must-gather database and no OVSDB database file"


def _open_input(path: Path, scratch: Path, label: str | None = None,
                nested: bool = False) -> Inputs:
    """``label``: how the user knows ``path`` (an archive inside an archive is
    ``outer:member``); ``nested``: opened from inside an archive, so archives in it
    are not opened again (one level, the must-gather's store archive)."""
    label = label or str(path)
    if not path.exists():
        raise InputError(f"{label}: no such file or directory")
    if path.is_file() and is_archive(path):
        scratch.mkdir(parents=True)
        extract(path, scratch, _wanted, cut_member)
        found = _search(scratch, label, scratch / "gz", archive=True)
        if not nested:
            for n, inner in enumerate(sorted(p for p in _walk(scratch)
                                             if mustgather.is_store_archive(p))):
                found.add(_open_input(inner, scratch.parent / f"{scratch.name}.inner{n}",
                                      f"{label}:{inner.relative_to(scratch)}", nested=True))
        if not found:
            raise InputError(f"{label}: {NOTHING} in it")
        return found
    if path.is_file():
        return _single_file(path, label, scratch)
    found = _search(path, label, scratch / "gz")
    for n, inner in enumerate(sorted(p for p in _walk(path) if is_archive(p))):
        try:
            found.add(_open_input(inner, scratch / f"inner{n}"))
        except InputError as exc:
            if not str(exc).endswith(f"{NOTHING} in it"):
                raise
            # another archive of the tree (a must-gather holds many): not ours
    if not found:
        raise InputError(f"{label}: {NOTHING} in it")
    return found


def _single_file(path: Path, label: str, scratch: Path) -> Inputs:
    """A database file given by itself: raw, or gzip'd (``leader_sbdb.gz``); a
    must-gather zone file's name (``<pod>_sbdb``) says its pod, wherever it lies."""
    kind = mustgather.classify(path.name, (mustgather.STORE_DIR, "network_logs"))
    if path.name.endswith(".gz"):
        scratch.mkdir(parents=True)
        path = gunzip(path, scratch / path.name[:-3], label)
    if kind is not None and kind[1] is not None:
        return Inputs(zone_files=[mustgather.MustGatherFile(path, label, kind[0], kind[1],
                                                            False)])
    return Inputs(databases=[(label, path)])


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


def _search(root: Path, label: str, gz_dir: Path, archive: bool = False) -> Inputs:
    """Sosreports (directories holding sos_commands/), a must-gather's database files
    (gzip'd ones written out under ``gz_dir``) and loose database files."""
    found = Inputs()
    files = list(_walk(root))
    for n, file in enumerate(mustgather.find(root, label, files)):
        if file.gzipped:
            gz_dir.mkdir(parents=True, exist_ok=True)
            file = mustgather.MustGatherFile(
                gunzip(file.path, gz_dir / f"{n}-{file.path.name[:-3]}", file.label),
                file.label, file.which, file.pod, False)
        if file.pod is None:
            found.databases.append((file.label, file.path))    # the central leader's
        else:
            found.zone_files.append(file)
    sosreports, databases = found.sosreports, found.databases
    roots = [root] if is_sosreport(root) else [
        d for d in _dirs(root) if is_sosreport(d)]
    for sos_root in roots:
        if sos_root == root:
            name = label
        elif archive:
            name = Path(label).name + ("" if len(roots) == 1 else f":{sos_root.name}")
        else:
            name = str(Path(label) / sos_root.relative_to(root))
        sosreports.append(SosReport(sos_root, name))
    for path in files:
        if path.name in (*DATABASE_FILES, *IC_DATABASE_FILES) and not any(
                r in path.parents for r in roots):
            databases.append((f"{label}:{path.relative_to(root)}" if path != root else label,
                              path))
    return found


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


def _build(inputs: Inputs, report: ImportReport) -> Snapshot:
    snapshot = Snapshot()
    sosreports = inputs.sosreports
    files: dict[str, list[tuple[str, OvsdbFile]]] = {
        "southbound": [], "northbound": [], "interconnect": []}
    zoned = bool(inputs.zone_files)
    for sos in sosreports:
        for filename in ("ovnsb_db.db", "ovnnb_db.db"):
            path = sos.database(filename)
            if path is None and sos.cut(filename):
                report.missing.append((f"{sos.label}: {filename}", sos.cut(filename)))
            if path is not None and zoned:
                report.sources.append(SourceReport(
                    f"{sos.label}:{path.relative_to(sos.root)}", "database", notes=[
                        "not used: the must-gather's zone databases are"]))
            elif path is not None:
                files["southbound" if "sb" in filename else "northbound"].append(
                    (f"{sos.label}:{path.relative_to(sos.root)}", read_ovsdb_file(path)))
    for label, path in inputs.databases:
        db = _read(label, path)
        which = DATABASES.get(db.name)
        if which is None or (zoned and which != "interconnect"):
            report.sources.append(SourceReport(label, "database", notes=[
                f"a {db.name or 'unknown'} database: not used (a node's conf.db counts "
                "only inside its sosreport)" if which is None else
                f"a central {db.name}: not used beside the must-gather's zone databases"]))
            continue
        files[which].append((label, db))
    for which, tables in (("southbound", SOUTHBOUND_TABLES), ("northbound", NORTHBOUND_TABLES),
                          ("interconnect", INTERCONNECT_TABLES)):
        if not files[which] and which != "interconnect" and not zoned:
            _database_from_listings(snapshot, which, tables, sosreports, report)
        if files[which]:
            label, db = max(files[which], key=lambda item: item[1].last_date or 0)
            database = _database(which, tables, label, db)
            secrets.redact_database(database, snapshot.redacted)
            setattr(snapshot, which, database)
            report.databases[which] = label
            report.sources.append(SourceReport(label, f"{which} database", notes=[
                _describe(db)] + [f"{other}: another copy, older: not used"
                                  for other, _ in files[which] if other != label]))
    _add_zones(snapshot, inputs.zone_files, report)
    _add_nodes(snapshot, sosreports, report)
    _add_absent_chassis(snapshot, report)
    _cluster_gaps(snapshot, report)
    return snapshot


def _read(label: str, path: Path) -> OvsdbFile:
    """``read_ovsdb_file``, its error naming the file as the user gave it (not the
    private directory it was extracted to)."""
    try:
        return read_ovsdb_file(path)
    except InputError as exc:
        message = str(exc).replace(str(path), label)
        raise InputError(message if label in message else f"{label}: {message}") from None


def _describe(db: OvsdbFile) -> str:
    return (f"{db.format}, {db.records} records"
            + (f", {db.uncommitted} uncommitted entries left out" if db.uncommitted else ""))


def _add_zones(snapshot: Snapshot, zone_files: list[mustgather.MustGatherFile],
               report: ImportReport) -> None:
    """Each must-gather pod's NB and SB as a zone.  A file that cannot be read (cut
    short, corrupt, another database) leaves its zone with that database's error --
    one line naming the file -- and the other zones whole."""
    pods: dict[str, dict[str, mustgather.MustGatherFile]] = {}
    for file in zone_files:
        pods.setdefault(file.pod, {})[file.which] = file
    for pod, found in sorted(pods.items()):
        dbs: dict[str, Database] = {}
        for which, tables in (("northbound", NORTHBOUND_TABLES),
                              ("southbound", SOUTHBOUND_TABLES)):
            file = found.get(which)
            if file is None:
                report.missing.append((f"must-gather pod {pod} {which}",
                                       f"no {pod}_{which[0]}bdb: that zone has no "
                                       f"{which} database"))
                continue
            try:
                db = _read(file.label, file.path)
                if db.name != SCHEMAS[which]:
                    raise InputError(f"{file.label}: a {db.name or 'unknown'} database, "
                                     f"not {SCHEMAS[which]}")
                database = _database(which, tables, file.label, db)
            except InputError as exc:
                database = Database(name=which, remote=f"file {file.label}", via="import",
                                    error=str(exc))
                report.missing.append((file.label, f"unreadable, zone of pod {pod} has no "
                                       f"{which}: {exc}"))
            else:
                report.sources.append(SourceReport(file.label, f"zone {which} database",
                                                   notes=[_describe(db)]))
            secrets.redact_database(database, snapshot.redacted)
            dbs[which] = database
        nb = dbs.get("northbound")
        named = (nb.tables.get("NB_Global") or [{}])[0].get("name") if nb else None
        name = named if isinstance(named, str) and named else pod
        if name in snapshot.zones:      # two pods' files name one zone: the first kept
            report.sources.append(SourceReport(pod, "must-gather pod", notes=[
                f"zone {name} again: another copy, not used"]))
            continue
        snapshot.zones[name] = Zone(name=name, **dbs)
        for which in dbs:
            report.databases[f"zone {name} {which}"] = found[which].label
    snapshot.zones = dict(sorted(snapshot.zones.items()))


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
        check_rows(data, which, interconnect=which == "interconnect")
    except InputError as exc:
        raise InputError(f"{label}: {exc}") from None
    result = Database(name=which, remote=f"file {label}", via="import",
                      schema_version=db.version, schema=db.schema, tables=data,
                      missing_tables=[t for t in tables if t not in data])
    result.started = result.finished = (db.last_date / 1000) if db.last_date else None
    return result


def _sb_chassis(snapshot: Snapshot) -> dict[str, tuple[dict, Zone | None]]:
    """SB Chassis rows by name (system-id), with the zone they are local to: in a zone's
    SB, the other zones' gateways are copies ovn-ic marks ``is-remote`` (ic/ovn-ic.c
    ``sync_isb_gw_to_sb``), not chassis of that zone."""
    rows = snapshot.southbound.tables.get("Chassis", []) if snapshot.southbound else []
    found: dict[str, tuple[dict, Zone | None]] = {row["name"]: (row, None) for row in rows}
    for zone in snapshot.zones.values():
        sb = zone.southbound
        for row in (sb.tables.get("Chassis", []) if sb is not None else []):
            if not _is_remote(row):
                found.setdefault(row["name"], (row, zone))
    return found


def _remote_only(snapshot: Snapshot) -> dict[str, dict]:
    """Chassis every zone read has only as a remote copy: their own zone's databases
    were not read (a cut file), so nothing says more of them."""
    local = _sb_chassis(snapshot)
    found: dict[str, dict] = {}
    for zone in snapshot.zones.values():
        sb = zone.southbound
        for row in (sb.tables.get("Chassis", []) if sb is not None else []):
            if row["name"] not in local:
                found.setdefault(row["name"], row)
    return found


def _is_remote(row: dict) -> bool:
    # ic/ovn-ic.c sync_isb_gw_to_sb: other_config from 20.06, external_ids until 22.06
    for column in ("other_config", "external_ids"):
        if ((row.get(column) or {}).get("is-remote") or "").lower() == "true":
            return True
    return False


def _add_nodes(snapshot: Snapshot, sosreports: list[SosReport], report: ImportReport) -> None:
    sb = _sb_chassis(snapshot)
    remote_only = _remote_only(snapshot)
    for sos in sosreports:
        plugins = sos.plugins()
        if not ({"openvswitch", "ovn_host"} & set(plugins)):
            kind = "DB host sosreport" if "ovn_central" in plugins else "sosreport"
            report.sources.append(SourceReport(sos.label, kind, notes=sos.notes or [
                f"plugins {', '.join(plugins) or 'none of openvswitch, ovn_host, ovn_central'}"]))
            continue
        doc, files = read_node(sos)
        system_id = doc.get("system_id")
        row, zone = sb.get(system_id, (None, None)) if system_id else (None, None)
        if row is not None:
            name = row.get("hostname") or (row.get("external_ids") or {}).get("hostname") \
                or doc.get("hostname") or system_id
            how = (f"system-id {system_id} = SB Chassis {row['name']}"
                   + (f" of zone {zone.name}" if zone is not None else "")
                   + f" (hostname {name})")
        elif system_id in remote_only:
            row = remote_only[system_id]
            name = row.get("hostname") or doc.get("hostname") or system_id
            how = (f"system-id {system_id} is a remote chassis in every zone read: its own "
                   "zone's databases were not read")
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
        southbound = zone.southbound if zone is not None else snapshot.southbound
        if chassis.ovn_version is None and southbound is not None:
            _version_from_northd(chassis, southbound)
        snapshot.chassis[name] = chassis
        if zone is not None:
            zone.chassis = sorted([*zone.chassis, name])
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


def _version_from_northd(chassis: Chassis, southbound: Database) -> None:
    """ovn-controller's release unknown: northd's, from SB_Global, said as a guess."""
    rows = southbound.tables.get("SB_Global") or [{}]
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



def _unread_chassis(snapshot: Snapshot, system_id: str, row: dict, why: str) -> str:
    """Put a chassis whose tables were not read into ``snapshot``, under a name not yet
    taken, with ``why``; return that name."""
    shown = _unique(row.get("hostname") or system_id, snapshot.chassis)
    snapshot.chassis[shown] = Chassis(
        name=shown, transport="import", reachable=False, system_id=system_id,
        problems=[Problem(where=shown, what="import", error=why)])
    return shown


def _add_absent_chassis(snapshot: Snapshot, report: ImportReport) -> None:
    """SB chassis no sosreport was given for: in the snapshot as unread, with why."""
    present = {ch.system_id for ch in snapshot.chassis.values()}
    none_read = not present
    for name, (row, zone) in sorted(_sb_chassis(snapshot).items()):
        if name in present:
            continue
        shown = _unread_chassis(snapshot, name, row, (
            f"no sosreport of this chassis (system-id {name}) was given: its OpenFlow "
            "tables are not in the snapshot"))
        if zone is not None:
            zone.chassis = sorted([*zone.chassis, shown])
        result = ChassisReport(shown, None)
        if not none_read:    # with no sosreport at all, one line says it (_cluster_gaps)
            result.missing.append(("sosreport", PREVENTS["flows"]))
        report.chassis.append(result)
    for name, row in sorted(_remote_only(snapshot).items()):
        if name in present:
            continue
        shown = _unread_chassis(snapshot, name, row, (
            f"system-id {name} is a remote chassis in every zone read: its own zone's "
            "databases were not read, nor its OpenFlow tables"))
        report.chassis.append(ChassisReport(shown, None))
    snapshot.chassis = dict(sorted(snapshot.chassis.items()))


def _cluster_gaps(snapshot: Snapshot, report: ImportReport) -> None:
    if snapshot.southbound is None and not snapshot.zones:
        report.missing.append(("Southbound database", "nothing can be traced or audited: "
                               "give the DB host's sosreport (ovn_central), ovnsb_db.db or "
                               "a must-gather"))
    if snapshot.northbound is None and not snapshot.zones:
        report.missing.append(("Northbound database", "no NB names or NB checks in audit; "
                               "traces still run"))
    if not any(ch.reachable for ch in snapshot.chassis.values()):
        names = sorted(snapshot.chassis)
        report.missing.append(("node sosreports", (
            f"none given for the {len(names)} chassis ({', '.join(names)}): " if names
            else "") + "no OpenFlow tables, so no trace; audit's logical side still "
            "answers"))
    for problem in snapshot.problems:
        report.missing.append((problem.where, problem.error))
