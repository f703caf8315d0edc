"""`lab verify` on the real lab: every generated conversation sent, every capture point
read, every prediction equal to the wire or its mismatch in a gap class docs/gaps.md
names; and an engine broken on purpose (NAT ignored) is caught."""

from __future__ import annotations

import re
from pathlib import Path
from unittest import mock

import pytest

import ofrace.simulate.conntrack as conntrack
from ofrace.compare.verify import UNEXPLAINED
from ofrace.lab.verify import verify

GAPS = Path(__file__).resolve().parent.parent / "docs" / "gaps.md"
MINIMUM_STEPS = {"kind": 500, "acl": 400}


def _named_gaps() -> set[str]:
    return set(re.findall(r"^## gap: `([^`]+)`", GAPS.read_text(), re.M))


@pytest.mark.parametrize("topology", ["kind", "acl"])
def test_every_mismatch_is_a_named_gap(lab_slot, topology, capsys):
    lab = lab_slot.ensure(topology)
    report = verify(str(lab.dir), None)
    doc = report.as_json()
    with capsys.disabled():
        print(f"\n[verify] {topology} in {report.seconds:.0f}s: "
              + ", ".join(f"{c} {v['sent']}/{v['equal']}/{v['mismatched']}"
                          for c, v in doc["classes"].items()))
    assert sum(report.sent.values()) >= MINIMUM_STEPS[topology]
    # a sweep that captured nothing would put every step down to a gap: most must be equal
    assert sum(report.equal.values()) >= sum(report.sent.values()) // 2
    named = _named_gaps()
    assert {m.gap for _, m in report.mismatches} <= named | {UNEXPLAINED}
    assert report.unexplained == [], "\n".join(
        f"{m.step} at {m.where}: predicted {m.predicted}; wire {m.wire}"
        for m in report.unexplained[:8])


def test_an_engine_ignoring_nat_is_caught(kind_lab):
    """Negative control: the same sweep of the LB conversations with nat() translating
    nothing has unexplained mismatches."""
    with mock.patch.object(conntrack, "nat_translate", lambda tup, nat: tup):
        report = verify(str(kind_lab.dir), None, classes={"LB"})
    assert len(report.unexplained) >= 5
