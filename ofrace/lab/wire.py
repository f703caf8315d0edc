"""Real packets in the lab: the datapath flow ``netdev-dummy/receive`` takes, and the
packets each port's pcap gained since an offset, decoded here (Ethernet, ARP, IPv4/6,
TCP/UDP/ICMP, Geneve with its VNI and OVN option) so a sweep reads only what is new
instead of re-parsing every capture with ``ovs-ofctl parse-pcap`` after each packet."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

_TCP_FLAGS = {0x002: "syn", 0x012: "syn|ack", 0x010: "ack", 0x018: "psh|ack",
              0x011: "fin|ack", 0x004: "rst"}
PCAP_HEADER = 24
GENEVE_PORT = 6081


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


def decode(frame: bytes) -> dict:
    """An Ethernet frame as OVS fields; a Geneve frame also gives ``tun_id``,
    ``geneve_options`` [(class, type, value)] and the ``inner`` frame's fields."""
    if len(frame) < 14:
        return {}
    out = {"dl_dst": int.from_bytes(frame[0:6], "big"),
           "dl_src": int.from_bytes(frame[6:12], "big")}
    dl_type, body = struct.unpack("!H", frame[12:14])[0], frame[14:]
    if dl_type == 0x8100 and len(body) >= 4:
        dl_type, body = struct.unpack("!H", body[2:4])[0], body[4:]
    out["dl_type"] = dl_type
    if dl_type == 0x0806 and len(body) >= 28:
        out.update(nw_proto=struct.unpack("!H", body[6:8])[0],
                   arp_sha=int.from_bytes(body[8:14], "big"),
                   nw_src=int.from_bytes(body[14:18], "big"),
                   arp_tha=int.from_bytes(body[18:24], "big"),
                   nw_dst=int.from_bytes(body[24:28], "big"))
        return out
    if dl_type == 0x0800 and len(body) >= 20:
        ihl = (body[0] & 0x0F) * 4
        out.update(nw_ttl=body[8], nw_proto=body[9], nw_src=int.from_bytes(body[12:16], "big"),
                   nw_dst=int.from_bytes(body[16:20], "big"))
        l4 = body[ihl:]
    elif dl_type == 0x86DD and len(body) >= 40:
        out.update(nw_proto=body[6], nw_ttl=body[7],
                   ipv6_src=int.from_bytes(body[8:24], "big"),
                   ipv6_dst=int.from_bytes(body[24:40], "big"))
        l4 = body[40:]
    else:
        return out
    proto = out["nw_proto"]
    if proto in (6, 17) and len(l4) >= 4:
        out["tp_src"], out["tp_dst"] = struct.unpack("!HH", l4[:4])
        if proto == 6 and len(l4) >= 14:
            out["tcp_flags"] = ((l4[12] & 0x01) << 8) | l4[13]
        if proto == 17 and out["tp_dst"] == GENEVE_PORT and len(l4) >= 16:
            _geneve(l4[8:], out)
    elif proto in (1, 58) and len(l4) >= 2:
        out["tp_src"], out["tp_dst"] = l4[0], l4[1]
    return out


def _geneve(header: bytes, out: dict) -> None:
    opt_len = (header[0] & 0x3F) * 4
    out["tun_id"] = int.from_bytes(header[4:7], "big")
    options, rest = [], header[8:8 + opt_len]
    while len(rest) >= 4:
        cls, typ, length = struct.unpack("!HBB", rest[:4])
        size = (length & 0x1F) * 4
        options.append((cls, typ, int.from_bytes(rest[4:4 + size], "big")))
        rest = rest[4 + size:]
    out["geneve_options"] = options
    out["inner"] = decode(header[8 + opt_len:])


def read_pcap(path: Path, offset: int) -> tuple[list[dict], int]:
    """Frames appended to a pcap since byte ``offset`` (0: from the start), decoded, and
    the offset to read from next time.  A frame still being written is left for later."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], offset
    if len(data) < PCAP_HEADER:
        return [], offset
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    pos, frames = max(offset, PCAP_HEADER), []
    while pos + 16 <= len(data):
        caplen = struct.unpack(order + "I", data[pos + 8:pos + 12])[0]
        if pos + 16 + caplen > len(data):
            break
        frames.append(decode(data[pos + 16:pos + 16 + caplen]))
        pos += 16 + caplen
    return frames, pos
