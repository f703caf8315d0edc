"""Microflows as users give them to ovn-trace: canonical values, and errors that point."""

import pytest

from ofrace.errors import InputError
from ofrace.openflow.fields import COMPOSITES, FIELDS
from ofrace.ovn.microflow import (
    LOGICAL_FIELDS,
    PREDICATES,
    MicroflowError,
    _field_choices,
    _name_choices,
    parse_microflow,
)

SEED = ('inport == "breth0_ovn-worker" && eth.src == 02:42:7a:79:82:ca && '
        'eth.dst == 02:42:ac:12:00:04 && ip4.src == 172.18.0.1 && ip4.dst == 172.18.0.4 && '
        'ip.ttl == 64 && tcp.src == 12345 && tcp.dst == 30007')


def error_of(text: str) -> MicroflowError:
    with pytest.raises(MicroflowError) as info:
        parse_microflow(text)
    return info.value


def points_at(text: str, fragment: str, occurrence: int = 1) -> int:
    """Offset of the ``occurrence``-th ``fragment`` in ``text``."""
    position = -1
    for _ in range(occurrence):
        position = text.index(fragment, position + 1)
    return position


# --------------------------------------------------------------------------- values


def test_seed_microflow_gives_exact_canonical_values():
    flow = parse_microflow(SEED)
    assert flow.inport == "breth0_ovn-worker"
    assert flow.outport is None
    assert flow.fields == {
        "dl_src": 0x02427A7982CA, "dl_dst": 0x0242AC120004, "dl_type": 0x0800,
        "nw_src": 0xAC120001, "nw_dst": 0xAC120004, "nw_ttl": 64,
        "nw_proto": 6, "tp_src": 12345, "tp_dst": 30007,
    }
    assert all(flow.masks[name] == FIELDS[name].full for name in flow.fields)
    assert [t.name for t in flow.terms] == [
        "inport", "eth.src", "eth.dst", "ip4.src", "ip4.dst", "ip.ttl", "tcp.src", "tcp.dst"]
    tcp_dst = flow.terms[-1]
    assert tcp_dst.text == "tcp.dst == 30007"
    assert SEED[tcp_dst.start:tcp_dst.end] == "tcp.dst == 30007"
    assert SEED[tcp_dst.value_start:tcp_dst.end] == "30007"
    assert tcp_dst.value == 30007


def test_ipv6_icmpv6_neighbor_solicitation():
    flow = parse_microflow(
        'inport == "vm1" && eth.src == 0a:00:00:00:00:01 && eth.dst == 33:33:ff:00:00:02 && '
        "ip6.src == fe80::1 && ip6.dst == ff02::1:ff00:2 && nd_ns && nd.target == fd00::2 && "
        "nd.sll == 0a:00:00:00:00:01")
    assert flow.fields == {
        "dl_src": 0x0A0000000001, "dl_dst": 0x3333FF000002, "dl_type": 0x86DD,
        "ipv6_src": 0xFE80 << 112 | 1, "ipv6_dst": 0xFF02 << 112 | 0x1FF000002,
        "nw_proto": 58, "tp_src": 135, "tp_dst": 0, "nw_ttl": 255,
        "nd_target": 0xFD00 << 112 | 2, "arp_sha": 0x0A0000000001,
    }


def test_nd_target_settled_by_icmp6_type_and_tll_implies_advertisement():
    flow = parse_microflow("icmp6.type == 136 && nd.target == ::2 && nd.tll == 0a:00:00:00:00:02")
    assert flow.fields == {"dl_type": 0x86DD, "nw_proto": 58, "tp_src": 136, "tp_dst": 0,
                           "nw_ttl": 255, "nd_target": 2, "arp_tha": 0x0A0000000002}


def test_icmpv6_echo_and_ipv6_forms():
    flow = parse_microflow("ip6.src == ::ffff:10.0.0.1 && icmp6.type == 128 && icmp6.code == 0")
    assert flow.fields == {"ipv6_src": 0xFFFF0A000001, "dl_type": 0x86DD, "nw_proto": 58,
                           "tp_src": 128, "tp_dst": 0}
    assert parse_microflow("ip6.dst == 2001:DB8:0:0:0:0:0:1").fields["ipv6_dst"] == \
        parse_microflow("ip6.dst == 2001:db8::1").fields["ipv6_dst"]


