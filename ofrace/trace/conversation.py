"""A connection traced packet by packet on one conntrack: SYN to last ACK, both ways.

Why: conntrack decides by what came before (lib/conntrack-tcp.c accepts a SYN as new,
anything else of a connection only once the connection exists, and checks each
packet's sequence numbers against the windows the earlier ones opened), so the
flows a packet of an established connection hits can only be found by tracing the
packets that established it first, on the same ``ClusterTracer`` (whose conntrack
lives for all its traces).  A reply is built from what the previous packet the
client sent looked like where it was delivered (after DNAT, SNAT, a load balancer),
as ``--reply`` does.

The TCP numbering is the one ``ofrace lab verify`` sends (each SYN and FIN counts one,
the data step carries 16 bytes), so every step stays inside the windows conntrack
checks (conntrack-tcp.c tcp_conn_update).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace

from ofrace.errors import InputError
from ofrace.simulate.conntrack import format_ct_state
from ofrace.simulate.steps import StepKind
from ofrace.trace.cluster import ClusterTrace, ClusterTracer, TraceStart, Verdict
from ofrace.trace.request import reply_start
from ofrace.trace.verdicts import ANSWERABLE

SYN, ACK, FIN, PSH = 0x002, 0x010, 0x001, 0x008
DATA_LEN = 16            # the data step's payload (as lab verify sends it)
UDP_PAYLOAD_LEN = 16
SEQ_MASK = 0xFFFFFFFF


@dataclass(frozen=True)
class StepPlan:
    """One packet of a conversation: who sends it, its TCP flags, its frame-only details
    (``tcp_seq``/``tcp_ack``/``payload_len``, ``icmp_id``/``icmp_seq``)."""

    name: str
    reply: bool                  # sent by the side the request was delivered to
    tcp_flags: int | None = None
    wire: dict = field(default_factory=dict)


@dataclass
class TracedStep:
    plan: StepPlan
    start: TraceStart
    trace: ClusterTrace

    @property
    def arrived(self) -> list[Verdict]:
        return [v for v in self.trace.verdicts() if v.kind in ANSWERABLE]


@dataclass
class Conversation:
    """The steps traced, in order; ``stopped``: why the rest could not be (a step that
    arrived nowhere cannot be answered, and nothing after it happens on the wire)."""

    steps: list[TracedStep]
    planned: list[StepPlan]
    stopped: str | None = None


def _kind(packet: dict) -> str:
    proto = packet.get("nw_proto")
    if packet.get("dl_type") not in (0x0800, 0x86DD):
        raise InputError("a conversation needs an IP packet (TCP, UDP or ICMP echo)")
    if proto == 6:
        return "tcp"
    if proto == 17:
        return "udp"
    if (proto, packet.get("tp_src")) in ((1, 8), (58, 128)):
        return "icmp"
    raise InputError("a conversation is a TCP or UDP connection or an ICMP echo request "
                     "(this packet is none of them)")


def _isn(packet: dict, side: str) -> int:
    """A deterministic initial sequence number per side of this 5-tuple."""
    key = "|".join(str(packet.get(k, 0)) for k in ("nw_src", "nw_dst", "ipv6_src",
                                                   "ipv6_dst", "tp_src", "tp_dst"))
    return zlib.crc32(f"{key}|{side}".encode()) & SEQ_MASK


def _tcp(seq: int, ack: int, payload: int = 0) -> dict:
    return {"tcp_seq": seq & SEQ_MASK, "tcp_ack": ack & SEQ_MASK, "payload_len": payload}


def plan_steps(packet: dict, again: bool = False) -> list[StepPlan]:
    """The packets of the connection ``packet`` opens.  TCP: SYN, SYN-ACK, ACK, data,
    FIN, FIN-ACK, last ACK; UDP: request, reply; ICMP: echo request, echo reply.
    ``again``: UDP and ICMP also get a ``next request`` (a packet of the established
    connection in the request's direction, what ``--established`` asks for)."""
    kind = _kind(packet)
    if kind == "tcp":
        c, s = _isn(packet, "client"), _isn(packet, "server")
        fin = c + 2 + DATA_LEN
        return [StepPlan("SYN", False, SYN, _tcp(c, 0)),
                StepPlan("SYN-ACK", True, SYN | ACK, _tcp(s, c + 1)),
                StepPlan("ACK", False, ACK, _tcp(c + 1, s + 1)),
                StepPlan("data", False, PSH | ACK, _tcp(c + 1, s + 1, DATA_LEN)),
                StepPlan("FIN", False, FIN | ACK, _tcp(c + 1 + DATA_LEN, s + 1)),
                StepPlan("FIN-ACK", True, FIN | ACK, _tcp(s + 1, fin)),
                StepPlan("last ACK", False, ACK, _tcp(fin, s + 2))]
    if kind == "udp":
        wire = {"payload_len": UDP_PAYLOAD_LEN}
        steps = [StepPlan("request", False, None, wire), StepPlan("reply", True, None, wire)]
    else:
        echo = zlib.crc32(str(packet.get("nw_src", packet.get("ipv6_src", 0))).encode()) \
            & 0xFFFF
        steps = [StepPlan("echo request", False, None, {"icmp_id": echo, "icmp_seq": 1}),
                 StepPlan("echo reply", True, None, {"icmp_id": echo, "icmp_seq": 1})]
    if again:
        steps.append(replace(steps[0], name="next request",
                             wire=dict(steps[0].wire, **({"icmp_seq": 2} if kind == "icmp"
                                                          else {}))))
    return steps


# What --established traces, per kind: the first packet of the connection once open.
ESTABLISHED_STEP = {"tcp": "ACK", "udp": "next request", "icmp": "next request"}


def _spelling(name: str) -> str:
    return name.lower().replace("-", " ").replace("_", " ")


def find_step(packet: dict, name: str | None) -> tuple[list[StepPlan], int]:
    """The plan up to the step ``name`` (or the established one when ``name`` is None),
    and that step's index; an unknown name is a one-line error listing the known."""
    kind = _kind(packet)
    steps = plan_steps(packet, again=True)
    wanted = _spelling(name or ESTABLISHED_STEP[kind])
    for i, step in enumerate(steps):
        if _spelling(step.name) == wanted or (kind == "icmp" and _spelling(step.name)
                                              == "echo " + wanted):
            return steps, i
    known = ", ".join(s.name for s in steps)
    raise InputError(f"--step {name!r}: no such step in a {kind} conversation ({known})")


def run_conversation(tracer: ClusterTracer, first: TraceStart,
                     steps: list[StepPlan]) -> Conversation:
    """Trace ``steps`` in order on ``tracer``'s conntrack; a client step enters where
    ``first`` does, a reply where the last client step arrived."""
    out = Conversation([], steps)
    arrived: Verdict | None = None
    for plan in steps:
        if plan.reply:
            if arrived is None:
                out.stopped = f"{plan.name}: nothing was delivered to answer from"
                break
            start = reply_start(tracer, arrived)
        else:
            start = replace(first, packet=dict(first.packet))
        if plan.tcp_flags is not None:
            start.packet["tcp_flags"] = plan.tcp_flags
        start.packet.update(plan.wire)
        start.payload_length = plan.wire.get("payload_len", 0)
        traced = TracedStep(plan, start, tracer.trace(start))
        out.steps.append(traced)
        if not traced.arrived:
            kinds = sorted({v.kind for v in traced.trace.verdicts()})
            out.stopped = (f"{plan.name} was not delivered ({', '.join(kinds) or 'no verdict'})"
                           ": the rest of the conversation cannot happen")
            break
        if not plan.reply:
            arrived = traced.arrived[0]
    return out


@dataclass(frozen=True)
class CtHit:
    """One ct() a step ran: where, the state it gave, what it committed or translated."""

    chassis: str
    zone: int
    state: str
    committed: bool
    nat: str | None

    def __str__(self) -> str:
        text = f"{self.chassis} zone {self.zone}: {self.state}"
        if self.nat:
            text += f" ({self.nat})"
        return text + (", committed" if self.committed else "")


def ct_hits(trace: ClusterTrace) -> list[CtHit]:
    """Every ct() of a trace in execution order (forced or modelled)."""
    return [CtHit(hop.start.chassis, step.data.get("zone", 0),
                  format_ct_state(step.data.get("state", 0)), bool(step.data.get("commit")),
                  step.data.get("nat"))
            for hop in trace.hops for step in hop.root.walk() if step.kind == StepKind.CT]


