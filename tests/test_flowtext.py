"""Reading dump-flows lines: header, match tokens, masks, flags, composites."""

import pytest

from ofrace.openflow.bridge import BridgeIndex
from ofrace.openflow.fields import CT_STATE_BITS, TCP_FLAG_BITS
from ofrace.openflow.flowtext import (
    DEFAULT_PRIORITY,
    FlowSyntaxError,
    TokenCache,
    line_cookie,
    parse_flow,
    parse_packet,
    scan_line,
)
from ofrace.snapshot import Bridge

# A line as the seed's ovn-trace --ovs printed it (ovs-ofctl dump-flows format).
SEED_LINE = ("cookie=0x5f2e1810, duration=5184.167s, table=43, n_packets=0, n_bytes=0, "
             "idle_age=5184, priority=1,ct_state=+est+trk,ct_label=0/0x1,metadata=0x5 "
             "actions=set_field:0x400000000000000000000000000/0x400000000000000000000000000"
             "->xxreg0,resubmit(,44)")


def test_seed_line():
    flow = parse_flow(SEED_LINE, TokenCache())
    assert (flow.table, flow.priority, flow.cookie) == (43, 1, 0x5F2E1810)
    est_trk = CT_STATE_BITS["est"] | CT_STATE_BITS["trk"]
    assert dict((f, (v, m)) for f, v, m in flow.match) == {
        "ct_state": (est_trk, est_trk), "ct_label": (0, 1), "metadata": (5, (1 << 64) - 1)}
    assert flow.actions.endswith("->xxreg0,resubmit(,44)")


def test_every_recorded_flow_parses(kind_snapshot):
    for chassis in kind_snapshot.chassis.values():
        for bridge in chassis.bridges.values():
            index = BridgeIndex(bridge, chassis.interfaces, chassis.name)
            assert index.unparsed == []
            assert index.flow_count == len(bridge.flows)


@pytest.mark.parametrize("token, expect", [
    ("tcp", [("dl_type", 0x0800, 0xFFFF), ("nw_proto", 6, 0xFF)]),
    ("ipv6", [("dl_type", 0x86DD, 0xFFFF)]),
    ("ct_state=-new+est-rel+trk", [("ct_state", 0x22, 0x27)]),
    ("tcp_flags=+syn-ack", [("tcp_flags", TCP_FLAG_BITS["syn"], 0x12)]),
    ("nw_frag=later", [("nw_frag", 3, 3)]),
    ("nw_frag=not_later", [("nw_frag", 0, 2)]),
    ("nw_src=10.244.0.0/16", [("nw_src", 0x0AF40000, 0xFFFF0000)]),
    ("arp_tpa=10.0.0.1", [("nw_dst", 0x0A000001, 0xFFFFFFFF)]),
    ("icmp_type=8", [("tp_src", 8, 0xFFFF)]),
    ("dl_dst=01:00:00:00:00:00/01:00:00:00:00:00", [("dl_dst", 1 << 40, 1 << 40)]),
    ("ipv6_src=fe80::/10", [("ipv6_src", 0xFE80 << 112, ((1 << 10) - 1) << 118)]),
    ("dl_vlan=100", [("vlan_tci", 0x1064, 0x1FFF)]),
    ("xreg4=0x4/0x4", [("reg9", 4, 4)]),
    # xxreg0's top 32 bits are reg0: the seed's reg0[0] = 1 is xxreg0 bit 96
    ("xxreg0=0x1000000000000000000000000/0x1000000000000000000000000",
     [("reg0", 1, 1)]),
    ("tun_metadata0=0x10002", [("tun_metadata0", 0x10002, (1 << 992) - 1)]),
    ("in_port=LOCAL", [("in_port", 0xFFFE, 0xFFFFFFFF)]),
])
def test_tokens(token, expect):
    assert list(TokenCache().items(token)) == expect


