"""One trace as a user asks for it: a request checked before anything is read, then
the packet through the cluster, the reply if asked, each read with OVN's meaning.

What ``ofrace trace`` does between its options and its output; the exit code it
ends with comes from the verdicts (``ofrace.trace.verdicts``).
"""

from __future__ import annotations

import re
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
from ofrace.trace.health_probe import probe_start
from ofrace.trace.request import (
    reply_start,
    start_from_expression,
    start_from_short_form,
    to_expression,
    with_dhcp_body,
    with_dns_query,
)
from ofrace.trace.verdicts import ANSWERABLE, VerdictKind, conversation_exit_code, exit_code

_PORT_TERM = re.compile(r'\b(inport|outport)\s*==\s*"([^"]*)"')


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

    @property
    def entry_port(self) -> str | None:
        """The logical port the packet enters by, as typed (a live read starts there)."""
        if self.source:
            return self.source
        found = re.search(r'\binport\s*==\s*"([^"]*)"', self.expression or "")
        return found.group(1) if found else None

    @classmethod
    def from_options(cls, expression, source, destination, protocol, chassis, reply,
                     buckets=(), ct_next=(), conversation=False, step=None,
                     established=False, ct: str = "node",
                     body: tuple[str, str] | None = None) -> TraceRequest:
        """Checked as typed (no snapshot needed): one line, exit 2, on a mistake."""
        probe = body is not None and body[0] == "probe"
        if probe and (expression or source or destination):
            raise InputError("--probe traces the health check ovn-controller sends: no "
                             "EXPRESSION, --from or --to")
        if bool(expression) == bool(source) and not probe:
            raise InputError("give either a microflow EXPRESSION or --from PORT --to IP")
        dhcp = body is not None and body[0] in ("dhcp", "dhcpv6")
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
    reply_not_run: str | None = None    # --reply asked, but nothing arrived to answer from

    @property
    def microflow(self) -> str:
        """The forward packet as the microflow ovn-trace takes (--step's: the step's)."""
        if "step" in self.request and self.start.logical_port:
            return to_expression(self.start.packet, self.start.logical_port)
        if self.request.get("expression"):
            return self.ovn_expression
        return to_expression(self.start.packet, self.start.logical_port or self.request["from"])

    @property
    def ovn_expression(self) -> str:
        """The expression as typed, its ports by OVN's names (ovn-trace knows no others)."""
        text = self.request["expression"]
        for typed, ovn in (self.request.get("ports") or {}).items():
            text = _PORT_TERM.sub(lambda m, t=typed, o=ovn: m.group(0).replace(
                f'"{t}"', f'"{o}"') if m.group(2) == t else m.group(0), text)
        return text

    @property
    def exit_code(self) -> Exit:
        if self.conversation is not None:
            return conversation_exit_code([v.kind for v in step.annotated.verdicts]
                                          for step in self.conversation)
        if self.reply_not_run:   # a reply that never ran was not delivered either
            return exit_code([v.kind for v in self.annotated.verdicts], [])
        return exit_code([v.kind for v in self.annotated.verdicts],
                         [v.kind for v in self.back.verdicts] if self.back else None)


def run_trace(snapshot: Snapshot, request: TraceRequest) -> TraceResult:
    """Trace the request on ``snapshot``; with ``reply``, the answer back too."""
    check_buckets(snapshot, request.buckets)
    tracer = ClusterTracer(snapshot, TraceOptions(select_buckets=request.buckets,
                                                  ct_next=request.ct_next,
                                                  ct_from_node=request.ct_from_node))
    if request.body and request.body[0] == "probe":
        start = probe_start(tracer, request.body[1])
        asked = {"probe": request.body[1]}
    elif request.expression:
        start = start_from_expression(tracer, request.expression, request.chassis)
        asked = {"expression": request.expression}
        ports = _cms_ports(tracer, request.expression)
        if ports:
            asked["ports"] = ports
    elif request.body and request.body[0] in ("dhcp", "dhcpv6"):
        start = tracer.locate(request.source, request.chassis)
        asked = {"from": request.source}
    else:
        start = start_from_short_form(tracer, request.source, request.destination,
                                      request.protocol, request.chassis)
        asked = {"from": request.source, "to": request.destination,
                 "protocol": request.protocol}
        if start.logical_port and start.logical_port != request.source:
            asked["ports"] = {request.source: start.logical_port}
    if request.body and request.body[0] != "probe":
        option, value = request.body
        start = (with_dns_query(start, value) if option == "dns" else
                 with_dhcp_body(tracer, start, value, 4 if option == "dhcp" else 6))
        asked[option] = value
    asked.update(chassis=start.chassis, entry=start.entry)
    annotator = Annotator(tracer.names, snapshot, tracer.names_for)
    tracer.before_crossing = annotator.read_ahead
    if request.conversation or request.step or request.established:
        return _run_conversation(tracer, annotator, request, start, asked)
    forward = tracer.trace(start)
    result = TraceResult(forward, annotator.trace(forward), start, asked)
    if request.reply:
        _trace_reply(tracer, annotator, result)
    return result


def _cms_ports(tracer: ClusterTracer, expression: str) -> dict[str, str]:
    """The ports a microflow names by a CMS name → their OVN names (an outport too; a
    name of several ports is an error; one the inport's lookup already judged)."""
    ports = {}
    names = tracer.names
    for _, typed in _PORT_TERM.findall(expression):
        if typed not in names.ports_by_name and names.cms.port_candidates(typed):
            ports[typed] = names.resolve_port(typed)
    return ports


def _trace_reply(tracer: ClusterTracer, annotator: Annotator, result: TraceResult) -> None:
    """The answer from where the request arrived; when it arrived nowhere, the forward
    trace still stands (it says why) and the reply is marked as not run, with why."""
    verdicts = result.forward.verdicts()
    arrived = [v for v in verdicts if v.kind in ANSWERABLE]
    if not arrived:
        kinds = ", ".join(sorted({v.kind for v in verdicts})) or "no verdict"
        if any(v.kind is VerdictKind.UNKNOWN for v in verdicts):
            result.reply_not_run = (f"whether the request arrives is unknown ({kinds}): "
                                    "nothing to answer from")
        else:
            result.reply_not_run = (f"the request was not delivered anywhere to answer from "
                                    f"({kinds})")
        return
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
