"""The snapshot: everything collected from a cluster, as plain versioned data.

Every later stage (index, simulate, annotate, audit) reads only this model,
so a snapshot loaded from a file traces exactly like the live cluster it was
taken from.  The model holds raw facts (flow text as ``ovs-ofctl`` printed
it, OVSDB rows as the server sent them) and derives the rest on demand;
nothing here parses flows.

On disk (version 3): a ZIP archive.  ``snapshot.json`` holds everything but
the flow lines and the OVN databases' rows, ``{"format": "ofrace-snapshot",
"version": 3, …}``; each bridge's flow lines are a member of their own, read
when something first asks for them — a trace through 2 chassis of a 10-chassis,
2-million-flow snapshot reads 2 bridges' lines, not 10.  Each database table is
a store of its own (``ofrace.snapshot.blocks``), decoded when first asked for;
every table's rows are stored by the first 32 bits of their UUID (an OpenFlow
cookie, a stage-hint), so annotating a trace reads the Logical_Flow rows of the
cookies it crossed, not 118k rows.  A table a reader needs whole but only in part (the
audit reads ten columns of every Logical_Flow) also has those columns stored beside its
rows, one JSON list per column (``PROJECTED``, ``StoredTables.projection``); files
without them are read from the rows.  Version 2 files (the rows inline in
the document) and version 1 files (gzip-compressed JSON with the lines inline)
are still read.  Keys added within a version (a chassis' ``conntrack``) have
defaults that mean "not read", so older files load and say so, and older
readers ignore them.

A file is untrusted input: the document is checked against this model when
it is loaded (one line naming the offending key), each member is read with a
limit taken from the size the document declares for it (``flows_bytes``), and
nothing may inflate beyond fixed caps, so a decompression bomb costs a few
megabytes.  Saving writes a temporary file beside the target and renames it.
"""

from __future__ import annotations

import errno
import gzip
import json
import math
import os
import re
import tempfile
import time
import zipfile
import zlib
from collections.abc import MutableMapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from functools import cache, cached_property, partial
from pathlib import Path
from types import UnionType
from typing import Union, get_args, get_origin, get_type_hints

from ofrace import __version__
from ofrace.errors import Exit, InputError, OfraceError
from ofrace.memory import building
from ofrace.snapshot.blocks import BlockStore, index_bytes, member_reader, write_store

SNAPSHOT_FORMAT = "ofrace-snapshot"
SNAPSHOT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)


@dataclass
class CommandRecord:
    """One command run on a node, kept so a gap can be traced to its cause."""

    argv: list[str]
    rc: int
    started: float
    elapsed: float
    error: str | None = None


@dataclass
class Problem:
    """Something that could not be read; the run went on without it."""

    where: str
    what: str
    error: str


@dataclass
class Bridge:
    """One OpenFlow bridge as ``ovs-ofctl`` showed it."""

    name: str
    flows: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    meters: list[str] = field(default_factory=list)
    tlv_map: str = ""
    ports_desc: str = ""
    fdb: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    # A bridge read from a version-2/3 file has no ``flows`` in its __dict__ until
    # something asks: then ``__getattr__`` reads them from the file's member(s).
    def __getattr__(self, name: str):
        source = self.__dict__.get("_flow_source") if name == "flows" else None
        if source is None:
            raise AttributeError(name)
        flows = self.__dict__["flows"] = source()
        for key in ("_flow_source", "_flow_count", "_flow_store", "_flow_index"):
            self.__dict__.pop(key, None)
        return flows

    def lines(self) -> list[str] | StoredLines:
        """The flow lines as a sequence of one's own to append to: from a version-3 file,
        line ``i`` is read without the others (``StoredLines``)."""
        store = self.__dict__.get("_flow_store")
        if store is not None:
            return StoredLines(store())
        return list(self.flows)

    def encoded_lines(self) -> list[bytes] | None:
        """The flow lines as a version-3 file stores them (UTF-8; ``line.decode("utf-8",
        "surrogateescape")`` is the line), for a reader of every line that needs the text
        of few; None when the lines are not in a store or were read already."""
        store = self.__dict__.get("_flow_store")
        if store is None or "flows" in self.__dict__:
            return None
        with building():
            return store().all()

    def flow_index(self) -> bytes | None:
        """What ``save(flow_index=…)`` stored for these lines (the classifier's index,
        ``ofrace.openflow.stored``); None when the file has none or the lines were read."""
        source = self.__dict__.get("_flow_index")
        if source is None or "flows" in self.__dict__:   # lines given or changed since
            return None
        return source()

    @classmethod
    def stored(cls, source, count: int, store=None, index=None, **fields) -> Bridge:
        """A bridge whose flow lines ``source()`` returns when first needed (``store()``:
        their ``BlockStore``; ``index()``: the classifier's index bytes)."""
        bridge = cls(**fields)
        del bridge.__dict__["flows"]
        bridge.__dict__["_flow_source"] = source
        bridge.__dict__["_flow_count"] = count
        if store is not None:
            bridge.__dict__["_flow_store"] = store
        if index is not None:
            bridge.__dict__["_flow_index"] = index
        return bridge

    def read_with(self, counters, layout: list[tuple[int, int]] | None,
                  splits: dict | None = None) -> None:
        """What the node said of these lines beside them: the flows' counters as of now
        (``counters[i]``: line i's ``line_counters``; None: the lines' own), for lines kept
        from an earlier read; how many lines each table has, in order (None: unknown);
        ``splits``: tables of these very lines already cut by metadata (``table_splits``)."""
        self.__dict__["_counters"] = counters
        self.__dict__["_layout"] = layout
        if splits:
            self.__dict__["_splits"] = dict(splits)

    def table_splits(self) -> dict:
        """Tables of these lines cut by the metadata their flows match, by table number
        (``ofrace.openflow.bridge._split_by_metadata``'s answers): one dict that every
        index of these lines fills and reads, and that a live read keeps for the next
        (``ofrace.collect.flow_cache``).  Never saved in a snapshot file."""
        return self.__dict__.setdefault("_splits", {})

    def fresh_counters(self):
        return self.__dict__.get("_counters")

    def table_layout(self) -> list[tuple[int, int]] | None:
        return self.__dict__.get("_layout")

    @property
    def flow_count(self) -> int:
        """How many flow lines, without reading them from a file."""
        if "flows" in self.__dict__:
            return len(self.__dict__["flows"])
        return self.__dict__.get("_flow_count", 0)


@dataclass
class Interface:
    """An OVS Interface row, reduced to what tracing and auditing use."""

    name: str
    bridge: str
    type: str
    ofport: int | None
    options: dict[str, str]
    external_ids: dict[str, str]
    error: str | None
    mac_in_use: str | None
    # What decides whether OVS may send through it (a bundle member, ofproto-dpif.c
    # port_run / may_enable_port): None where the column was not read (older snapshots).
    link_state: str | None = None
    bfd: dict[str, str] | None = None           # BFD's configuration ("enable")
    bfd_status: dict[str, str] | None = None    # "forwarding": "true"/"false", …
    cfm_mpid: int | None = None                 # CFM runs when set
    cfm_fault: bool | None = None
    cfm_remote_opstate: str | None = None
    liveness_read: bool = False                 # the columns above were collected

    @property
    def iface_id(self) -> str | None:
        return self.external_ids.get("iface-id")


