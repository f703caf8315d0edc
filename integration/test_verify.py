"""`lab verify` on the real lab: every generated conversation sent, every capture point
read, every prediction equal to the wire or its mismatch in a gap class docs/gaps.md
names; and an engine broken on purpose (NAT ignored) is caught."""

from __future__ import annotations

import re
from pathlib import Path
from unittest import mock

import pytest

import ofrace.simulate.conntrack as conntrack
from ofrace.compare.recording import replay
from ofrace.compare.verify import UNEXPLAINED
from ofrace.lab.verify import verify

GAPS = Path(__file__).resolve().parent.parent / "docs" / "gaps.md"
# CI sends the first conversations of each packet class of each topology (~1 min each on
# 2 cores, every class of the topology sent); the whole sweep (`ofrace lab verify`, ~7 min
# a topology, >= 1,000 packets) is what docs/fidelity.md records and
# tests/test_verify_replay.py replays.
PER_CLASS = 4
MINIMUM_STEPS = 70


def _named_gaps() -> set[str]:
    return set(re.findall(r"^## gap: `([^`]+)`", GAPS.read_text(), re.M))


@pytest.fixture(scope="module")
def sweeps(lab_slot, tmp_path_factory):
    """One sweep per topology, recorded, shared by the tests below."""
    reports = {}
    for topology in ("kind", "acl"):
        lab = lab_slot.ensure(topology)
        record = tmp_path_factory.mktemp(f"sweep-{topology}")
        reports[topology] = (verify(str(lab.dir), None, per_class=PER_CLASS,
                                    record=str(record)), record)
    return reports


@pytest.mark.parametrize("topology", ["kind", "acl"])
def test_the_sweep_sends_and_captures_for_real(sweeps, topology, capsys):
    report = sweeps[topology][0]
    doc = report.as_json()
    with capsys.disabled():
        print(f"\n[verify] {topology} in {report.seconds:.0f}s: "
              + ", ".join(f"{c} {v['sent']}/{v['equal']}/{v['mismatched']}"
                          for c, v in doc["classes"].items())
              + f"; unexplained {len(report.unexplained)}")
    assert sum(report.sent.values()) >= MINIMUM_STEPS
    # a sweep that captured nothing would put every step down to a gap: most must be equal
    assert sum(report.equal.values()) >= sum(report.sent.values()) // 2
    assert {m.gap for _, m in report.mismatches} <= _named_gaps() | {UNEXPLAINED}


@pytest.mark.parametrize("topology", ["kind", "acl"])
def test_every_mismatch_is_a_named_gap(sweeps, topology):
    report = sweeps[topology][0]
    assert report.unexplained == [], "\n".join(
        f"{m.step} at {m.where}: predicted {m.predicted}; wire {m.wire}"
        for m in report.unexplained[:8])


@pytest.mark.parametrize("topology", ["kind", "acl"])
def test_a_recorded_sweep_replays_to_the_same_comparison(sweeps, topology):
    """The recording the live sweep wrote, replayed offline, compares the same packets the
    same way: what CI's offline replay (tests/test_verify_replay.py) relies on."""
    live, record = sweeps[topology]
    again = replay(record)
    assert again.sent == live.sent and again.equal == live.equal
    assert [(c, m.step, m.gap) for c, m in again.mismatches] == \
        [(c, m.step, m.gap) for c, m in live.mismatches]


def test_an_engine_ignoring_nat_is_caught(sweeps):
    """Negative control: the wire this run's kind sweep recorded, compared again with
    nat() translating nothing, has unexplained mismatches (replayed: the packets and
    captures are the ones just sent and read, only the prediction is made again)."""
    with mock.patch.object(conntrack, "nat_translate", lambda tup, nat: tup):
        report = replay(sweeps["kind"][1], classes={"LB"})
    assert sum(report.sent.values()) >= 10
    assert len(report.unexplained) >= 5
