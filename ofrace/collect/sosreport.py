"""A node's state read from its sosreport, through the agent's own plan.

sos (github:sosreport/sos, ``sos/report/plugins/``) stores each command's output
under ``sos_commands/<plugin>/<mangled command>`` (``Plugin._mangle_command``:
``/usr/bin/`` dropped, runs of characters outside ``[\\w\\-./]`` become ``_``,
``/`` becomes ``.``).  What the plugins run differs by release:

* ``openvswitch`` (4.0, Debian 12): ``ovs-ofctl dump-flows <br>``,
  ``dump-ports-desc <br>``, ``ovs-appctl fdb/show <br>``, ``ovsdb-client -f list
  dump`` (every table as text), ``ovs-vsctl -t 5 list {Open_vSwitch,bridge,
  interface}``, ``dpctl/dump-conntrack -m <dp>``; groups only as ``ovs-ofctl -O
  <version> dump-groups`` for the versions in Bridge.protocols (none when it is
  empty, as on OVN's br-int).
* current sos adds ``ovs-ofctl dump-groups <br>``, per OpenFlow version (every one
  ovs-ofctl speaks when Bridge.protocols is empty) ``dump-groups``,
  ``dump-tlv-map``, ``dump-meters``, and copies the raw conf.db.
* ``ovn_host``: ``ovs-ofctl -O OpenFlow13 dump-flows br-int``; ``ovn_central``:
  ``ovn-nbctl``/``ovn-sbctl list <Table>`` and the raw ovnnb_db.db / ovnsb_db.db.

Nothing here decides what to read: the agent's ``collect_node`` runs with a
``run`` that answers each command it would run on the node from the file sos
wrote for it (the same command, another OpenFlow version's dump of the same
table, or the OVSDB rows from conf.db / the text listings), and says "not in the
sosreport" for the rest.  The node document is then the one ``collect`` checks
and turns into a ``Chassis``.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ofrace.agents import ofrace_agent
from ofrace.collect.ovsdb_file import OvsdbFile, read_ovsdb_file

OPENFLOW_VERSIONS = ("OpenFlow15", "OpenFlow14", "OpenFlow13", "OpenFlow12", "OpenFlow11",
                     "OpenFlow10")
PLUGINS = ("openvswitch", "ovn_host", "ovn_central")
# Where sos copies the raw databases (openvswitch: conf.db; ovn_central: NB and SB).
DATABASE_DIRS = ("etc/openvswitch", "var/lib/openvswitch", "usr/local/etc/openvswitch",
                 "var/lib/openvswitch/ovn", "var/lib/ovn", "var/lib/ovn/etc", "etc/ovn",
                 "var/snap/microovn/common/data/central/db")
DATABASE_FILES = ("conf.db", "ovnnb_db.db", "ovnsb_db.db")


def mangle(command: str) -> str:
    """sos's file name for a command (``Plugin._mangle_command``, no length cut)."""
    name = re.sub(r"^/(usr/|)(bin|sbin)/", "", command)
    name = re.sub(r"[^\w\-\.\/]+", "_", name)
    return re.sub(r"/", ".", name).strip(" ._-")


def wanted_member(name: str) -> bool:
    """The archive members import reads (everything else stays in the archive)."""
    parts = name.split("/")
    if len(parts) >= 3 and parts[-3] == "sos_commands" and parts[-2] in (*PLUGINS, "host"):
        return True
    if parts[-1] in DATABASE_FILES:
        return True
    if parts[-1] in ("ovs-vswitchd.log", "ovn-controller.log") and "log" in parts:
        return True      # the daemons' versions (they log them when they start)
    return parts[-1] in ("hostname", "version.txt") and len(parts) <= 3


def cut_member(name: str) -> bool:
    """An output sos cut at its size limit (``--log-size``, 25 MiB): it keeps the tail
    in ``sos_strings/<plugin>/<name>.tailed`` and links the usual path to it."""
    parts = name.split("/")
    if "sos_strings" not in parts or not name.endswith(".tailed"):
        return False
    at = parts.index("sos_strings")
    return at + 2 < len(parts) and parts[at + 1] in PLUGINS


def is_sosreport(root: Path) -> bool:
    return (root / "sos_commands").is_dir()


