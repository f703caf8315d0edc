"""Real packets in the lab: build them from a trace's packet, read them back from pcaps.

Ground truth for every trace: a packet with the same headers is injected
with ``netdev-dummy/receive`` where the trace started, and what the port
the trace predicts really sent is read from its pcap (``ovs-ofctl
parse-pcap`` prints each packet as an OVS flow string).
"""

from __future__ import annotations

import time

from ofrace.lab.wire import datapath_packet
from ofrace.openflow.flowtext import parse_packet

# Fields that a packet on the wire must carry exactly as the trace predicted.
WIRE_FIELDS = ("dl_src", "dl_dst", "dl_type", "nw_src", "nw_dst", "ipv6_src", "ipv6_dst",
               "nw_proto", "nw_ttl", "tp_src", "tp_dst")


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
