"""Connection tracking across directions: new, commit with NAT, reply, reverse NAT."""

from ofrace.openflow.actions import parse_actions
from ofrace.simulate.conntrack import (
    DNAT,
    EST,
    NEW,
    RPL,
    SNAT,
    TRK,
    ConntrackTable,
    ForcedConntrack,
    format_ct_state,
    parse_ct_state,
)
from ofrace.simulate.packet import read, write

SYN = {"dl_type": 0x800, "nw_proto": 6, "nw_src": 0xAC120001, "nw_dst": 0xAC120004,
       "tp_src": 12345, "tp_dst": 30007, "tcp_flags": 0x002, "reg11": 13}


def ct(text):
    (action,) = parse_actions(text)
    return action


def test_dnat_then_reply_then_forward():
    table = ConntrackTable()
    packet = dict(SYN)
    first = table.execute(ct("ct(table=14,zone=NXM_NX_REG11[0..15],nat)"), packet)
    assert first.state == TRK | NEW and not first.committed
    lb = table.execute(ct("ct(commit,table=16,zone=NXM_NX_REG11[0..15],"
                          "nat(dst=10.244.1.3:80),exec(set_field:0x2/0x2->ct_mark))"), packet)
    assert lb.committed and lb.state == TRK | NEW | DNAT
    assert (packet["nw_dst"], packet["tp_dst"]) == (0x0AF40103, 80)
    assert lb.mark == 2
    reply = {"dl_type": 0x800, "nw_proto": 6, "nw_src": 0x0AF40103, "nw_dst": 0xAC120001,
             "tp_src": 80, "tp_dst": 12345, "tcp_flags": 0x012, "reg11": 13}
    back = table.execute(ct("ct(table=14,zone=NXM_NX_REG11[0..15],nat)"), reply)
    assert back.state == TRK | EST | RPL | SNAT  # un-DNAT rewrites the source
    assert (reply["nw_src"], reply["tp_src"]) == (0xAC120004, 30007)  # un-DNAT
    again = dict(SYN)
    fwd = table.execute(ct("ct(table=14,zone=NXM_NX_REG11[0..15],nat)"), again)
    assert fwd.state & EST and not fwd.state & RPL
    assert again["nw_dst"] == 0x0AF40103


def test_zones_are_separate():
    table = ConntrackTable()
    table.execute(ct("ct(commit,zone=5)"), dict(SYN))
    other = table.execute(ct("ct(table=1,zone=6)"), dict(SYN))
    assert other.state == TRK | NEW


def test_snat_reply_is_reversed():
    table = ConntrackTable()
    packet = dict(SYN)
    table.execute(ct("ct(commit,table=1,zone=7,nat(src=100.64.0.3))"), packet)
    assert packet["nw_src"] == 0x64400003
    reply = {"dl_type": 0x800, "nw_proto": 6, "nw_src": 0xAC120004, "nw_dst": 0x64400003,
             "tp_src": 30007, "tp_dst": 12345, "tcp_flags": 0x012}
    out = table.execute(ct("ct(table=1,zone=7,nat)"), reply)
    assert out.state & RPL and out.state & DNAT  # un-SNAT rewrites the destination
    assert reply["nw_dst"] == 0xAC120001


def test_forced_states_in_order_like_ct_next():
    forced = ForcedConntrack([parse_ct_state("trk,est"), parse_ct_state("+trk+new")])
    a = forced.execute(ct("ct(table=1,zone=1)"), dict(SYN))
    no_table = forced.execute(ct("ct(commit,zone=1)"), dict(SYN))
    b = forced.execute(ct("ct(table=2,zone=1)"), dict(SYN))
    c = forced.execute(ct("ct(table=3,zone=1)"), dict(SYN))
    assert [a.state, b.state, c.state] == [TRK | EST, TRK | NEW, TRK | NEW]
    assert no_table.state == TRK | NEW
    assert format_ct_state(TRK | EST | RPL) == "est+rpl+trk"


def test_wide_registers_overlay_32_bit_ones():
    packet = {}
    write(packet, "xxreg0", 0x1 << 96, 0x1 << 96)
    assert packet == {"reg0": 1}
    write(packet, "xreg4", 0x4, 0x4)
    assert packet["reg9"] == 4
    assert read(packet, "xreg4") == 4
    assert read(packet, "xxreg0") == 1 << 96
