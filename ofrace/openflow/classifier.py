"""Tuple-space classifier: find the highest-priority flow a packet matches.

Flows of one table are grouped into subtables by their *shape* (which
fields they match, under which masks); inside a subtable a dict maps the
masked values to the flows with exactly those values.  A lookup masks the
packet once per subtable and probes the dict, visiting subtables in order
of their best priority and stopping as soon as no remaining subtable can
beat what was found — the same idea as OVS's own classifier, and what
keeps lookups fast on 200k-flow tables.

Flows whose only actions are ``conjunction(…)`` live apart: they never
match on their own, they vote for a conjunctive match (see ``lookup``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ofrace.openflow.flowtext import MatchItems


class FlowEntry:
    """One indexed flow: enough to rank it and find it again, nothing more."""

    __slots__ = ("table", "priority", "cookie", "index", "actions", "seq")

    def __init__(self, table: int, priority: int, cookie: int, index: int, actions: str,
                 seq: int):
        self.table = table
        self.priority = priority
        self.cookie = cookie
        self.index = index      # position of the flow line in the bridge snapshot
        self.actions = actions  # action text, parsed on first use
        self.seq = seq          # insertion order, the tie-breaker among equal priorities

    def __repr__(self) -> str:
        return (f"FlowEntry(table={self.table}, priority={self.priority}, "
                f"cookie={self.cookie:#x}, index={self.index})")


class Subtable:
    __slots__ = ("fields", "masks", "buckets", "max_priority")

    def __init__(self, fields: tuple[str, ...], masks: tuple[int, ...]):
        self.fields = fields
        self.masks = masks
        self.buckets: dict[tuple, list[FlowEntry]] = {}
        self.max_priority = -1

    def key_of(self, packet: Mapping[str, int]) -> tuple:
        get = packet.get
        return tuple(get(f, 0) & m for f, m in zip(self.fields, self.masks, strict=True))

    def add(self, values: tuple, entry: FlowEntry) -> None:
        bucket = self.buckets.get(values)
        if bucket is None:
            self.buckets[values] = [entry]
        else:
            bucket.append(entry)
            if len(bucket) > 1:
                bucket.sort(key=lambda e: (-e.priority, e.seq))
        if entry.priority > self.max_priority:
            self.max_priority = entry.priority

    def matches(self, packet: Mapping[str, int]) -> list[FlowEntry]:
        return self.buckets.get(self.key_of(packet), [])


class SubtableSet:
    """Subtables of one table, kept sorted by their best priority."""

    __slots__ = ("by_shape", "ordered")

    def __init__(self):
        self.by_shape: dict[tuple, Subtable] = {}
        self.ordered: list[Subtable] | None = None

    def add(self, match: MatchItems, entry: FlowEntry) -> None:
        shape = tuple((f, m) for f, _, m in match)
        sub = self.by_shape.get(shape)
        if sub is None:
            sub = self.by_shape[shape] = Subtable(tuple(f for f, _, _ in match),
                                                  tuple(m for _, _, m in match))
        sub.add(tuple(v for _, v, _ in match), entry)
        self.ordered = None

    def sorted_subtables(self) -> list[Subtable]:
        if self.ordered is None:
            self.ordered = sorted(self.by_shape.values(), key=lambda s: -s.max_priority)
        return self.ordered

    def best(self, packet: Mapping[str, int], floor: int = -1) -> FlowEntry | None:
        best = None
        for sub in self.sorted_subtables():
            if sub.max_priority < floor or (best is not None and sub.max_priority < best.priority):
                break
            hits = sub.matches(packet)
            if hits:
                top = hits[0]
                if best is None or (top.priority, -top.seq) > (best.priority, -best.seq):
                    best = top
        return best

    def all_matches(self, packet: Mapping[str, int], floor: int) -> Iterator[FlowEntry]:
        for sub in self.sorted_subtables():
            if sub.max_priority < floor:
                break
            for entry in sub.matches(packet):
                if entry.priority >= floor:
                    yield entry

    def __len__(self) -> int:
        return sum(len(b) for s in self.by_shape.values() for b in s.buckets.values())


class FlowTable:
    """One OpenFlow table of one bridge."""

    __slots__ = ("number", "regular", "conjunctive", "conj_clauses", "count")

    def __init__(self, number: int):
        self.number = number
        self.regular = SubtableSet()
        self.conjunctive = SubtableSet()
        # entry.index -> ((conj_id, clause, n_clauses), …) for conjunctive flows
        self.conj_clauses: dict[int, tuple[tuple[int, int, int], ...]] = {}
        self.count = 0

    def add(self, match: MatchItems, entry: FlowEntry,
            conjunctions: tuple[tuple[int, int, int], ...] = ()) -> None:
        self.count += 1
        if conjunctions:
            self.conj_clauses[entry.index] = conjunctions
            self.conjunctive.add(match, entry)
        else:
            self.regular.add(match, entry)

    def lookup(self, packet: Mapping[str, int]) -> tuple[FlowEntry | None, int | None]:
        """The flow ``packet`` hits here, and the conj_id that made it match (if any).

        OVS semantics: conjunctive flows at priority P form a match for
        ``conj_id=N`` when every clause 1..n of N has a matching flow at P;
        then the flow matching ``conj_id=N`` is looked up, and it competes
        with the regular flows by priority.
        """
        best = self.regular.best(packet)
        if not self.conj_clauses:
            return best, None
        floor = best.priority + 1 if best is not None else -1
        votes: dict[tuple[int, int], dict[int, set[int]]] = {}
        for entry in self.conjunctive.all_matches(packet, floor):
            for conj_id, clause, n in self.conj_clauses[entry.index]:
                key = (entry.priority, conj_id)
                votes.setdefault(key, {}).setdefault(n, set()).add(clause)
        for (priority, conj_id), by_n in sorted(votes.items(), key=lambda kv: -kv[0][0]):
            for n, clauses in by_n.items():
                if len(clauses) == n:
                    probe = dict(packet)
                    probe["conj_id"] = conj_id
                    hit = self.regular.best(probe, floor=priority)
                    if hit is not None and hit.priority >= priority:
                        return hit, conj_id
        return best, None

    def __len__(self) -> int:
        return self.count
