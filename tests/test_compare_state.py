"""`compare` tells "the node's state changed" from "the engine diverged", on recorded lab data.

A fake node answers the state reads (flows, groups, ports, MAC tables) from
the recorded kind snapshot -- edited where a test says the node changed --
and ofproto/trace from the traces recorded with it.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
from conftest import recorded

from ofrace.collect.inventory import NodeSpec
from ofrace.collect.transport import CommandOutput
from ofrace.compare.agreement import AgreementReport, compare_on_node
from ofrace.compare.live import (
    bridge_state,
    format_microflow,
    snapshot_state,
    state_changes,
)
from ofrace.compare.packets import TestPacket as Probe

NODE = "ovn-worker"
BRIDGE = "breth0"
NEW_MAC = "02:00:00:00:00:99"


def _texts(bridge) -> dict[str, str]:
    """The bridge's recorded reads, as the node would print them now."""
    return {
        "dump-flows": "NXST_FLOW reply (xid=0x4):\n" + "\n".join(f" {f}" for f in bridge.flows),
        "dump-groups": "OFPST_GROUP_DESC reply (OF1.5) (xid=0x2):\n"
                       + "\n".join(f" {g}" for g in bridge.groups),
        "dump-ports-desc": bridge.ports_desc,
        "fdb/show": bridge.fdb,
    }


def _learn(fdb: str, mac: str = NEW_MAC, port: int = 1) -> str:
    return fdb + f"{port:>5}     0  {mac}    0\n"


class FakeNode:
    """Answers state reads from ``bridges`` texts and ofproto/trace from recorded outputs.

    ``on_trace(n)`` runs before the n-th ofproto/trace call (from 0) and may edit the
    texts or return another answer for that call.
    """

    def __init__(self, chassis, traces, on_trace=None):
        self.texts = {name: _texts(b) for name, b in chassis.bridges.items()}
        self.answers = {(t["bridge"], format_microflow(t["packet"]), tuple(t["ct_next"])):
                        t["output"] for t in traces if t["chassis"] == chassis.name}
        self.on_trace = on_trace or (lambda n: None)
        self.traces = 0

    def run(self, argv, timeout=120, on_stdout=None, budget=None):
        if argv[0] == "python3":    # no agent here: one ovs-appctl per trace, as a node
            return CommandOutput(127, b"", b"python3: not found")   # without python3
        if argv[:2] == ["ovs-appctl", "ofproto/trace"]:
            bridge, flow = argv[2], argv[3]
            ct_next = tuple(argv[5::2])
            override = self.on_trace(self.traces)
            self.traces += 1
            text = override if override is not None else self.answers[(bridge, flow, ct_next)]
            return CommandOutput(0, text.encode(), b"")
        what = next(word for word in argv if word in ("dump-flows", "dump-groups",
                                                        "dump-ports-desc", "fdb/show"))
        return CommandOutput(0, self.texts[argv[-1]][what].encode(), b"")

    def close(self):
        pass


@pytest.fixture(scope="module")
def kind():
    snapshot, traces = recorded("kind")
    chassis = snapshot.chassis[NODE]
    mine = [t for t in traces if t["chassis"] == NODE and t["bridge"] == BRIDGE]
    return chassis, traces, mine


def _runs(tests):
    return [(Probe(t["bridge"], t["packet"], t["label"]), tuple(t["ct_next"]))
            for t in tests]


def _wrong_answer(traces, trace):
    """A recorded ofproto/trace output of another packet that gives another result."""
    return next(t["output"] for t in traces
                if t["chassis"] == trace["chassis"] and t["output"] != trace["output"]
                and t["bridge"] != trace["bridge"])


def _with_fdb(chassis, fdb: str):
    fresh = copy.copy(chassis)
    fresh.bridges = dict(chassis.bridges)
    fresh.bridges[BRIDGE] = dataclasses.replace(chassis.bridges[BRIDGE], fdb=fdb)
    return fresh


def test_counters_ages_and_xids_are_not_changes(kind):
    chassis, _, _ = kind
    bridge = chassis.bridges[BRIDGE]
    aged_fdb = bridge.fdb.replace("    0\n", "  117\n")
    assert aged_fdb != bridge.fdb
    counted = [f.replace("n_packets=3", "n_packets=40").replace("duration=2.387s",
                                                                  "duration=99.1s")
               for f in bridge.flows]
    assert counted != bridge.flows
    ports = bridge.ports_desc.replace("xid=0x2", "xid=0x9")
    before = {BRIDGE: bridge_state(bridge.flows, bridge.groups, bridge.ports_desc, bridge.fdb)}
    after = {BRIDGE: bridge_state(counted, bridge.groups, ports, aged_fdb)}
    assert state_changes(before, after) == []


def test_a_learned_moved_or_forgotten_mac_is_a_change(kind):
    chassis, _, _ = kind
    bridge = chassis.bridges[BRIDGE]
    state = snapshot_state(chassis)

    def with_fdb(fdb):
        return {**state, BRIDGE: bridge_state(bridge.flows, bridge.groups, bridge.ports_desc,
                                              fdb)}

    assert state_changes(state, with_fdb(_learn(bridge.fdb))) == [
        f"{BRIDGE} MAC table: {NEW_MAC} learned on port 1"]
    moved = bridge.fdb.replace("    2     0  02:42:ac:12:00:04", "    1     0  02:42:ac:12:00:04")
    assert state_changes(state, with_fdb(moved)) == [
        f"{BRIDGE} MAC table: 02:42:ac:12:00:04 moved from port 2 to 1"]
    header_only = bridge.fdb.splitlines()[0] + "\n"
    assert state_changes(state, with_fdb(header_only))[0].startswith(
        f"{BRIDGE} MAC table: 02:42:ac:12:00:02 (port 1) forgotten")


