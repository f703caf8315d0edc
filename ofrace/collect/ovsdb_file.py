"""OVSDB database files read directly, without an ovsdb-server.

The on-disk format is OVS's Documentation/ref/ovsdb.5.rst: records of two lines,
``OVSDB <magic> <length> <sha1>`` then one JSON object of exactly ``length`` bytes
(ovsdb/log.c ``parse_header``, ``ovsdb_log_read``).

* standalone (magic ``JSON``): the schema, then transactions applied in order
  (ovsdb/file.c ``ovsdb_file_txn_from_json``): per table, per row UUID, ``null``
  deletes, an object inserts (columns left out hold their type's default) or
  modifies (only the changed columns); ``_date``, ``_comment`` are annotations.
  With ``"_is_diff": true`` a modified set or map column holds the difference, not
  the new value (``ovsdb_datum_diff`` / ``ovsdb_datum_apply_diff_in_place``, OVS ≥
  2.15): a set's members toggle, a map's keys are added, updated or removed.
* clustered (magic ``CLUSTER``): a header whose ``prev_data`` is the snapshot
  ``[schema, txn]`` at ``prev_index``, then Raft records (ovsdb/raft.c
  ``raft_read_header``, ``raft_apply_record``): entries (``term``, ``index``,
  optional ``data`` = ``[schema or null, txn or null]``; an entry at an index
  already seen truncates the log there) and ``commit_index`` records.  Only
  entries at or below the last commit index this server recorded are applied (what
  it knew to be committed); a schema in an entry starts the database afresh
  (ovsdb/storage.c ``ovsdb_storage_read``).

Ephemeral columns are never in a file: their rows here lack them ("not read"), as
opposed to a default that would claim a state.  Rows come out as the collector's
``ovsdb-client query`` answers decode (the agent's ``column_decoders``).

Memory: the file is read one record at a time; a record may not claim more bytes
than the file still holds, so the peak is the largest record (its text and parsed
JSON) plus the database itself; in a clustered log, entries not yet committed are
kept until their commit record (or the end).  A malformed or cut file is one
``InputError`` naming the file and the byte offset.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field

from ofrace.agents.ofrace_agent import column_decoders
from ofrace.errors import InputError

_HEADER = re.compile(rb"OVSDB (JSON|CLUSTER) ([1-9][0-9]{0,18}) ([0-9a-fA-F]{40})\n\Z")
MAX_HEADER = 128   # ovsdb_log_read reads the header line into 128 bytes
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{12}\Z")
_ZERO_UUID = "00000000-0000-0000-0000-000000000000"
_DEFAULT_ATOMS = {"integer": 0, "real": 0.0, "boolean": False, "string": "",
                  "uuid": ("uuid", _ZERO_UUID)}


@dataclass(frozen=True)
class _Column:
    key: str                 # atomic type of the key (or of the value of a scalar/set)
    value: str | None        # atomic type of a map's values
    min: int
    max: float               # "unlimited" → inf
    ephemeral: bool

    @property
    def composite(self) -> bool:
        """``ovsdb_type_is_composite``: more than one value allowed (diffs apply)."""
        return self.max > 1


def _base_type(base) -> str:
    return base.get("type", "") if isinstance(base, dict) else base


def _columns(table_schema: dict, where: str) -> dict[str, _Column]:
    columns = {}
    for name, spec in (table_schema.get("columns") or {}).items():
        ctype = spec.get("type") if isinstance(spec, dict) else None
        if not isinstance(ctype, dict):
            ctype = {"key": ctype}
        kmax = ctype.get("max", 1)
        key = _base_type(ctype.get("key"))
        value = _base_type(ctype["value"]) if "value" in ctype else None
        if key not in _DEFAULT_ATOMS or (value is not None and value not in _DEFAULT_ATOMS):
            raise InputError(f"{where}: column {name} has no OVSDB type")
        columns[name] = _Column(key, value, int(ctype.get("min", 1)),
                                float("inf") if kmax == "unlimited" else float(kmax),
                                bool(spec.get("ephemeral")))
    return columns


class _Schema:
    def __init__(self, schema, where: str):
        if not isinstance(schema, dict) or not isinstance(schema.get("tables"), dict) \
                or not isinstance(schema.get("name"), str):
            raise InputError(f"{where}: not an OVSDB schema")
        self.json = schema
        self.name = schema["name"]
        self.version = schema.get("version") if isinstance(schema.get("version"), str) else None
        self.tables = {t: _columns(spec if isinstance(spec, dict) else {}, f"{where}: table {t}")
                       for t, spec in schema["tables"].items()}


class _BadValue(ValueError):
    pass


def _atom(value, kind: str):
    """One atom of the file's JSON notation, hashable (a UUID as ("uuid", text))."""
    if kind == "uuid":
        if (isinstance(value, list) and len(value) == 2 and value[0] == "uuid"
                and isinstance(value[1], str) and _UUID.match(value[1])):
            return ("uuid", value[1].lower())
        raise _BadValue(f"{str(value)[:60]} is not a UUID")
    ok = {"integer": lambda v: type(v) is int, "real": lambda v: type(v) in (int, float),
          "boolean": lambda v: type(v) is bool, "string": lambda v: type(v) is str}[kind]
    if not ok(value):
        raise _BadValue(f"{str(value)[:60]} is not a {kind}")
    return value


