"""Tuple-space classifier: find the highest-priority flow a packet matches.

Flows of one table are grouped into subtables by their *shape* (which
fields they match, under which masks); inside a subtable a dict maps the
masked values to the flows with exactly those values.  A lookup masks the
packet once per subtable and probes the dict, visiting subtables in order
of their best priority and stopping as soon as no remaining subtable can
beat what was found — the same idea as OVS's own classifier, and what
keeps lookups fast on 200k-flow tables.

To stay small at 200k+ flows, a flow is stored as one integer,
``priority << 32 | (RANK - index)``: the larger integer is the better match
(higher priority, then the earlier flow), and ``index`` finds the flow's
line in the bridge snapshot, from which everything else is read on demand.

Flows whose only action is ``conjunction(…)`` live apart: they never match
on their own, they vote for a conjunctive match (see ``FlowTable.lookup``).
"""

from __future__ import annotations

from collections.abc import Mapping

RANK = 0xFFFFFFFF


def decode(code: int) -> tuple[int, int]:
    """``(priority, index)`` from ``(priority << 32) | (RANK - index)``: one integer per
    flow that sorts by priority, then by earlier line (built inline where flows are added)."""
    return code >> 32, RANK - (code & RANK)


class FlowEntry:
    """One flow a lookup returned, with what a trace shows about it."""

    __slots__ = ("table", "priority", "cookie", "index", "actions")

    def __init__(self, table: int, priority: int, cookie: int, index: int, actions: str):
        self.table = table
        self.priority = priority
        self.cookie = cookie
        self.index = index      # position of the flow line in the bridge snapshot
        self.actions = actions  # action text, parsed on first use

    def __repr__(self) -> str:
        return (f"FlowEntry(table={self.table}, priority={self.priority}, "
                f"cookie={self.cookie:#x}, index={self.index})")


class Subtable:
    __slots__ = ("fields", "masks", "buckets", "max_priority")

    def __init__(self, shape: tuple[tuple[str, int], ...]):
        self.fields = tuple(f for f, _ in shape)
        self.masks = tuple(m for _, m in shape)
        self.buckets: dict[tuple, int | list[int]] = {}
        self.max_priority = -1

    def best(self, packet: Mapping[str, int]) -> int | None:
        get = packet.get
        hit = self.buckets.get(tuple(get(f, 0) & m
                                     for f, m in zip(self.fields, self.masks, strict=True)))
        if hit is None or hit.__class__ is int:
            return hit
        return max(hit)

    def all(self, packet: Mapping[str, int]) -> list[int]:
        get = packet.get
        hit = self.buckets.get(tuple(get(f, 0) & m
                                     for f, m in zip(self.fields, self.masks, strict=True)))
        if hit is None:
            return []
        return [hit] if hit.__class__ is int else sorted(hit, reverse=True)


class SubtableSet:
    """Subtables of one table, kept sorted by their best priority."""

    __slots__ = ("by_shape", "ordered", "count")

    def __init__(self):
        self.by_shape: dict[tuple, Subtable] = {}
        self.ordered: list[Subtable] | None = None
        self.count = 0

    def add(self, shape: tuple, values: tuple, priority: int, index: int) -> None:
        sub = self.by_shape.get(shape)
        if sub is None:
            sub = self.by_shape[shape] = Subtable(shape)
        code = (priority << 32) | (RANK - index)  # see decode(); inline: the hot path
        have = sub.buckets.get(values)
        if have is None:
            sub.buckets[values] = code
        elif have.__class__ is int:
            sub.buckets[values] = [have, code]
        else:
            have.append(code)
        if priority > sub.max_priority:  # also true for a new subtable
            sub.max_priority = priority
            self.ordered = None
        self.count += 1

    def sorted_subtables(self) -> list[Subtable]:
        if self.ordered is None:
            self.ordered = sorted(self.by_shape.values(), key=lambda s: -s.max_priority)
        return self.ordered

    def best(self, packet: Mapping[str, int], floor: int = -1) -> int | None:
        best = None
        for sub in self.sorted_subtables():
            if sub.max_priority < floor or (best is not None and sub.max_priority < best >> 32):
                break
            code = sub.best(packet)
            if code is not None and (best is None or code > best):
                best = code
        return best

    def matches_above(self, packet: Mapping[str, int], floor: int) -> list[int]:
        """Every matching flow with priority ≥ ``floor``."""
        found = []
        for sub in self.sorted_subtables():
            if sub.max_priority < floor:
                break
            found.extend(c for c in sub.all(packet) if c >> 32 >= floor)
        return found


class FlowTable:
    """One OpenFlow table of one bridge."""

    __slots__ = ("number", "regular", "conjunctive", "conj_clauses")

    def __init__(self, number: int):
        self.number = number
        self.regular = SubtableSet()
        self.conjunctive = SubtableSet()
        # flow index -> ((conj_id, clause, n_clauses), …) for conjunctive flows
        self.conj_clauses: dict[int, tuple[tuple[int, int, int], ...]] = {}

    def add(self, shape: tuple, values: tuple, priority: int, index: int,
            conjunctions: tuple[tuple[int, int, int], ...] = ()) -> None:
        if conjunctions:
            self.conj_clauses[index] = conjunctions
            self.conjunctive.add(shape, values, priority, index)
        else:
            self.regular.add(shape, values, priority, index)

    def lookup(self, packet: Mapping[str, int]) -> tuple[int | None, int | None]:
        """``(flow index, conj_id)`` of the flow ``packet`` hits here (None, None on a miss).

        OVS semantics (lib/classifier.c): conjunctive ("soft") flows count
        only above the best regular ("hard") match.  At the highest soft
        priority P, a conjunction is satisfied when each of its clauses has a
        matching soft flow of priority exactly P; the table is then searched
        again with ``conj_id`` set, ignoring soft flows.  Unsatisfied, the
        search moves down to the next soft priority.
        """
        best = self.regular.best(packet)
        if not self.conj_clauses:
            return (None, None) if best is None else (decode(best)[1], None)
        floor = (best >> 32) + 1 if best is not None else 0
        soft = self.conjunctive.matches_above(packet, floor)
        by_priority: dict[int, dict[int, tuple[int, set[int]]]] = {}
        for code in soft:
            priority, index = decode(code)
            for conj_id, clause, n in self.conj_clauses[index]:
                n_seen, clauses = by_priority.setdefault(priority, {}).get(conj_id, (n, set()))
                clauses.add(clause)
                by_priority[priority][conj_id] = (n_seen, clauses)
        for priority in sorted(by_priority, reverse=True):
            for conj_id in sorted(by_priority[priority]):
                n, clauses = by_priority[priority][conj_id]
                if len(clauses) == n:
                    hit = self.regular.best({**packet, "conj_id": conj_id})
                    if hit is not None:
                        return decode(hit)[1], conj_id
        return (None, None) if best is None else (decode(best)[1], None)

    def __len__(self) -> int:
        return self.regular.count + self.conjunctive.count
