"""The classifier's index of a bridge, written into the snapshot when it is saved, so a
cold trace looks flows up without parsing the 200k+ lines of the tables it crosses.

``write_classifier`` (through ``bridge.classifier_index(chassis, bridge)``) indexes
every table as ``BridgeIndex`` does and writes, per table in the order its lines came,
the lines it could not read and each subtable (shape, best priority, flows); a
subtable's flows are ``(hash of the masked values, flow code)`` pairs sorted by hash.
``read_classifier`` turns the bytes back into tables whose subtables answer a lookup by
one bisection; every candidate flow is re-read from its line and kept only if its
shape, values and priority are the ones looked up, so a hash collision (or a wrong
index) can cost a miss against the lines themselves, never a wrong match: the lines
stay the authority.

The key is Python's ``hash`` of a tuple of ints, which no seed changes but a build
could: the index records the hash of a fixed probe and the port names it parsed with,
and is ignored (the lines are indexed as before) when either differs.
"""

from __future__ import annotations

import json
import sys
from array import array
from bisect import bisect_left

from ofrace.openflow.classifier import RANK, FlowTable, SubtableSet
from ofrace.openflow.flowtext import (
    CONJUNCTION,
    DUMP_HEAD,
    FlowSyntaxError,
    TokenCache,
    fast_heads,
    read_head,
    scan_match,
)

FORMAT = "ofrace-classifier"
VERSION = 1
_PROBE = (1, 0xFFFF, 1 << 64, (1 << 128) - 1, 0x0800, -1)


def _ports(index) -> list[list]:
    return sorted([p.name, n] for n, p in index.ports.items())


def write_classifier(index) -> bytes:
    """The bytes ``Snapshot.save(flow_index=…)`` stores beside a bridge's lines, from
    its ``BridgeIndex`` with no table built yet (this builds them all)."""
    header = {"format": FORMAT, "version": VERSION, "probe": hash(_PROBE),
              "lines": len(index.flows), "ports": _ports(index),
              "unreadable": [[u.index, u.reason] for u in index._unparsed], "tables": []}
    hashes, codes = array("q"), array("Q")
    for number in list(index._pending):
        before = len(index._unparsed)
        table = index.table(number)
        unparsed = [[u.index, u.reason] for u in index._unparsed[before:]]
        subtables = []
        for kind, subs in ((0, table.regular if table else None),
                           (1, table.conjunctive if table else None)):
            for shape, sub in (subs.by_shape.items() if subs else ()):
                entries = sorted((hash(values), code) for values, hit in sub.buckets.items()
                                 for code in ([hit] if hit.__class__ is int else hit))
                subtables.append([kind, [list(pair) for pair in shape], sub.max_priority,
                                  len(hashes), len(entries)])
                hashes.extend(h for h, _ in entries)
                codes.extend(c for _, c in entries)
        header["tables"].append([number, unparsed, subtables])
    heads = _heads_of(index.flows)
    if heads is not None:       # after the flows' arrays: a reader without them skips them
        header["entries"] = len(codes)
        header["conjunction_tables"] = sorted(heads[2])
    if sys.byteorder != "little":
        for values in (hashes, codes, *(heads[:2] if heads else ())):
            values.byteswap()
    return (json.dumps(header, separators=(",", ":")).encode() + b"\n" + hashes.tobytes()
            + codes.tobytes() + (heads[0].tobytes() + heads[1].tobytes() if heads else b""))


def _heads_of(lines) -> tuple[array, array, set[int]] | None:
    """Every line's cookie and table (``read_head``), and the tables with a conjunction;
    None when a line is garbled (an audit then reads the lines to name it)."""
    found = fast_heads(lines, DUMP_HEAD, " actions=", "conjunction(")
    if found is None:
        heads = list(map(read_head, lines))
        if None in heads:
            return None
        found = ([c for c, _ in heads], [t for _, t in heads], lines,
                 {t for (_, t), line in zip(heads, lines, strict=True) if "conjunction(" in line})
    cookies, tables, _, conjunctive = found
    if any(t > 0xFFFF for t in tables):
        return None
    return array("Q", cookies), array("H", tables), conjunctive


def stored_heads(data: bytes | None, lines: int) -> tuple[array, array, set[int]] | None:
    """What ``_heads_of`` stored beside the classifier's index of a bridge of ``lines``
    lines: (cookies, tables, tables with a conjunction), or None (not stored, or not
    fitting)."""
    if not data:
        return None
    try:
        cut = data.index(b"\n")
        header = json.loads(data[:cut])
        entries, conjunctive = header["entries"], header["conjunction_tables"]
        if header.get("format") != FORMAT or header.get("lines") != lines \
                or type(entries) is not int or entries < 0 \
                or not all(type(t) is int for t in conjunctive):
            return None
        start = cut + 1 + 16 * entries
        if len(data) != start + 10 * lines:
            return None
        cookies, tables = array("Q"), array("H")
        cookies.frombytes(data[start:start + 8 * lines])
        tables.frombytes(data[start + 8 * lines:])
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if sys.byteorder != "little":
        cookies.byteswap()
        tables.byteswap()
    return cookies, tables, set(conjunctive)