def test_arp_example_from_the_ovn_trace_manual():
    text = ('inport == "lp123"\n'
            "&& eth.dst == ff:ff:ff:ff:ff:ff && eth.src == f0:00:00:00:01:11\n"
            "&& arp.op == 1 && arp.sha == f0:00:00:00:01:11 && arp.spa == 192.168.1.11\n"
            "&& arp.tha == ff:ff:ff:ff:ff:ff && arp.tpa == 192.168.2.22")
    flow = parse_microflow(text)
    assert flow.inport == "lp123"
    assert flow.fields == {
        "dl_dst": 0xFFFFFFFFFFFF, "dl_src": 0xF00000000111, "dl_type": 0x0806,
        "nw_proto": 1, "arp_sha": 0xF00000000111, "nw_src": 0xC0A8010B,
        "arp_tha": 0xFFFFFFFFFFFF, "nw_dst": 0xC0A80216,
    }


@pytest.mark.parametrize("text, fields", [
    ("ip4 && tcp", {"dl_type": 0x0800, "nw_proto": 6}),
    ("udp && ip6", {"nw_proto": 17, "dl_type": 0x86DD}),
    ("sctp.dst == 9 && ip4", {"tp_dst": 9, "nw_proto": 132, "dl_type": 0x0800}),
    ("icmp4.type == 8 && icmp4.code == 0", {"tp_src": 8, "tp_dst": 0, "nw_proto": 1,
                                            "dl_type": 0x0800}),
    ("icmp && ip4", {"dl_type": 0x0800, "nw_proto": 1}),
    ("ip.ttl == 64 && eth.type == 0x800", {"nw_ttl": 64, "dl_type": 0x0800}),
    ("arp", {"dl_type": 0x0806}),
    ("rarp.op == 3", {"nw_proto": 3, "dl_type": 0x8035}),
    ("eth.bcast", {"dl_dst": 0xFFFFFFFFFFFF}),
    ("ip4 == 1 && tcp.flags == 0x2", {"dl_type": 0x0800, "tcp_flags": 2, "nw_proto": 6}),
    ("(80 == tcp.dst && (ip4))", {"tp_dst": 80, "nw_proto": 6, "dl_type": 0x0800}),
    ("ip6 && ip6.label == 0x12345", {"dl_type": 0x86DD, "ipv6_label": 0x12345}),
    ("ip4 && ip.dscp == 46 && ip.ecn == 1", {"dl_type": 0x0800, "nw_tos": 46 << 2, "nw_ecn": 1}),
    ("ip4 && ip.frag == 3", {"dl_type": 0x0800, "nw_frag": 3}),
    ("ip4 && ip.first_frag", {"dl_type": 0x0800, "nw_frag": 1}),
    ("ip4 && ip.is_frag == 0", {"dl_type": 0x0800, "nw_frag": 0}),
    ("pkt.mark == 7", {"pkt_mark": 7}),
    ("reg9 == 10.0.0.1 && xxreg1 == 0x2", {"reg9": 0x0A000001, "reg4": 0, "reg5": 0,
                                           "reg6": 0, "reg7": 2}),
    ("xreg0 == 0x100000002", {"reg0": 1, "reg1": 2}),
    ("flags.loopback && flags.force_snat_for_lb == 1", {"reg10": 0b1001}),
    ("ip4 /* comment */ && ip4.dst == 0xac120004 // trailing", {"dl_type": 0x0800,
                                                                 "nw_dst": 0xAC120004}),
])
def test_predicates_prerequisites_and_shared_storage(text, fields):
    assert parse_microflow(text).fields == fields


def test_subfields_record_which_bits_were_given():
    flow = parse_microflow("vlan.vid == 5 && vlan.pcp == 3")
    assert flow.fields == {"vlan_tci": 3 << 13 | 0x1000 | 5}
    assert flow.masks == {"vlan_tci": 0xFFFF}
    flow = parse_microflow("vlan.present")
    assert (flow.fields, flow.masks) == ({"vlan_tci": 0x1000}, {"vlan_tci": 0x1000})


def test_repeated_agreeing_terms_are_fine():
    flow = parse_microflow('inport == "a" && inport == "a" && ip4 && ip4.src == 1.1.1.1 && '
                           "tcp && ip4.src == 1.1.1.1")
    assert flow.fields == {"dl_type": 0x0800, "nw_src": 0x01010101, "nw_proto": 6}


