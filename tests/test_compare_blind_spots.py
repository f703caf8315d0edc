"""`compare --all` on the generated conversations: every packet the generator makes is
one ofproto/trace and the engine both take, and packets past ofproto/trace's blind spots
(dp_hash groups, forced ct states, NAT in its final flow) are counted apart, never as
agreement.  Classified on the ofproto/trace outputs recorded on the real labs."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import recorded

from ofrace.compare.agreement import (
    BLIND_CT,
    BLIND_DP_HASH,
    BLIND_NAT,
    blind_spot,
    chassis_tests,
)
from ofrace.compare.live import format_microflow
from ofrace.compare.ofproto_trace import (
    Comparison,
    compare_passes,
    parse_dpif_show,
    parse_ofproto_trace,
    simulated_passes,
)
from ofrace.openflow.bridge import BridgeIndex
from ofrace.openflow.flowtext import parse_packet
from ofrace.simulate.conntrack import ForcedConntrack, parse_ct_state
from ofrace.simulate.engine import ChassisDatapath, SimulationOptions


def _replayed(topology):
    snapshot, traces = recorded(topology)
    out = []
    for trace in traces:
        chassis = snapshot.chassis[trace["chassis"]]
        indexes = {n: BridgeIndex(b, chassis.interfaces, chassis.name)
                   for n, b in chassis.bridges.items()}
        conntrack = ForcedConntrack([parse_ct_state(s) for s in trace["ct_next"]])
        root, exits = ChassisDatapath(chassis.name, indexes, conntrack,
                                      SimulationOptions(learn=False)).inject(
            trace["bridge"], trace["packet"])
        ours = simulated_passes(root, exits, trace["packet"], parse_dpif_show(chassis.dpif))
        out.append((trace, compare_passes(ours, parse_ofproto_trace(trace["output"],
                                                                    set(indexes)))))
    return out


def test_recorded_kind_traces_split_into_answered_and_blind():
    replayed = _replayed("kind")
    counts = Counter(blind_spot(result, trace["output"]) for trace, result in replayed)
    assert counts[None] >= 50 and counts[BLIND_NAT] >= 10 and counts[BLIND_CT] >= 10
    assert counts[BLIND_DP_HASH] >= 1      # the NodePort's select group
    for trace, result in replayed:
        if "ct(" not in trace["output"] and not result.notes:
            assert blind_spot(result, trace["output"]) is None, trace["label"]


def test_each_blind_spot_is_recognised():
    one_pass = Comparison([object()], [], None, 1)
    assert blind_spot(one_pass, "Datapath actions: 3") is None
    assert blind_spot(one_pass, "Datapath actions: ct(zone=13,nat),recirc(0x1)") == BLIND_CT
    assert blind_spot(one_pass, "Datapath actions: ct(commit,zone=14,nat(src=10.0.0.1)),3"
                      ) == BLIND_NAT
    assert blind_spot(one_pass, "Datapath actions: ct(commit,zone=14,nat(src)),3") == BLIND_NAT
    hashed = Comparison([object()], [], None, 1, ["pass 0: ofproto/trace stops at a dp_hash "
                                                  "select group"])
    assert blind_spot(hashed, "Datapath actions: hash(l4(0)),recirc(0x3)") == BLIND_DP_HASH
    assert blind_spot(Comparison([object(), object()], [], None, 1), "") == BLIND_CT


@pytest.mark.parametrize("topology", ["basic", "kind", "acl"])
def test_every_generated_packet_is_a_flow_both_take(topology):
    """Each packet reads back from its ofproto/trace flow string and runs in the engine."""
    snapshot, _ = recorded(topology)
    total = 0
    for chassis in snapshot.chassis.values():
        indexes = {n: BridgeIndex(b, chassis.interfaces, chassis.name)
                   for n, b in chassis.bridges.items()}
        for test, ct, _ in chassis_tests(snapshot, chassis):
            flow = format_microflow(test.packet)
            assert parse_packet(flow) == {k: v for k, v in test.packet.items() if v}, flow
            conntrack = ForcedConntrack([parse_ct_state(s) for s in ct])
            root, exits = ChassisDatapath(chassis.name, indexes, conntrack,
                                          SimulationOptions(learn=False)).inject(
                test.bridge, test.packet)
            assert root is not None
            total += 1
    assert total >= 30