class StoredSubtable:
    """A subtable whose flows are in the stored arrays (plus learned ones in ``buckets``),
    answering like ``classifier.Subtable``."""

    __slots__ = ("fields", "masks", "shape", "buckets", "max_priority", "_lo", "_hi",
                 "_arrays", "_verify")

    def __init__(self, shape: tuple, max_priority: int, lo: int, hi: int, arrays, verify):
        self.shape = shape
        self.fields = tuple(f for f, _ in shape)
        self.masks = tuple(m for _, m in shape)
        self.buckets: dict[tuple, int | list[int]] = {}
        self.max_priority = max_priority
        self._lo, self._hi, self._arrays, self._verify = lo, hi, arrays, verify

    def _codes(self, packet) -> list[int]:
        get = packet.get
        key = tuple(get(f, 0) & m for f, m in zip(self.fields, self.masks, strict=True))
        hashes, codes = self._arrays
        h = hash(key)
        i = bisect_left(hashes, h, self._lo, self._hi)
        found = []
        while i < self._hi and hashes[i] == h:
            if self._verify(codes[i], self.shape, key):
                found.append(codes[i])
            i += 1
        hit = self.buckets.get(key)
        if hit is not None:
            found += [hit] if hit.__class__ is int else hit
        return found

    def best(self, packet) -> int | None:
        found = self._codes(packet)
        return max(found) if found else None

    def all(self, packet) -> list[int]:
        return sorted(self._codes(packet), reverse=True)


class _ConjClauses(dict):
    """``FlowTable.conj_clauses`` of a stored table: a conjunctive flow's clauses read
    from its line when a lookup first meets it."""

    def __init__(self, any_stored: bool, read):
        super().__init__()
        self._any, self._read = any_stored, read

    def __bool__(self) -> bool:
        return self._any or len(self) > 0

    def __missing__(self, index: int):
        found = self[index] = self._read(index)
        return found


class StoredTable:
    """One table of the stored index, made a ``FlowTable`` when a lookup first needs it."""

    def __init__(self, number: int, unparsed: list, subtables: list):
        self.number, self.unparsed, self.subtables = number, unparsed, subtables

    def table(self, reader: StoredReader) -> FlowTable | None:
        """The ``FlowTable`` (None: every line of it was unreadable)."""
        if not self.subtables:
            return None
        table = FlowTable(self.number)
        sets = (table.regular, table.conjunctive)
        for kind, shape, max_priority, start, count in self.subtables:
            target: SubtableSet = sets[kind]
            shape = tuple((f, m) for f, m in shape)
            target.by_shape[shape] = StoredSubtable(shape, max_priority, start, start + count,
                                                    reader.arrays, reader.verify)
            target.count += count
        table.conj_clauses = _ConjClauses(table.conjunctive.count > 0, reader.conjunctions)
        return table


class StoredReader:
    """What the stored tables share: the arrays, and each candidate line read once."""

    def __init__(self, arrays, lines, cache: TokenCache):
        self.arrays, self.lines, self.cache = arrays, lines, cache
        self._seen: dict[int, tuple | None] = {}

    def _scan(self, i: int) -> tuple | None:
        scanned = self._seen.get(i, False)
        if scanned is False:
            try:
                scanned = self._seen[i] = scan_match(self.lines[i], self.cache)
            except (FlowSyntaxError, ValueError, IndexError):
                scanned = self._seen[i] = None
        return scanned

    def verify(self, code: int, shape: tuple, key: tuple) -> bool:
        """Whether a stored flow code is the flow its line says, with ``shape``, ``key``."""
        scanned = self._scan(RANK - (code & RANK))
        return scanned is not None and scanned[:3] == (code >> 32, shape, key)

    def conjunctions(self, i: int) -> tuple:
        """A conjunctive flow's ``(conj_id, clause, n_clauses)``s, as ``BridgeIndex._index``
        reads them from its actions."""
        scanned = self._scan(i)
        actions = self.lines[i][scanned[3]:] if scanned else ""
        return tuple((int(a), int(b), int(c)) for a, b, c in CONJUNCTION.findall(actions))


def read_classifier(data: bytes, index):
    """``(tables in line order, unreadable lines, arrays)`` from ``classifier_index``'s
    bytes, or None when they do not fit this bridge and this Python (then the lines are
    indexed as before)."""
    try:
        cut = data.index(b"\n")
        header = json.loads(data[:cut])
        if header.get("format") != FORMAT or header.get("version") != VERSION \
                or header.get("probe") != hash(_PROBE) \
                or header.get("lines") != len(index.flows) or header.get("ports") != _ports(index):
            return None
        body = data[cut + 1:]
        n = header.get("entries", len(body) // 16)     # the flows' arrays, then the heads
        if type(n) is not int or len(body) != 16 * n + (10 * len(index.flows)
                                                        if "entries" in header else 0):
            return None
        body = body[:16 * n]
        hashes, codes = array("q"), array("Q")
        hashes.frombytes(body[:8 * n])
        codes.frombytes(body[8 * n:])
        if sys.byteorder != "little":
            hashes.byteswap()
            codes.byteswap()
        tables = []
        for number, unparsed, subtables in header["tables"]:
            for kind, shape, max_priority, start, count in subtables:
                if kind not in (0, 1) or not 0 <= start <= start + count <= n \
                        or type(max_priority) is not int:
                    return None
                if not all(type(f) is str and type(m) is int for f, m in shape):
                    return None
            if not all(type(i) is int and 0 <= i < len(index.flows) and type(r) is str
                       for i, r in unparsed):
                return None
            tables.append(StoredTable(number, unparsed, subtables))
        unreadable = [(i, r) for i, r in header["unreadable"]
                      if type(i) is int and 0 <= i < len(index.flows) and type(r) is str]
        if len(unreadable) != len(header["unreadable"]):
            return None
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return tables, unreadable, (hashes, codes)
