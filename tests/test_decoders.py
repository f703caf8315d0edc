"""One table per action decoder, as ovs.flow's own tests have: action text -> record.

Every key of ``DECODERS`` appears here (checked), with the text OVS prints for it;
what each record does when executed is tested in test_actions.py and test_engine*.
"""

from __future__ import annotations

import pytest

from ofrace.openflow.actions import (
    DECODERS,
    ActionError,
    Bundle,
    CheckPktLarger,
    Clone,
    Conjunction,
    Controller,
    Ct,
    FieldRef,
    GotoTable,
    Group,
    Learn,
    Move,
    Multipath,
    Nat,
    Output,
    Pop,
    Push,
    PushVlan,
    Resubmit,
    SetField,
    Simple,
    Unknown,
    parse_actions,
)
from ofrace.openflow.fields import SPECIAL_PORTS

M32 = 0xFFFFFFFF
REG0 = FieldRef("reg0", 0, 31)

TABLE = {
    "output": [("output:3", Output(port=3)),
               ("output:NXM_NX_REG15[]", Output(source=FieldRef("reg15", 0, 31))),
               ("output:NXM_NX_REG15[0..15]", Output(source=FieldRef("reg15", 0, 15)))],
    "resubmit": [("resubmit(,8)", Resubmit(None, 8)), ("resubmit:3", Resubmit(3, None)),
                 ("resubmit(3,4,ct)", Resubmit(3, 4, True))],
    "goto_table": [("goto_table:3", GotoTable(3))],
    "set_field": [("set_field:0x1/0x1->reg0", SetField(REG0, 1, 1)),
                  ("set_field:1->xreg0", SetField(FieldRef("xreg0", 0, 63), 1, (1 << 64) - 1)),
                  ("set_field:0a:00:00:00:00:01->eth_src",
                   SetField(FieldRef("dl_src", 0, 47), 0x0A0000000001, (1 << 48) - 1))],
    "load": [("load:0x1->NXM_NX_REG10[7]", SetField(FieldRef("reg10", 7, 7), 0x80, 0x80)),
             ("load:0x2->OXM_OF_METADATA[]",
              SetField(FieldRef("metadata", 0, 63), 2, (1 << 64) - 1))],
    "move": [("move:NXM_NX_REG14[0..14]->NXM_NX_TUN_METADATA0[16..30]",
              Move(FieldRef("reg14", 0, 14), FieldRef("tun_metadata0", 16, 30)))],
    "push": [("push:NXM_NX_REG0[]", Push(REG0))],
    "pop": [("pop:NXM_NX_REG0[]", Pop(REG0))],
    "ct": [("ct(commit,zone=NXM_NX_REG13[0..15],nat(dst=10.0.0.1:80))",
            Ct(commit=True, zone=FieldRef("reg13", 0, 15), nat=Nat("dst", "10.0.0.1",
                                                                   "10.0.0.1", 80, 80))),
           ("ct(table=5,zone=8,exec(load:1->NXM_NX_CT_MARK[]))",
            Ct(zone=8, table=5, exec=(SetField(FieldRef("ct_mark", 0, 31), 1, M32),)))],
    "ct_clear": [("ct_clear", Simple("ct_clear"))],
    "dec_ttl": [("dec_ttl", Simple("dec_ttl"))],
    "drop": [("drop", Simple("drop"))],
    "exit": [("exit", Simple("exit"))],
    "note": [("note:00.01", Simple("note", "00.01"))],
    "meter": [("meter:3", Simple("meter", 3))],
    "sample": [("sample(probability=1,collector_set_id=2)",
                Simple("sample", {"probability": 1, "collector_set_id": 2}))],
    "strip_vlan": [("strip_vlan", Simple("pop_vlan"))],
    "pop_vlan": [("pop_vlan", Simple("pop_vlan"))],
    "push_vlan": [("push_vlan:0x8100", PushVlan(0x8100))],
    "group": [("group:7", Group(7))],
    "clone": [("clone(ct_clear,resubmit(,8))", Clone((Simple("ct_clear"), Resubmit(None, 8))))],
    "controller": [("controller(userdata=00.00.00.07.00.00.00.00,meter_id=2)",
                    Controller(userdata=bytes([0, 0, 0, 7, 0, 0, 0, 0]), meter_id=2)),
                   ("controller(userdata=00.00.00.00.00.00.00.00,pause)",
                    Controller(userdata=bytes(8), pause=True))],
    "CONTROLLER": [("CONTROLLER:65535", Controller(max_len=65535))],
    "check_pkt_larger": [("check_pkt_larger(1514)->NXM_NX_REG0[6]",
                          CheckPktLarger(1514, FieldRef("reg0", 6, 6)))],
    "conjunction": [("conjunction(5,1/2)", Conjunction(5, 1, 2))],
    "mod_vlan_vid": [("mod_vlan_vid:100",
                      SetField(FieldRef("vlan_tci", 0, 15), 0x1064, 0x1FFF))],
    "mod_vlan_pcp": [("mod_vlan_pcp:3", SetField(FieldRef("vlan_tci", 0, 15), 0x7000, 0xF000))],
    "mod_dl_src": [("mod_dl_src:0a:00:00:00:00:01",
                    SetField(FieldRef("dl_src", 0, 47), 0x0A0000000001, (1 << 48) - 1))],
    "mod_dl_dst": [("mod_dl_dst:0a:00:00:00:00:02",
                    SetField(FieldRef("dl_dst", 0, 47), 0x0A0000000002, (1 << 48) - 1))],
    "mod_nw_src": [("mod_nw_src:10.0.0.1", SetField(FieldRef("nw_src", 0, 31), 0x0A000001, M32))],
    "mod_nw_dst": [("mod_nw_dst:10.0.0.2", SetField(FieldRef("nw_dst", 0, 31), 0x0A000002, M32))],
    "mod_tp_src": [("mod_tp_src:80", SetField(FieldRef("tp_src", 0, 15), 80, 0xFFFF))],
    "mod_tp_dst": [("mod_tp_dst:443", SetField(FieldRef("tp_dst", 0, 15), 443, 0xFFFF))],
    "mod_nw_ttl": [("mod_nw_ttl:9", SetField(FieldRef("nw_ttl", 0, 7), 9, 0xFF))],
    "mod_nw_tos": [("mod_nw_tos:32", SetField(FieldRef("nw_tos", 0, 7), 32, 0xFF))],
    "mod_nw_ecn": [("mod_nw_ecn:1", SetField(FieldRef("nw_ecn", 0, 1), 1, 3))],
    # OVN's HA gateway output (controller/physical.c), as OVS 3.1 prints it
    "bundle": [("bundle(eth_src,0,active_backup,ofport,members:5,6)",
                Bundle("eth_src", 0, "active_backup", (5, 6))),
               ("bundle(symmetric_l4,7,hrw,ofport,members:2,3,4,5)",
                Bundle("symmetric_l4", 7, "hrw", (2, 3, 4, 5)))],
    "bundle_load": [("bundle_load(eth_src,3,hrw,ofport,NXM_NX_REG0[0..15],members:2,3)",
                     Bundle("eth_src", 3, "hrw", (2, 3), FieldRef("reg0", 0, 15)))],
    "set_queue": [("set_queue:3", Simple("set_queue", 3))],
    "multipath": [("multipath(symmetric_l3l4+udp,5,hash_threshold,4,0,NXM_NX_REG1[0..3])",
                   Multipath("symmetric_l3l4+udp", 5, "hash_threshold", 4, 0,
                             FieldRef("reg1", 0, 3)))],
}
for _reserved in ("NORMAL", "FLOOD", "ALL", "LOCAL", "IN_PORT"):
    TABLE[_reserved.lower()] = [(_reserved.lower(), Output(port=SPECIAL_PORTS[_reserved]))]
    TABLE[_reserved] = [(_reserved, Output(port=SPECIAL_PORTS[_reserved]))]
