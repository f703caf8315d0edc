"""Action decoding (on top of ovs.flow) and execution of the less common actions."""

from ofrace.openflow.actions import (
    Controller,
    Ct,
    Learn,
    Move,
    Output,
    Resubmit,
    SetField,
    parse_actions,
)
from ofrace.openflow.bridge import BridgeIndex
from ofrace.simulate.engine import ChassisDatapath
from ofrace.snapshot import Bridge, Interface


def test_decoding_normalises_field_names():
    acts = parse_actions("load:0x1->NXM_NX_REG10[7],move:NXM_NX_REG14[0..14]->"
                         "NXM_NX_TUN_METADATA0[16..30],output:NXM_NX_REG15[],resubmit(,8),"
                         "ct(commit,zone=NXM_NX_REG13[0..15],nat(dst=10.0.0.1:80)),"
                         "controller(userdata=00.00.00.07.00.00.00.00,meter_id=2),"
                         "learn(table=69,NXM_OF_IP_SRC[],load:0x1->NXM_NX_REG10[7])")
    load, move, out, resub, ct, ctrl, learn = acts
    assert load == SetField(load.target, 0x80, 0x80) and load.target.name == "reg10"
    assert isinstance(move, Move) and move.dst.name == "tun_metadata0"
    assert isinstance(out, Output) and out.source.name == "reg15"
    assert resub == Resubmit(None, 8)
    assert isinstance(ct, Ct) and ct.nat.addr_min == "10.0.0.1" and ct.nat.port_min == 80
    assert isinstance(ctrl, Controller) and ctrl.userdata[3] == 7 and ctrl.meter_id == 2
    assert isinstance(learn, Learn)


def test_vlan_views_write_vlan_tci():
    (vid,) = parse_actions("mod_vlan_vid:100")
    assert (vid.target.name, vid.value, vid.mask) == ("vlan_tci", 0x1064, 0x1FFF)
    (pcp,) = parse_actions("set_field:5->vlan_pcp")
    assert (pcp.value, pcp.mask) == (0x1000 | (5 << 13), 0xF000)


def _run(lines, packet):
    ports = [Interface(name=f"p{n}", bridge="br0", type="", ofport=n, options={},
                       external_ids={}, error=None, mac_in_use=None) for n in (1, 2, 3, 5, 9)]
    index = BridgeIndex(Bridge(name="br0", flows=lines), ports)
    datapath = ChassisDatapath("hv", {"br0": index})
    return datapath.inject("br0", packet)


def test_push_pop_move_and_in_port_rule():
    root, exits = _run([
        "table=0, priority=1,in_port=1 actions=push:NXM_OF_IN_PORT[],"
        "load:0xffff->NXM_OF_IN_PORT[],resubmit(,1),pop:NXM_OF_IN_PORT[],output:1,"
        "move:NXM_NX_REG0[0..15]->NXM_OF_TCP_DST[],resubmit(,2)",
        "table=1, priority=1 actions=output:1",
        "table=2, priority=1,tcp,tp_dst=7 actions=output:2",
    ], {"in_port": 1, "dl_type": 0x800, "nw_proto": 6, "reg0": 7})
    # output:1 inside table 1 happens (in_port was 0xffff); the one after pop is skipped.
    assert [(e.kind, e.port) for e in exits] == [("output", 1), ("output", 2)]
    skipped = [s for s in root.walk() if s.kind == "skip"]
    assert len(skipped) == 1 and "input port" in skipped[0].text


def test_dec_ttl_expiry_stops_the_flow_only():
    _, exits = _run([
        "table=0, priority=1 actions=resubmit(,1),output:3",
        "table=1, priority=1 actions=dec_ttl,output:2",
    ], {"in_port": 1, "dl_type": 0x800, "nw_ttl": 1})
    assert [e.port for e in exits] == [3]


def test_clone_keeps_changes_inside_and_exit_stops_everything():
    _, exits = _run([
        "table=0, priority=1 actions=clone(set_field:9->reg1,resubmit(,1)),resubmit(,1)",
        "table=1, priority=10,reg1=9 actions=output:9",
        "table=1, priority=1 actions=output:1",
    ], {"in_port": 5})
    assert [e.port for e in exits] == [9, 1]
    _, exits = _run(["table=0, priority=1 actions=resubmit(,1),output:2",
                     "table=1, priority=1 actions=exit"], {"in_port": 5})
    assert exits[0].kind == "drop"


def test_learn_adds_a_flow_for_later_lookups():
    root, exits = _run([
        "table=0, priority=1 actions=learn(table=5,priority=7,NXM_OF_ETH_SRC[]=NXM_OF_ETH_DST[],"
        "load:0x2a->NXM_NX_REG3[]),resubmit(,5)",
        "table=5, priority=1 actions=output:1",
    ], {"in_port": 1, "dl_src": 0xAA, "dl_dst": 0xAA})
    assert any(s.kind == "learn" and "priority=7" in s.text for s in root.walk())
    # the learned flow (dl_src == 0xaa) matches in table 5 ahead of the priority-1 flow
    assert exits[0].kind == "drop"
