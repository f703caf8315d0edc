"""The engine against ofproto/trace outputs recorded on the real lab, offline.

Each recorded trace is a packet that entered a chassis (VIF, tunnel or
uplink) and what ovs-vswitchd's own ofproto/trace did with it on that
node, taken together with the snapshot.  The engine must produce the same
(table, priority, cookie) sequence per datapath pass and the same outputs.
"""

from __future__ import annotations

import pytest
from conftest import recorded

from ofrace.compare.ofproto_trace import (
    compare_passes,
    parse_dpif_show,
    parse_ofproto_trace,
    simulated_passes,
)
from ofrace.openflow.bridge import BridgeIndex
from ofrace.simulate.conntrack import ForcedConntrack, parse_ct_state
from ofrace.simulate.engine import ChassisDatapath, SimulationOptions

TOPOLOGIES = ("kind", "basic", "acl", "kind-ic")


def _replay(snapshot, trace, indexes):
    chassis = snapshot.chassis[trace["chassis"]]
    conntrack = ForcedConntrack([parse_ct_state(s) for s in trace["ct_next"]])
    datapath = ChassisDatapath(chassis.name, indexes, conntrack, SimulationOptions(learn=False))
    root, exits = datapath.inject(trace["bridge"], trace["packet"])
    ours = simulated_passes(root, exits, trace["packet"], parse_dpif_show(chassis.dpif))
    theirs = parse_ofproto_trace(trace["output"], set(indexes))
    return compare_passes(ours, theirs)


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_every_recorded_trace_agrees(topology):
    snapshot, traces = recorded(topology)
    indexes = {}
    failures = []
    for trace in traces:
        chassis = snapshot.chassis[trace["chassis"]]
        if chassis.name not in indexes:
            indexes[chassis.name] = {n: BridgeIndex(b, chassis.interfaces, chassis.name)
                                     for n, b in chassis.bridges.items()}
        result = _replay(snapshot, trace, indexes[chassis.name])
        assert result.compared_passes >= 1
        if not result.agree:
            failures.append(f"{trace['chassis']} {trace['label']}: {result.divergence}")
    assert not failures, "\n".join(failures[:5])
    assert len(traces) >= 30


def test_a_changed_flow_is_caught():
    """The comparison is not vacuous: a one-cookie edit in the snapshot shows up."""
    snapshot, traces = recorded("kind")
    trace = next(t for t in traces if t["label"].endswith("tcp to kube-system_coredns-"
                                                          "64897985d-rzjfr"))
    chassis = snapshot.chassis[trace["chassis"]]
    bridge = chassis.bridges["br-int"]
    flows = list(bridge.flows)
    hit = next(i for i, line in enumerate(flows) if "table=0," in line and "in_port=" in line
               and f"in_port={trace['packet']['in_port']} " in line + " ")
    original = flows[hit]
    flows[hit] = original.replace("cookie=0x", "cookie=0x1", 1)
    from dataclasses import replace
    edited = replace(bridge, flows=flows)
    indexes = {"br-int": BridgeIndex(edited, chassis.interfaces, chassis.name),
               **{n: BridgeIndex(b, chassis.interfaces, chassis.name)
                  for n, b in chassis.bridges.items() if n != "br-int"}}
    result = _replay(snapshot, trace, indexes)
    assert not result.agree
    assert result.divergence.pass_no == 0 and result.divergence.index == 0