@dataclass
class SosReport:
    """One sosreport's tree (extracted, or a directory given as it is)."""

    root: Path
    label: str                       # what the user gave (the archive or directory)
    notes: list[str] = field(default_factory=list)

    def command(self, command: str, plugins=PLUGINS) -> Path | None:
        name = mangle(command)
        for plugin in plugins:
            path = self.root / "sos_commands" / plugin / name
            if path.is_file():
                return path
        return None

    def cut(self, name: str) -> str | None:
        """Why ``name`` (a command's file, or a copied file's name) is not whole: sos
        kept only its tail; None if it was not cut."""
        strings = self.root / "sos_strings"
        if strings.is_dir():
            for path in strings.glob(f"**/*{name}.tailed"):
                return (f"{name} was over sos's size limit and only its tail was kept "
                        f"({path.relative_to(self.root)}): not usable; run sos with "
                        "--log-size 0 (or give the file itself)")
        return None

    def text(self, command: str, plugins=PLUGINS) -> str | None:
        path = self.command(command, plugins)
        return path.read_text("utf-8", "replace") if path else None

    def plugins(self) -> list[str]:
        base = self.root / "sos_commands"
        return sorted(p.name for p in base.iterdir() if p.is_dir() and p.name in PLUGINS)

    def database(self, filename: str) -> Path | None:
        """The raw database sos copied: from a standard directory, else from wherever
        $OVS_DBDIR pointed (sos keeps the path)."""
        for directory in DATABASE_DIRS:
            path = self.root / directory / filename
            if path.is_file():
                return path
        found = sorted(p for p in self.root.rglob(filename)
                       if p.is_file() and "sos_commands" not in p.parts)
        return found[0] if found else None

    def listings(self, ctl: str, tables) -> dict[str, list[dict]]:
        """``ovn-nbctl``/``ovn-sbctl [--no-leader-only] list <Table>`` (ovn_central),
        decoded as the collector decodes rows; tables sos did not list are absent."""
        found = {}
        for table in tables:
            for command in (f"{ctl} --no-leader-only list {table}", f"{ctl} list {table}"):
                path = self.command(command, ("ovn_central",))
                if path is None:
                    continue
                try:
                    rows = parse_listing(path.read_text("utf-8", "replace"), table)[table]
                except (ValueError, KeyError) as exc:
                    self.notes.append(f"{path.name}: unreadable ({exc})")
                    break
                decoders = ofrace_agent.column_decoders(_schema_of({table: rows})["tables"][table])
                found[table] = [{c: decoders.get(c, ofrace_agent.ovsdb_decode)(v)
                                 for c, v in row.items() if c != "_version"} for row in rows]
                break
        return found

    def hostname(self) -> str | None:
        for path in (self.root / "sos_commands" / "host" / "hostname",
                     self.root / "hostname", self.root / "etc" / "hostname"):
            if path.is_file():
                text = path.read_text("utf-8", "replace").strip()
                if text:
                    return text.splitlines()[0].strip()
        match = re.match(r"sosreport-(.+?)-\d{4}-\d{2}-\d{2}-\w+$", self.root.name)
        if match is None:
            match = re.match(r"sosreport-(.+?)(-\d+)?-\d{4}-\d{2}-\d{2}", self.root.name)
        return match.group(1) if match else None

    def version(self) -> str | None:
        path = self.root / "version.txt"
        if path.is_file():
            match = re.search(r"sos(?:report)?:\s*(\S+)", path.read_text("utf-8", "replace"))
            return match.group(1) if match else None
        return None


# --- ovsdb-client / ovs-vsctl "list" text ------------------------------------

_TOKEN = re.compile(r'\s*(?:("(?:[^"\\]|\\.)*")|([\[\]{}=,])|([^\s\[\]{}=,"]+))')
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_INT = re.compile(r"-?\d+\Z")
_REAL = re.compile(r"-?(\d+\.\d*|\d*\.\d+|\d+)([eE][-+]?\d+)?\Z")