def test_quoted_port_names_follow_json_escapes():
    assert parse_microflow(r'outport == "a\"b\u00e9"').outport == 'a"b\u00e9'


def test_every_field_and_predicate_can_hold():
    for name, field in LOGICAL_FIELDS.items():
        if field.kind != "port":
            assert _field_choices(field, 0), name
            assert field.target in FIELDS or field.target in COMPOSITES, name
    for name in PREDICATES:
        assert _name_choices(name), name


# --------------------------------------------------------------------------- errors


def test_error_is_a_value_error_and_an_input_error_with_a_caret():
    text = "ip4.src == 172.18.0.1 &&& tcp"
    err = error_of(text)
    assert isinstance(err, ValueError) and isinstance(err, InputError)
    assert err.position == points_at(text, "&", 3)
    assert err.caret() == text + "\n" + " " * 24 + "^"
    assert "&&" in err.message and str(err) == err.message


def test_caret_on_a_later_line_keeps_tabs():
    text = "ip4.src == 1.1.1.1 &&\n\tip4.src == 2.2.2.2"
    err = error_of(text)
    assert err.caret() == "\tip4.src == 2.2.2.2\n\t^"


@pytest.mark.parametrize("text, at, occurrence, words", [
    ("ip4.src == 1.1.1.1 && ip4.src == 2.2.2.2", "ip4.src", 2, "contradicts `ip4.src == 1.1"),
    ("tcp && udp", "udp", 1, "`udp` contradicts `tcp`"),
    ("ip4 && ip6", "ip6", 1, "contradicts `ip4`"),
    ("ip6.src == fe80::1 && ip4.src == 1.1.1.1", "ip4.src", 1, "contradicts `ip6.src"),
    ("arp.op == 1 && tcp && ip4", "tcp", 1, "contradicts `arp.op == 1`"),
    ("arp && tcp", "tcp", 1, "needs ip4 or ip6, which contradicts `arp`"),
    ("tcp.dst == 80 && arp", "arp", 1, "contradicts `tcp.dst == 80`, which needs ip4 or ip6"),
    ("ip.ttl == 64 && nd_ns", "nd_ns", 1, "contradicts `ip.ttl == 64`"),
    ("nd.target == ::1 && icmp6.type == 128", "icmp6", 1, "needs nd_ns or nd_na"),
    ('inport == "a" && inport == "b"', "inport", 2, 'contradicts `inport == "a"`'),
])
def test_contradictions_point_at_the_second_term(text, at, occurrence, words):
    err = error_of(text)
    assert err.position == points_at(text, at, occurrence)
    assert words in err.message


@pytest.mark.parametrize("text, at, words", [
    ("tcp.dst == 80", "tcp.dst", "ambiguous without ip4 or ip6"),
    ("ip4.src == 1.1.1.1 && ip.ttl == 64 && udp.src == 5 && ip.proto == 17 && tcp", "tcp",
     "contradicts `udp.src == 5`"),
    ("icmp", "icmp", "ambiguous without icmp4 or icmp6"),
    ("nd.target == ::1", "nd.target", "ambiguous without nd_ns or nd_na"),
    ("ip.is_frag", "ip.is_frag", "ambiguous without ip4 or ip6"),
])
def test_ambiguity_as_ovn_trace_rejects_it(text, at, words):
    err = error_of(text)
    assert err.position == text.index(at)
    assert words in err.message


@pytest.mark.parametrize("text, at, words", [
    ("ip4 && ip.ttl == 300", "300", "ip.ttl holds 8"),
    ("vlan.vid == 5000", "5000", "vlan.vid holds 12"),
    ("ip4 && ip.dscp == 64", "64", "ip.dscp holds 6"),
    ("ip4 && tcp.dst == 1.2.3.4", "1.2.3.4", "32 bits wide"),
    ("ip4.src == fe80::1", "fe80::1", "takes an IPv4 address"),
    ("ip6.src == 1.2.3.4", "1.2.3.4", "takes an IPv6 address"),
    ("eth.src == 1.2.3.4", "1.2.3.4", "takes a MAC address"),
    ("eth.type == 00:00:00:00:08:00", "00:", "48 bits wide"),
    ('ip4.src == "1.2.3.4"', '"', "not a string"),
    ("inport == 5", "5", "quoted port name"),
    ("inport == lp1", "lp1", 'port names must be quoted: inport == "lp1"'),
    ("ip4 == 0", "0", "may only be tested positively"),
    ("ip4 == 2", "2", "compare it only with 1"),
    ("tcp.dst == 080", "080", "leading zeros"),
    ("reg0 == 0x", "0x", "hex digits expected"),
    ("reg0 == 18446744073709551616", "1844", "less than 2**64"),
    ("eth.src == 02:42:7a:79:82", "02:", "invalid numeric constant"),
])
def test_bad_values_point_at_the_value(text, at, words):
    err = error_of(text)
    assert err.position == text.index(at)
    assert words in err.message


