"""A private ``ovsdb-server`` holding a snapshot's Southbound, for ovn-trace to read.

``ovn-trace`` reads the SB only through an OVSDB connection.  Pointing it at the live
SB traces today's logical flows beside a snapshot taken earlier; this server serves the
snapshot's own rows instead.  It lives in a temporary directory of its own (database
file, unix socket, unixctl socket, log), is started and stopped by ofrace, and is
never given a TCP remote, a pidfile in the system's run directory, or the user's files.

Rows keep their UUIDs (the ``uuid`` member of an ``insert``, OVS ≥ 2.13: commit
a529e3cd1, ovsdb/execution.c ``ovsdb_execute_insert``), so references between rows
(Logical_Flow → Logical_DP_Group, Port_Binding → Datapath_Binding) hold as in the
original and the first 8 hex digits ovn-trace prints are the snapshot's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from ofrace.agents.ofrace_agent import OvsdbRpcError, OvsdbSession, ovsdb_connect
from ofrace.errors import InputError, ToolError
from ofrace.snapshot import Database

INSTALLED_SB_SCHEMA = "/usr/share/ovn/ovn-sb.ovsschema"
DATABASE = "OVN_Southbound"


def missing_tools() -> list[str]:
    """The programs --check-logical needs that are not installed here."""
    return [tool for tool in ("ovn-trace", "ovsdb-server", "ovsdb-tool")
            if shutil.which(tool) is None]


def _column_type(spec: dict) -> dict:
    kind = spec.get("type")
    return kind if isinstance(kind, dict) else {"key": kind}


def _base(base) -> tuple[str, str | None]:
    """(atomic type, referenced table or None) of a key or value type."""
    if isinstance(base, dict):
        return base.get("type", "string"), base.get("refTable")
    return base, None


def _atom(value, base):
    kind, _ = _base(base)
    if kind == "uuid":
        return ["uuid", value]
    if kind == "integer" and isinstance(value, str):
        return int(value)
    return value


@dataclass
class LoadPlan:
    """The transaction that loads the rows, and what could not be kept, in words."""

    operations: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _encode_cell(value, ctype: dict, present: dict[str, set[str]], dropped: list[int]):
    """A decoded cell (as the snapshot keeps it) back in OVSDB's JSON notation.
    References to rows the snapshot lacks are left out (counted in ``dropped``)."""
    key, val = ctype.get("key"), ctype.get("value")

    def kept(atom, base) -> bool:
        kind, table = _base(base)
        if kind == "uuid" and table is not None and atom not in present.get(table, ()):
            dropped[0] += 1
            return False
        return True

    if val is not None:
        items = value.items() if isinstance(value, dict) else []
        return ["map", [[_atom(k, key), _atom(v, val)] for k, v in items
                        if kept(k, key) and kept(v, val)]]
    many = ctype.get("max", 1) != 1
    if isinstance(value, list):
        atoms = value
    elif value is None:
        atoms = []
    else:
        atoms = [value]
    atoms = [a for a in atoms if kept(a, key)]
    if many or len(atoms) != 1:
        return ["set", [_atom(a, key) for a in atoms]]
    return _atom(atoms[0], key)


def load_plan(database: Database, schema: dict) -> LoadPlan:
    """One insert per snapshot row, with its UUID, in the schema's notation."""
    plan = LoadPlan()
    tables = schema.get("tables", {})
    skipped = sorted(t for t in database.tables if t not in tables)
    if skipped:
        plan.notes.append(f"tables not in the schema, left out: {', '.join(skipped)}")
    present = {t: {row["_uuid"] for row in rows if "_uuid" in row}
               for t, rows in database.tables.items() if t in tables}
    dropped = [0]
    columns_left: set[str] = set()
    for table, rows in database.tables.items():
        if table not in tables:
            continue
        specs = tables[table]["columns"]
        for row in rows:
            cells = {}
            for column, value in row.items():
                if column in ("_uuid", "_version"):
                    continue
                if column not in specs:
                    columns_left.add(f"{table}.{column}")
                    continue
                cells[column] = _encode_cell(value, _column_type(specs[column]), present,
                                             dropped)
            plan.operations.append({"op": "insert", "table": table, "uuid": row["_uuid"],
                                    "row": cells})
    if columns_left:
        plan.notes.append(f"columns not in the schema, left out: {', '.join(sorted(columns_left))}")
    if dropped[0]:
        plan.notes.append(f"{dropped[0]} references to rows the snapshot does not hold "
                          "were left out")
    return plan