def _datum(value, column: _Column) -> tuple:
    """A column value as a sorted tuple of atoms (a map: of (key, value) pairs)."""
    if column.value is not None:
        if not (isinstance(value, list) and len(value) == 2 and value[0] == "map"
                and isinstance(value[1], list)):
            raise _BadValue("a map must be [\"map\", [...]]")
        pairs = {}
        for pair in value[1]:
            if not (isinstance(pair, list) and len(pair) == 2):
                raise _BadValue("a map entry must be [key, value]")
            pairs[_atom(pair[0], column.key)] = _atom(pair[1], column.value)
        return tuple(sorted(pairs.items()))
    if isinstance(value, list) and len(value) == 2 and value[0] == "set":
        if not isinstance(value[1], list):
            raise _BadValue("a set must be [\"set\", [...]]")
        return tuple(sorted({_atom(v, column.key) for v in value[1]}))
    return (_atom(value, column.key),)


def _default(column: _Column) -> tuple:
    return () if column.min == 0 else (
        ((_DEFAULT_ATOMS[column.key], _DEFAULT_ATOMS[column.value]),)
        if column.value is not None else (_DEFAULT_ATOMS[column.key],))


def _apply_diff(old: tuple, diff: tuple, column: _Column) -> tuple:
    """``ovsdb_datum_apply_diff_in_place``: a set's members in the diff toggle; a map's
    keys are added, changed to the diff's value, or removed when the value is equal."""
    if column.value is None:
        return tuple(sorted(set(old) ^ set(diff)))
    result = dict(old)
    for key, value in diff:
        if key in result and result[key] == value:
            del result[key]
        else:
            result[key] = value
    return tuple(sorted(result.items()))


def _wire_atom(atom):
    return ["uuid", atom[1]] if isinstance(atom, tuple) else atom


def _wire(datum: tuple, column: _Column):
    """The value as ovsdb-server sends it (``ovsdb_datum_to_json``)."""
    if column.value is not None:
        return ["map", [[_wire_atom(k), _wire_atom(v)] for k, v in datum]]
    if len(datum) == 1:
        return _wire_atom(datum[0])
    return ["set", [_wire_atom(a) for a in datum]]


