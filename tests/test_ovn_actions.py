"""Each OVS action OVN emits (docs/actions.md) that no other test runs through the
engine: what it does to the packet, in the flow shape OVN writes it."""

import pytest

from ofrace.openflow.bridge import BridgeIndex
from ofrace.simulate.engine import ChassisDatapath
from ofrace.snapshot import Bridge, Interface

IP = {"in_port": 1, "dl_type": 0x800, "nw_proto": 17, "nw_ttl": 64, "dl_src": 0x0A0000000001,
      "nw_src": 0x0A000001, "nw_dst": 0x0A000002, "tp_src": 5, "tp_dst": 53}


def _run(actions: str, packet=None, extra=()):
    ports = [Interface(name=f"p{n}", bridge="br0", type="", ofport=n, options={},
                       external_ids={}, error=None, mac_in_use=None) for n in (1, 2, 3)]
    lines = [f"table=0, priority=1,in_port=1 actions={actions}", *extra]
    datapath = ChassisDatapath("hv", {"br0": BridgeIndex(Bridge(name="br0", flows=lines),
                                                         ports)})
    return datapath.inject("br0", dict(packet or IP))


def _outputs(exits):
    return [(e.port, e.packet) for e in exits if e.kind == "output"]


def test_push_vlan_and_vid_then_strip_vlan():
    """physical.c: a localnet port with a tag pushes the VLAN (push_vlan + mod_vlan_vid);
    a tagged frame coming in has it stripped."""
    _, exits = _run("push_vlan:0x8100,mod_vlan_vid:42,output:2,strip_vlan,output:3")
    (p2, tagged), (p3, plain) = _outputs(exits)
    assert (p2, tagged["vlan_tci"]) == (2, 0x1000 | 42)
    assert (p3, plain["vlan_tci"]) == (3, 0)


def test_mod_dl_src_and_mod_nw_ttl():
    """physical.c: the chassis MAC as source on a provider network (SET_ETH_SRC); the
    inner TTL set in the ICMP-needs-frag reply (SET_IP_TTL, OVN >= 23.06)."""
    _, exits = _run("mod_dl_src:02:00:00:00:00:07,mod_nw_ttl:255,output:2")
    ((_, packet),) = _outputs(exits)
    assert (packet["dl_src"], packet["nw_ttl"]) == (0x020000000007, 255)


@pytest.mark.parametrize("reported", ["meter:3", "sample(probability=65535,collector_set_id=1,"
                                      "obs_domain_id=2,obs_point_id=3)", "set_queue:5",
                                      "note:00.01.02"])
def test_reported_actions_leave_the_packet_as_it_was(reported):
    """meter (a rate OVN's meters set: its drops under load are not modelled), sample
    (IPFIX), set_queue (QoS priority), note: the packet goes on unchanged."""
    root, exits = _run(f"{reported},output:2")
    assert _outputs(exits) == [(2, {**IP})]
    assert any(reported.split(":")[0].split("(")[0] in s.text for s in root.walk())


def test_ct_clear_forgets_conntrack_state():
    _, exits = _run("ct_clear,output:2", {**IP, "ct_state": 0x21, "ct_zone": 5, "ct_mark": 1})
    ((_, packet),) = _outputs(exits)
    assert not {"ct_state", "ct_zone", "ct_mark"} & set(packet)


def test_all_group_sends_a_copy_per_bucket():
    """OVN writes only select groups (lib/actions.c); an 'all' group (another
    controller's) sends a real copy per bucket, not alternatives: no branch labels."""
    from ofrace.openflow.bridge import parse_groups

    ports = [Interface(name=f"p{n}", bridge="br0", type="", ofport=n, options={},
                       external_ids={}, error=None, mac_in_use=None) for n in (1, 2, 3)]
    bridge = Bridge(name="br0", flows=["table=0, priority=1,in_port=1 actions=group:4"],
                    groups=["group_id=4,type=all,bucket=bucket_id:0,actions=output:2,"
                            "bucket=bucket_id:1,actions=output:3"])
    assert parse_groups(bridge.groups)[0].type == "all"
    datapath = ChassisDatapath("hv", {"br0": BridgeIndex(bridge, ports)})
    root, exits = datapath.inject("br0", dict(IP))
    assert [e.port for e in exits] == [2, 3]
    assert not any("branch" in s.data for s in root.walk())
