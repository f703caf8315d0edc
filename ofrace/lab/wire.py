"""Real packets in the lab: the datapath flow ``netdev-dummy/receive`` takes, and the
frames each port's pcap gained since an offset (decoded by ``ofrace.openflow.frames``), so
a sweep reads only what is new instead of re-parsing every capture with ``ovs-ofctl
parse-pcap`` after each packet."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

from ofrace.openflow.frames import decode

_TCP_FLAGS = {0x002: "syn", 0x012: "syn|ack", 0x010: "ack", 0x018: "psh|ack",
              0x011: "fin|ack", 0x004: "rst"}
PCAP_HEADER = 24


def _mac(value: int) -> str:
    raw = f"{value:012x}"
    return ":".join(raw[i:i + 2] for i in range(0, 12, 2))


def datapath_packet(packet: dict) -> str:
    """A packet (OVS field dict) in the datapath flow format netdev-dummy/receive takes."""
    eth = f"eth(src={_mac(packet['dl_src'])},dst={_mac(packet['dl_dst'])})"
    dl_type = packet.get("dl_type", 0)
    if dl_type == 0x0806:
        return (f"{eth},eth_type(0x0806),arp(sip={ipaddress.IPv4Address(packet['nw_src'])},"
                f"tip={ipaddress.IPv4Address(packet['nw_dst'])},op={packet['nw_proto']},"
                f"sha={_mac(packet.get('arp_sha', packet['dl_src']))},"
                f"tha={_mac(packet.get('arp_tha', 0))})")
    proto, ttl = packet["nw_proto"], packet.get("nw_ttl", 64)
    if dl_type == 0x0800:
        l3 = (f"eth_type(0x0800),ipv4(src={ipaddress.IPv4Address(packet['nw_src'])},"
              f"dst={ipaddress.IPv4Address(packet['nw_dst'])},proto={proto},tos=0,"
              f"ttl={ttl},frag=no)")
    else:
        l3 = (f"eth_type(0x86dd),ipv6(src={ipaddress.IPv6Address(packet['ipv6_src'])},"
              f"dst={ipaddress.IPv6Address(packet['ipv6_dst'])},label=0,proto={proto},"
              f"tclass=0,hlimit={ttl},frag=no)")
    if proto == 6:
        flags = _TCP_FLAGS.get(packet.get("tcp_flags", 0x002), "syn")
        l4 = f"tcp(src={packet['tp_src']},dst={packet['tp_dst']}),tcp_flags({flags})"
    elif proto == 17:
        l4 = f"udp(src={packet['tp_src']},dst={packet['tp_dst']})"
    elif proto == 1:
        l4 = f"icmp(type={packet.get('tp_src', 8)},code={packet.get('tp_dst', 0)})"
    else:
        l4 = f"icmpv6(type={packet.get('tp_src', 128)},code={packet.get('tp_dst', 0)})"
        if packet.get("tp_src") in (135, 136):
            l4 += (f",nd(target={ipaddress.IPv6Address(packet.get('nd_target', 0))},"
                   f"sll={_mac(packet.get('arp_sha', 0))},tll={_mac(packet.get('arp_tha', 0))})")
    return f"{eth},{l3},{l4}"


def read_pcap(path: Path, offset: int, raw: bool = False) -> tuple[list, int]:
    """Frames appended to a pcap since byte ``offset`` (0: from the start), decoded (or as
    bytes with ``raw``), and the offset to read from next time.  Only the new bytes are
    read; a frame still being written is left for later."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(PCAP_HEADER)
            if len(head) < PCAP_HEADER:
                return [], offset
            pos = max(offset, PCAP_HEADER)
            fh.seek(pos)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    order = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    at, frames = 0, []
    while at + 16 <= len(data):
        caplen = struct.unpack(order + "I", data[at + 8:at + 12])[0]
        if at + 16 + caplen > len(data):
            break
        frame = data[at + 16:at + 16 + caplen]
        frames.append(frame if raw else decode(frame))
        at += 16 + caplen
    return frames, pos + at
