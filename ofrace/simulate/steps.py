"""What a simulation produces: a tree of steps, and the exits where the packet ended.

Steps are plain data so the annotate and render stages (and ``--json``) can
walk them without knowing how they were made.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Step:
    """One event: a flow hit, a table miss, a ct() lookup, a crossing, an output.

    ``data`` holds OpenFlow facts only: for a flow, ``packet`` (the packet as the flow
    matched it), for a ct() step its zone, state and NAT; what they mean to OVN is
    read from them by ``ofrace.annotate``.
    """

    kind: str
    text: str
    chassis: str = ""
    bridge: str = ""
    table: int | None = None
    priority: int | None = None
    cookie: int | None = None
    flow: str | None = None
    data: dict = field(default_factory=dict)
    children: list[Step] = field(default_factory=list)

    def add(self, child: Step) -> Step:
        self.children.append(child)
        return child

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass
class Exit:
    """Where one copy of the packet ended, and what it looked like there.

    ``kind``: ``output`` (left through a port), ``tunnel`` (left through a
    tunnel port, with the outer header in ``data``), ``controller`` (sent to
    ovn-controller), ``drop`` (explicit drop, miss or empty action set),
    ``limit`` (resubmit depth or count), ``gap`` (an action or state ofrace
    cannot simulate), ``unknown`` (the answer depends on flows, groups or
    bridges that were not read, or flow lines that could not be parsed).
    """

    kind: str
    chassis: str
    bridge: str
    reason: str
    packet: dict
    port: int | None = None
    port_name: str | None = None
    data: dict = field(default_factory=dict)
    step: Step | None = None
