"""The small vocabularies, one home each: MAC text, ct_state names, IP protocol names,
bracket-aware splitting, field references, OVSDB optional values, tunnel types."""

from __future__ import annotations

import pytest

from ofrace.openflow.actions import FieldRef, parse_field_ref
from ofrace.openflow.bridge import TUNNEL_TYPES
from ofrace.openflow.fields import (
    FIELDS,
    IP_PROTOCOL_NAMES,
    ct_state_names,
    format_mac,
    format_value,
)
from ofrace.openflow.flowtext import split_top_level
from ofrace.ovn.logical_fields import OVN_L4_NAMES, PREDICATES
from ofrace.ovn.versions import facts_for
from ofrace.simulate.conntrack import format_ct_state, parse_ct_state
from ofrace.snapshot import unwrap_optional


@pytest.mark.parametrize(("value", "text"), [
    (0x0A580AF40103, "0a:58:0a:f4:01:03"), (0, "00:00:00:00:00:00"),
    (0xFFFFFFFFFFFF, "ff:ff:ff:ff:ff:ff"), (0x1, "00:00:00:00:00:01"),
])
def test_format_mac(value, text):
    assert format_mac(value) == text == format_value(FIELDS["dl_src"], value)


@pytest.mark.parametrize(("state", "names", "step", "field"), [
    (0, [], "untracked", "0"),
    (0x21, ["new", "trk"], "new+trk", "new+trk"),
    (0x22, ["est", "trk"], "est+trk", "est+trk"),
    (0xE2, ["est", "trk", "snat", "dnat"], "est+trk+snat+dnat", "est+trk+snat+dnat"),
])
def test_ct_state_names_and_their_two_spellings(state, names, step, field):
    assert ct_state_names(state) == names
    assert format_ct_state(state) == step
    assert format_value(FIELDS["ct_state"], state) == field
    assert parse_ct_state("+".join(names) or "0") == state


def test_ovn_trace_ct_arguments_put_trk_first():
    from ofrace.compare.ovn_trace import ct_arguments
    assert ct_arguments([0x21, 0x22, 0]) == ["--ct=trk,new", "--ct=trk,est", "--ct="]


def test_protocol_names_agree_with_ovn_predicates():
    """OVN's names (tcp, icmp4, …) are its predicates, each setting ip.proto to the number."""
    for number, name in OVN_L4_NAMES.items():
        assert ("ip.proto", number) in PREDICATES[name].sets
    assert {IP_PROTOCOL_NAMES[n] for n in (6, 17, 132)} == {"tcp", "udp", "sctp"}
    assert IP_PROTOCOL_NAMES[1] == "icmp" and OVN_L4_NAMES[1] == "icmp4"


@pytest.mark.parametrize(("text", "parts"), [
    ("a,b", ["a", "b"]),
    ("bucket_id:0,actions=ct(commit,zone=5),output:3", ["bucket_id:0",
                                                        "actions=ct(commit,zone=5)",
                                                        "output:3"]),
    ("set(tunnel(tun_id=0x1,options({class=0x102,len=4}))),1",
     ["set(tunnel(tun_id=0x1,options({class=0x102,len=4})))", "1"]),
    (" a , ,b ", ["a", "b"]),
    ("", []),
])
def test_split_top_level(text, parts):
    assert split_top_level(text) == parts


@pytest.mark.parametrize(("text", "ref"), [
    ("NXM_NX_REG15[]", FieldRef("reg15", 0, 31)),
    ("reg0[16..30]", FieldRef("reg0", 16, 30)),
    ("NXM_NX_REG10[3]", FieldRef("reg10", 3, 3)),
    ("OXM_OF_METADATA[]", FieldRef("metadata", 0, 63)),
    ("reg0", None),
    ("3", None),
])
def test_parse_field_ref(text, ref):
    assert parse_field_ref(text) == ref


@pytest.mark.parametrize(("cell", "value"), [
    ([], None), (["x"], "x"), ("x", "x"), (None, None), ([5], 5), (0, 0),
])
def test_unwrap_optional(cell, value):
    assert unwrap_optional(cell) == value


def test_ovn_tunnels_are_ovs_tunnels():
    for release in ("22.03.0", "26.03.0"):
        assert set(facts_for(release).encaps) <= TUNNEL_TYPES
