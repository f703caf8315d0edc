"""Ground truth offline: each lab topology's real sweep (`ofrace lab verify --record`,
tests/fixtures/<topology>/sweep: the frames every capture point sent after each step, the
connections each datapath listed, the snapshot read before each conversation) compared
again with what ofrace predicts today, exactly as `lab verify` compares live.

Every step equals the wire or its mismatch belongs to a gap docs/gaps.md names; an engine
broken on purpose is caught; a replay never matches a packet it did not send."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path
from unittest import mock

import pytest

import ofrace.simulate.conntrack as conntrack
from ofrace.compare.recording import ReplaySide, replay, trace_digest
from ofrace.compare.sweep import run_sweep
from ofrace.compare.verify import UNEXPLAINED, VerifyReport
from ofrace.errors import InputError
from ofrace.snapshot import Snapshot

FIXTURES = Path(__file__).parent / "fixtures"
GAPS = Path(__file__).resolve().parent.parent / "docs" / "gaps.md"
TOPOLOGIES = ("basic", "kind", "acl", "openstack", "kind-ic")
MIN_PACKETS = 1000


def _named_gaps() -> set[str]:
    return set(re.findall(r"^## gap: `([^`]+)`", GAPS.read_text(), re.M))


@pytest.fixture(scope="module")
def replays():
    return {t: replay(FIXTURES / t / "sweep") for t in TOPOLOGIES}


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_the_recorded_sweep_sent_enough_real_packets(replays, topology):
    report = replays[topology]
    assert sum(report.sent.values()) >= MIN_PACKETS
    # a sweep that captured nothing would put every step down to a gap: most must be equal
    assert sum(report.equal.values()) >= 0.6 * sum(report.sent.values())


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_every_mismatch_belongs_to_a_named_gap(replays, topology):
    report = replays[topology]
    assert {m.gap for _, m in report.mismatches} <= _named_gaps() | {UNEXPLAINED}
    assert report.unexplained == [], "\n".join(
        f"{m.step} at {m.where}: predicted {m.predicted}; wire {m.wire}"
        for m in report.unexplained[:8])


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_conntrack_load_balancer_and_nat_classes_equal_the_wire(replays, topology):
    """Issue 13's check: every LB and NAT step equals the wire, and so does every
    connection a LB or NAT conversation left in conntrack."""
    report = replays[topology]
    for packet_class in ("LB", "NAT"):
        assert report.equal[packet_class] == report.sent[packet_class]
    assert [f"{m.step} at {m.where}: {m.gap}" for c, m in report.mismatches
            if c in ("LB", "NAT")] == []


def test_an_engine_that_ignores_nat_is_caught():
    """Negative control: with NAT ignored, the load-balancer and NAT conversations of
    kind part from the wire in ways no gap explains."""
    with mock.patch.object(conntrack, "nat_translate", lambda tup, nat: tup):
        report = replay(FIXTURES / "kind" / "sweep", classes={"LB", "NAT"})
    assert len(report.unexplained) >= 5


def test_a_replay_never_matches_a_packet_it_did_not_send(tmp_path):
    """A recording whose first request was altered: the loop builds the packet the
    conversation sends, which is no longer the one recorded, and the replay says so."""
    copy = tmp_path / "sweep"
    shutil.copytree(FIXTURES / "basic" / "sweep", copy)
    doc = json.loads(gzip.decompress((copy / "sweep.json.gz").read_bytes()))
    side = ReplaySide(copy)
    conversations = side.conversations()
    conversations[0].steps[0].packet = dict(conversations[0].steps[0].packet, nw_ttl=7)
    with pytest.raises(InputError, match="differs from the one the recording sent"):
        run_sweep(side, conversations[:1], VerifyReport("basic"))
    assert doc["conversations"][0]["steps"][0]["packet"].get("nw_ttl") != 7


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_the_replay_sends_what_the_lab_sent(replays, topology):
    """What the lab printed when it recorded (kept in the recording) counts the same
    steps per class as the replay: the sent counts never depend on the engine."""
    doc = json.loads(gzip.decompress((FIXTURES / topology / "sweep" / "sweep.json.gz")
                                     .read_bytes()))
    live = {c: v["sent"] for c, v in doc["live"]["classes"].items()}
    assert {c: replays[topology].sent[c] for c in live} == live


def test_the_snapshot_digest_ignores_counters_and_sees_flows():
    snapshot = Snapshot.load(str(next((FIXTURES / "basic" / "sweep").glob("snapshot-*.ofr"))))
    before = trace_digest(snapshot)
    bridge = next(b for c in snapshot.chassis.values() for b in c.bridges.values() if b.flows)
    bridge.flows[0] = re.sub(r"n_packets=\d+", "n_packets=99999", bridge.flows[0])
    bridge.flows[0] = re.sub(r"duration=[\d.]+s", "duration=1.000s", bridge.flows[0])
    assert trace_digest(snapshot) == before
    bridge.flows[0] = bridge.flows[0].replace("priority=", "priority=1", 1)
    assert trace_digest(snapshot) != before


def test_a_damaged_recording_is_one_line_error(tmp_path):
    (tmp_path / "sweep.json.gz").write_bytes(b"not gzip")
    with pytest.raises(InputError, match="not a sweep recording"):
        ReplaySide(tmp_path)
