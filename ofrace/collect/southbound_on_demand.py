"""A live Southbound whose Logical_Flow table is read by datapath, when asked.

The Logical_Flow table is most of a big SB (118k of its rows, ~18 s for ovsdb-server
to send), and a trace needs the logical flows of the few datapaths it crossed only, to
name the flows it hit.  So a live trace reads every other table at once and, before
annotating, the rows of Logical_Flow whose datapath (or datapath group) is one the
packet was in: one ``ovsdb-client query`` of a select per datapath and group, read-only,
like the whole-table read.  Anything that asks for the whole table (an audit,
``--check-logical``) gets it, read then.

The mapping answers as a snapshot file's stored tables do (``keyed``, ``with_cookie``,
``cookies``), so ``ofrace.ovn.southbound`` reads it without knowing where rows come from.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, MutableMapping

from ofrace.errors import MissingDataError

TABLE = "Logical_Flow"

# (table, where clauses) → rows decoded as a whole-table read decodes them, or an error
ReadWhere = Callable[[str, list[list]], list[dict]]


class SouthboundOnDemand(MutableMapping):
    """The SB's tables: those read at once, and Logical_Flow by datapath or whole."""

    def __init__(self, tables: dict[str, list[dict]], read_where: ReadWhere,
                 read_whole: Callable[[], list[dict]],
                 redact: Callable[[list[dict]], None]):
        self._tables = tables
        self._read_where, self._read_whole, self._redact = read_where, read_whole, redact
        self._rows: dict[str, dict] = {}        # _uuid → row, of the datapaths read
        self._by_cookie: dict[int, list[dict]] = {}
        self._datapaths: set[str] = set()
        self._groups: set[str] = set()
        self._whole: list[dict] | None = None
        self._lock = threading.Lock()
        self.queries = 0                          # datapath reads made (tests, benchmarks)

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
        """The rows of the datapaths read (or of the whole table, once read) whose UUID
        starts with ``cookie``."""
        if self._whole is not None:
            return [row for row in self._whole if _cookie(row) == cookie]
        return list(self._by_cookie.get(cookie, []))

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

    def fetch_datapaths(self, datapaths: set[str]) -> None:
        """Read the logical flows of ``datapaths`` (Datapath_Binding UUIDs) not read yet:
        those of the datapath itself and of each datapath group that holds it."""
        with self._lock:
            if self._whole is not None:
                return
            new = set(datapaths) - self._datapaths
            if not new:
                return
            groups = {g["_uuid"] for g in self._tables.get("Logical_DP_Group", [])
                      if new & set(_uuids(g.get("datapaths")))} - self._groups
            where = ([["logical_datapath", "==", ["uuid", d]] for d in sorted(new)]
                     + [["logical_dp_group", "==", ["uuid", g]] for g in sorted(groups)])
            rows = self._read_where(TABLE, where)
            self.queries += 1
            self._redact(rows)
            for row in rows:
                if row.get("_uuid") in self._rows:
                    continue
                self._rows[row["_uuid"]] = row
                key = _cookie(row)
                if key is not None:
                    self._by_cookie.setdefault(key, []).append(row)
            self._datapaths |= new
            self._groups |= groups


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
