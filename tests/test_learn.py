"""learn(): the flow it installs, from the packet that ran it, and what later lookups see.

The specs are the shapes OVN writes (lb affinity, MAC learning); the expected flows
follow ovs-actions(7) "learn": a field alone matches the packet's value, FIELD=VALUE
matches a constant, load/output take the packet's value or a constant."""

from __future__ import annotations

import pytest

from ofrace.openflow.actions import parse_actions
from ofrace.openflow.bridge import BridgeIndex
from ofrace.simulate.learn import learn_flow
from ofrace.snapshot import Bridge

PACKET = {"in_port": 1, "metadata": 0x5, "dl_type": 0x0800, "nw_src": 0x0A000005,
          "nw_dst": 0x0A000001, "nw_proto": 6, "tp_dst": 80, "reg0": 0x0A0000AA,
          "dl_src": 0x0A0000000005}
AFFINITY = ("learn(table=78,idle_timeout=30,priority=100,delete_learned,cookie=0x5,"
            "OXM_OF_METADATA[],eth_type=0x800,NXM_OF_IP_SRC[],ip_dst=10.0.0.1,nw_proto=6,"
            "tcp_dst=80,load:NXM_NX_REG0[]->NXM_NX_REG4[],load:0x1->NXM_NX_REG10[14])")


def _learn(spec: str, packet: dict) -> tuple[BridgeIndex, str]:
    bridge = BridgeIndex(Bridge(name="br0", flows=["table=78, priority=0 actions=drop"]))
    (action,) = parse_actions(spec)
    return bridge, learn_flow(bridge, action, packet)


@pytest.mark.parametrize(("spec", "in_line"), [
    (AFFINITY, ["cookie=0x5", "table=78", "priority=100", "metadata=0x5/",
                "nw_src=0xa000005/0xffffffff", "nw_dst=0xa000001/0xffffffff",
                "load:0xa0000aa->reg4[0..31]", "load:0x1->reg10[14..14]"]),
    ("learn(table=71,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[])",
     ["table=71", "priority=32768", "dl_dst=0xa0000000005/0xffffffffffff", "output:1"]),
    ("learn(table=5)", ["table=5", "actions=drop"]),
])
def test_the_learned_flow_is_built_from_the_packet(spec, in_line):
    _, line = _learn(spec, PACKET)
    for part in in_line:
        assert part in line, (part, line)


def test_the_learned_flow_matches_the_same_connection_only():
    bridge, _ = _learn(AFFINITY, PACKET)
    assert bridge.learned == [1]
    entry, _ = bridge.lookup(78, PACKET)
    assert entry is not None and entry.priority == 100
    other_client = {**PACKET, "nw_src": 0x0A000006}
    entry, _ = bridge.lookup(78, other_client)
    assert entry is not None and entry.priority == 0  # negative control: only the default


def test_a_learned_load_runs_when_the_flow_is_hit():
    from ofrace.simulate.engine import ChassisDatapath

    bridge = BridgeIndex(Bridge(name="br0", flows=[
        f"table=0, priority=1 actions={AFFINITY},resubmit(,78),output:2",
        "table=78, priority=0 actions=drop",
    ]))
    root, exits = ChassisDatapath("hv", {"br0": bridge}).inject("br0", dict(PACKET))
    (out,) = [e for e in exits if e.kind == "output" or e.kind == "drop"]
    assert out.packet["reg4"] == PACKET["reg0"] and out.packet["reg10"] & (1 << 14)