@dataclass
class Chassis:
    """One node's OVS/OVN state, or the reason it could not be read."""

    name: str
    transport: str
    reachable: bool = True
    hostname: str | None = None
    system_id: str | None = None
    integration_bridge: str = "br-int"
    ovs_version: str | None = None
    ovn_version: str | None = None
    ovn_controller_status: str | None = None
    dpif: str = ""
    # ``ovs-appctl dpctl/dump-conntrack -m`` as the node printed it; None: not read (a
    # snapshot from before it was collected, or the read failed), never "empty".
    conntrack: str | None = None
    conntrack_truncated: bool = False   # cut at the agent's bound: entries may be missing
    bridges: dict[str, Bridge] = field(default_factory=dict)
    ovsdb: dict[str, list[dict]] = field(default_factory=dict)
    commands: list[CommandRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    started: float | None = None
    finished: float | None = None

    @property
    def external_ids(self) -> dict[str, str]:
        rows = self.ovsdb.get("Open_vSwitch") or [{}]
        return rows[0].get("external_ids") or {}

    @property
    def encap_ips(self) -> list[str]:
        raw = self.external_ids.get("ovn-encap-ip", "")
        return [ip.strip() for ip in raw.split(",") if ip.strip()]

    @property
    def encap_types(self) -> list[str]:
        raw = self.external_ids.get("ovn-encap-type", "")
        return [t.strip() for t in raw.split(",") if t.strip()]

    @property
    def bridge_mappings(self) -> dict[str, str]:
        """physical network name → bridge, from ``ovn-bridge-mappings``."""
        raw = self.external_ids.get("ovn-bridge-mappings", "")
        pairs = (item.split(":", 1) for item in raw.split(",") if ":" in item)
        return {net.strip(): br.strip() for net, br in pairs}

    @property
    def nb_cfg(self) -> int | None:
        """The ``nb_cfg`` this chassis' ovn-controller reports having reached."""
        value = self.external_ids.get("ovn-nb-cfg")
        return int(value) if value and value.isdigit() else None

    @property
    def ovsdb_read(self) -> bool:
        """Whether the node's own OVSDB was read (bridges, ports, interfaces)."""
        return self.reachable and bool(self.ovsdb) and not any(
            p.what == "local OVSDB" for p in self.problems)

    def unread(self, bridge: str | None = None) -> str | None:
        """Why the flow tables of ``bridge`` (default: the integration bridge) are not
        in the snapshot, in words; None when they were read."""
        if not self.reachable:
            why = self.problems[0].error if self.problems else "unreachable"
            return f"{self.name} was not collected: {why}"
        name = bridge or self.integration_bridge
        found = self.bridges.get(name)
        if found is None:
            if not self.ovsdb_read:
                return (f"{self.name}'s OVSDB was not read, so its bridges (and {name}) "
                        "were not found")
            return f"bridge {name} on {self.name} was not read"
        if found.errors.get("flows"):
            return f"the flows of {name} on {self.name} were not read: {found.errors['flows']}"
        return None

    @cached_property
    def interfaces(self) -> list[Interface]:
        """Every Interface row with the bridge it sits on."""
        ifaces = {row["_uuid"]: row for row in self.ovsdb.get("Interface", [])}
        ports = {row["_uuid"]: row for row in self.ovsdb.get("Port", [])}
        result = []
        for br in self.ovsdb.get("Bridge", []):
            for port_uuid in br.get("ports", []):
                for iface_uuid in ports.get(port_uuid, {}).get("interfaces", []):
                    row = ifaces.get(iface_uuid)
                    if row is None:
                        continue
                    ofport = unwrap_optional(row.get("ofport"))
                    result.append(Interface(
                        name=row["name"], bridge=br["name"], type=row.get("type") or "",
                        ofport=ofport if isinstance(ofport, int) else None,
                        options=row.get("options") or {},
                        external_ids=row.get("external_ids") or {},
                        error=unwrap_optional(row.get("error")),
                        mac_in_use=unwrap_optional(row.get("mac_in_use")),
                        link_state=unwrap_optional(row.get("link_state")),
                        bfd=row.get("bfd") or ({} if "bfd" in row else None),
                        bfd_status=row.get("bfd_status") or (
                            {} if "bfd_status" in row else None),
                        cfm_mpid=unwrap_optional(row.get("cfm_mpid")),
                        cfm_fault=unwrap_optional(row.get("cfm_fault")),
                        cfm_remote_opstate=unwrap_optional(row.get("cfm_remote_opstate")),
                        liveness_read=all(c in row for c in LIVENESS_COLUMNS),
                    ))
        return sorted(result, key=lambda i: (i.bridge, i.ofport or 0, i.name))


# The Interface columns whose absence makes a port's liveness unknown (agents before
# they were read): BFD's configuration and state, CFM's.
LIVENESS_COLUMNS = ("link_state", "bfd", "bfd_status", "cfm_mpid", "cfm_fault")


def unwrap_optional(value):
    """An optional OVSDB column (min 0, max 1) as its value or None: it arrives as a
    one-element list, or ``[]`` when empty.  The one place every stage unwraps it."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


@dataclass
class Database:
    """Whole tables of an OVN database (Southbound or Northbound)."""

    name: str
    remote: str
    via: str = "local"
    schema_version: str | None = None
    # the schema the server served (ovsdb-client get-schema): --check-logical rebuilds
    # the database from it in a private ovsdb-server
    schema: dict | None = None
    tables: dict[str, list[dict]] = field(default_factory=dict)
    missing_tables: list[str] = field(default_factory=list)
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    # how a live read got the rows: "full", or "changes since <txn id> (N rows)" applied
    # to the rows a previous read cached (ofrace.collect.database_cache)
    read_as: str | None = None


@dataclass
class Zone:
    """An OVN availability zone of its own (ovn-kubernetes' interconnect mode): its NB
    and SB, read through one of its nodes, and the chassis its ovn-controllers run on.
    Zones' datapath and port tunnel keys overlap: each zone's SB is read on its own."""

    name: str
    chassis: list[str] = field(default_factory=list)
    southbound: Database | None = None
    northbound: Database | None = None


@dataclass
class Snapshot:
    """A whole cluster at one moment: every chassis plus the OVN databases.

    ``southbound``/``northbound`` are the one central pair; a cluster of zones has
    none of those but ``zones`` (each zone's pair) and ``interconnect`` (the IC-SB
    ovn-ic keeps, ``OVN_IC_Southbound``).  Files from before zones load with none."""

    chassis: dict[str, Chassis] = field(default_factory=dict)
    southbound: Database | None = None
    northbound: Database | None = None
    zones: dict[str, Zone] = field(default_factory=dict)
    interconnect: Database | None = None
    problems: list[Problem] = field(default_factory=list)
    # where secrets were removed at collect (``node: Table 'row' column``), never the values
    redacted: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    ofrace_version: str = __version__
    version: int = SNAPSHOT_VERSION

    def all_problems(self) -> list[Problem]:
        """Every gap in the snapshot, wherever it was recorded."""
        found = list(self.problems)
        for ch in self.chassis.values():
            found.extend(ch.problems)
        if self.southbound is None and not self.zones:
            found.append(Problem(where="southbound", what="read",
                                 error="not in this snapshot (collect with --sb REMOTE)"))
        for where, db in self.databases():
            if db.error:
                found.append(Problem(where=where, what="read", error=db.error))
        return found

    def databases(self) -> list[tuple[str, Database]]:
        """Every OVN database in the snapshot, with where it is from in words."""
        found = [(db.name, db) for db in (self.southbound, self.northbound) if db]
        for zone in self.zones.values():
            found += [(f"zone {zone.name} {db.name}", db)
                      for db in (zone.southbound, zone.northbound) if db]
        if self.interconnect is not None:
            found.append(("interconnect southbound", self.interconnect))
        return found

    def find_chassis(self, key: str, read: bool = True) -> Chassis | None:
        """The chassis named ``key``, else the last one whose system-id is ``key`` (the
        SB's name for it).  A live collect that reads nodes on demand (its ``chassis``
        mapping has ``find``) reads the one it is; ``read=False``: only those read."""
        finder = getattr(self.chassis, "find", None)
        if finder is not None:
            return finder(key, read)
        found = self.chassis.get(key)
        if found is None:
            for ch in self.chassis.values():
                if ch.system_id == key:
                    found = ch
        return found

    def zone_of(self, chassis: str) -> Zone | None:
        """The zone whose SB ``chassis`` (a snapshot name or system-id) is bound in."""
        if not self.zones:
            return None
        for zone in self.zones.values():
            if chassis in zone.chassis:
                return zone
        found = next((c for c in self.chassis.values() if c.system_id == chassis), None)
        if found is not None and found.name != chassis:
            return self.zone_of(found.name)
        return None

    @property
    def complete(self) -> bool:
        return not self.all_problems()

    # --- serialisation -------------------------------------------------

    def to_dict(self) -> dict:
        """Plain data for JSON.  Raw facts (flow lines, OVSDB rows) are shared, not
        copied: ``asdict`` deep-copied 2 million flow lines one by one."""
        doc = _plain(self)
        doc["format"] = SNAPSHOT_FORMAT
        return doc

    @classmethod
    def from_dict(cls, doc: dict, path: str | None = None,
                  members: dict[str, int] | None = None,
                  infos: dict[str, zipfile.ZipInfo] | None = None) -> Snapshot:
        """``path``: the version-2/3 file whose members hold the flow lines and tables;
        ``members``: their sizes there (``infos``: where they are).  Every value is
        checked against the model (``InputError`` naming the key); keys this version does
        not know are ignored."""
        if not isinstance(doc, dict) or doc.get("format") != SNAPSHOT_FORMAT:
            raise InputError("not an ofrace snapshot (no 'format: ofrace-snapshot' header)")
        version = doc.get("version")
        if version not in READABLE_VERSIONS or isinstance(version, bool):
            raise InputError(
                f"snapshot format version {_short(version)} is not supported "
                f"(this ofrace reads version {SNAPSHOT_VERSION})")
        # lenient, as they were: where secrets were removed; who wrote the file
        doc = {"ofrace_version": "?", **doc, "redacted": _strings(doc.get("redacted"))}
        reader = _DocumentReader(path, members, infos)
        snapshot = reader.build(cls, doc, "")
        snapshot.version = SNAPSHOT_VERSION
        reader.check_snapshot(snapshot)
        return snapshot

    def save(self, path: str | Path, flow_index=None) -> None:
        """Write a version-3 file: the document, then a store per bridge's lines and
        per database table.  ``flow_index(chassis, bridge)``: bytes stored beside the
        lines, read back by ``Bridge.flow_index`` (the classifier's index, written by
        ``ofrace.openflow.stored``, which this stage cannot import).

        Atomic: written to a temporary file beside ``path``, synced, then renamed over
        it, so a failure (a full disk) leaves any earlier file at ``path`` as it was."""
        members: dict[str, bytes] = {}
        stored: set[str] = set()
        with building():
            doc = self.to_dict()
            for key, chassis in doc["chassis"].items():
                for name, bridge in chassis["bridges"].items():
                    lines = bridge.pop("flows")
                    if any("\n" in line for line in lines):
                        bridge["flows"] = lines  # a line with a newline in it: keep it inline
                        continue
                    base = f"flows/{len(stored)}"
                    blocks, index, count = write_store(
                        [line.encode("utf-8", "surrogatepass") for line in lines])
                    members[f"{base}.rows"], members[f"{base}.index"] = blocks, index
                    stored.add(f"{base}.rows")
                    bridge["flows_store"] = {"member": f"{base}.rows", "bytes": len(blocks),
                                             "lines": len(lines), "blocks": count}
                    extra = flow_index(self.chassis[key], self.chassis[key].bridges[name]) \
                        if flow_index is not None else None
                    if extra:
                        members[f"{base}.classifier"] = extra
                        bridge["flow_index"] = {"member": f"{base}.classifier",
                                                "bytes": len(extra)}
            stored |= _store_tables(doc, members)
            data = json.dumps(doc, separators=(",", ":"))
        _write_atomically(Path(path), data, members, stored)

    @classmethod
    def load(cls, path: str | Path) -> Snapshot:
        with building():
            try:
                with open(path, "rb") as fh:
                    zipped = fh.read(4) == b"PK\x03\x04"
                    size = fh.seek(0, 2)
                if zipped:
                    with zipfile.ZipFile(path) as archive:
                        infos = {i.filename: i for i in archive.infolist()}
                        members = {name: i.file_size for name, i in infos.items()}
                        raw = _read_member(archive, "snapshot.json", min(
                            MAX_DOCUMENT_BYTES, max(size, 1) * MAX_DOCUMENT_RATIO),
                            MAX_DOCUMENT_RATIO)
                else:
                    with gzip.open(path, "rb") as fh:
                        raw = _read_limited(fh, min(MAX_DOCUMENT_BYTES,
                                                    max(size, 1) * MAX_DOCUMENT_RATIO),
                                            "the compressed document")
                    members = infos = None
                doc = json.loads(raw, parse_constant=_no_constant)
            except FileNotFoundError:
                raise InputError(f"snapshot file not found: {path}") from None
            except IsADirectoryError:
                raise InputError(f"snapshot {path} is a directory") from None
            except InputError as exc:
                raise InputError(f"cannot read snapshot {path}: {exc}") from None
            except RecursionError:
                raise InputError(f"cannot read snapshot {path}: the document is nested "
                                 "too deeply") from None
            except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile,
                    NotImplementedError, RuntimeError, zlib.error) as exc:
                raise InputError(f"cannot read snapshot {path}: {exc}") from None
            try:
                return cls.from_dict(doc, str(path) if zipped else None, members, infos)
            except InputError as exc:
                raise InputError(f"snapshot {path}: {exc}") from None


def _plain(value):
    """Dataclasses (and dicts/lists of them) to dicts; anything else as it is."""
    if isinstance(value, StoredTables):
        return {name: value[name] for name in value}
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict) and value and is_dataclass(next(iter(value.values()))):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list) and value and is_dataclass(value[0]):
        return [_plain(v) for v in value]
    return value


def _strings(value) -> list[str]:
    """A list of strings from the document, whatever it holds instead."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


# Bounds on what a snapshot file may expand to in memory.  A member's size must be
# what the document (the manifest) declares for it; nothing may exceed MAX_*_BYTES
# or inflate more than MAX_*RATIO times: ofrace's own files inflate 5-20 times
# (flow lines) and 4-10 times (the JSON document, which becomes many objects).
MAX_DOCUMENT_BYTES = 2 << 30
MAX_MEMBER_BYTES = 2 << 30
MAX_RATIO = 100
MAX_DOCUMENT_RATIO = 30
MAX_LINE_BYTES = 64 << 10   # per flow line, for files that do not declare member sizes
# Below this a member may inflate any amount: what a hostile node said (8 MiB of one
# character, say) is saved as it came, and must load again; memory stays bounded.
RATIO_FLOOR = 32 << 20


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number a snapshot can hold")


def _read_limited(fh, limit: int, what: str) -> bytes:
    """Read ``fh`` to its end, but never more than ``limit`` bytes (a bomb stops here)."""
    data = fh.read(limit + 1)
    if len(data) > limit:
        raise InputError(f"{what} expands to more than {limit} bytes")
    return data


def _read_member(archive: zipfile.ZipFile, name: str, limit: int,
                 ratio: int = MAX_RATIO) -> bytes:
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise InputError(f"member {name} declares {info.file_size} bytes (at most {limit})")
    if info.file_size > RATIO_FLOOR and info.file_size > max(info.compress_size, 1) * ratio:
        raise InputError(f"member {name} inflates {info.file_size // max(info.compress_size, 1)}"
                         f" times (a decompression bomb?)")
    with archive.open(info) as fh:
        # zipfile stops at the declared size and checks the CRC at the end.
        return _read_limited(fh, min(limit, info.file_size), f"member {name}")


def _read_flow_lines(path: str, member: str, size: int) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            data = _read_member(archive, member, size)
        if len(data) != size:
            raise InputError(f"holds {len(data)} bytes, the document says {size}")
        text = data.decode("utf-8", "surrogateescape")
    except InputError as exc:
        raise InputError(f"cannot read flows from snapshot {path} ({member}): {exc}") from None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, NotImplementedError,
            RuntimeError, zlib.error) as exc:
        raise InputError(f"cannot read flows from snapshot {path} ({member}): {exc}") from None
    return text.split("\n") if text else []




def _database_docs(doc: dict) -> list[dict]:
    """Every database of a snapshot document (central, zones', interconnect)."""
    found = [doc.get(which) for which in ("southbound", "northbound", "interconnect")]
    for zone in (doc.get("zones") or {}).values():
        found += [zone.get("southbound"), zone.get("northbound")]
    return [db for db in found if db is not None]


def _cookie_keys(rows: list[dict]) -> list[int] | None:
    keys = []
    for row in rows:
        uuid = row.get("_uuid")
        if type(uuid) is not str or not _UUID.fullmatch(uuid):
            return None
        keys.append(int(uuid[:8], 16))
    return keys


def _store_tables(doc: dict, members: dict[str, bytes]) -> set[str]:
    """Each database table of ``doc`` moved into a block store of its own (two members
    added to ``members``); returns the members to write uncompressed by the ZIP."""
    stored = set()
    for n, db in enumerate(_database_docs(doc)):
        specs = {}
        for t, (table, rows) in enumerate(db.pop("tables").items()):
            items = [json.dumps(row, separators=(",", ":")).encode() for row in rows]
            keys = _cookie_keys(rows)
            blocks, index, count = write_store(items, keys)
            name = f"db/{n}/{t}"
            members[f"{name}.rows"], members[f"{name}.index"] = blocks, index
            stored.add(f"{name}.rows")
            specs[table] = {"member": f"{name}.rows", "bytes": len(blocks), "rows": len(rows),
                            "blocks": count, "keyed": keys is not None,
                            "external_ids": any(type(row) is dict and row.get("external_ids")
                                                for row in rows)}
            projected = _projection(table, rows) if table in PROJECTED else None
            if projected is not None:
                members[f"{name}.columns"] = projected
                specs[table]["columns"] = {"member": f"{name}.columns", "bytes": len(projected)}
        db["tables"], db["stored_tables"] = {}, specs
    return stored


# Tables whose whole-table readers (the audit reads every logical flow) want a few columns
# of every row: saved beside the rows as one JSON list per column, in the rows' order, so
# those columns are read without a dict per row.  "column:key" is one key of a map column
# (null where the row's map lacks it).  Files without it are read from the rows.
PROJECTED = {"Logical_Flow": ("_uuid", "pipeline", "table_id", "priority", "match", "actions",
                              "logical_datapath", "logical_dp_group", "external_ids:stage-name",
                              "tags:in_out_port")}


def _projected_values(rows: list[dict], column: str) -> list:
    name, _, key = column.partition(":")
    values = [row.get(name) for row in rows]
    if key:
        return [value.get(key) if value.__class__ is dict else None for value in values]
    return values


def _projection(table: str, rows: list[dict]) -> bytes | None:
    """``PROJECTED[table]``'s columns of ``rows`` (None when a row does not fit them)."""
    columns = PROJECTED[table]
    if not all(type(row) is dict for row in rows):
        return None
    values = [_projected_values(rows, column) for column in columns]
    try:
        _check_projection(table, list(columns), values, len(rows), "")
    except InputError:
        return None
    return json.dumps({"columns": columns, "values": [_few_distinct(v) for v in values]},
                      separators=(",", ":")).encode()


def _few_distinct(values: list):
    """A column of few distinct values (a datapath, a stage name) as ``{"distinct": […],
    "codes": […]}``: a quarter of the bytes to read, each string once in memory."""
    try:
        distinct = list(dict.fromkeys(values))
    except TypeError:   # lists (an empty optional): as they are
        return values
    if len(distinct) * 4 > len(values):
        return values
    code = {value: n for n, value in enumerate(distinct)}
    return {"distinct": distinct, "codes": list(map(code.__getitem__, values))}


def _all_values(found, where: str):
    """A projected column's values, ``_few_distinct``'s codes looked up."""
    if type(found) is not dict:
        return found
    distinct, codes = found.get("distinct"), found.get("codes")
    try:    # a code not an index of ``distinct`` (a string, a float, out of range) fails
        if type(distinct) is list and type(codes) is list and (
                not codes or 0 <= min(codes) and max(codes) < len(distinct)):
            return list(map(distinct.__getitem__, codes))
    except TypeError:
        pass
    raise InputError(f"{where}: a column's codes are not its values'")


def _check_projection(table: str, columns: list, values: list, n: int, where: str) -> None:
    """The projected columns as ``check_rows`` would find them in the rows: each value of
    its column's form, a row's UUID a UUID, a map's key a string or null."""
    if columns != list(PROJECTED.get(table, ())) or type(values) is not list \
            or len(values) != len(columns):
        raise InputError(f"{where}: columns {_short(columns)} are not {table}'s")
    kinds = _COLUMNS.get(table, {})
    for column, found in zip(columns, values, strict=True):
        if type(found) is not list or len(found) != n:
            raise InputError(f"{where}.{column}: not {n} values")
        name, _, key = column.partition(":")
        classes = set(map(type, found))     # one C loop; the rare odd value tested alone
        if key or name == "_uuid":
            ok = classes <= ({str, type(None)} if key else {str})
            if ok and name == "_uuid":
                ok = all(map(_UUID.fullmatch, found))
        else:
            kind = kinds[name]
            test = _KINDS[kind.lstrip("!")][0]
            plain = _PLAIN[kind.lstrip("!")]
            if kind[0] != "!":
                classes.discard(type(None))
            if classes == {int} and plain is None:
                ok = not found or _is_int(min(found)) and _is_int(max(found))
            else:   # only the values not of the plain class are tested, one by one
                odd = [v for v in found if v.__class__ is not plain]
                ok = all(map(test, [v for v in odd if v != [] and v is not None])) \
                    and (None not in odd or kind[0] != "!")
        if not ok:
            raise InputError(f"{where}.{column}: a value is not of its column's form")


class _OpenedStore:
    """A block store of the file, opened (its index read and checked) on first call."""

    def __init__(self, path: str, info: zipfile.ZipInfo, n: int, blocks: int, what: str):
        self.path, self.info, self.n, self.blocks, self.what = path, info, n, blocks, what
        self.store: BlockStore | None = None

    def __call__(self) -> BlockStore:
        if self.store is None:
            info, member = self.info, self.info.filename
            try:
                if info.file_size > RATIO_FLOOR and \
                        info.file_size > max(info.compress_size, 1) * MAX_RATIO:
                    raise InputError(f"member {member} inflates too much (a bomb?)")
                index = _read_member(_archive(self.path), member[:-len(".rows")] + ".index",
                                     index_bytes(self.n, self.blocks))
                self.store = BlockStore(member_reader(self.path, info), info.file_size,
                                        index, self.n, self.blocks, self.what)
            except InputError as exc:
                raise InputError(f"cannot read {self.what}: {exc}") from None
            except (OSError, KeyError, ValueError, zipfile.BadZipFile, NotImplementedError,
                    RuntimeError, zlib.error) as exc:
                raise InputError(f"cannot read {self.what}: {exc}") from None
        return self.store


_ARCHIVES: dict[tuple, zipfile.ZipFile] = {}


def _archive(path: str) -> zipfile.ZipFile:
    """The file's ZIP directory, read once while the file stays the same (a trace opens
    a store per table it reads: each re-reading ~100 directory entries added up).  One
    per process: a forked worker must not seek the file position it shares with its
    parent (the audit of a cluster forks one per chassis)."""
    st = os.stat(path)
    key = (path, st.st_ino, st.st_size, st.st_mtime_ns, os.getpid())
    archive = _ARCHIVES.get(key)
    if archive is None:
        if len(_ARCHIVES) >= 4:
            _ARCHIVES.pop(next(iter(_ARCHIVES))).close()
        archive = _ARCHIVES[key] = zipfile.ZipFile(path)
    return archive


def _read_extra(path: str, member: str, size: int) -> bytes:
    try:
        return _read_member(_archive(path), member, size)
    except InputError as exc:
        raise InputError(f"cannot read snapshot {path} ({member}): {exc}") from None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, NotImplementedError,
            RuntimeError, zlib.error) as exc:
        raise InputError(f"cannot read snapshot {path} ({member}): {exc}") from None


