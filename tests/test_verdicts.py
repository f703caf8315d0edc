"""Closed kinds for steps, exits and verdicts, and the one mapping exit → verdict → code."""

from __future__ import annotations

import json

import pytest
from conftest import recorded

from ofrace.errors import Exit
from ofrace.simulate.steps import Exit as StepExit
from ofrace.simulate.steps import ExitKind, Step, StepKind
from ofrace.trace.cluster import ClusterTracer, Verdict
from ofrace.trace.request import start_from_short_form
from ofrace.trace.verdicts import (
    EXIT_OF_VERDICT,
    VERDICT_OF_EXIT,
    VerdictKind,
    direction_code,
    exit_code,
)

D, L, H = VerdictKind.DELIVERED, VerdictKind.LEFT, VerdictKind.HOST
DROP, ERR, UNK = VerdictKind.DROPPED, VerdictKind.ERROR, VerdictKind.UNKNOWN
LOOP, CTL = VerdictKind.LOOP, VerdictKind.CONTROLLER


def test_every_verdict_has_one_code_and_json_keeps_its_string():
    assert set(EXIT_OF_VERDICT) == set(VerdictKind)
    assert json.dumps([D, StepKind.FLOW, ExitKind.GAP]) == '["delivered", "flow", "gap"]'
    assert f"{DROP} on hv1" == "dropped on hv1" and DROP == "dropped"


def test_exits_map_to_verdicts():
    followed = {ExitKind.OUTPUT, ExitKind.TUNNEL}   # by port / by the next chassis
    assert set(VERDICT_OF_EXIT) | followed == set(ExitKind)
    assert VERDICT_OF_EXIT[ExitKind.GAP] is ERR and VERDICT_OF_EXIT[ExitKind.DROP] is DROP


@pytest.mark.parametrize("verdicts, code", [
    ([D], Exit.OK), ([L], Exit.OK), ([H], Exit.OK), ([DROP, D], Exit.OK),
    ([DROP], Exit.FOUND), ([LOOP], Exit.FOUND), ([CTL], Exit.FOUND), ([], Exit.FOUND),
    ([ERR, DROP], Exit.GAP), ([UNK, ERR], Exit.UNKNOWN), ([UNK, DROP], Exit.UNKNOWN),
])
def test_direction_code(verdicts, code):
    assert direction_code(verdicts) is code


@pytest.mark.parametrize("forward, back, code", [
    ([D], None, Exit.OK), ([D], [D], Exit.OK), ([D], [DROP], Exit.FOUND),
    ([D], [ERR], Exit.GAP), ([UNK], [D], Exit.UNKNOWN), ([DROP], [ERR], Exit.GAP),
    ([D], [], Exit.FOUND),
])
def test_exit_code_across_directions(forward, back, code):
    assert exit_code(forward, back) is code


def test_kinds_are_closed():
    """A kind outside the set is a bug caught where it is made, not a wrong exit code later."""
    with pytest.raises(ValueError):
        Step("flwo", "x")
    with pytest.raises(ValueError):
        StepExit("dropped", "hv1", "br-int", "x", {})   # a verdict kind, not an exit kind
    with pytest.raises(ValueError):
        Verdict("drop", "hv1", "x", {})                 # an exit kind, not a verdict kind
    assert Step("flow", "x").kind is StepKind.FLOW      # negative control


def test_traced_steps_exits_and_verdicts_are_members():
    snapshot, _ = recorded("acl")
    tracer = ClusterTracer(snapshot)
    trace = tracer.trace(start_from_short_form(tracer, "vm3", "10.0.1.11:22", "tcp"))
    steps = [s for hop in trace.hops for s in hop.root.walk()]
    assert steps and all(type(s.kind) is StepKind for s in steps)
    assert all(type(e.kind) is ExitKind for hop in trace.hops for e in hop.exits)
    (verdict,) = trace.verdicts()
    assert verdict.kind is DROP and direction_code([verdict.kind]) is Exit.FOUND


def test_every_verdict_kind_is_drawn():
    """The text renderer keys its colours and marks by the closed kind: none falls back."""
    from ofrace.render import trace_text

    assert set(trace_text._VERDICT_STYLE) == set(VerdictKind)
    assert set(trace_text._VERDICT_MARK) == set(VerdictKind)
    assert trace_text._EVENTS <= set(StepKind)