def _atom(token: tuple[str, str, str]):
    quoted, _, bare = token
    if quoted:
        return json.loads(quoted)
    if _UUID.match(bare):
        return ["uuid", bare]
    if bare in ("true", "false"):
        return bare == "true"
    if _INT.match(bare):
        return int(bare)
    if _REAL.match(bare):
        return float(bare)
    return bare


def _tokens(text: str):
    pos, out = 0, []
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            if text[pos:].strip():
                raise ValueError(f"cannot read {text[pos:pos + 40]!r}")
            break
        out.append(match.groups())
        pos = match.end()
    return [t for t in out if any(t)]


def parse_cell(text: str):
    """A cell as ``ovsdb_datum_to_string`` printed it → OVSDB JSON notation:
    ``[...]`` a set, ``{k=v, ...}`` a map, else one atom (a bare ``k=v``: a map of one)."""
    tokens = _tokens(text)
    if not tokens:
        return ["set", []]
    opener = tokens[0][1]
    if opener in ("[", "{"):
        closer = "]" if opener == "[" else "}"
        if tokens[-1][1] != closer:
            raise ValueError(f"unclosed {opener}")
        items = [t for t in tokens[1:-1] if t[1] != ","]
        if opener == "[":
            return ["set", [_atom(t) for t in items]]
        pairs, i = [], 0
        while i < len(items):
            if i + 2 >= len(items) + 0 and (i + 2 > len(items) or items[i + 1][1] != "="):
                raise ValueError("a map entry without '='")
            pairs.append([_atom(items[i]), _atom(items[i + 2])])
            i += 3
        return ["map", pairs]
    if len(tokens) == 3 and tokens[1][1] == "=":
        return ["map", [[_atom(tokens[0]), _atom(tokens[2])]]]
    if len(tokens) != 1:
        raise ValueError(f"more than one value in {text[:40]!r}")
    return _atom(tokens[0])


_LINE = re.compile(r"^([A-Za-z_][\w-]*)\s*: ?(.*)$")
_TABLE = re.compile(r"^(\w+) table$")


def parse_listing(text: str, table: str | None = None) -> dict[str, list[dict]]:
    """``ovsdb-client -f list dump`` (tables headed ``<Name> table``) or one
    ``ovs-vsctl list <table>`` (give ``table``) → ``{table: rows}`` in OVSDB JSON
    notation; a line it cannot read is a ValueError naming the line."""
    tables: dict[str, list[dict]] = {}
    row: dict | None = None
    for number, line in enumerate(text.splitlines(), 1):
        heading = _TABLE.match(line)
        if heading:
            table, row = heading.group(1), None
            tables.setdefault(table, [])
            continue
        if not line.strip():
            row = None
            continue
        match = _LINE.match(line)
        if match is None or table is None:
            raise ValueError(f"line {number}: not a 'column : value' line: {line[:60]!r}")
        if row is None:
            row = {}
            tables.setdefault(table, []).append(row)
        try:
            row[match.group(1)] = parse_cell(match.group(2))
        except (ValueError, IndexError) as exc:
            raise ValueError(f"line {number}: {exc}") from None
    return tables


def _schema_of(tables: dict[str, list[dict]]) -> dict:
    """An OVSDB schema just precise enough for the agent's decoders: a column holding
    a set with members in any row is a set, a map a map, anything else a scalar."""
    def base(atoms) -> str:
        return "uuid" if any(isinstance(a, list) for a in atoms) else "string"

    schema = {"name": "Open_vSwitch", "tables": {}}
    for table, rows in tables.items():
        columns: dict[str, dict] = {}
        for row in rows:
            for name, value in row.items():
                if name in ("_uuid", "_version"):
                    continue
                if isinstance(value, list) and value[:1] == ["map"]:
                    kind = {"key": base([k for k, _ in value[1]]),
                            "value": base([v for _, v in value[1]]),
                            "min": 0, "max": "unlimited"}
                elif isinstance(value, list) and value[:1] == ["set"] and value[1]:
                    kind = {"key": base(value[1]), "min": 0, "max": "unlimited"}
                else:
                    kind = {"key": "string", "min": 0, "max": 1}
                old = columns.get(name)
                if old is None or (old.get("max") == 1 and kind.get("max") != 1) or (
                        old.get("key") == "string" and kind.get("key") == "uuid"):
                    columns[name] = kind
        schema["tables"][table] = {"columns": {n: {"type": k} for n, k in columns.items()}}
    return schema