@dataclass
class OvsdbFile:
    """A database file replayed to its last (committed) state."""

    path: str
    format: str                       # "standalone" or "clustered"
    schema: dict = field(default_factory=dict)
    records: int = 0
    uncommitted: int = 0              # clustered: entries past the last commit index
    last_date: int | None = None      # the last transaction's ``_date`` (ms since epoch)
    _tables: dict = field(default_factory=dict, repr=False)   # table → uuid → column → datum
    _schema: _Schema | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self._schema.name if self._schema else ""

    @property
    def version(self) -> str | None:
        return self._schema.version if self._schema else None

    def select(self, table: str, columns: list[str] | None = None) -> list[dict]:
        """Rows as an ``ovsdb-client query`` select answers them (OVSDB JSON notation),
        in UUID order; ``_version`` is not stored in files and is left out."""
        return list(self._select(table, columns))

    def _select(self, table: str, columns: list[str] | None = None):
        schema = self._schema.tables[table]
        wanted = [c for c in (columns or ["_uuid", *schema]) if c == "_uuid" or c in schema]
        for uuid, row in sorted(self._tables.get(table, {}).items()):
            out = {}
            for name in wanted:
                if name == "_uuid":
                    out["_uuid"] = ["uuid", uuid]
                    continue
                column = schema[name]
                if column.ephemeral:
                    continue
                out[name] = _wire(row.get(name, _default(column)), column)
            yield out

    def rows(self, table: str) -> list[dict]:
        """Rows decoded as the collector keeps them."""
        decoders = column_decoders(self.schema["tables"][table])
        return [{c: decoders[c](v) for c, v in row.items()} for row in self._select(table)]

    def tables(self, names=None) -> dict[str, list[dict]]:
        """``{table: rows}`` for ``names`` (every table when None) that the schema has."""
        names = list(self._schema.tables) if names is None else names
        return {t: self.rows(t) for t in names if t in self._schema.tables}

    # --- replay -------------------------------------------------------

    def _reset(self, schema, where: str) -> None:
        self._schema = _Schema(schema, where)
        self.schema = schema
        self._tables = {t: {} for t in self._schema.tables}

    def _apply(self, txn, where: str) -> None:
        if not isinstance(txn, dict):
            raise InputError(f"{where}: a transaction must be a JSON object")
        diff = txn.get("_is_diff") is True
        date = txn.get("_date")
        if type(date) is int:
            self.last_date = date
        for table, changes in txn.items():
            if table in ("_date", "_comment", "_is_diff"):
                continue
            columns = self._schema.tables.get(table)
            if columns is None:
                raise InputError(f"{where}: no table {table!r} in schema {self.name}")
            if not isinstance(changes, dict):
                raise InputError(f"{where}: table {table}: expected an object of rows")
            rows = self._tables[table]
            for uuid, change in changes.items():
                if not _UUID.match(uuid):
                    raise InputError(f"{where}: table {table}: {uuid[:40]!r} is not a UUID")
                uuid = uuid.lower()
                if change is None:
                    if rows.pop(uuid, None) is None:
                        raise InputError(f"{where}: deletes row {uuid} of {table}, which "
                                         "does not exist")
                    continue
                if not isinstance(change, dict):
                    raise InputError(f"{where}: {table} row {uuid}: expected an object or null")
                row = rows.get(uuid)
                modify = row is not None
                row = dict(row) if modify else {}
                for name, value in change.items():
                    column = columns.get(name)
                    if column is None:
                        raise InputError(f"{where}: no column {name!r} in table {table}")
                    try:
                        datum = _datum(value, column)
                    except _BadValue as exc:
                        raise InputError(f"{where}: {table} row {uuid} column {name}: "
                                         f"{exc}") from None
                    if diff and modify and column.composite and name in row:
                        datum = _apply_diff(row[name], datum, column)
                    row[name] = datum
                rows[uuid] = row


def _records(path: str, fh, size: int):
    """(offset, magic, JSON object) of each record, checked as ovsdb_log_read does."""
    offset = 0
    while True:
        header = fh.readline(MAX_HEADER)
        if not header:
            return
        match = _HEADER.match(header)
        if match is None:
            what = ("cut short" if not header.endswith(b"\n") and offset + len(header) >= size
                    else "not an OVSDB record header")
            raise InputError(f"{path}: offset {offset}: {what}: "
                             f"{header[:60].decode('ascii', 'replace').strip()!r}")
        length, digest = int(match.group(2)), match.group(3).decode().lower()
        body_at = offset + len(header)
        if length > size - body_at:
            raise InputError(f"{path}: offset {offset}: the record claims {length} bytes, "
                             f"the file holds {size - body_at} more (cut short?)")
        body = fh.read(length)
        if len(body) != length:
            raise InputError(f"{path}: offset {body_at}: cut short")
        if hashlib.sha1(body).hexdigest() != digest:
            raise InputError(f"{path}: offset {body_at}: {length} bytes do not have "
                             f"the SHA-1 the header gives")
        try:
            value = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise InputError(f"{path}: offset {body_at}: not valid JSON "
                             f"({str(exc)[:80]})") from None
        if not isinstance(value, dict):
            raise InputError(f"{path}: offset {body_at}: not a JSON object")
        yield offset, match.group(1).decode(), value
        offset = body_at + length


