"""Frames the lab sends: every kind a conversation has decodes back to its fields, with
the checksums the datapath verifies (computed here by a second, plain implementation)
and the seq/ack, echo id and payload a conversation gives."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from ofrace.openflow.frames import decode, encode

A, B = 0x0A0000000001, 0x0A0000000002
IP_A, IP_B = int(ipaddress.IPv4Address("192.0.2.1")), int(ipaddress.IPv4Address("192.0.2.2"))
V6_A = int(ipaddress.IPv6Address("2001:db8::1"))
V6_B = int(ipaddress.IPv6Address("2001:db8::2"))


def _ones_sum(data: bytes) -> int:
    """RFC 1071 sum, byte by byte (not the word loop the encoder uses)."""
    total = 0
    for i, byte in enumerate(data):
        total += byte << (8 if i % 2 == 0 else 0)
    total = (total & 0xFFFF) + (total >> 16)
    return (total & 0xFFFF) + (total >> 16)


def _v4(frame: bytes) -> tuple[bytes, bytes]:
    ip = frame[14:]
    length = struct.unpack("!H", ip[2:4])[0]
    return ip[:20], ip[20:length]


def _ip4(proto, **extra):
    return {"dl_src": A, "dl_dst": B, "dl_type": 0x0800, "nw_src": IP_A, "nw_dst": IP_B,
            "nw_proto": proto, "nw_ttl": 64, **extra}


def _ip6(proto, **extra):
    return {"dl_src": A, "dl_dst": B, "dl_type": 0x86DD, "ipv6_src": V6_A, "ipv6_dst": V6_B,
            "nw_proto": proto, "nw_ttl": 64, **extra}


CASES = {
    "tcp syn": (_ip4(6, tp_src=40000, tp_dst=80, tcp_flags=0x002), {"tcp_seq": 1000}),
    "tcp data": (_ip4(6, tp_src=40000, tp_dst=80, tcp_flags=0x018),
                 {"tcp_seq": 1001, "tcp_ack": 5001, "payload_len": 16}),
    "udp": (_ip4(17, tp_src=40001, tp_dst=53), {"payload_len": 5}),
    "icmp echo": (_ip4(1, tp_src=8, tp_dst=0), {"icmp_id": 7, "icmp_seq": 1, "payload_len": 56}),
    "dhcp discover": (_ip4(17, nw_src=0, nw_dst=0xFFFFFFFF, tp_src=68, tp_dst=67), {}),
    "tcp6": (_ip6(6, tp_src=40000, tp_dst=80, tcp_flags=0x002), {"tcp_seq": 1}),
    "icmp6 echo": (_ip6(58, tp_src=128, tp_dst=0), {"icmp_id": 3, "icmp_seq": 1}),
    "ns": (_ip6(58, nw_ttl=255, tp_src=135, tp_dst=0, nd_target=V6_B, arp_sha=A), {}),
    "dhcpv6 solicit": (_ip6(17, tp_src=546, tp_dst=547), {}),
    "arp": ({"dl_src": A, "dl_dst": 0xFFFFFFFFFFFF, "dl_type": 0x0806, "nw_proto": 1,
             "nw_src": IP_A, "nw_dst": IP_B, "arp_sha": A, "arp_tha": 0}, {}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_frame_decodes_back_to_its_fields(name):
    fields, wire = CASES[name]
    frame = encode(fields, wire)
    assert len(frame) >= 60
    back = decode(frame)
    for key in ("dl_src", "dl_dst", "dl_type", "nw_src", "nw_dst", "ipv6_src", "ipv6_dst",
                "nw_proto", "nw_ttl", "tp_src", "tp_dst", "tcp_flags"):
        if key in fields:
            assert back.get(key) == fields[key], key
    if fields["dl_type"] == 0x0806:
        assert (back["arp_sha"], back["arp_tha"]) == (fields["arp_sha"], fields["arp_tha"])
    for key, value in wire.items():      # what only the frame carries comes back too
        assert back[key] == value, key


@pytest.mark.parametrize("name", [n for n in sorted(CASES) if CASES[n][0]["dl_type"] == 0x0800])
def test_ipv4_checksums_verify(name):
    fields, wire = CASES[name]
    header, l4 = _v4(encode(fields, wire))
    assert _ones_sum(header) == 0xFFFF
    pseudo = header[12:20] + struct.pack("!BBH", 0, fields["nw_proto"], len(l4))
    assert _ones_sum(l4 if fields["nw_proto"] == 1 else pseudo + l4) == 0xFFFF


@pytest.mark.parametrize("name", [n for n in sorted(CASES) if CASES[n][0]["dl_type"] == 0x86DD])
def test_ipv6_checksums_verify(name):
    fields, wire = CASES[name]
    ip = encode(fields, wire)[14:]
    length = struct.unpack("!H", ip[4:6])[0]
    l4 = ip[40:40 + length]
    pseudo = ip[8:40] + struct.pack("!IxxxB", len(l4), fields["nw_proto"])
    assert _ones_sum(pseudo + l4) == 0xFFFF


def test_a_broken_checksum_is_caught():
    """Negative control for the two tests above."""
    fields, wire = CASES["tcp syn"]
    frame = bytearray(encode(fields, wire))
    frame[14 + 20 + 16] ^= 0x01
    header, l4 = _v4(bytes(frame))
    pseudo = header[12:20] + struct.pack("!BBH", 0, 6, len(l4))
    assert _ones_sum(pseudo + l4) != 0xFFFF


def test_tcp_carries_its_sequence_numbers_and_payload():
    fields, wire = CASES["tcp data"]
    _, l4 = _v4(encode(fields, wire))
    seq, ack = struct.unpack("!II", l4[4:12])
    assert (seq, ack, len(l4) - 20) == (1001, 5001, 16)
    assert l4[13] == 0x18


def test_icmp_echo_carries_its_id_and_sequence():
    fields, wire = CASES["icmp echo"]
    _, l4 = _v4(encode(fields, wire))
    assert struct.unpack("!HH", l4[4:8]) == (7, 1)
    assert len(l4) == 8 + 56


def test_dhcp_and_nd_carry_the_bodies_ovn_controller_parses():
    _, l4 = _v4(encode(*CASES["dhcp discover"]))
    bootp = l4[8:]
    assert bootp[0] == 1 and bootp[28:34] == A.to_bytes(6, "big")
    assert bootp[236:240] == bytes.fromhex("63825363") and bootp[240:243] == bytes([53, 1, 1])
    ns = encode(*CASES["ns"])[14 + 40:]
    assert ns[8:24] == V6_B.to_bytes(16, "big") and ns[24:26] == bytes([1, 1])
    assert ns[26:32] == A.to_bytes(6, "big")


def test_a_vlan_tag_survives_the_round_trip():
    fields = dict(CASES["udp"][0], vlan_tci=0x1000 | 42)
    assert decode(encode(fields))["vlan_tci"] == 0x1000 | 42