# --- answering the agent's commands from the files -------------------------

MISSING = "not in the sosreport"


def _answer(argv, text: str | None = None, error: str | None = None, **extra) -> dict:
    result = {"argv": argv, "rc": 0 if error is None else 1, "stdout": text or "",
              "started": time.time(), "elapsed": 0.0, "error": error}
    result.update(extra)
    return result


def _ofctl_failed(text: str) -> str | None:
    """ovs-ofctl's error (sos keeps stderr in the file), or None for a real reply."""
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    if re.match(r"(OFPST_|NXST_|OFPT_|NXT_|OFPST|NXST)", first):
        return None
    return first or "empty output"


@dataclass
class NodeFiles:
    """Answers the agent's commands from one sosreport; notes which file answered."""

    sos: SosReport
    used: dict[str, str] = field(default_factory=dict)     # what → file (relative)
    ovsdb_source: str | None = None
    _ovsdb: tuple | None = None

    def _found(self, what: str, path: Path) -> str:
        self.used[what] = str(path.relative_to(self.sos.root))
        return path.read_text("utf-8", "replace")

    def _ofctl(self, what: str, verb: str, bridge: str, versions) -> dict:
        """The first dump of ``verb`` for ``bridge`` among ``versions`` (None: no -O)."""
        tried = []
        for version in versions:
            command = (f"ovs-ofctl -O {version} {verb} {bridge}" if version
                       else f"ovs-ofctl {verb} {bridge}")
            path = self.sos.command(command)
            if path is None:
                continue
            text = self._found(what, path)
            failed = _ofctl_failed(text)
            if failed is None:
                if verb == "dump-groups" and version != "OpenFlow15":
                    self.sos.notes.append(
                        f"{bridge} groups from {path.name}: before OpenFlow 1.5 a group's "
                        "selection_method is not printed, select groups run as OVS's "
                        "default method")
                return _answer([command], text)
            tried.append(f"{path.name}: {failed}")
            self.used.pop(what, None)
        cut = [self.sos.cut(mangle(f"ovs-ofctl {verb} {bridge}" if v is None else
                                   f"ovs-ofctl -O {v} {verb} {bridge}")) for v in versions]
        tried += [c for c in cut if c]
        why = "; ".join(tried) if tried else f"no `ovs-ofctl {verb} {bridge}` output"
        return _answer([verb, bridge], error=f"{MISSING} {self.sos.label}: {why}")

    def run(self, argv: list[str]) -> dict:
        if argv and argv[0] == "ovsdb-client":
            return self._ovsdb_client(argv)
        if argv == ["hostname"]:
            name = self.sos.hostname()
            return _answer(argv, name) if name else _answer(argv, error=MISSING)
        if argv[:2] == ["ovs-vswitchd", "--version"]:
            return self._ovs_version(argv)
        if argv[:2] == ["ovn-controller", "--version"]:
            return self._ovn_version(argv)
        if argv == ["ovs-appctl", "dpif/show"]:
            return self._dpif(argv)
        if argv == ofrace_agent.CONNTRACK_READ:
            return self._conntrack(argv)
        if argv[:1] == ["ovs-ofctl"] or argv[:2] == ["ovs-appctl", "fdb/show"]:
            return self._bridge_read(argv)
        return _answer(argv, error=f"{MISSING} {self.sos.label} (sos does not run "
                                   f"`{' '.join(argv)}`)")

    def _bridge_read(self, argv: list[str]) -> dict:
        bridge = argv[-1]
        if argv[:2] == ["ovs-appctl", "fdb/show"]:
            path = self.sos.command(f"ovs-appctl fdb/show {bridge}")
            if path is None:
                return _answer(argv, error=f"{MISSING} {self.sos.label}: no fdb/show {bridge}")
            return _answer(argv, self._found(f"{bridge} fdb", path))
        verb = next(a for a in argv[1:] if not a.startswith("-") and not a.startswith("Open"))
        # The agent's own version first (the default one, or OpenFlow15), then others.
        if verb == "dump-flows":
            versions = (None, *OPENFLOW_VERSIONS)
        elif verb in ("dump-groups", "dump-meters"):
            versions = (*OPENFLOW_VERSIONS[:-1], None)
        else:
            versions = (None, *OPENFLOW_VERSIONS)
        return self._ofctl(f"{bridge} {verb}", verb, bridge, versions)

    def _ovs_version(self, argv) -> dict:
        for command in ("ovs-vsctl -t 5 show", "ovs-vsctl show"):
            text = self.sos.text(command)
            match = re.search(r'ovs_version: "?([^"\s]+)', text or "")
            if match:
                return _answer(argv, f"ovs-vswitchd (Open vSwitch) {match.group(1)}")
        # ovs-vswitchd logs its version once it runs (vswitchd/bridge.c, bridge_run
        # -> "ovs-vswitchd (Open vSwitch) 3.1.0"), the openvswitch plugin copies the log.
        for path in (self.sos.root / "var/log/openvswitch/ovs-vswitchd.log",
                     self.sos.root / "usr/local/var/log/openvswitch/ovs-vswitchd.log"):
            if path.is_file():
                found = re.findall(r"ovs-vswitchd \(Open vSwitch\) (\S+)",
                                   path.read_text("utf-8", "replace"))
                if found:
                    self.used["ovs version"] = str(path.relative_to(self.sos.root))
                    return _answer(argv, f"ovs-vswitchd (Open vSwitch) {found[-1]}")
        text = self.sos.text("ovs-ofctl -t 5 --version") or ""
        match = re.search(r"\(Open vSwitch\) (\S+)", text)
        if match:
            return _answer(argv, f"ovs-vswitchd (Open vSwitch) {match.group(1)}")
        return _answer(argv, error=f"{MISSING} {self.sos.label}: no OVS version")

    def _ovn_version(self, argv) -> dict:
        """ovn-controller logs its release when it starts (controller/ovn-controller.c
        ``main``: "OVN internal version is : [23.03.1-…]"); current sos copies the log."""
        for directory in ("var/log/ovn", "var/log/openvswitch"):
            path = self.sos.root / directory / "ovn-controller.log"
            if path.is_file():
                found = re.findall(r"OVN internal version is : \[(\d+\.\d+\.\d+)",
                                   path.read_text("utf-8", "replace"))
                if found:
                    self.used["ovn version"] = str(path.relative_to(self.sos.root))
                    return _answer(argv, f"ovn-controller {found[-1]}")
        return _answer(argv, error=f"{MISSING} {self.sos.label}: no ovn-controller log")

    def _dpif(self, argv) -> dict:
        """sos runs ``dpctl/show -s <dp>``, not ``dpif/show``: the datapath's ports and
        their kinds (what tells a userspace datapath, ``ofrace.simulate.groups``), but
        not which OpenFlow port each is (only ``compare`` needs that)."""
        base = self.sos.root / "sos_commands" / "openvswitch"
        found = sorted(base.glob(mangle("ovs-appctl dpctl/show -s") + "_*")) \
            if base.is_dir() else []
        if not found:
            return _answer(argv, error=f"{MISSING} {self.sos.label}: no dpif/show or "
                                       "dpctl/show")
        self.sos.notes.append("dpif/show is not in sosreports: dpctl/show stands in (the "
                              "datapath's port kinds; no OpenFlow-to-datapath port map)")
        return _answer(argv, "".join(self._found(f"dpif {p.name}", p) for p in found))

    def _conntrack(self, argv) -> dict:
        base = self.sos.root / "sos_commands" / "openvswitch"
        found = sorted(base.glob(mangle("ovs-appctl dpctl/dump-conntrack -m") + "_*")) \
            if base.is_dir() else []
        if not found:
            return _answer(argv, error=f"{MISSING} {self.sos.label}: no dpctl/dump-conntrack")
        texts = [self._found(f"conntrack {p.name}", p) for p in found]
        return _answer(argv, "".join(texts))

    # ovsdb-client get-schema / query, from conf.db or the text listings
    def _load_ovsdb(self):
        if self._ovsdb is not None:
            return self._ovsdb
        conf = self.sos.database("conf.db")
        listings = self._listings()
        if conf is not None:
            db = read_ovsdb_file(conf)
            self.ovsdb_source = str(conf.relative_to(self.sos.root))
            if listings:
                self.ovsdb_source += " (+ ephemeral columns from ovs-vsctl list)"
            self._ovsdb = (db.schema, _FileTables(db, listings))
        elif "Port" in listings:
            self.ovsdb_source = self.used.get("ovsdb", "text listings")
            self._ovsdb = (_schema_of(listings), _TextTables(listings))
        else:
            self._ovsdb = (None, None)
        return self._ovsdb

    def _listings(self) -> dict[str, list[dict]]:
        """Rows from ``ovsdb-client -f list dump`` or else the ``ovs-vsctl list`` files."""
        for command in ("ovsdb-client -f list dump",):
            path = self.sos.command(command)
            if path is not None:
                try:
                    tables = parse_listing(self._found("ovsdb", path))
                except ValueError as exc:
                    self.sos.notes.append(f"{path.name}: unreadable ({exc})")
                    continue
                if tables:
                    return tables
        tables = {}
        for table in ("Open_vSwitch", "bridge", "interface"):
            for command in (f"ovs-vsctl -t 5 list {table}", f"ovs-vsctl list {table}"):
                path = self.sos.command(command)
                if path is None:
                    continue
                try:
                    rows = parse_listing(path.read_text("utf-8", "replace"), "t")["t"]
                except (ValueError, KeyError) as exc:
                    self.sos.notes.append(f"{path.name}: unreadable ({exc})")
                    continue
                tables[{"bridge": "Bridge", "interface": "Interface"}.get(table, table)] = rows
                break
        return tables

    def _ovsdb_client(self, argv: list[str]) -> dict:
        schema, tables = self._load_ovsdb()
        if schema is None:
            return _answer(argv, error=f"{MISSING} {self.sos.label}: no conf.db and no "
                                       "`ovsdb-client -f list dump` (Bridge/Port/Interface)")
        if "get-schema" in argv:
            return _answer(argv, json.dumps(schema))
        ops = json.loads(argv[-1])
        replies = [{"rows": tables.select(op["table"], op.get("columns"))} for op in ops[1:]]
        return _answer(argv, json.dumps(replies))


