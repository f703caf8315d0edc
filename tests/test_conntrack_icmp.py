"""ICMP as OVS's userspace conntrack keys it: echo by id, errors related by their quote."""

from ofrace.openflow.actions import parse_actions
from ofrace.simulate.conntrack import (
    DNAT,
    EST,
    INV,
    NEW,
    REL,
    RPL,
    SNAT,
    TRK,
    ConntrackTable,
    packet_key,
)

A, B, R, NAT = 0x0A000001, 0x0A000002, 0x0A0000FE, 0x64400001
V6 = (0x20010DB8 << 96) | 1, (0x20010DB8 << 96) | 2


def ct(text):
    (action,) = parse_actions(text)
    return action


def echo(src, dst, icmp_type, **extra):
    return {"dl_type": 0x800, "nw_proto": 1, "nw_src": src, "nw_dst": dst,
            "tp_src": icmp_type, "tp_dst": 0, **extra}


def test_reply_key_is_the_request_key_reversed():
    request = packet_key(echo(A, B, 8, icmp_id=7)).tuple
    reply = packet_key(echo(B, A, 0, icmp_id=7)).tuple
    assert reply == request.reversed()
    assert (request.stype, request.dtype, request.sport, request.dport) == (8, 0, 7, 7)
    other_id = packet_key(echo(B, A, 0, icmp_id=8)).tuple
    assert other_id != request.reversed()     # negative control: the id matters


def test_echo_request_then_reply_then_request():
    table = ConntrackTable()
    first = table.execute(ct("ct(commit,table=1,zone=3)"), echo(A, B, 8))
    assert first.state == TRK | NEW and first.committed
    again = table.execute(ct("ct(table=1,zone=3)"), echo(A, B, 8))
    assert again.state == TRK | NEW           # ICMPS_FIRST: still new until a reply
    reply = table.execute(ct("ct(table=1,zone=3)"), echo(B, A, 0))
    assert reply.state == TRK | EST | RPL
    later = table.execute(ct("ct(table=1,zone=3)"), echo(A, B, 8))
    assert later.state == TRK | EST


def test_echo_reply_without_request_is_invalid():
    out = ConntrackTable().execute(ct("ct(commit,table=1,zone=3)"), echo(B, A, 0))
    assert out.state == TRK | INV and not out.committed and "valid_new" in out.why


def test_echo_with_nonzero_code_is_invalid():
    out = ConntrackTable().execute(ct("ct(commit,table=1,zone=3)"), echo(A, B, 8, tp_dst=1))
    assert out.state == TRK | INV


def test_icmpv6_echo():
    table = ConntrackTable()
    req = {"dl_type": 0x86DD, "nw_proto": 58, "ipv6_src": V6[0], "ipv6_dst": V6[1],
           "tp_src": 128, "tp_dst": 0, "icmp_id": 3}
    rep = dict(req, ipv6_src=V6[1], ipv6_dst=V6[0], tp_src=129)
    assert table.execute(ct("ct(commit,table=1,zone=3)"), req).state == TRK | NEW
    assert table.execute(ct("ct(table=1,zone=3)"), rep).state == TRK | EST | RPL


def test_icmp_through_snat_and_back():
    table = ConntrackTable()
    out = echo(A, B, 8, icmp_id=9)
    first = table.execute(ct("ct(commit,table=1,zone=3,nat(src=100.64.0.1))"), out)
    assert first.state == TRK | NEW | SNAT and out["nw_src"] == NAT
    assert out["tp_src"] == 8 and out["icmp_id"] == 9      # type and id kept
    back = echo(B, NAT, 0, icmp_id=9)
    reply = table.execute(ct("ct(table=1,zone=3,nat)"), back)
    assert reply.state == TRK | EST | RPL | DNAT
    assert back["nw_dst"] == A and back["nw_src"] == B


def test_icmp_error_quoting_a_tcp_connection_is_related():
    table = ConntrackTable()
    syn = {"dl_type": 0x800, "nw_proto": 6, "nw_src": A, "nw_dst": B, "tp_src": 40000,
           "tp_dst": 80, "tcp_flags": 2}
    table.execute(ct("ct(commit,table=1,zone=3)"), dict(syn))
    quoted = {k: syn[k] for k in ("nw_src", "nw_dst", "nw_proto", "tp_src", "tp_dst")}
    ttl_exceeded = echo(R, A, 11, icmp_inner=quoted)      # a router tells the client
    out = table.execute(ct("ct(table=1,zone=3)"), ttl_exceeded)
    assert out.state == TRK | REL | RPL
    unreachable = echo(B, A, 3, tp_dst=3, icmp_inner=quoted)
    assert table.execute(ct("ct(table=1,zone=3)"), unreachable).state == TRK | REL | RPL
    stranger = echo(R, A, 11, icmp_inner=dict(quoted, tp_src=40001))
    assert table.execute(ct("ct(table=1,zone=3)"), stranger).state == TRK | INV
    bare = table.execute(ct("ct(table=1,zone=3)"), echo(R, A, 11))
    assert bare.state == TRK | INV and "icmp_inner" in bare.why


def test_icmp_error_through_snat_is_translated_back():
    table = ConntrackTable()
    syn = {"dl_type": 0x800, "nw_proto": 6, "nw_src": A, "nw_dst": B, "tp_src": 40000,
           "tp_dst": 80, "tcp_flags": 2}
    table.execute(ct("ct(commit,table=1,zone=3,nat(src=100.64.0.1))"), syn)
    quoted = {k: syn[k] for k in ("nw_src", "nw_dst", "nw_proto", "tp_src", "tp_dst")}
    error = echo(R, NAT, 11, icmp_inner=quoted)
    out = table.execute(ct("ct(table=1,zone=3,nat)"), error)
    assert out.state & (REL | RPL) == REL | RPL
    assert error["nw_dst"] == A and error["nw_src"] == R
    assert error["icmp_inner"]["nw_src"] == A
