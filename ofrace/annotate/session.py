"""One trace as a user asks for it: a request checked before anything is read, then
the packet through the cluster, the reply if asked, each read with OVN's meaning.

What ``ofrace trace`` does between its options and its output; the exit code it
ends with comes from the verdicts (``ofrace.trace.verdicts``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ofrace.annotate.annotated import AnnotatedTrace, Annotator
from ofrace.errors import Exit, InputError
from ofrace.snapshot import Snapshot
from ofrace.trace.choices import check_buckets, parse_buckets, parse_ct_next
from ofrace.trace.cluster import ClusterTrace, ClusterTracer, TraceOptions, TraceStart
from ofrace.trace.conversation import (
    CtHit,
    TracedStep,
    ct_hits,
    find_step,
    plan_steps,
    run_conversation,
)
from ofrace.trace.request import (
    reply_start,
    start_from_expression,
    start_from_short_form,
    to_expression,
    with_dhcp_body,
    with_dns_query,
)
from ofrace.trace.verdicts import ANSWERABLE, VerdictKind, conversation_exit_code, exit_code


@dataclass
class TraceRequest:
    """A microflow EXPRESSION, or the short form (--from PORT --to IP[:PORT])."""

    expression: str | None = None
    source: str | None = None
    destination: str | None = None
    protocol: str = "tcp"
    chassis: str | None = None
    reply: bool = False
    buckets: dict[int, int] = field(default_factory=dict)
    ct_next: list[int] | None = None
    conversation: bool = False       # every packet of the connection, one block each
    step: str | None = None          # one packet of it, the earlier ones simulated first
    established: bool = False        # --established: ``step`` or the kind's first est one
    ct_from_node: bool = True        # --ct node (default) | empty
    # what the body asks: ("dhcp" | "dhcpv6", message type) or ("dns", NAME[:TYPE])
    body: tuple[str, str] | None = None

    @classmethod
    def from_options(cls, expression, source, destination, protocol, chassis, reply,
                     buckets=(), ct_next=(), conversation=False, step=None,
                     established=False, ct: str = "node",
                     body: tuple[str, str] | None = None) -> TraceRequest:
        """Checked as typed (no snapshot needed): one line, exit 2, on a mistake."""
        if bool(expression) == bool(source):
            raise InputError("give either a microflow EXPRESSION or --from PORT --to IP")
        dhcp = body is not None and body[0] != "dns"
        if source and not destination and not dhcp:
            raise InputError("--from needs --to IP[:PORT] (or --dhcp/--dhcpv6 TYPE)")
        if dhcp and source and destination:
            raise InputError("--dhcp/--dhcpv6 send to the DHCP server: no --to")
        if body is not None and body[0] == "dns":
            protocol = "udp"      # pinctrl answers DNS over UDP only
        if body is not None and (reply or conversation or step or established):
            raise InputError(f"--{body[0]} traces one request and the answer ovn-controller "
                             "builds for it: no --reply, --conversation, --step or "
                             "--established")
        modes = [name for name, on in (("--reply", reply), ("--conversation", conversation),
                                       ("--established/--step", established or step),
                                       ("--ct-next", ct_next)) if on]
        if len(modes) > 1:
            raise InputError(f"{' and '.join(modes)} cannot be combined: a conversation "
                             "builds each packet's conntrack state from the packets before it")
        forced = parse_ct_next(ct_next, established_ok=False)
        return cls(expression, source, destination, protocol, chassis, reply,
                   parse_buckets(buckets), forced, conversation, step, established,
                   ct != "empty", body)


@dataclass
class ConversationStep:
    """One packet of a conversation as shown: its name, where it entered, its trace."""

    name: str
    reply: bool
    annotated: AnnotatedTrace
    request: dict                       # entry, chassis, TCP flags and frame-only details
    ct: list[CtHit]

    @property
    def verdict_line(self) -> str:
        kinds = sorted({v.kind for v in self.annotated.verdicts})
        return ", ".join(kinds) or "no verdict"


@dataclass
class TraceResult:
    forward: ClusterTrace
    annotated: AnnotatedTrace
    start: TraceStart
    request: dict                       # as --json prints it
    back: AnnotatedTrace | None = None
    back_request: dict | None = None
    logical: dict | None = None         # --check-logical's answer (ofrace.compare.ovn_trace)
    conversation: list[ConversationStep] | None = None   # --conversation: every step
    stopped: str | None = None          # why a conversation (or --step's) ended early
    simulated_first: list[ConversationStep] = field(default_factory=list)  # --step's

    @property
    def microflow(self) -> str:
        """The forward packet as the microflow ovn-trace takes (--step's: the step's)."""
        if "step" in self.request and self.start.logical_port:
            return to_expression(self.start.packet, self.start.logical_port)
        return self.request.get("expression") or to_expression(self.start.packet,
                                                               self.request["from"])

    @property
    def exit_code(self) -> Exit:
        if self.conversation is not None:
            return conversation_exit_code([v.kind for v in step.annotated.verdicts]
                                          for step in self.conversation)
        return exit_code([v.kind for v in self.annotated.verdicts],
                         [v.kind for v in self.back.verdicts] if self.back else None)


def run_trace(snapshot: Snapshot, request: TraceRequest) -> TraceResult:
    """Trace the request on ``snapshot``; with ``reply``, the answer back too."""
    check_buckets(snapshot, request.buckets)
    tracer = ClusterTracer(snapshot, TraceOptions(select_buckets=request.buckets,
                                                  ct_next=request.ct_next,
                                                  ct_from_node=request.ct_from_node))
    if request.expression:
        start = start_from_expression(tracer, request.expression, request.chassis)
        asked = {"expression": request.expression}
    elif request.body and request.body[0] != "dns":
        start = tracer.locate(request.source, request.chassis)
        asked = {"from": request.source}
    else:
        start = start_from_short_form(tracer, request.source, request.destination,
                                      request.protocol, request.chassis)
        asked = {"from": request.source, "to": request.destination,
                 "protocol": request.protocol}
    if request.body:
        option, value = request.body
        start = (with_dns_query(start, value) if option == "dns" else
                 with_dhcp_body(tracer, start, value, 4 if option == "dhcp" else 6))
        asked[option] = value
    asked.update(chassis=start.chassis, entry=start.entry)
    annotator = Annotator(tracer.names, snapshot)
    if request.conversation or request.step or request.established:
        return _run_conversation(tracer, annotator, request, start, asked)
    forward = tracer.trace(start)
    result = TraceResult(forward, annotator.trace(forward), start, asked)
    if request.reply:
        _trace_reply(tracer, annotator, result)
    return result


def _trace_reply(tracer: ClusterTracer, annotator: Annotator, result: TraceResult) -> None:
    verdicts = result.forward.verdicts()
    arrived = [v for v in verdicts if v.kind in ANSWERABLE]
    if not arrived:
        if any(v.kind is VerdictKind.UNKNOWN for v in verdicts):
            return   # whether it arrives is unknown: shown, and exit 4
        raise InputError("--reply: the packet was not delivered anywhere to answer from")
    back_start = reply_start(tracer, arrived[0])
    result.back = annotator.trace(tracer.trace(back_start))
    result.back_request = {"from": arrived[0].logical_port or arrived[0].port,
                           "chassis": back_start.chassis, "entry": back_start.entry}


def _shown(annotator: Annotator, traced: TracedStep) -> ConversationStep:
    start = traced.start
    request = {"step": traced.plan.name, "chassis": start.chassis, "entry": start.entry,
               **({"tcp_flags": traced.plan.tcp_flags} if traced.plan.tcp_flags else {}),
               **traced.plan.wire}
    return ConversationStep(traced.plan.name, traced.plan.reply,
                            annotator.trace(traced.trace), request, ct_hits(traced.trace))


def _run_conversation(tracer: ClusterTracer, annotator: Annotator, request: TraceRequest,
                      start: TraceStart, asked: dict) -> TraceResult:
    """--conversation: every step shown; --step/--established: the steps before the asked
    one traced silently on the same conntrack, then that one shown in full."""
    if request.conversation:
        conv = run_conversation(tracer, start, plan_steps(start.packet))
        steps = [_shown(annotator, t) for t in conv.steps]
        first = conv.steps[0]
        result = TraceResult(first.trace, steps[0].annotated, first.start,
                             dict(asked, conversation=[p.name for p in conv.planned]))
        result.conversation, result.stopped = steps, conv.stopped
        return result
    plan, index = find_step(start.packet, request.step)
    conv = run_conversation(tracer, start, plan[:index + 1])
    last = conv.steps[-1]
    asked = dict(asked, step=plan[index].name, simulated_first=[
        {"step": t.plan.name, "verdicts": sorted({v.kind for v in t.trace.verdicts()})}
        for t in conv.steps[:-1]])
    result = TraceResult(last.trace, annotator.trace(last.trace), last.start, asked)
    result.simulated_first = [_shown(annotator, t) for t in conv.steps[:-1]]
    if last.plan.name != plan[index].name:
        result.stopped = (f"the connection could not be established: {conv.stopped}; "
                          f"shown: {last.plan.name}, not {plan[index].name}")
        asked["stopped"] = result.stopped
    return result