def test_flow_group_and_port_changes_are_changes(kind):
    chassis, _, _ = kind
    bridge = chassis.bridges["br-int"]
    state = snapshot_state(chassis)
    extra = "cookie=0x0, duration=1.0s, table=0, n_packets=0, n_bytes=0, priority=1 actions=drop"
    fewer_groups = bridge.groups[1:]
    assert bridge.groups
    down = bridge.ports_desc.replace("state:      0", "state:      LINK_DOWN", 1)
    after = {**state, "br-int": bridge_state(bridge.flows + [extra], fewer_groups, down,
                                             bridge.fdb)}
    assert state_changes(state, after) == [
        "br-int flows: 1 added, 0 removed", "br-int groups: 0 added, 1 removed",
        "br-int ports changed"]


def test_a_steady_node_agrees_and_nothing_is_noted(kind):
    chassis, traces, mine = kind
    node = FakeNode(chassis, traces)
    report = AgreementReport(total=len(mine))
    compare_on_node(report, NodeSpec(name=NODE), chassis, node, _runs(mine))
    assert report.agreed == len(mine) > 10
    assert (report.disagreements, report.state_changed, report.changes, report.reread) == \
        ([], [], [], [])


def test_a_mac_learned_during_the_comparison_is_not_a_divergence(kind):
    """The issue's failure: a GARP lands between the snapshot reads and ofproto/trace."""
    chassis, traces, mine = kind
    fresh = _with_fdb(chassis, _learn(chassis.bridges[BRIDGE].fdb))

    def garp_then_wrong(n):
        if n == 0:
            node.texts[BRIDGE]["fdb/show"] = _learn(node.texts[BRIDGE]["fdb/show"])
            return _wrong_answer(traces, mine[0])
        return None

    node = FakeNode(chassis, traces, garp_then_wrong)
    report = AgreementReport(total=len(mine))
    reread = []
    compare_on_node(report, NodeSpec(name=NODE), chassis, node, _runs(mine),
                    reread=lambda spec: reread.append(spec.name) or fresh)
    assert report.disagreements == [] and report.state_changed == []
    assert report.agreed == len(mine)
    assert report.changes == [f"{NODE}: {BRIDGE} MAC table: {NEW_MAC} learned on port 1"]
    assert reread == [NODE], "the node was read again before the retry"
    assert node.traces == len(mine) + 1, "only the packet that disagreed was traced again"


def test_a_divergence_on_a_steady_node_is_still_a_divergence(kind):
    """Negative control: the same wrong answer without a state change is reported."""
    chassis, traces, mine = kind
    node = FakeNode(chassis, traces, lambda n: _wrong_answer(traces, mine[0]) if n == 0
                    else None)
    report = AgreementReport(total=len(mine))
    compare_on_node(report, NodeSpec(name=NODE), chassis, node, _runs(mine),
                    reread=lambda spec: pytest.fail("a steady node needs no second reading"))
    assert [d.label for d in report.disagreements] == [mine[0]["label"]]
    assert report.state_changed == [] and report.changes == []


def test_a_node_that_keeps_changing_is_counted_apart(kind):
    chassis, traces, mine = kind
    learned = iter(f"02:00:00:00:01:{i:02x}" for i in range(99))

    def churn(n):
        node.texts[BRIDGE]["fdb/show"] = _learn(node.texts[BRIDGE]["fdb/show"], next(learned))
        return _wrong_answer(traces, mine[0]) if n in (0, len(mine)) else None

    node = FakeNode(chassis, traces, churn)
    report = AgreementReport(total=len(mine))
    compare_on_node(report, NodeSpec(name=NODE), chassis, node, _runs(mine))
    assert report.disagreements == []
    first = mine[0]
    assert report.state_changed == [f"{NODE} {first['label']} ct-next={tuple(first['ct_next'])}"]
    assert report.agreed == len(mine) - 1
    assert len(report.changes) == 2


def test_a_stale_snapshot_is_read_again_or_noted(kind):
    chassis, traces, mine = kind
    node = FakeNode(chassis, traces)
    node.texts[BRIDGE]["fdb/show"] = _learn(node.texts[BRIDGE]["fdb/show"])
    fresh = _with_fdb(chassis, node.texts[BRIDGE]["fdb/show"])
    report = AgreementReport(total=len(mine))
    compare_on_node(report, NodeSpec(name=NODE), chassis, node, _runs(mine),
                    reread=lambda spec: fresh)
    assert report.reread == [f"{NODE}: {BRIDGE} MAC table: {NEW_MAC} learned on port 1"]
    assert report.agreed == len(mine) and not report.notes
    # A snapshot given by the user is compared as it is; the difference is noted.
    report = AgreementReport(total=len(mine))
    compare_on_node(report, NodeSpec(name=NODE), chassis, node, _runs(mine))
    assert report.reread == []
    assert list(report.notes) == [f"{NODE}: the node's state differs from the snapshot "
                                  f"({BRIDGE} MAC table: {NEW_MAC} learned on port 1)"]