def snapshot_schema(database: Database) -> tuple[dict, str | None]:
    """The schema the SB served when the snapshot was taken, else the installed one
    (and a note saying so: columns the two differ in are left out or empty)."""
    if database.schema:
        return database.schema, None
    try:
        with open(INSTALLED_SB_SCHEMA) as fh:
            schema = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ToolError(f"the snapshot carries no SB schema and {INSTALLED_SB_SCHEMA} "
                        f"cannot be read: {exc}") from None
    return schema, (f"the snapshot carries no SB schema (taken before ofrace kept it): "
                    f"loaded with the installed {INSTALLED_SB_SCHEMA} "
                    f"(version {schema.get('version', '?')}, the snapshot's SB: "
                    f"{database.schema_version or 'unknown'})")


class PrivateSouthbound:
    """``with PrivateSouthbound(db, timeout) as sb:`` → ``sb.remote`` serves ``db``'s rows.

    Bounded: every step shares ``timeout`` seconds; the server is stopped (by its own
    process id) and its directory removed on the way out, whatever happened."""

    def __init__(self, database: Database, timeout: float = 60):
        if not database.tables.get("Logical_Flow"):
            raise InputError("--check-logical needs the snapshot's Logical_Flow rows "
                             "(read the Southbound with the snapshot)")
        self.database = database
        self.deadline = time.monotonic() + timeout
        self.notes: list[str] = []
        self.directory: str | None = None
        self.process: subprocess.Popen | None = None

    @property
    def socket_path(self) -> str:
        return os.path.join(self.directory, "sb.sock")

    @property
    def remote(self) -> str:
        return f"unix:{self.socket_path}"

    def environment(self) -> dict:
        """OVS's run/log/db directories pointed into ours: nothing lands elsewhere."""
        return {**os.environ, **{f"{p}_{d}": self.directory for p in ("OVS", "OVN")
                                 for d in ("RUNDIR", "LOGDIR", "DBDIR", "SYSCONFDIR")}}

    def seconds_left(self) -> float:
        """What is left of the time budget; past it, the environment failed."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise ToolError("the private ovsdb-server for --check-logical did not get ready "
                            "in time")
        return left

    def __enter__(self) -> PrivateSouthbound:
        self.directory = tempfile.mkdtemp(prefix="ofrace-sb-")
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        schema, note = snapshot_schema(self.database)
        if note:
            self.notes.append(note)
        schema_file = os.path.join(self.directory, "sb.ovsschema")
        db_file = os.path.join(self.directory, "sb.db")
        with open(schema_file, "w") as fh:
            json.dump(schema, fh)
        run = subprocess.run(["ovsdb-tool", "create", db_file, schema_file],
                             capture_output=True, text=True, timeout=self.seconds_left(),
                             env=self.environment())
        if run.returncode != 0:
            raise ToolError(f"ovsdb-tool create failed: {_last_line(run.stderr)}")
        log_file = os.path.join(self.directory, "ovsdb-server.log")
        self.process = subprocess.Popen(
            ["ovsdb-server", "--no-chdir", f"--remote=punix:{self.socket_path}",
             f"--unixctl={os.path.join(self.directory, 'ctl')}", f"--log-file={log_file}",
             "-vconsole:off", db_file],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=self.environment(), start_new_session=True)
        while not os.path.exists(self.socket_path):
            if self.process.poll() is not None:
                raise ToolError(f"the private ovsdb-server exited: "
                                f"{_last_line(self.process.stderr.read().decode(errors='replace'))}")
            self.seconds_left()
            time.sleep(0.02)
        plan = load_plan(self.database, schema)
        self.notes.extend(plan.notes)
        if "DHCP_Options" not in self.database.tables:
            self.notes.append("the snapshot has no DHCP_Options/DHCPv6_Options rows (taken "
                              "before ofrace read them): ovn-trace cannot parse logical flows "
                              "with put_dhcp_opts and leaves them out")
        self._transact(plan.operations)

    def _transact(self, operations: list[dict]) -> None:
        """One JSON-RPC ``transact`` with every insert (too big for a command line)."""
        # the agent's JSON-RPC session: framing, and the server's echo probes answered
        try:
            with ovsdb_connect(f"unix:{self.socket_path}", self.seconds_left()) as conn:
                results = OvsdbSession(conn, time.time() + self.seconds_left()).call(
                    "transact", [DATABASE, *operations])
        except OvsdbRpcError as exc:
            raise ToolError(f"the private ovsdb-server refused the snapshot's SB: {exc}"
                            ) from None
        except (OSError, ValueError) as exc:
            raise ToolError(f"the private ovsdb-server: {exc}") from None
        if not isinstance(results, list):
            raise ToolError(f"the private ovsdb-server refused the snapshot's SB: "
                            f"{results}")
        errors = [r for r in results if isinstance(r, dict) and "error" in r]
        if errors:
            first = errors[0]
            raise ToolError(f"the private ovsdb-server refused the snapshot's SB: "
                            f"{first['error']}: {str(first.get('details', ''))[:300]}")

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"
