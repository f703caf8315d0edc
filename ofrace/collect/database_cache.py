"""OVN databases read incrementally: a local cache kept current with ``monitor_cond_since``.

A live read of a 118k-flow Southbound takes 12-19 s.  The rows of each database read
are kept in the user's own cache (``$OFRACE_CACHE_DIR``, else
``$XDG_CACHE_HOME/ofrace``, else ``~/.cache/ofrace``; nothing is written on nodes)
with the last transaction id the server named; the next read asks the server for the
changes since that id (``monitor_cond_since``, ovsdb/jsonrpc-server.c) and applies them
to the cached rows.  ovsdb-server keeps a transaction history only for clustered (and
relay) databases (ovsdb/ovsdb-server.c ``open_db``: ``ovsdb_txn_history_init(db, is_relay
|| ovsdb_storage_is_clustered(storage))``), so a standalone database is read whole every
time; and the history is short (ovsdb/transaction.c ``ovsdb_txn_history_run``: at most
100 transactions, and no more atoms than the database holds), so a busy or tiny
database may have forgotten the id: the server then sends everything (found=false).
``Database.read_as`` says which it was.

The rows a read gives are the rows ``ovsdb_select`` gives (same decoding, same key
order), sorted by ``_uuid`` in every path, so a snapshot is the same whichever way it
was read.  The cache holds only rows without secrets (``secrets.redact_rows`` would
change nothing): a database that holds one is read whole, and no file keeps it.  A
cache that cannot be read or does not fit is ignored (a whole read), never an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from threading import Thread

from ofrace.agents import ofrace_agent
from ofrace.collect import secrets

CACHE_FORMAT = 2          # 2: says whether its rows passed the reader's check
_disabled = False


def disable() -> None:
    """``--no-cache``: every read in this process is whole, and no cache is written."""
    global _disabled
    _disabled = True


def _disable_on_flag(_context, _parameter, given: bool) -> None:
    if given:
        disable()


# How the commands that read live spell it (click.option's arguments; the flag is not
# passed on to the command: it only switches the cache off for this process).
NO_CACHE_OPTION = {
    "is_flag": True, "expose_value": False, "callback": _disable_on_flag,
    "help": "Read the OVN databases and the nodes' flows whole, not as the changes since "
            "the last live read, and no node before it is reached (the cache in "
            "~/.cache/ofrace); also OFRACE_NO_CACHE=1."}


def cache_enabled() -> bool:
    return not _disabled and os.environ.get("OFRACE_NO_CACHE", "").lower() not in (
        "1", "true", "yes")


def cache_dir() -> Path:
    explicit = os.environ.get("OFRACE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "ofrace" if xdg else Path.home() / ".cache" / "ofrace"


def cache_path(remote: str, via: str, database: str, tables: tuple[str, ...]) -> Path:
    """One file per database and set of tables (``--discover`` reads two SB tables: that
    read must not replace the whole SB's cache)."""
    key = json.dumps([remote, via, database, sorted(tables)]).encode()
    return cache_dir() / f"{database}-{hashlib.sha256(key).hexdigest()[:24]}.json"


class CacheMismatch(Exception):
    """The changes do not fit the cached rows (a row changed that is not there)."""


@dataclass
class MonitorRead:
    """What one read gave: decoded rows per table, the schema, how it was read."""

    tables: dict[str, list[dict]]
    schema: dict
    read_as: str
    checked: bool = False    # every row passed the reader's ``check``
    # the rows not known to be free of secrets (those that came from the server, when
    # the rest came from the cache, which keeps none); None: every row
    came: dict[str, list[dict]] | None = None


def identity(schema: dict, server: dict | None) -> dict:
    """What must be equal for cached rows to be the same database's: the schema
    (version and checksum) and, for a clustered database, its cluster id."""
    server = server or {}
    cid = server.get("cid")
    return {"version": schema.get("version"), "cksum": schema.get("cksum"),
            "cid": cid if isinstance(cid, str) else None}


def usable_dir(directory: Path) -> bool:
    """Create the cache directory 0700; refuse one that is a symlink or not ours."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(directory)
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return False
    if stat.S_IMODE(info.st_mode) & 0o077:
        try:
            os.chmod(directory, 0o700)
        except OSError:
            return False
    return True


class NotOurs(OSError):
    """A cache path that is not a regular file of this user (a symlink, someone's)."""


def open_private(path: Path):
    """A cache file for reading: a regular file of this user, not through a symlink
    (else OSError)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
        os.close(fd)
        raise NotOurs(f"{path} is not a cache file of this user")
    return os.fdopen(fd, "rb")


def load_cache(path: Path) -> dict | None:
    """The cached document, or None when there is none or it cannot be trusted."""
    try:
        with open_private(path) as handle:
            doc = json.loads(handle.read())
    except (OSError, ValueError, RecursionError):
        return None
    if not (isinstance(doc, dict) and doc.get("format") == CACHE_FORMAT
            and isinstance(doc.get("last_id"), str) and isinstance(doc.get("identity"), dict)
            and isinstance(doc.get("tables"), dict)
            and all(isinstance(rows, list) and all(isinstance(r, dict) and
                                                   isinstance(r.get("_uuid"), str)
                                                   for r in rows)
                    for rows in doc["tables"].values())):
        return None
    return doc


def save_cache(path: Path, doc: dict) -> bool:
    """Write ``doc`` as the cache file ``path`` (``write_private``)."""
    try:
        text = json.dumps(doc, separators=(",", ":"))  # the C encoder: json.dump is not
    except ValueError:
        return False
    return write_private(path, text.encode())


def write_private(path: Path, data: bytes) -> bool:
    """Write ``data`` 0600 beside ``path`` in a usable cache directory and rename it
    into place (atomic); False when that cannot be done."""
    if not usable_dir(path.parent):
        return False
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    except OSError:
        return False
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
        return True
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False


def forget_cache(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def holds_secrets(tables: dict) -> bool:
    """Whether ``secrets.redact_rows`` would change any of these rows (they are not)."""
    return bool(secrets.redact_rows(tables, "cache", change=False))


def _composite_kinds(schema_table: dict) -> dict[str, str]:
    """{column: "set" | "map"} for the columns whose diffs are not whole new values
    (``ovsdb_type_is_composite``: max > 1 or a map; lib/ovsdb-data.c ``ovsdb_datum_diff``)."""
    kinds = {}
    for col, spec in schema_table.get("columns", {}).items():
        ctype = spec.get("type")
        if not isinstance(ctype, dict):
            continue
        if ctype.get("value") is not None:
            kinds[col] = "map"
        elif ctype.get("max", 1) != 1:
            kinds[col] = "set"
    return kinds


def apply_diff(kind: str | None, old, diff):
    """One column's new value from its old value and a "modify" diff (ovsdb/monitor.c
    composes it with ``ovsdb_datum_diff``): a set's diff is the symmetric difference; a
    map's diff holds removed pairs (old key, old value), changed pairs (key, new value)
    and added pairs; any other column's diff is its new value.  Sets and maps stay in
    OVSDB's order (sorted atoms), as the server prints them."""
    if kind == "set":
        return sorted(set(old).symmetric_difference(diff))
    if kind == "map":
        new = dict(old)
        for key, value in diff.items():
            if key in new and new[key] == value:
                del new[key]
            else:
                new[key] = value
        return dict(sorted(new.items()))
    return diff


def apply_changes(rows: dict[str, dict[str, dict]], changes: dict, schema: dict) -> int:
    """Apply decoded update2 changes (``decode_monitor_updates``) to ``{table: {uuid:
    row}}`` in place; gives how many rows changed.  CacheMismatch when a change names a
    row the cache does not have (or inserts one it has)."""
    count = 0
    for table, table_changes in changes.items():
        kinds = _composite_kinds(schema["tables"][table])
        current = rows.setdefault(table, {})
        for uuid, (kind, cells) in table_changes.items():
            count += 1
            if kind == "delete":
                if current.pop(uuid, None) is None:
                    raise CacheMismatch(f"{table} {uuid} deleted but not cached")
            elif kind == "modify":
                row = current.get(uuid)
                if row is None:
                    raise CacheMismatch(f"{table} {uuid} modified but not cached")
                for col, diff in cells.items():
                    if col not in row:
                        raise CacheMismatch(f"{table} {uuid} has no column {col}")
                    row[col] = apply_diff(kinds.get(col), row[col], diff)
            elif kind == "insert" and uuid in current:
                raise CacheMismatch(f"{table} {uuid} inserted twice")
            else:
                current[uuid] = cells
    return count


def sorted_rows(rows: dict[str, dict]) -> list[dict]:
    return [rows[uuid] for uuid in sorted(rows)]


def read_database(fetch, remote: str, via: str, database: str, tables: tuple[str, ...],
                  use_cache: bool | None = None, check=None) -> MonitorRead:
    """Read ``tables`` through ``fetch(last_id) -> raw monitor answer``
    (``ofrace_agent.ovsdb_monitor_read``'s), with the cache when it is enabled.
    ``check({table: rows})`` raises on rows the caller cannot use: the rows that came
    from the server are checked before they are kept, so the cached ones need no check
    again (``MonitorRead.checked``).  Raises what ``fetch`` and ``check`` raise; never
    fails because of the cache."""
    use_cache = cache_enabled() if use_cache is None else use_cache
    try:
        path = cache_path(remote, via, database, tables)
    except (RuntimeError, KeyError, OSError):   # no home directory to find the cache in
        path, use_cache = None, False
    if path is not None:
        finish_writes(path)
    cached = load_cache(path) if use_cache else None
    if cached is not None and cached.get("requested") != sorted(tables):
        cached = None
    answer = fetch(cached["last_id"] if cached else None)
    schema = _checked_schema(answer)
    ident = identity(schema, answer.get("server"))
    changes = ofrace_agent.decode_monitor_updates(schema, answer["updates"])
    rows = None
    if answer["found"] and cached is not None and cached["identity"] == ident:
        rows = {t: {r["_uuid"]: r for r in cached["tables"].get(t, [])} for t in tables
                if t in schema["tables"]}
        try:
            count = apply_changes(rows, changes, schema)
            read_as = f"changes since {cached['last_id']} ({count} rows)"
        except (CacheMismatch, KeyError, TypeError, AttributeError):
            rows = None
    if rows is not None:
        # the cached rows were checked and held no secret: only the rows that came
        # need a look
        data = {t: sorted_rows(rows[t]) for t in tables if t in schema["tables"]}
        came = {t: [rows[t][u] for u, (kind, _) in table_changes.items()
                    if kind != "delete"] for t, table_changes in changes.items()}
        if check is not None:
            check(came if cached.get("checked") is True else data)
        if use_cache and (count or answer["last_id"] != cached["last_id"]
                          or (check is not None) != (cached.get("checked") is True)):
            _keep(path, answer, ident, tables, data, came, check is not None)
        return MonitorRead(tables=data, schema=schema, read_as=read_as,
                           checked=check is not None, came=came)
    if answer["found"]:
        # the server had the id, but our rows are not that database's: read it whole
        answer = fetch(None)
        schema = _checked_schema(answer)
        ident = identity(schema, answer.get("server"))
        changes = ofrace_agent.decode_monitor_updates(schema, answer["updates"])
    rows = {t: {} for t in tables if t in schema["tables"]}
    apply_changes(rows, changes, schema)
    data = {t: sorted_rows(rows[t]) for t in tables if t in schema["tables"]}
    if check is not None:
        check(data)
    if use_cache:
        _keep(path, answer, ident, tables, data, data, check is not None)
    return MonitorRead(tables=data, schema=schema, read_as="full", checked=check is not None)


# --- rows of one table matching a condition, each clause kept on its own ---------
#
# A live trace lists the logical flows of the datapaths it crossed (37k of a 118k-flow
# SB's rows for three datapaths and their groups): ovsdb-server scans the whole table
# for each, which costs it more than half a second every trace.  Each clause is read as
# a monitor of its own and kept in its own file, so the next read of it is the changes
# since (and a trace sharing a datapath with an earlier one shares its file).

WHERE_PREFIX = "where-"
MAX_WHERE_FILES = 64
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


def where_path(remote: str, via: str, database: str, table: str, clause: list,
               columns: list[str]) -> Path:
    key = json.dumps([remote, via, database, table, clause, columns]).encode()
    return cache_dir() / f"{WHERE_PREFIX}{hashlib.sha256(key).hexdigest()[:24]}.json"


def read_matching(fetch_many, remote: str, via: str, database: str, table: str,
                  clauses: list[list], columns: list[str],
                  use_cache: bool | None = None) -> list[dict]:
    """The rows of ``table`` matching any of ``clauses`` (``columns`` of them, and
    ``_uuid``), sorted by ``_uuid``: one ``monitor_cond_since`` per clause through
    ``fetch_many([(where, columns, last_id), ...])`` (``ofrace_agent.ovsdb_monitor_where``'s
    answer), each as the changes since its cached read when the server still has it.
    Raises what ``fetch_many`` raises."""
    use_cache = cache_enabled() if use_cache is None else use_cache
    paths = [where_path(remote, via, database, table, c, columns) for c in clauses]
    cached = [_cached_where(p, table) if use_cache else None for p in paths]
    found = _read_where(fetch_many, table, clauses, columns, cached)
    redo = [i for i, one in enumerate(found) if one.rows is None]
    if redo:   # the server had the id, but our rows are not that database's
        again = _read_where(fetch_many, table, [clauses[i] for i in redo], columns,
                            [None] * len(redo))
        for i, one in zip(redo, again, strict=True):
            found[i], cached[i] = one, None      # the file is replaced, not touched
    merged: dict[str, dict] = {}
    for one, path, doc in zip(found, paths, cached, strict=True):
        rows = one.rows or {}
        if use_cache and doc is not None and not one.changed and doc["last_id"] == one.last_id:
            _touch(path)
        elif use_cache:
            _keep_where(path, table, one.last_id, one.identity, rows)
        merged.update(rows)
    return sorted_rows(merged)


def _cached_where(path: Path, table: str) -> dict | None:
    finish_writes(path)
    doc = load_cache(path)
    if doc is None or doc.get("requested") != [table] or table not in doc["tables"]:
        return None
    return doc


@dataclass
class _Clause:
    rows: dict[str, dict] | None    # None: the cached rows did not fit the changes
    changed: int
    last_id: str
    identity: dict


def _read_where(fetch_many, table: str, clauses: list[list], columns: list[str],
                cached: list[dict | None]) -> list[_Clause]:
    """Each clause's rows now ({uuid: row}): its cached rows and the changes since, or
    what the server sent when it no longer had the id (or there was none)."""
    answer = fetch_many([([clause], columns, doc["last_id"] if doc else None)
                         for clause, doc in zip(clauses, cached, strict=True)])
    schema = _checked_schema(answer)
    ident = identity(schema, answer.get("server"))
    monitors = answer.get("monitors")
    if not isinstance(monitors, list) or len(monitors) != len(clauses):
        raise ValueError("the server did not answer every monitor")
    results = []
    for doc, mon in zip(cached, monitors, strict=True):
        changes = ofrace_agent.decode_monitor_updates(schema, mon["updates"], columns)
        rows: dict[str, dict[str, dict]] | None = {table: {}}
        if doc is not None and mon["found"] and doc["identity"] == ident:
            rows = {table: {r["_uuid"]: r for r in doc["tables"][table]}}
        elif doc is not None and mon["found"]:
            rows = None
        count = 0
        if rows is not None:
            try:
                count = apply_changes(rows, changes, schema)
            except (CacheMismatch, KeyError, TypeError, AttributeError):
                rows = None
        results.append(_Clause(None if rows is None else
                               {u: r for u, r in rows[table].items() if _UUID.match(u)},
                               count, mon["last_id"], ident))
    return results


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass


def _keep_where(path: Path, table: str, last_id: str, ident: dict,
                rows: dict[str, dict]) -> None:
    def write() -> None:
        _write(path, last_id, ident, (table,), {table: sorted_rows(rows)},
               {table: list(rows.values())}, False)
        _trim_where(path.parent)
    writer = Thread(target=write, name=f"keep {path.name}")
    _writing[path] = writer
    writer.start()


def _trim_where(directory: Path) -> None:
    """At most MAX_WHERE_FILES clauses kept: the least recently used go (a read of
    one touches it)."""
    for path in least_recently_used(directory, f"{WHERE_PREFIX}*.json", MAX_WHERE_FILES):
        forget_cache(path)


def least_recently_used(directory: Path, pattern: str, keep: int) -> list[Path]:
    """The files of ``directory`` matching ``pattern`` beyond the ``keep`` most recently
    modified (each kind of cache file is bounded so, a use touching its file)."""
    try:
        kept = sorted((p.stat().st_mtime, p) for p in directory.glob(pattern))
    except OSError:
        return []
    return [path for _, path in kept[:max(0, len(kept) - keep)]]


def _checked_schema(answer: dict) -> dict:
    problem = ofrace_agent._schema_problem(answer.get("schema"))
    if problem:
        raise ValueError(problem)
    return answer["schema"]


def _keep(path: Path, answer: dict, ident: dict, tables: tuple[str, ...],
          data: dict, unchecked: dict, checked: bool) -> None:
    """Cache the rows when a next read can use them, in the background (the process
    waits for it at exit; the rows are not needed for the answer): see ``_write``."""
    writer = Thread(target=_write, args=(path, answer["last_id"], ident, tables, data,
                                         unchecked, checked), name=f"keep {path.name}")
    _writing[path] = writer
    writer.start()


_writing: dict[Path, Thread] = {}    # the cache files being written, by this process


def finish_writes(path: Path | None = None) -> None:
    """Wait until this process' cache files (or ``path``) are written: a read of the
    same database later in the process then finds what the earlier one kept."""
    for key in ([path] if path is not None else list(_writing)):
        writer = _writing.pop(key, None)
        if writer is not None:
            writer.join()


def _write(path: Path, last_id: str, ident: dict, tables: tuple[str, ...],
           data: dict, unchecked: dict, checked: bool) -> None:
    """Cache the rows when the server named a transaction (a standalone database names
    none) and no row holds a secret (``unchecked``: the rows not known to be free of
    them); ``checked``: every row passed the reader's check.  The caller may redact the
    same rows meanwhile: redaction only takes secrets out, so a secret this check did
    not see was gone before the rows are written."""
    if last_id == ofrace_agent.ZERO_UUID or holds_secrets(unchecked):
        forget_cache(path)
        return
    save_cache(path, {"format": CACHE_FORMAT, "identity": ident, "requested": sorted(tables),
                      "last_id": last_id, "tables": data, "checked": checked})


def agent_fetch(transport, budget, spec: dict):
    """``fetch`` for a database read through a node: the agent's "ovsdb_monitor" mode
    runs the monitor there and sends the answer back as one blob.  AgentError
    (PythonMissing when the node has no python3) lets the caller read with ovsdb-client."""
    def fetch(last_id):
        return _agent_answer(transport, budget, dict(spec, last_id=last_id))

    return fetch


def agent_fetch_many(transport, budget, spec: dict):
    """``fetch_many`` (``read_matching``) for a database read through a node: ``spec``
    names the remote, database and table; errors as ``agent_fetch``'s."""
    def fetch_many(monitors):
        return _agent_answer(transport, budget, dict(spec, monitors=[
            {"where": where, "columns": columns, "last_id": last_id}
            for where, columns, last_id in monitors]))

    return fetch_many


def local_fetch_many(remote: str, database: str, table: str, ssl_files, timeout: float,
                     max_bytes: int):
    """``fetch_many`` (``read_matching``) from this process."""
    def fetch_many(monitors):
        return ofrace_agent.ovsdb_monitor_where(
            remote, database, table,
            [{"where": where, "columns": columns, "last_id": last_id}
             for where, columns, last_id in monitors], ssl_files, timeout, max_bytes)

    return fetch_many


def _agent_answer(transport, budget, spec: dict):
    # imported here: the options of every command name this module, and the agent's
    # transports (paramiko) are for the commands that read live only
    from ofrace.collect.agent import AgentError, blob_json, run_agent_mode

    doc, blobs = run_agent_mode(transport, {"ovsdb_monitor": spec}, budget)
    if not isinstance(doc, dict):
        raise AgentError("the agent's document is not an object")
    if doc.get("error"):
        raise ofrace_agent.OvsdbRpcError(str(doc["error"]), bool(doc.get("unsupported")))
    answer = blob_json(doc, blobs, "monitor")
    if not isinstance(answer, dict):       # a node's answer: anything may come
        raise AgentError("the monitor's answer is not an object")
    return answer
