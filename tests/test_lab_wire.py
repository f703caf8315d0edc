"""The lab's capture reader: frames appended to a pcap since an offset, decoded to the
fields a prediction names (a Geneve frame with its VNI, OVN option and inner frame), and
the datapath flow netdev-dummy/receive takes for every step kind a conversation has."""

from __future__ import annotations

import struct

from ofrace.lab.wire import datapath_packet, read_pcap
from ofrace.openflow.frames import decode


def _eth(dst: int, src: int, dl_type: int, body: bytes) -> bytes:
    return dst.to_bytes(6, "big") + src.to_bytes(6, "big") + struct.pack("!H", dl_type) + body


def _ipv4(src: int, dst: int, proto: int, ttl: int, l4: bytes) -> bytes:
    return struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(l4), 0, 0, ttl, proto, 0) + \
        src.to_bytes(4, "big") + dst.to_bytes(4, "big") + l4


def _tcp(sport, dport, flags) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 0, 0, 0x50, flags, 0, 0, 0)


def _udp(sport, dport, payload=b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def _pcap(frames: list[bytes]) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for frame in frames:
        out += struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame
    return out


SYN = _eth(0x0A0000000002, 0x0A0000000001, 0x0800,
           _ipv4(0xC0000201, 0xC0000202, 6, 63, _tcp(40000, 80, 0x12)))


def test_a_tcp_frame_decodes_to_its_fields():
    fields = decode(SYN)
    assert fields == {"dl_dst": 0x0A0000000002, "dl_src": 0x0A0000000001, "dl_type": 0x0800,
                      "nw_ttl": 63, "nw_proto": 6, "nw_src": 0xC0000201, "nw_dst": 0xC0000202,
                      "tp_src": 40000, "tp_dst": 80, "tcp_flags": 0x12,
                      "tcp_seq": 0, "tcp_ack": 0, "payload_len": 0}


def test_a_geneve_frame_gives_vni_option_and_inner_frame():
    option = struct.pack("!HBB", 0x0102, 0x80, 1) + struct.pack("!I", (3 << 16) | 5)
    geneve = struct.pack("!BBH", len(option) // 4, 0, 0x6558) + (7 << 8).to_bytes(4, "big")
    outer = _eth(1, 2, 0x0800, _ipv4(0xC0000201, 0xC0000202, 17, 64,
                                     _udp(50000, 6081, geneve + option + SYN)))
    fields = decode(outer)
    assert fields["tun_id"] == 7 and fields["geneve_options"] == [(0x0102, 0x80, 0x30005)]
    assert fields["inner"] == decode(SYN)


def test_read_pcap_returns_only_what_is_new(tmp_path):
    path = tmp_path / "p.pcap"
    arp = _eth(0xFFFFFFFFFFFF, 1, 0x0806, struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
               + (1).to_bytes(6, "big") + bytes([192, 0, 2, 1]) + bytes(6)
               + bytes([192, 0, 2, 9]))
    path.write_bytes(_pcap([SYN]))
    frames, offset = read_pcap(path, 0)
    assert [f["nw_proto"] for f in frames] == [6]
    path.write_bytes(_pcap([SYN, arp]) + b"\x00\x00")        # and half a record header
    frames, offset2 = read_pcap(path, offset)
    assert [(f["dl_type"], f["nw_proto"], f["nw_dst"]) for f in frames] == [(0x0806, 1,
                                                                               0xC0000209)]
    assert read_pcap(path, offset2) == ([], offset2)
    assert read_pcap(tmp_path / "absent.pcap", 0) == ([], 0)


def test_datapath_packets_for_every_step_kind():
    base = {"dl_src": 1, "dl_dst": 2, "dl_type": 0x0800, "nw_src": 0xC0000201,
            "nw_dst": 0xC0000202, "nw_ttl": 64}
    assert "tcp_flags(fin|ack)" in datapath_packet({**base, "nw_proto": 6, "tp_src": 1,
                                                    "tp_dst": 2, "tcp_flags": 0x011})
    assert "tcp_flags(psh|ack)" in datapath_packet({**base, "nw_proto": 6, "tp_src": 1,
                                                    "tp_dst": 2, "tcp_flags": 0x018})
    assert "icmp(type=0,code=0)" in datapath_packet({**base, "nw_proto": 1, "tp_src": 0})
    ns = {"dl_src": 1, "dl_dst": 0x3333FF000001, "dl_type": 0x86DD, "ipv6_src": 1,
          "ipv6_dst": 2, "nw_proto": 58, "nw_ttl": 255, "tp_src": 135, "nd_target": 5,
          "arp_sha": 1}
    assert datapath_packet(ns).endswith(
        "icmpv6(type=135,code=0),nd(target=::5,sll=00:00:00:00:00:01,tll=00:00:00:00:00:00)")