def _uint(value) -> bool:
    return type(value) is int


def read_ovsdb_file(path: str | os.PathLike) -> OvsdbFile:
    """Replay a standalone or clustered OVSDB file (InputError if it is not one)."""
    path = os.fspath(path)
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        records = _records(path, fh, size)
        first = next(records, None)
        if first is None:
            raise InputError(f"{path}: empty, not an OVSDB database file")
        offset, magic, header = first
        if magic == "JSON":
            db = OvsdbFile(path, "standalone")
            db._reset(header, f"{path}: offset 0")
            db.records = 1
            for offset, magic, record in records:
                if magic != "JSON":
                    raise InputError(f"{path}: offset {offset}: a {magic} record in a "
                                     "standalone file")
                db._apply(record, f"{path}: offset {offset}")
                db.records += 1
            return db
        return _replay_cluster(path, header, records)


def _replay_cluster(path: str, header: dict, records) -> OvsdbFile:
    db = OvsdbFile(path, "clustered")
    where = f"{path}: offset 0"
    if "prev_data" not in header:
        if "remote_addresses" in header:
            raise InputError(f"{path}: a server that has not joined its cluster yet "
                             "(ovsdb-tool join-cluster): it holds no data")
        raise InputError(f"{where}: a clustered header without prev_data")
    snapshot, prev_index = header["prev_data"], header.get("prev_index")
    if not (isinstance(snapshot, list) and len(snapshot) == 2 and snapshot[0] is not None
            and _uint(prev_index)):
        raise InputError(f"{where}: prev_data must be [schema, data], prev_index a number")
    db._reset(snapshot[0], where)
    if snapshot[1] is not None:
        db._apply(snapshot[1], where)
    db.records = 1
    commit = log_end = prev_index + 1   # next index; entries below ``commit`` applied
    committed = prev_index
    pending: dict[int, tuple[int, object]] = {}   # index → (offset, data)
    for offset, magic, record in records:
        where = f"{path}: offset {offset}"
        db.records += 1
        if magic != "CLUSTER":
            raise InputError(f"{where}: a {magic} record in a clustered file")
        if "index" in record:
            index = record["index"]
            if not _uint(index) or not _uint(record.get("term")):
                raise InputError(f"{where}: an entry needs a numeric term and index")
            if index <= committed:
                raise InputError(f"{where}: entry {index} rewrites the log below its "
                                 f"commit index {committed}")
            if index > log_end:
                raise InputError(f"{where}: entry {index} skips past index {log_end}")
            for stale in range(index, log_end):   # raft_truncate
                pending.pop(stale, None)
            pending[index] = (offset, record.get("data"))
            log_end = index + 1
        elif "commit_index" in record:
            value = record["commit_index"]
            if not _uint(value) or value < committed or value >= log_end:
                raise InputError(f"{where}: commit index {value} outside the log "
                                 f"({committed}..{log_end - 1})")
            committed = value
            while commit <= committed:
                _apply_entry(db, path, *pending.pop(commit))
                commit += 1
    db.uncommitted = len(pending)
    return db


def _apply_entry(db: OvsdbFile, path: str, offset: int, data) -> None:
    where = f"{path}: offset {offset}"
    if data is None:
        return
    if not (isinstance(data, list) and len(data) == 2):
        raise InputError(f"{where}: entry data must be [schema, transaction]")
    schema, txn = data
    if schema is not None:
        db._reset(schema, where)
    if txn is not None:
        db._apply(txn, where)