class _FileTables:
    """conf.db's rows; ephemeral columns (never in the file) from the text listings."""

    def __init__(self, db: OvsdbFile, listings: dict[str, list[dict]]):
        self.db = db
        self.extra = {t: {r["_uuid"][1]: r for r in rows if isinstance(r.get("_uuid"), list)}
                      for t, rows in listings.items()}

    def select(self, table: str, columns) -> list[dict]:
        if table not in self.db.schema["tables"]:
            return []
        spec = self.db.schema["tables"][table]["columns"]
        rows = self.db.select(table, columns)
        extra = self.extra.get(table, {})
        for row in rows:
            listed = extra.get(row["_uuid"][1], {})
            for name in columns or spec:
                if name not in row and name in listed and spec.get(name, {}).get("ephemeral"):
                    row[name] = _typed(listed[name], spec[name])
        return rows


def _typed(value, column_spec: dict):
    """A listed cell in the column's JSON form (a one-member set of a set column)."""
    ctype = column_spec.get("type")
    if isinstance(ctype, dict) and "value" not in ctype and ctype.get("max", 1) != 1 \
            and not (isinstance(value, list) and value[:1] == ["set"]):
        return ["set", [value]]
    return value


class _TextTables:
    def __init__(self, listings: dict[str, list[dict]]):
        self.listings = listings

    def select(self, table: str, columns) -> list[dict]:
        rows = self.listings.get(table, [])
        if not columns:
            return [{k: v for k, v in r.items() if k != "_version"} for r in rows]
        return [{c: r[c] for c in columns if c in r} for r in rows]


def read_node(sos: SosReport, integration_bridge: str | None = None) -> tuple[dict, NodeFiles]:
    """The node document the agent would have sent, built from the sosreport."""
    files = NodeFiles(sos)
    options = {"integration_bridge": integration_bridge} if integration_bridge else {}
    doc = ofrace_agent.collect_node(files.run, options)
    doc["mode"] = "sosreport"
    return doc, files
