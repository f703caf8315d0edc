"""What a simulation produces: a tree of steps, and the exits where the packet ended.

Steps are plain data so the annotate and render stages (and ``--json``) can
walk them without knowing how they were made.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class StepKind(enum.StrEnum):
    """Every kind of step the engine records (a closed set: render and ``--json`` key on
    them; docs/trace-json.md lists them as event kinds)."""

    HOP = "hop"            # a chassis visit (made by the cluster tracer)
    BRIDGE = "bridge"      # the packet enters a bridge
    FLOW = "flow"          # a flow matched
    MISS = "miss"          # no flow matched
    UNKNOWN = "unknown"    # a lookup whose answer is not in the snapshot
    RECIRC = "recirc"      # a datapath pass after ct()
    CT = "ct"
    EXIT = "exit"          # where a copy of the packet ended (see ``Exit``)
    PATCH = "patch"        # crossing a patch port
    GROUP = "group"
    CLONE = "clone"
    LEARN = "learn"
    NORMAL = "normal"
    FLOOD = "flood"
    SKIP = "skip"          # an output that sends nothing
    TTL = "ttl"            # dec_ttl expired
    NOTE = "note"          # actions reported only, with no effect on the packet
    METER = "meter"
    SAMPLE = "sample"
    BUNDLE = "bundle"      # a bundle chose a member (or, liveness unknown, branched)
    MULTIPATH = "multipath"


class ExitKind(enum.StrEnum):
    """Where one copy of the packet can end (``Exit.kind``)."""

    OUTPUT = "output"          # left through a port
    TUNNEL = "tunnel"          # left through a tunnel port, outer header in ``data``
    CONTROLLER = "controller"  # sent to ovn-controller
    DROP = "drop"              # explicit drop, miss or empty action set
    LIMIT = "limit"            # resubmit depth or count, recirculations, patch loop
    GAP = "gap"                # an action or state ofrace cannot simulate
    UNKNOWN = "unknown"        # depends on flows, groups or bridges not read or not parsed


@dataclass
class Step:
    """One event: a flow hit, a table miss, a ct() lookup, a crossing, an output.

    ``data`` holds OpenFlow facts only: for a flow, ``packet`` (the packet as the flow
    matched it), for a ct() step its zone, state and NAT; what they mean to OVN is
    read from them by ``ofrace.annotate``.
    """

    kind: StepKind
    text: str
    chassis: str = ""
    bridge: str = ""
    table: int | None = None
    priority: int | None = None
    cookie: int | None = None
    flow: str | None = None
    data: dict = field(default_factory=dict)
    children: list[Step] = field(default_factory=list)

    def __post_init__(self):
        self.kind = StepKind(self.kind)   # a kind outside the set is a bug, caught here

    def add(self, child: Step) -> Step:
        self.children.append(child)
        return child

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass
class Exit:
    """Where one copy of the packet ended (``ExitKind``), and what it looked like there."""

    kind: ExitKind
    chassis: str
    bridge: str
    reason: str
    packet: dict
    port: int | None = None
    port_name: str | None = None
    data: dict = field(default_factory=dict)
    step: Step | None = None

    def __post_init__(self):
        self.kind = ExitKind(self.kind)
