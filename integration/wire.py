"""Real packets in the lab: build them from a trace's packet, read them back from pcaps.

Ground truth for every trace: a packet with the same headers is injected
with ``netdev-dummy/receive`` where the trace started, and what the port
the trace predicts really sent is read from its pcap (``ovs-ofctl
parse-pcap`` prints each packet as an OVS flow string).
"""

from __future__ import annotations

import ipaddress
import time

from ofrace.openflow.flowtext import parse_packet

# Fields that a packet on the wire must carry exactly as the trace predicted.
WIRE_FIELDS = ("dl_src", "dl_dst", "dl_type", "nw_src", "nw_dst", "ipv6_src", "ipv6_dst",
               "nw_proto", "nw_ttl", "tp_src", "tp_dst")
_TCP_FLAGS = {0x002: "syn", 0x012: "syn|ack", 0x010: "ack"}


def _mac(value: int) -> str:
    raw = f"{value:012x}"
    return ":".join(raw[i:i + 2] for i in range(0, 12, 2))


def datapath_packet(packet: dict) -> str:
    """A trace packet in the datapath flow format netdev-dummy/receive takes."""
    eth = f"eth(src={_mac(packet['dl_src'])},dst={_mac(packet['dl_dst'])})"
    dl_type = packet.get("dl_type", 0)
    if dl_type == 0x0806:
        return (f"{eth},eth_type(0x0806),arp(sip={ipaddress.IPv4Address(packet['nw_src'])},"
                f"tip={ipaddress.IPv4Address(packet['nw_dst'])},op={packet['nw_proto']},"
                f"sha={_mac(packet.get('arp_sha', packet['dl_src']))},"
                f"tha={_mac(packet.get('arp_tha', 0))})")
    proto = packet["nw_proto"]
    if dl_type == 0x0800:
        l3 = (f"eth_type(0x0800),ipv4(src={ipaddress.IPv4Address(packet['nw_src'])},"
              f"dst={ipaddress.IPv4Address(packet['nw_dst'])},proto={proto},tos=0,"
              f"ttl={packet['nw_ttl']},frag=no)")
    else:
        l3 = (f"eth_type(0x86dd),ipv6(src={ipaddress.IPv6Address(packet['ipv6_src'])},"
              f"dst={ipaddress.IPv6Address(packet['ipv6_dst'])},label=0,proto={proto},"
              f"tclass=0,hlimit={packet['nw_ttl']},frag=no)")
    if proto == 6:
        flags = _TCP_FLAGS.get(packet.get("tcp_flags", 0x002), "syn")
        l4 = f"tcp(src={packet['tp_src']},dst={packet['tp_dst']}),tcp_flags({flags})"
    elif proto == 17:
        l4 = f"udp(src={packet['tp_src']},dst={packet['tp_dst']})"
    elif proto == 1:
        l4 = f"icmp(type={packet['tp_src']},code={packet['tp_dst']})"
    else:
        l4 = f"icmpv6(type={packet['tp_src']},code={packet['tp_dst']})"
    return f"{eth},{l3},{l4}"


def wire_fields(packet: dict) -> dict:
    return {f: packet.get(f, 0) for f in WIRE_FIELDS if packet.get(f, 0)}


def captured(lab, chassis: str, port: str) -> list[dict]:
    """Every packet ``port`` sent, as field dicts."""
    return [parse_packet(line.replace("in_port=ANY,", ""))
            for line in lab.pcap_packets(chassis, port, "tx")]


def send_and_capture(lab, chassis: str, in_iface: str, packet: dict, out_chassis: str,
                     out_iface: str, match: dict, timeout: float = 5.0) -> dict | None:
    """Inject ``packet``; return the first new packet on ``out_iface`` whose fields include
    ``match`` (None if none arrives)."""
    before = len(lab.pcap_packets(out_chassis, out_iface, "tx"))
    lab.inject(chassis, in_iface, datapath_packet(packet))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for seen in captured(lab, out_chassis, out_iface)[before:]:
            if all(seen.get(k, 0) == v for k, v in match.items()):
                return seen
        time.sleep(0.05)
    return None
