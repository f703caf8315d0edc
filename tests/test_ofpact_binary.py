"""The nested actions OVN puts in controller() userdata, decoded from their OpenFlow 1.5
bytes, equal what the real ovs-ofctl (parse-actions OpenFlow15) reads in them: flows
recorded from real labs (tests/fixtures/pinctrl/controller_flows.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ofrace.openflow.actions import FieldRef, Move, Resubmit, SetField, parse_actions
from ofrace.openflow.ofpact_binary import BinaryActionError, decode_actions, nested_actions

FLOWS = json.loads((Path(__file__).parent / "fixtures/pinctrl/controller_flows.json")
                   .read_text())["flows"]


@pytest.mark.parametrize("flow", FLOWS, ids=[f"{f['opcode']}-{i}" for i, f in enumerate(FLOWS)])
def test_decoder_equals_ovs_ofctl(flow):
    text = flow["ovs_ofctl_parse_actions"].removeprefix("actions=")
    assert nested_actions(bytes.fromhex(flow["userdata"])) == list(parse_actions(text))


def test_fixture_covers_what_pinctrl_builds():
    assert {"arp", "nd_ns", "nd_na", "nd_na_router", "icmp", "tcp_reset", "reject"} <= {
        f["opcode"] for f in FLOWS}


def test_a_changed_byte_changes_the_decoding():
    """Negative control: the comparison above is not vacuous."""
    arp = next(f for f in FLOWS if f["opcode"] == "arp")
    data = bytearray(bytes.fromhex(arp["userdata"]))
    before = nested_actions(bytes(data))
    data[8 + 8 + 5] ^= 0x01      # a byte of the eth.dst value in the first set_field
    assert nested_actions(bytes(data)) != before


def test_hand_built_actions():
    masked_reg10 = bytes.fromhex("0019001000011508" "00000001" "00000001")
    # set_field reg10 value 1 mask 1: NXM_NX_REG10 with mask (class 1, field 10, HM, len 8)
    assert decode_actions(masked_reg10) == [SetField(FieldRef("reg10", 0, 31), 1, 1)]
    copy = bytes.fromhex("001c0018" "0020" "0040" "0000" "0000" "0001de10" "80002c04" "00000000")
    assert decode_actions(copy) == [Move(FieldRef("xxreg0", 64, 95), FieldRef("nw_src", 0, 31))]
    resubmit = bytes.fromhex("ffff0010" "00002320" "000e" "fff8" "25000000")
    assert decode_actions(resubmit) == [Resubmit(None, 37)]


def test_bad_lengths_are_refused():
    with pytest.raises(BinaryActionError):
        decode_actions(bytes.fromhex("00190007"))
    with pytest.raises(BinaryActionError):
        decode_actions(bytes.fromhex("0019001880000606ffff"))
