"""The logical view beside the physical one: ``ovn-trace`` against the flows really hit.

``ovn-trace`` simulates the logical pipelines from the SB; ofrace's trace
knows which logical flow each OpenFlow flow came from (its cookie).  With
the same packet and the same conntrack states the two sequences of logical
flows should be equal; the first place they part is where the physical
tables stopped implementing the logical ones (a missing flow, a stale one)
— or where ovn-trace cannot follow (its documented gaps: ``ct_snat`` on a
gateway router, unimplemented actions).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

from ofrace.annotate.annotated import AnnotatedHop, AnnotatedTrace
from ofrace.annotate.session import TraceResult
from ofrace.errors import InputError, ToolError
from ofrace.openflow.fields import ct_state_names
from ofrace.simulate.steps import StepKind
from ofrace.snapshot import Snapshot

_STAGE = re.compile(r"^\s*(\d+)\. (\S+) \([^)]*\): (.*), priority (\d+), uuid ([0-9a-f]{8})")
_PIPELINE = re.compile(r'^\s*(ingress|egress)\(dp="([^"]+)"')


@dataclass(frozen=True)
class LogicalStep:
    datapath: str
    pipeline: str
    stage: str
    uuid8: str           # first 8 hex digits of the Logical_Flow row

    def __str__(self) -> str:
        return f"{self.datapath} {self.pipeline} {self.stage} (lflow {self.uuid8})"


def parse_ovn_trace(text: str) -> list[LogicalStep]:
    """The logical flows ovn-trace's detailed output went through, in order."""
    steps = []
    datapath = pipeline = "?"
    for line in text.splitlines():
        m = _PIPELINE.match(line)
        if m:
            pipeline, datapath = m.group(1), m.group(2)
            continue
        m = _STAGE.match(line)
        if m:
            steps.append(LogicalStep(datapath, pipeline, m.group(2), m.group(5)))
    return steps


def physical_steps(trace: AnnotatedTrace) -> list[LogicalStep]:
    """The logical flows whose OpenFlow flows the packet really hit, in order
    (one entry per logical flow visit, however many OpenFlow flows it took)."""
    steps: list[LogicalStep] = []

    def walk(hop: AnnotatedHop) -> None:
        for ev in hop.events:
            if ev.kind != StepKind.FLOW or ev.stage is None or ev.cookie is None:
                continue
            step = LogicalStep(ev.datapath or "?", ev.pipeline or "?", ev.stage,
                               f"{ev.cookie:08x}")
            if not steps or steps[-1] != step:
                steps.append(step)
        for child in hop.children:
            walk(child)

    walk(trace.root)
    return steps


def ct_arguments(states: list[int]) -> list[str]:
    """``--ct=FLAGS`` arguments for ovn-trace, one per ct() the physical trace made."""
    args = []
    for state in states:
        names = sorted(ct_state_names(state), key=lambda n: n != "trk")  # trk first
        args.append(f"--ct={','.join(names)}")
    return args


@dataclass
class LogicalDivergence:
    index: int
    physical: LogicalStep | None
    logical: LogicalStep | None
    agreed: list[LogicalStep]

    def __str__(self) -> str:
        where = (f"after {len(self.agreed)} logical flows in common"
                 if self.agreed else "at the first logical flow")
        return (f"logical and physical part {where}:\n"
                f"    physical (OpenFlow flows hit): {self.physical or '(ends here)'}\n"
                f"    logical  (ovn-trace):          {self.logical or '(ends here)'}")


def trivial_lflows(logical_flows: list[dict]) -> set[str]:
    """Default ``1 → next;`` flows: ovn-trace does not print them, so neither side counts them."""
    return {lf["_uuid"][:8] for lf in logical_flows
            if lf.get("match", "").strip() == "1" and lf.get("actions", "").strip() == "next;"}


def first_divergence(physical: list[LogicalStep], logical: list[LogicalStep],
                     skip: set[str] = frozenset()) -> LogicalDivergence | None:
    """Where the two sequences first differ (stage and lflow), or None."""
    physical = [s for s in physical if s.uuid8 not in skip]
    logical = [s for s in logical if s.uuid8 not in skip]
    for i in range(max(len(physical), len(logical))):
        p = physical[i] if i < len(physical) else None
        q = logical[i] if i < len(logical) else None
        if p is None or q is None or (p.uuid8, p.stage) != (q.uuid8, q.stage):
            return LogicalDivergence(i, p, q, physical[:i])
    return None


def check_logical(snapshot: Snapshot, result: TraceResult, timeout: float = 120) -> dict:
    """Run ovn-trace on the snapshot's SB with the engine's ct choices; compare
    (``trace --check-logical``).  ovn-trace missing or failing is the environment."""
    sb = snapshot.southbound
    if shutil.which("ovn-trace") is None:
        raise ToolError("--check-logical needs ovn-trace here (apt-get install ovn-common)")
    if sb is None or not sb.remote or sb.via != "local":
        raise InputError("--check-logical needs the SB remote readable from here")
    states = [s.data["state"] for hop in result.forward.hops for s in hop.root.walk()
              if s.kind == StepKind.CT and s.data.get("recirculates")]
    argv = ["ovn-trace", f"--db={sb.remote}", *ct_arguments(states), result.microflow]
    try:
        run = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ToolError(f"ovn-trace did not answer within {timeout:g}s") from None
    if run.returncode != 0:
        raise ToolError(f"ovn-trace failed: {run.stderr.strip().splitlines()[-1:]}")
    logical = parse_ovn_trace(run.stdout)
    physical = physical_steps(result.annotated)
    divergence = first_divergence(physical, logical,
                                  trivial_lflows(sb.tables.get("Logical_Flow", [])))
    if divergence is None:
        return {"agree": True, "summary": f"same {len(physical)} logical flows",
                "command": argv}
    return {"agree": False, "command": argv, "index": divergence.index,
            "summary": f"they part after {divergence.index} logical flows in common",
            "physical": str(divergence.physical) if divergence.physical else None,
            "logical": str(divergence.logical) if divergence.logical else None,
            "detail": str(divergence)}
