"""The snapshot: everything collected from a cluster, as plain versioned data.

Every later stage (index, simulate, annotate, audit) reads only this model,
so a snapshot loaded from a file traces exactly like the live cluster it was
taken from.  The model holds raw facts (flow text as ``ovs-ofctl`` printed
it, OVSDB rows as the server sent them) and derives the rest on demand;
nothing here parses flows.

On disk (version 2): a ZIP archive.  ``snapshot.json`` holds everything but
the flow lines, ``{"format": "ofrace-snapshot", "version": 2, …}``; each
bridge's flow lines are a member of their own, read when something first
asks for them — a trace through 2 chassis of a 10-chassis, 2-million-flow
snapshot reads 2 bridges' lines, not 10.  Version 1 files (gzip-compressed
JSON with the lines inline) are still read.
"""

from __future__ import annotations

import gzip
import json
import time
import zipfile
from dataclasses import dataclass, field, fields, is_dataclass
from functools import cached_property, partial
from pathlib import Path

from ofrace import __version__
from ofrace.errors import InputError
from ofrace.memory import building

SNAPSHOT_FORMAT = "ofrace-snapshot"
SNAPSHOT_VERSION = 2
READABLE_VERSIONS = (1, 2)


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

    # A bridge read from a version-2 file has no ``flows`` in its __dict__ until
    # something asks: then ``__getattr__`` reads them from the file's member.
    def __getattr__(self, name: str):
        source = self.__dict__.get("_flow_source") if name == "flows" else None
        if source is None:
            raise AttributeError(name)
        flows = self.__dict__["flows"] = source()
        self.__dict__.pop("_flow_source", None)
        self.__dict__.pop("_flow_count", None)
        return flows

    @classmethod
    def stored(cls, source, count: int, **fields) -> Bridge:
        """A bridge whose flow lines ``source()`` returns when first needed."""
        bridge = cls(**fields)
        del bridge.__dict__["flows"]
        bridge.__dict__["_flow_source"] = source
        bridge.__dict__["_flow_count"] = count
        return bridge

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
                    ofport = row.get("ofport")
                    result.append(Interface(
                        name=row["name"], bridge=br["name"], type=row.get("type") or "",
                        ofport=ofport[0] if isinstance(ofport, list) and ofport else (
                            ofport if isinstance(ofport, int) else None),
                        options=row.get("options") or {},
                        external_ids=row.get("external_ids") or {},
                        error=_scalar(row.get("error")),
                        mac_in_use=_scalar(row.get("mac_in_use")),
                    ))
        return sorted(result, key=lambda i: (i.bridge, i.ofport or 0, i.name))


def _scalar(value):
    """An optional OVSDB column arrives as [] when empty."""
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
    tables: dict[str, list[dict]] = field(default_factory=dict)
    missing_tables: list[str] = field(default_factory=list)
    error: str | None = None
    started: float | None = None
    finished: float | None = None


@dataclass
class Snapshot:
    """A whole cluster at one moment: every chassis plus the OVN databases."""

    chassis: dict[str, Chassis] = field(default_factory=dict)
    southbound: Database | None = None
    northbound: Database | None = None
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
        if self.southbound is None:
            found.append(Problem(where="southbound", what="read",
                                 error="not in this snapshot (collect with --sb REMOTE)"))
        for db in (self.southbound, self.northbound):
            if db is not None and db.error:
                found.append(Problem(where=db.name, what="read", error=db.error))
        return found

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
    def from_dict(cls, doc: dict, path: str | None = None) -> Snapshot:
        """``path``: the version-2 file whose members hold the flow lines."""
        if doc.get("format") != SNAPSHOT_FORMAT:
            raise InputError("not an ofrace snapshot (no 'format: ofrace-snapshot' header)")
        version = doc.get("version")
        if version not in READABLE_VERSIONS:
            raise InputError(
                f"snapshot format version {version} is not supported "
                f"(this ofrace reads version {SNAPSHOT_VERSION})")
        return cls(
            chassis={name: _chassis_from_dict(ch, path)
                     for name, ch in doc["chassis"].items()},
            southbound=_database_from_dict(doc.get("southbound")),
            northbound=_database_from_dict(doc.get("northbound")),
            problems=[Problem(**p) for p in doc.get("problems", [])],
            redacted=_strings(doc.get("redacted")),
            created=doc["created"],
            ofrace_version=doc.get("ofrace_version", "?"),
            version=SNAPSHOT_VERSION,
        )

    def save(self, path: str | Path) -> None:
        """Write a version-2 file: the document, then one member per bridge's lines."""
        members: dict[str, str] = {}
        with building():
            doc = self.to_dict()
            for chassis in doc["chassis"].values():
                for bridge in chassis["bridges"].values():
                    lines = bridge.pop("flows")
                    text = "\n".join(lines)
                    if text.count("\n") != max(len(lines) - 1, 0):
                        bridge["flows"] = lines  # a line with a newline in it: keep it inline
                        continue
                    member = f"flows/{len(members)}.txt"
                    members[member] = text
                    bridge["flows_member"], bridge["flow_count"] = member, len(lines)
            data = json.dumps(doc, separators=(",", ":"))
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            archive.writestr("snapshot.json", data)
            for member, text in members.items():
                archive.writestr(member, text)

    @classmethod
    def load(cls, path: str | Path) -> Snapshot:
        with building():
            try:
                with open(path, "rb") as fh:
                    zipped = fh.read(4) == b"PK\x03\x04"
                if zipped:
                    with zipfile.ZipFile(path) as archive:
                        doc = json.loads(archive.read("snapshot.json"))
                else:
                    with gzip.open(path, "rb") as fh:
                        doc = json.loads(fh.read())
            except FileNotFoundError:
                raise InputError(f"snapshot file not found: {path}") from None
            except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as exc:
                raise InputError(f"cannot read snapshot {path}: {exc}") from None
            return cls.from_dict(doc, str(path) if zipped else None)


def _plain(value):
    """Dataclasses (and dicts/lists of them) to dicts; anything else as it is."""
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


def _read_flow_lines(path: str, member: str) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            text = archive.read(member).decode()
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise InputError(f"cannot read flows from snapshot {path} ({member}): {exc}") from None
    return text.split("\n") if text else []


def _bridge_from_dict(doc: dict, path: str | None) -> Bridge:
    member = doc.pop("flows_member", None)
    count = doc.pop("flow_count", 0)
    if member is None:
        return Bridge(**doc)
    if path is None:
        raise InputError("snapshot document names a flows member but has no file")
    return Bridge.stored(partial(_read_flow_lines, path, member), count, **doc)


def _chassis_from_dict(doc: dict, path: str | None = None) -> Chassis:
    doc = dict(doc)
    doc["bridges"] = {name: _bridge_from_dict(dict(br), path)
                      for name, br in doc.get("bridges", {}).items()}
    doc["commands"] = [CommandRecord(**c) for c in doc.get("commands", [])]
    doc["problems"] = [Problem(**p) for p in doc.get("problems", [])]
    return Chassis(**doc)


def _database_from_dict(doc: dict | None) -> Database | None:
    return Database(**doc) if doc is not None else None