class StoredLines:
    """A bridge's flow lines in a version-3 file, each read with its block only; lines
    appended (learned flows) stay in memory, the file's are never changed."""

    def __init__(self, store: BlockStore):
        self._store, self._n, self._extra = store, store.n, []

    def __len__(self) -> int:
        return self._n + len(self._extra)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if 0 <= i < self._n:
            return self._store.item(i).decode("utf-8", "surrogateescape")
        if i < 0:
            raise IndexError(i)
        return self._extra[i - self._n]

    def __iter__(self):
        for line in self._store.all():
            yield line.decode("utf-8", "surrogateescape")
        yield from self._extra

    def append(self, line: str) -> None:
        self._extra.append(line)


class StoredTables(MutableMapping):
    """A database's tables in a version-3 file: each decoded (and checked) when first
    asked for; a keyed table also answers by cookie without decoding the rest."""

    def __init__(self, path: str, specs: dict[str, dict], infos: dict[str, zipfile.ZipInfo],
                 where: str, interconnect: bool):
        self._path, self._specs, self._infos = path, specs, infos
        self._where, self._interconnect = where, interconnect
        self._names = dict.fromkeys(specs)
        self._loaded: dict[str, list[dict]] = {}
        self._stores: dict[str, BlockStore] = {}
        self._by_key: dict[tuple[str, int], list[dict]] = {}
        self._projections: dict[str, dict[str, list]] = {}
        self._replaced: set[str] = set()

    def _store(self, table: str) -> BlockStore:
        store = self._stores.get(table)
        if store is None:
            spec = self._specs[table]
            store = self._stores[table] = _OpenedStore(
                self._path, self._infos[spec["member"]], spec["rows"], spec["blocks"],
                f"snapshot {self._path} ({self._where}.{table})")()
        return store

    def _decode(self, table: str, items: list[bytes]) -> list[dict]:
        try:
            rows = json.loads(b"[" + b",".join(items) + b"]", parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise InputError(f"snapshot {self._path}: {self._where}.{table}: {exc}") from None
        if len(rows) != len(items):
            raise InputError(f"snapshot {self._path}: {self._where}.{table}: a row is not "
                             "one JSON value")
        check_rows({table: rows}, f"snapshot {self._path}: {self._where}.tables",
                   self._interconnect)
        return rows

    def __getitem__(self, table: str) -> list[dict]:
        rows = self._loaded.get(table)
        if rows is None:
            if table not in self._names:
                raise KeyError(table)
            with building():
                rows = self._loaded[table] = self._decode(table, self._store(table).all())
        return rows

    def row_count(self, table: str) -> int:
        """How many rows ``table`` has, without decoding them (its store's index, whose
        size the count must fit, is read)."""
        rows = self._loaded.get(table)
        return len(rows) if rows is not None else self._store(table).n

    def without_external_ids(self, table: str) -> bool:
        """Whether the file says no row of ``table`` has external_ids (what the CMS
        writes): a reader of those alone need not decode the table."""
        return table not in self._loaded and self._specs.get(table, {}).get(
            "external_ids") is False

    def keyed(self, table: str, decoded_too: bool = False) -> bool:
        """Whether ``table``'s rows can be read by cookie without decoding the table
        (``decoded_too``: even once it was decoded, as other objects than its rows)."""
        return (table in self._names and (decoded_too or table not in self._loaded)
                and bool(self._specs.get(table, {}).get("keyed")))

    def with_cookie(self, table: str, cookie: int) -> list[dict]:
        """The rows of a keyed table whose UUID starts with ``cookie`` (32 bits), in the
        table's order; the same objects each time."""
        found = self._by_key.get((table, cookie))
        if found is None:
            hits = self._store(table).with_key(cookie)
            found = self._by_key[(table, cookie)] = self._decode(
                table, [item for _, item in hits]) if hits else []
        return found

    def projection(self, table: str) -> dict[str, list] | None:
        """``PROJECTED[table]``'s columns of every row, in the rows' order, read (and
        checked) from the file without decoding a row; None when the file has none (older
        files) or the table was replaced in memory."""
        spec = self._specs.get(table, {}).get("columns")
        if spec is None or table in self._replaced:
            return None
        found = self._projections.get(table)
        if found is None:
            where = f"snapshot {self._path}: {self._where}.{table}.columns"
            try:
                with building():
                    doc = json.loads(_read_member(_archive(self._path), spec["member"],
                                                  spec["bytes"]), parse_constant=_no_constant)
            except InputError as exc:
                raise InputError(f"{where}: {exc}") from None
            except (OSError, KeyError, ValueError, RecursionError, zipfile.BadZipFile,
                    NotImplementedError, RuntimeError, zlib.error) as exc:
                raise InputError(f"{where}: {exc}") from None
            if type(doc) is not dict:
                raise InputError(f"{where}: expected an object")
            columns, values = doc.get("columns"), doc.get("values")
            if type(values) is list:
                values = [_all_values(found, where) for found in values]
            _check_projection(table, columns, values, self._specs[table]["rows"], where)
            found = self._projections[table] = dict(zip(columns, values, strict=True))
        return found

    def cookies(self, table: str):
        """The cookie (32 bits) of every row of a keyed table, from its store's index: what
        answers "has any row this cookie" without decoding a row."""
        return self._store(table).key_array()

    def __setitem__(self, table: str, rows: list[dict]) -> None:
        self._names[table] = None
        self._replaced.add(table)
        self._loaded[table] = rows

    def __delitem__(self, table: str) -> None:
        del self._names[table]
        self._replaced.add(table)
        self._loaded.pop(table, None)

    def __iter__(self):
        return iter(self._names)

    def __contains__(self, table) -> bool:   # Mapping's would decode the table to answer
        return table in self._names

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"StoredTables({list(self._names)}, decoded {list(self._loaded)})"


def _write_atomically(path: Path, data: str, members: dict[str, bytes],
                      stored: set[str] = frozenset()) -> None:
    """The ZIP written beside ``path`` and renamed over it; on failure, no trace of it."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
                archive.writestr("snapshot.json", data)
                for member, text in members.items():
                    archive.writestr(member, text, zipfile.ZIP_STORED if member in stored
                                     else None)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException as exc:
        try:
            os.unlink(temp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise SnapshotWriteError(path, exc) from None
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    except OSError:
        pass
    finally:
        os.close(dir_fd)


class SnapshotWriteError(OfraceError):
    """The snapshot could not be written; an earlier file at the path is untouched."""

    def __init__(self, path: Path, exc: OSError):
        reason = exc.strerror or str(exc)
        super().__init__(f"cannot write {path}: {reason} (nothing was changed there)")
        # A full disk or a failing device is the environment; a bad path is input.
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG):
            self.exit_code = Exit.ENVIRONMENT


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_INT_RANGE = (-(1 << 63), 1 << 64)
# Tables whose row UUIDs are read as numbers (OpenFlow cookies are their first 32 bits).
_UUID_TABLES = {"Logical_Flow", "Port_Binding", "Datapath_Binding", "Multicast_Group",
                "Chassis", "MAC_Binding", "Load_Balancer", "FDB", "Static_MAC_Binding"}
# The OVSDB columns ofrace reads, with the form they must have (per table):
# str, int, bool; "uuid" (a row UUID); "opt" (str, or a set of at most one str);
# "optint"; "strs" (a set of strings); "map" (string to string, [] when empty).
# A "!" marks a column every row must have.
_COLUMNS = {
    "Port_Binding": {"logical_port": "!str", "datapath": "!str", "tunnel_key": "!int",
                     "type": "str", "options": "map", "external_ids": "map",
                     "chassis": "opt", "additional_chassis": "strs", "mac": "strs",
                     "tag": "optint", "ha_chassis_group": "opt", "up": "optbool"},
    "Datapath_Binding": {"tunnel_key": "!int", "external_ids": "map"},
    "Chassis": {"name": "!str", "hostname": "str", "encaps": "strs",
                "external_ids": "map", "other_config": "map"},
    "Chassis_Private": {"name": "!str", "nb_cfg": "int"},
    "Encap": {"chassis_name": "!str", "ip": "!str", "type": "str", "options": "map"},
    "Logical_Flow": {"pipeline": "!str", "table_id": "!int", "priority": "!int",
                     "match": "!str", "actions": "!str", "external_ids": "map",
                     "tags": "map", "logical_datapath": "opt", "logical_dp_group": "opt"},
    "Logical_DP_Group": {"datapaths": "strs"},
    "Multicast_Group": {"name": "!str", "datapath": "!str", "tunnel_key": "!int",
                        "ports": "strs"},
    "MAC_Binding": {"logical_port": "str", "ip": "str", "mac": "str", "datapath": "str"},
    "Address_Set": {"name": "!str", "addresses": "strs"},
    "Port_Group": {"name": "!str", "ports": "strs"},
    "HA_Chassis": {"chassis": "opt", "priority": "int"},
    "HA_Chassis_Group": {"name": "str", "ha_chassis": "strs"},
    "SB_Global": {"nb_cfg": "int", "options": "map"},
    "Chassis_Template_Var": {"chassis": "str", "variables": "map"},
    "Load_Balancer": {"name": "str", "vips": "map", "datapaths": "strs",
                      "options": "map"},
    "Open_vSwitch": {"external_ids": "map", "other_config": "map", "ovs_version": "opt"},
    "Bridge": {"name": "!str", "ports": "strs", "external_ids": "map"},
    "Port": {"name": "!str", "interfaces": "strs", "tag": "optint"},
    "Interface": {"name": "!str", "type": "str", "ofport": "optint", "options": "map",
                  "external_ids": "map", "error": "opt", "mac_in_use": "opt",
                  "bfd": "map", "bfd_status": "map", "status": "map", "link_state": "opt",
                  "cfm_mpid": "optint", "cfm_fault": "optbool", "cfm_remote_opstate": "opt"},
    "SSL": {"private_key": "opt", "certificate": "opt", "ca_cert": "opt"},
    "Logical_Router": {"name": "str", "static_routes": "strs", "options": "map",
                       "load_balancer": "strs", "ports": "strs", "nat": "strs",
                       "policies": "strs"},
    "Logical_Switch": {"name": "str", "ports": "strs", "acls": "strs",
                       "load_balancer": "strs", "other_config": "map"},
    "ACL": {"match": "str", "action": "str", "direction": "str", "priority": "int",
            "name": "opt", "external_ids": "map"},
    "NAT": {"type": "str", "logical_ip": "str", "external_ip": "str",
            "external_port_range": "str", "logical_port": "opt"},
    "Logical_Router_Static_Route": {"ip_prefix": "str", "nexthop": "str", "policy": "opt",
                                    "output_port": "opt"},
    "Logical_Router_Policy": {"match": "str", "action": "str", "priority": "int",
                              "nexthops": "strs", "nexthop": "opt"},
    "Logical_Router_Port": {"name": "str", "networks": "strs", "mac": "str"},
    "Logical_Switch_Port": {"name": "str", "addresses": "strs", "type": "str",
                            "options": "map"},
}


def _is_int(value) -> bool:
    return type(value) is int and _INT_RANGE[0] <= value < _INT_RANGE[1]


def _is_str(value) -> bool:
    return type(value) is str


def _is_opt(value) -> bool:
    return type(value) is str or (type(value) is list and len(value) <= 1
                                  and all(type(v) is str for v in value))


def _is_optint(value) -> bool:
    return _is_int(value) or (type(value) is list and len(value) <= 1
                              and all(_is_int(v) for v in value))


def _is_optbool(value) -> bool:
    return type(value) is bool or (type(value) is list and len(value) <= 1
                                   and all(type(v) is bool for v in value))


def _is_strs(value) -> bool:
    return type(value) is str or (type(value) is list and all(type(v) is str for v in value))


def _is_map(value) -> bool:
    if type(value) is dict:
        return all(type(v) is str for v in value.values())
    return value == []


_KINDS = {"str": (_is_str, "a string"), "int": (_is_int, "an integer"),
          "opt": (_is_opt, "a string or an empty set"),
          "optint": (_is_optint, "an integer or an empty set"),
          "optbool": (_is_optbool, "a boolean or an empty set"),
          "strs": (_is_strs, "a set of strings"), "map": (_is_map, "a map of strings")}
# Per table: (column, required, test, words), so a big table is checked in one tight loop.
# Per kind, the fast answers: a value of exactly this class is always right (None: no
# such class), and an empty value of this class is (an empty set, an empty map).
_PLAIN = {"str": str, "int": None, "opt": str, "optint": None, "optbool": bool, "strs": str,
          "map": None}
_EMPTY_OK = {"str": None, "int": None, "opt": list, "optint": list, "optbool": list,
             "strs": list, "map": dict}


def _checks(columns: dict[str, str]) -> tuple:
    return tuple((column, kind[0] == "!", *_KINDS[kind.lstrip("!")],
                  _PLAIN[kind.lstrip("!")], _EMPTY_OK[kind.lstrip("!")])
                 for column, kind in columns.items())


_CHECKS = {table: _checks(columns) for table, columns in _COLUMNS.items()}
# The IC-SB (OVN_IC_Southbound, a Database named "interconnect") shares table names with
# the SB but not their columns: its Port_Binding names a transit switch, not a datapath.
_IC_COLUMNS = {
    "Port_Binding": {"logical_port": "!str", "transit_switch": "!str", "tunnel_key": "!int",
                     "gateway": "str", "address": "str", "availability_zone": "opt"},
    "Gateway": {"name": "!str", "availability_zone": "opt", "encaps": "strs"},
    "Encap": {"gateway_name": "str", "ip": "!str", "type": "str"},
    "Availability_Zone": {"name": "!str"},
}
_IC_CHECKS = {table: _checks(columns) for table, columns in _IC_COLUMNS.items()}


def check_rows(tables, where: str, interconnect: bool = False) -> None:
    """OVSDB tables as the collectors write them: ``{table: [row, …]}``, each row a dict
    with a ``_uuid``, and the columns ofrace reads in the form it reads them (those of
    the IC-SB with ``interconnect``)."""
    is_uuid = _UUID.fullmatch
    all_checks = _IC_CHECKS if interconnect else _CHECKS
    for table, rows in tables.items():
        checks = all_checks.get(table, ())
        shaped = table in _UUID_TABLES
        for n, row in enumerate(rows):
            if type(row) is not dict:
                raise InputError(f"{where}.{table}[{n}]: a row must be an object")
            uuid = row.get("_uuid")
            if type(uuid) is not str or (shaped and not is_uuid(uuid)):
                raise InputError(f"{where}.{table}[{n}]._uuid: {_short(uuid)} is not a UUID")
            get = row.get
            for column, required, test, words, plain, empty_ok in checks:
                value = get(column, _ABSENT)
                cls = value.__class__
                if cls is plain or (cls is empty_ok and not value):
                    continue
                if value is _ABSENT:
                    if required:
                        raise InputError(f"{where}.{table}[{n}]: no column {column}")
                elif not test(value):
                    raise InputError(f"{where}.{table}[{n}].{column}: {_short(value)} is not "
                                     f"{words}")


_ABSENT = object()


class _DocumentReader:
    """Builds the model from a JSON document, checking every value against the
    dataclasses' annotations; a version-2 bridge's lines stay in the file."""

    def __init__(self, path: str | None, members: dict[str, int] | None,
                 infos: dict[str, zipfile.ZipInfo] | None = None):
        self.path, self.members, self.infos = path, members, infos
        self.interconnect = False   # building the IC-SB's Database: its columns differ

    def build(self, cls, doc, where: str):
        if type(doc) is not dict:
            raise InputError(f"{where or 'the document'}: expected an object, got "
                             f"{type(doc).__name__}")
        hints = _hints(cls)
        values = {}
        if cls is Database:
            self.interconnect = doc.get("name") == "interconnect"
        flows_source = None
        if cls is Bridge:
            flows_source = self._flows_source(doc, where)
        for f in fields(cls):
            if f.name not in doc:
                if flows_source is not None and f.name == "flows":
                    continue
                if f.default is MISSING and f.default_factory is MISSING:
                    raise InputError(f"{where or 'the document'}: no {f.name!r}")
                continue
            values[f.name] = self.value(doc[f.name], hints[f.name], f"{where}.{f.name}"
                                        if where else f.name)
        if flows_source is not None:
            return cls.stored(*flows_source, **values)
        if cls is Database and "stored_tables" in doc:
            values["tables"] = self._stored_tables(doc, where)
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where or 'the document'}: {exc}") from None

    def _flows_store(self, doc: dict, where: str):
        """A version-3 bridge: its lines in a block store, maybe the classifier's index."""
        spec = doc["flows_store"]
        if "flows" in doc:
            raise InputError(f"{where}: both flows and flows_store")
        if self.path is None or self.members is None or self.infos is None:
            raise InputError(f"{where}: names a flows store but the file has none")
        if type(spec) is not dict:
            raise InputError(f"{where}.flows_store: expected an object")
        member = spec.get("member")
        if type(member) is not str or not member.endswith(".rows") \
                or member not in self.members \
                or member[:-len(".rows")] + ".index" not in self.members:
            raise InputError(f"{where}.flows_store.member: {_short(member)} is not in the file")
        for key in ("bytes", "lines", "blocks"):
            if not _is_int(spec.get(key)) or spec[key] < 0:
                raise InputError(f"{where}.flows_store.{key}: {_short(spec.get(key))} is not "
                                 "a count")
        if spec["bytes"] != self.members[member] or spec["bytes"] > MAX_MEMBER_BYTES:
            raise InputError(f"{where}: member {member} holds {self.members[member]} bytes, "
                             f"the document says {spec['bytes']}")
        opened = _OpenedStore(self.path, self.infos[member], spec["lines"], spec["blocks"],
                              f"snapshot {self.path} ({where})")

        def source() -> list[str]:
            with building():
                return [line.decode("utf-8", "surrogateescape") for line in opened().all()]

        index = doc.get("flow_index")
        read_index = None
        if index is not None:
            extra = index.get("member") if type(index) is dict else None
            if type(extra) is not str or extra not in self.members \
                    or index.get("bytes") != self.members[extra]:
                raise InputError(f"{where}.flow_index: {_short(index)} is not in the file")
            read_index = partial(_read_extra, self.path, extra, self.members[extra])
        return source, spec["lines"], opened, read_index

    def _stored_tables(self, doc: dict, where: str) -> StoredTables:
        specs = doc["stored_tables"]
        if doc.get("tables"):
            raise InputError(f"{where}: both tables and stored_tables")
        if type(specs) is not dict:
            raise InputError(f"{where}.stored_tables: expected an object")
        if self.path is None or self.members is None or self.infos is None:
            raise InputError(f"{where}: names stored tables but the file has none")
        for table, spec in specs.items():
            at = f"{where}.stored_tables.{_short(table)}"
            if type(spec) is not dict:
                raise InputError(f"{at}: expected an object")
            member = spec.get("member")
            if type(member) is not str or not member.endswith(".rows") \
                    or member not in self.members \
                    or member[:-len(".rows")] + ".index" not in self.members:
                raise InputError(f"{at}.member: {_short(member)} is not in the file")
            for key in ("bytes", "rows", "blocks"):
                if not _is_int(spec.get(key)) or spec[key] < 0:
                    raise InputError(f"{at}.{key}: {_short(spec.get(key))} is not a count")
            if spec["bytes"] != self.members[member] or spec["bytes"] > MAX_MEMBER_BYTES:
                raise InputError(f"{at}: member {member} holds {self.members[member]} bytes, "
                                 f"the document says {spec['bytes']}")
            if type(spec.get("keyed")) is not bool:
                raise InputError(f"{at}.keyed: {_short(spec.get('keyed'))} is not a boolean")
            columns = spec.get("columns")
            if columns is not None and (
                    type(columns) is not dict or type(columns.get("member")) is not str
                    or columns["member"] not in self.members
                    or columns.get("bytes") != self.members[columns["member"]]
                    or columns["bytes"] > MAX_MEMBER_BYTES):
                raise InputError(f"{at}.columns: {_short(columns)} is not in the file")
        return StoredTables(self.path, specs, self.infos, where, self.interconnect)

    def _flows_source(self, doc: dict, where: str):
        if "flows_store" in doc:
            return self._flows_store(doc, where)
        member = doc.get("flows_member")
        if member is None:
            return None
        if "flows" in doc:
            raise InputError(f"{where}: both flows and flows_member")
        if self.path is None or self.members is None:
            raise InputError(f"{where}: names a flows member but the file has none")
        if type(member) is not str or member not in self.members:
            raise InputError(f"{where}.flows_member: {_short(member)} is not in the file")
        count = doc.get("flow_count", 0)
        if not _is_int(count) or count < 0:
            raise InputError(f"{where}.flow_count: {_short(count)} is not a count")
        size = doc.get("flows_bytes")
        if size is None:  # written before sizes were declared: bound it by the count
            size = min(self.members[member], MAX_MEMBER_BYTES, (count + 1) * MAX_LINE_BYTES)
        elif not _is_int(size) or not 0 <= size <= MAX_MEMBER_BYTES:
            raise InputError(f"{where}.flows_bytes: {_short(size)} is not a size")
        elif self.members[member] != size:
            raise InputError(f"{where}: member {member} holds {self.members[member]} bytes, "
                             f"the document says {size}")
        return partial(_read_flow_lines, self.path, member, size), count

    def value(self, value, hint, where: str):
        origin = get_origin(hint)
        if origin in (Union, UnionType):
            options = get_args(hint)
            if value is None and type(None) in options:
                return None
            hint = next(h for h in options if h is not type(None))
            origin = get_origin(hint)
        if is_dataclass(hint):
            return self.build(hint, value, where)
        if origin is list:
            if type(value) is not list:
                raise InputError(f"{where}: expected a list, got {_short(value)}")
            (item,) = get_args(hint)
            if item is str:
                if not all(type(v) is str for v in value):
                    raise InputError(f"{where}: every item must be a string")
                return value
            if item is dict:
                if not all(type(v) is dict for v in value):
                    raise InputError(f"{where}: every item must be an object")
                return value
            return [self.value(v, item, f"{where}[{n}]") for n, v in enumerate(value)]
        if origin is dict or hint is dict:
            if type(value) is not dict:
                raise InputError(f"{where}: expected an object, got {_short(value)}")
            if hint is dict:
                return value
            _, item = get_args(hint)
            if item is str:
                if not all(type(v) is str for v in value.values()):
                    raise InputError(f"{where}: every value must be a string")
                return value
            if get_origin(item) is list and get_args(item) == (dict,):
                for key, rows in value.items():
                    if type(rows) is not list:
                        raise InputError(f"{where}.{key}: expected a list of rows")
                check_rows(value, where, self.interconnect)
                return value
            return {k: self.value(v, item, f"{where}.{k}") for k, v in value.items()}
        if hint is float:
            if type(value) not in (int, float) or not math.isfinite(value):
                raise InputError(f"{where}: expected a number, got {_short(value)}")
            return value
        if hint is int:
            if not _is_int(value):
                raise InputError(f"{where}: expected an integer, got {_short(value)}")
            return value
        if hint in (str, bool):
            if type(value) is not hint:
                raise InputError(f"{where}: expected {hint.__name__}, got {_short(value)}")
            return value
        return value

    @staticmethod
    def check_snapshot(snapshot: Snapshot) -> None:
        """What the types cannot say: names agree with the keys they are stored under."""
        for key, ch in snapshot.chassis.items():
            if ch.name != key:
                raise InputError(f"chassis {_short(key)} is named {_short(ch.name)}")
            for name, bridge in ch.bridges.items():
                if bridge.name != name:
                    raise InputError(f"chassis.{_short(key)}.bridges: bridge {_short(name)} "
                                     f"is named {_short(bridge.name)}")
            if not ch.reachable and not ch.problems:
                raise InputError(f"chassis {_short(key)} is unreachable with no reason given")
        for which in ("southbound", "northbound"):
            db = getattr(snapshot, which)
            if db is not None and db.name != which:
                raise InputError(f"{which} is named {_short(db.name)}")
        for key, zone in snapshot.zones.items():
            if zone.name != key:
                raise InputError(f"zone {_short(key)} is named {_short(zone.name)}")
            for which in ("southbound", "northbound"):
                db = getattr(zone, which)
                if db is not None and db.name != which:
                    raise InputError(f"zone {_short(key)}: {which} is named {_short(db.name)}")
        if snapshot.interconnect is not None and snapshot.interconnect.name != "interconnect":
            raise InputError(f"interconnect is named {_short(snapshot.interconnect.name)}")


@cache
def _hints(cls) -> dict:
    return get_type_hints(cls)