TABLE["learn"] = []  # behaviour, not shape: tests/test_learn.py

CASES = [(key, text, record) for key, rows in TABLE.items() for text, record in rows]


def test_every_decoder_has_a_table():
    assert set(DECODERS) == set(TABLE)


@pytest.mark.parametrize(("key", "text", "record"), CASES,
                         ids=[f"{key}:{text[:40]}" for key, text, _ in CASES])
def test_decoder(key, text, record):
    assert parse_actions(text) == (record,)


@pytest.mark.parametrize("text", ["dec_mpls_ttl", "fin_timeout(idle_timeout=5)", "enqueue:1:2",
                                  "output:NXM_NX_NOPE[]",
                                  "bundle(eth_src,0,no_such_algorithm,ofport,members:1)"])
def test_what_no_decoder_knows_is_unknown_not_an_error(text):
    """ovs.flow reads it, ofrace does not simulate it: a gap at run time, not a crash."""
    (record,) = parse_actions(text)
    assert isinstance(record, Unknown)


@pytest.mark.parametrize("text", ["bogus_action:1", "set_field:1->no_such_field"])
def test_what_ovs_flow_cannot_read_is_an_action_error(text):
    with pytest.raises(ActionError):
        parse_actions(text)


def test_learn_keeps_ovs_flows_spec():
    (record,) = parse_actions("learn(table=69,NXM_OF_IP_SRC[],load:0x1->NXM_NX_REG10[7])")
    assert isinstance(record, Learn) and {"table": 69} in record.spec