def test_default_priority_and_empty_match():
    table, priority, shape, values, _ = scan_line(
        "cookie=0x0, duration=1.2s, table=0, n_packets=0, n_bytes=0, idle_age=1, "
        "actions=NORMAL", TokenCache())
    assert (table, priority, shape, values) == (0, DEFAULT_PRIORITY, (), ())
    assert line_cookie("cookie=0x2a, table=3, priority=1 actions=drop") == 0x2A


def test_unknown_tokens_are_kept_raw_and_reported():
    lines = ["cookie=0x1, table=0, priority=10,in_port=1 actions=drop",
             "cookie=0x2, table=0, priority=20,frobnicate=7 actions=drop"]
    index = BridgeIndex(Bridge(name="br-int", flows=lines))
    assert index.flow_count == 1
    assert len(index.unparsed) == 1
    assert "frobnicate" in index.unparsed[0].reason
    assert index.unparsed[0].line == lines[1]


def test_microflow_round_trip():
    packet = parse_packet("in_port=3,tcp,dl_src=02:42:7a:79:82:ca,nw_src=172.18.0.1,"
                             "nw_dst=172.18.0.4,nw_ttl=64,tcp_src=12345,tcp_dst=30007")
    assert packet == {"in_port": 3, "dl_type": 0x800, "nw_proto": 6, "dl_src": 0x02427A7982CA,
                      "nw_src": 0xAC120001, "nw_dst": 0xAC120004, "nw_ttl": 64,
                      "tp_src": 12345, "tp_dst": 30007}
    with pytest.raises(FlowSyntaxError):
        parse_packet("priority=3,ip")


@pytest.mark.parametrize("token", [
    "reg0=0xa00970b", "metadata=0x1f5", "in_port=7", "tp_dst=80", "dl_dst=0a:01:00:00:97:02",
    "arp_tpa=10.0.151.11", "nw_src=255.255.255.255", "priority=100", "ct_mark=0x2",
])
def test_plain_readers_agree_with_the_full_parser(token):
    cache = TokenCache()
    assert cache.items(token) == TokenCache()._parse(token)
    assert token in cache.parts


@pytest.mark.parametrize("token", [
    "nw_src=10.0.0.256", "nw_src=10.1", "nw_src=1.2.3.-4", "reg0=0xzz",
    "dl_dst=0a:01:00:00:97", "tp_dst=eighty", "in_port=nosuchport",
])
def test_plain_readers_leave_bad_values_to_the_full_parser(token):
    with pytest.raises(FlowSyntaxError):
        TokenCache().items(token)


def test_tables_are_indexed_when_first_looked_up(kind_snapshot):
    chassis = kind_snapshot.chassis["ovn-worker"]
    bridge = chassis.bridges["br-int"]
    index = BridgeIndex(bridge, chassis.interfaces, chassis.name)
    assert index.tables == {}
    index.lookup(8, {"in_port": 1})
    assert list(index.tables) == [8]
    numbers = {int(line.split("table=")[1].split(",")[0]) for line in bridge.flows}
    assert 8 in numbers and len(numbers) > 10
    index.build_all()
    assert set(index.tables) == numbers
    assert index.flow_count == len(bridge.flows)


def test_unreadable_flows_of_a_lazy_table_are_its_gaps():
    lines = ["cookie=0x1, duration=1s, table=0, n_packets=0, priority=10,in_port=1 actions=drop",
             "cookie=0x2, duration=1s, table=5, n_packets=0, priority=20,frobnicate=7 "
             "actions=drop",
             "cookie=0x3, duration=1s, table=x, n_packets=0, priority=20 actions=drop"]
    index = BridgeIndex(Bridge(name="br-int", flows=lines))
    assert [u.line for u in index.gaps(5)] == [lines[1]]
    assert [u.line for u in index.gaps(0)] == []
    assert sorted(u.line for u in index.unparsed) == sorted(lines[1:])
    assert index.flow_count == 1