@pytest.mark.parametrize("text, at, words", [
    ("tcp.dst != 80", "!=", "`!=` is not allowed"),
    ("ip4 || ip6", "||", "`||` is not allowed"),
    ("ip4 && (tcp || udp)", "||", "conjunction"),
    ("ip4.src == 10.0.0.0/8", "/", "masks are not allowed"),
    ("eth.src == 00:00:00:00:00:01/ff:ff:ff:ff:ff:ff", "/", "masks are not allowed"),
    ("ip4 && tcp.dst > 1024", ">", "use `==`"),
    ("ip4 && 1024 <= tcp.dst", "<=", "use `==`"),
    ("ip4 && tcp.dst == {80, 443}", "{", "value sets"),
    ("ip4 && tcp.src[0..7] == 5", "[", "subfields"),
    ("!ip.is_frag && ip4", "!", "field == 0"),
    ("ip4.src == $as1", "$", "address sets"),
    ("inport == @pg", "@", "port groups"),
    ("ip4.src = 1.2.3.4", "=", "use `==`"),
])
def test_inexact_constraints_are_rejected(text, at, words):
    err = error_of(text)
    assert err.position == text.index(at)
    assert words in err.message


@pytest.mark.parametrize("text, at, words", [
    ("ip4.scr == 1.2.3.4", "ip4.scr", "did you mean ip4.src"),
    ("ip4 && tcp.dport == 80", "tcp.dport", "did you mean tcp.dst"),
    ("nw_src == 1.2.3.4", "nw_src", "OpenFlow field name; in OVN's match language write "
                                    "ip4.src or arp.spa"),
    ("ip4 && ct.est", "ct.est", "--ct"),
    ("ct_state == 0x21", "ct_state", "connection-tracking"),
    ("ct_mark.blocked", "ct_mark", "connection-tracking"),
    ("eth.mcast", "eth.mcast", "exact eth.dst"),
    ("is_chassis_resident(\"lp1\")", "is_chassis", "where a flow runs"),
    ("frobnicate == 1", "frobnicate", "unknown field frobnicate"),
])
def test_unknown_and_unusable_names(text, at, words):
    err = error_of(text)
    assert err.position == text.index(at)
    assert words in err.message


@pytest.mark.parametrize("text, position, words", [
    ("", 0, "expecting a field name, but the expression ends here"),
    ("ip4 &&", 6, "expecting a field name, but the expression ends here"),
    ("ip4 ip6", 4, "expecting `&&` between terms, not `ip6`"),
    ("(ip4 && tcp", 11, "expecting `)` to close the `(` at character 0"),
    ("ip4)", 3, "`)` without a matching `(`"),
    ("ip.ttl && ip4", 0, "8 bits wide, so it cannot stand alone"),
    ("outport && ip4", 0, 'outport needs a value, e.g. outport == "lp1"'),
    ("tcp.dst 80", 8, "expecting `==` between tcp.dst and its value"),
    ("tcp.dst ==", 10, "expecting a value after `tcp.dst ==`"),
    ('inport == "lp1', 10, "inside a quoted string"),
    ("ip4 /* open", 4, "without matching `*/`"),
    ("ip4 & tcp", 4, "`&` is only valid as part of `&&`"),
    ("ip4 | tcp", 4, "`|` is only valid as part of `||`"),
    ("ip4 # tcp", 4, "invalid character `#`"),
    ("ip4.src == 1.2.3.4:80", 18, "expecting `&&` between terms, not `:`"),
    ("(" * 40 + "ip4" + ")" * 40, 32, "nested too deeply"),
])
def test_syntax_errors(text, position, words):
    err = error_of(text)
    assert err.position == position
    assert words in err.message


def test_lexical_error_after_a_parse_error_does_not_mask_it():
    err = error_of("ip4 ip6 & tcp")
    assert err.position == 4 and "between terms" in err.message
