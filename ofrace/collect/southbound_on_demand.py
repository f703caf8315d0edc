"""A live Southbound whose Logical_Flow table is read by datapath, when asked.

The Logical_Flow table is most of a big SB (118k of its rows, ~18 s for ovsdb-server
to send), and a trace needs the logical flows it hit only, to name them.  So a live
trace reads every other table at once and, before annotating, the UUIDs of the logical
flows of the datapaths the packet was in (and of the datapath groups holding them),
then the whole rows of those whose UUID starts with a cookie it hit: two
``ovsdb-client query`` calls, read-only like the whole-table read.  A cookie names every
row of those datapaths it is the prefix of, as the whole table would.  Anything that
asks for the whole table (an audit, ``--check-logical``) gets it, read then.

The mapping answers as a snapshot file's stored tables do (``keyed``, ``with_cookie``,
``cookies``), so ``ofrace.ovn.southbound`` reads it without knowing where rows come from.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, MutableMapping

from ofrace.errors import MissingDataError

TABLE = "Logical_Flow"

# (table, where clauses (one select each, rows of any), columns or None for all) → rows
# decoded as a whole-table read decodes them; errors raise
ReadWhere = Callable[[str, list[list], "list[str] | None"], list[dict]]


class SouthboundOnDemand(MutableMapping):
    """The SB's tables: those read at once, and Logical_Flow by datapath or whole."""

    def __init__(self, tables: dict[str, list[dict]], read_where: ReadWhere,
                 read_whole: Callable[[], list[dict]],
                 redact: Callable[[list[dict]], None]):
        self._tables = tables
        self._read_where, self._read_whole, self._redact = read_where, read_whole, redact
        self._rows: dict[str, dict] = {}            # _uuid → row, read whole
        self._uuids: dict[int, list[str]] = {}      # cookie → _uuids, of the datapaths read
        self._datapaths: set[str] = set()
        self._groups: set[str] = set()
        self._whole: list[dict] | None = None
        self._lock = threading.RLock()
        self.queries = 0                          # reads made (tests, benchmarks)

    # --- the mapping ---------------------------------------------------------------

    def __getitem__(self, table: str) -> list[dict]:
        if table != TABLE:
            return self._tables[table]
        return self.whole()

    def __setitem__(self, table: str, rows: list[dict]) -> None:
        if table == TABLE:
            with self._lock:
                self._whole = rows
        else:
            self._tables[table] = rows

    def __delitem__(self, table: str) -> None:
        del self._tables[table]

    def __iter__(self) -> Iterator[str]:
        yield from self._tables
        yield TABLE

    def __len__(self) -> int:
        return len(self._tables) + 1

    def __contains__(self, table: object) -> bool:
        return table == TABLE or table in self._tables

    # --- as a snapshot file's stored tables answer ----------------------------------

    def keyed(self, table: str, decoded_too: bool = False) -> bool:
        return table == TABLE

    def with_cookie(self, table: str, cookie: int) -> list[dict]:
        """The rows whose UUID starts with ``cookie``: of the datapaths read (each row
        read when first asked for), or of the whole table once it was read."""
        if self._whole is not None:
            return [row for row in self._whole if _cookie(row) == cookie]
        with self._lock:
            uuids = self._uuids.get(cookie, [])
            self._read_rows([u for u in uuids if u not in self._rows])
            return [self._rows[u] for u in sorted(uuids)]   # as a live read orders rows

    def cookies(self, table: str) -> list[int]:
        return [c for c in (_cookie(row) for row in self.whole()) if c is not None]

    # --- reading -------------------------------------------------------------------

    def whole(self) -> list[dict]:
        """Every logical flow, read now (once)."""
        with self._lock:
            if self._whole is None:
                rows = self._read_whole()
                self._redact(rows)
                self._whole = rows
            return self._whole

    def fetch_datapaths(self, datapaths: set[str], cookies: set[int] = frozenset()) -> None:
        """Learn the logical flows of ``datapaths`` (Datapath_Binding UUIDs): the UUIDs
        of those of each datapath and of each datapath group holding it; then read the
        rows of ``cookies`` (32 bits) among them, in one query."""
        with self._lock:
            if self._whole is not None:
                return
            new = set(datapaths) - self._datapaths
            groups = {g["_uuid"] for g in self._tables.get("Logical_DP_Group", [])
                      if new & set(_uuids(g.get("datapaths")))} - self._groups
            if new or groups:
                where = ([["logical_datapath", "==", ["uuid", d]] for d in sorted(new)]
                         + [["logical_dp_group", "==", ["uuid", g]] for g in sorted(groups)])
                seen = {u for us in self._uuids.values() for u in us}
                for row in self._read_where(TABLE, where, ["_uuid"]):
                    uuid, key = row.get("_uuid"), _cookie(row)
                    if key is not None and uuid not in seen:
                        seen.add(uuid)
                        self._uuids.setdefault(key, []).append(uuid)
                self.queries += 1
                self._datapaths |= new
                self._groups |= groups
            self._read_rows([u for c in sorted(cookies) for u in self._uuids.get(c, [])
                             if u not in self._rows])

    def fetched(self) -> tuple[list[str], list[int]]:
        """The datapaths whose logical flows were learnt, and the cookies read of them."""
        with self._lock:
            cookies = {_cookie(row) for row in self._rows.values()} - {None}
            return sorted(self._datapaths), sorted(cookies)

    def prefetch(self, datapaths: list[str], cookies: list[int]) -> None:
        """``fetch_datapaths`` in the background (``path_cache``: what the same trace read
        last time); a trace asking meanwhile waits for it, and one that needs more reads
        more.  A failure is left to the trace's own read to say."""
        known = {row["_uuid"] for row in self._tables.get("Datapath_Binding", [])}
        wanted = {d for d in datapaths if d in known}
        if not wanted:
            return

        def fetch() -> None:
            try:
                self.fetch_datapaths(wanted, set(cookies))
            except Exception:  # noqa: BLE001 - see above
                pass
        threading.Thread(target=fetch, daemon=True,
                         name="read logical flows of the last path").start()

    def _read_rows(self, uuids: list[str]) -> None:
        if not uuids:
            return
        rows = self._read_where(TABLE, [["_uuid", "==", ["uuid", u]] for u in uuids], None)
        self.queries += 1
        self._redact(rows)
        for row in rows:
            self._rows[row["_uuid"]] = row


def _cookie(row: dict) -> int | None:
    uuid = row.get("_uuid", "")
    try:
        return int(uuid[:8], 16) if len(uuid) >= 8 else None
    except ValueError:
        return None


def _uuids(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value or [] if isinstance(v, str)]


def read_failed(what: str, error: str) -> MissingDataError:
    """A later read of the live SB failed: what it would have answered is unknown."""
    return MissingDataError(f"the Southbound's {what} could not be read now: {error}")
