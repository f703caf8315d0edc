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
from ofrace.trace.request import (
    reply_start,
    start_from_expression,
    start_from_short_form,
    to_expression,
)
from ofrace.trace.verdicts import ANSWERABLE, VerdictKind, exit_code


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
    ct_from_node: bool = True       # --ct node (default) | empty

    @classmethod
    def from_options(cls, expression, source, destination, protocol, chassis, reply,
                     buckets=(), ct_next=(), ct: str = "node") -> TraceRequest:
        """Checked as typed (no snapshot needed): one line, exit 2, on a mistake."""
        if bool(expression) == bool(source):
            raise InputError("give either a microflow EXPRESSION or --from PORT --to IP")
        if source and not destination:
            raise InputError("--from needs --to IP[:PORT]")
        forced = parse_ct_next(ct_next, established_ok=False)
        return cls(expression, source, destination, protocol, chassis, reply,
                   parse_buckets(buckets), forced, ct != "empty")


@dataclass
class TraceResult:
    forward: ClusterTrace
    annotated: AnnotatedTrace
    start: TraceStart
    request: dict                       # as --json prints it
    back: AnnotatedTrace | None = None
    back_request: dict | None = None
    logical: dict | None = None         # --check-logical's answer (ofrace.compare.ovn_trace)

    @property
    def microflow(self) -> str:
        """The forward packet as the microflow ovn-trace takes."""
        return self.request.get("expression") or to_expression(self.start.packet,
                                                               self.request["from"])

    @property
    def exit_code(self) -> Exit:
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
    else:
        start = start_from_short_form(tracer, request.source, request.destination,
                                      request.protocol, request.chassis)
        asked = {"from": request.source, "to": request.destination,
                 "protocol": request.protocol}
    asked.update(chassis=start.chassis, entry=start.entry)
    forward = tracer.trace(start)
    annotator = Annotator(tracer.names, snapshot)
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
