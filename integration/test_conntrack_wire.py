"""Conntrack on the kind lab's wire (userspace datapath): what ofrace's model predicts
for TCP validity, hairpin SNAT to the VIP and ICMP echo is what real frames do.

Frames are built byte by byte (real checksums: userspace conntrack checks them)
so that a TCP packet may carry flags 0, which ``ofrace.lab.wire.datapath_packet``
cannot express.
"""

from __future__ import annotations

import ipaddress
import struct
import time

import pytest
from lab_inventory import local_inventory

from ofrace.collect.cluster import collect_cluster
from ofrace.lab.wire import read_pcap
from ofrace.trace.cluster import ClusterTracer
from ofrace.trace.request import reply_start, start_from_expression, start_from_short_form

NGINX, NGINX_VIF = "default_nginx-deployment-9456bbbf9-x6pc6", "nginx-x6pc6"
COREDNS_VIF = "coredns-wdvs9"            # kube-system_coredns-64897985d-wdvs9, 10.244.2.5
VIP = int(ipaddress.IPv4Address("10.96.91.159"))
TO_COREDNS = ('inport == "default_nginx-deployment-9456bbbf9-x6pc6" && '
              "eth.src == 0a:58:0a:f4:01:03 && eth.dst == 0a:58:0a:f4:01:01 && "
              "ip4.src == 10.244.1.3 && ip4.dst == 10.244.2.5 && ip.ttl == 64 && "
              "tcp.src == {sport} && tcp.dst == 53{flags}")


def _checksum(data: bytes) -> int:
    data += b"\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frame(packet: dict) -> bytes:
    """An Ethernet/IPv4 frame with these fields (TCP, UDP or ICMP echo)."""
    src, dst = (ipaddress.IPv4Address(packet[k]).packed for k in ("nw_src", "nw_dst"))
    proto = packet["nw_proto"]
    if proto == 6:
        l4 = struct.pack("!HHIIBBHHH", packet["tp_src"], packet["tp_dst"], 1000,
                         1001 if packet.get("tcp_flags", 0) & 0x10 else 0, 5 << 4,
                         packet.get("tcp_flags", 0), 65535, 0, 0)
    elif proto == 17:
        l4 = struct.pack("!HHHH", packet["tp_src"], packet["tp_dst"], 8, 0)
    else:
        l4 = struct.pack("!BBHHH", packet["tp_src"], packet["tp_dst"], 0,
                         packet.get("icmp_id", 0), 1)
    if proto in (6, 17):
        pseudo = src + dst + struct.pack("!BBH", 0, proto, len(l4))
        at = 16 if proto == 6 else 6
        l4 = l4[:at] + struct.pack("!H", _checksum(pseudo + l4)) + l4[at + 2:]
    else:
        l4 = l4[:2] + struct.pack("!H", _checksum(l4)) + l4[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, packet.get("nw_ttl", 64),
                     proto, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return (packet["dl_dst"].to_bytes(6, "big") + packet["dl_src"].to_bytes(6, "big")
            + b"\x08\x00" + ip + l4)


def send(lab, chassis: str, iface: str, packet: dict, out_chassis: str, out_iface: str,
         wait: float = 1.5) -> list[dict]:
    """Inject the frame; what ``out_iface`` sent meanwhile, with the same ports."""
    path = lab.layout.pcap(out_chassis, out_iface, "tx")
    _, offset = read_pcap(path, 0)
    lab.run_on(chassis, ["ovs-appctl", "netdev-dummy/receive", iface, frame(packet).hex()])
    ports = {packet.get("tp_src"), packet.get("tp_dst")}
    deadline, seen = time.monotonic() + wait, []
    while time.monotonic() < deadline and not seen:
        time.sleep(0.1)
        frames, _ = read_pcap(path, offset)
        seen = [f for f in frames if f.get("nw_proto") == packet["nw_proto"]
                and {f.get("tp_src"), f.get("tp_dst")} == ports]
    return seen


@pytest.fixture(scope="module")
def kind(lab_slot):
    lab = lab_slot.ensure("kind")
    return lab, ClusterTracer(collect_cluster(local_inventory(lab)))


def delivered(trace):
    return [v for v in trace.verdicts() if v.kind == "delivered"]


@pytest.mark.parametrize("sport, flags, reaches", [
    (44001, "", False),                      # ovn-trace's default microflow: flags 0
    (44002, " && tcp.flags == 0x12", False),  # a SYN-ACK with no connection
    (44003, " && tcp.flags == 0x2", True),    # negative control: a SYN
    (44004, " && tcp.flags == 0x10", True),   # a lone ACK is picked up mid-stream
])
def test_tcp_validity_matches_the_wire(kind, sport, flags, reaches):
    lab, tracer = kind
    start = start_from_expression(tracer, TO_COREDNS.format(sport=sport, flags=flags))
    trace = tracer.trace(start)
    assert bool(delivered(trace)) == reaches
    if not reaches:
        ct_text = next(s.text for s in trace.root.root.walk() if s.kind == "ct")
        assert "inv" in ct_text and "conntrack marks it invalid" in ct_text
    seen = send(lab, "ovn-worker", NGINX_VIF, start.packet, "ovn-control-plane", COREDNS_VIF)
    assert bool(seen) == reaches


def test_hairpin_to_own_vip_matches_the_wire(kind):
    lab, tracer = kind
    start = start_from_short_form(tracer, NGINX, "10.96.91.159:80", "tcp")
    start.packet["tp_src"] = 44010
    (verdict,) = delivered(tracer.trace(start))
    assert verdict.packet["nw_src"] == VIP
    (seen,) = send(lab, "ovn-worker", NGINX_VIF, start.packet, "ovn-worker", NGINX_VIF)
    assert (seen["nw_src"], seen["nw_dst"], seen["tp_dst"]) == (
        verdict.packet["nw_src"], verdict.packet["nw_dst"], verdict.packet["tp_dst"])
    back_start = reply_start(tracer, verdict)
    (answer,) = delivered(tracer.trace(back_start))
    assert (answer.packet["nw_src"], answer.packet["tp_src"]) == (VIP, 80)
    (seen,) = send(lab, "ovn-worker", NGINX_VIF, back_start.packet, "ovn-worker", NGINX_VIF)
    assert (seen["nw_src"], seen["tp_src"], seen["nw_dst"]) == (
        answer.packet["nw_src"], answer.packet["tp_src"], answer.packet["nw_dst"])


def test_icmp_echo_reply_matches_the_wire(kind):
    lab, tracer = kind
    start = start_from_short_form(tracer, NGINX, "10.244.2.5", "icmp")
    (verdict,) = delivered(tracer.trace(start))
    assert send(lab, "ovn-worker", NGINX_VIF, start.packet, "ovn-control-plane", COREDNS_VIF)
    back_start = reply_start(tracer, verdict)
    back = tracer.trace(back_start)
    (answer,) = delivered(back)
    assert any("est+rpl" in s.text for h in back.hops for s in h.root.walk() if s.kind == "ct")
    assert send(lab, "ovn-control-plane", COREDNS_VIF, back_start.packet, "ovn-worker",
                NGINX_VIF)
    # Negative control: an echo reply with no request is invalid in both.
    stray = dict(back_start.packet, icmp_id=99)
    fresh = ClusterTracer(tracer.snapshot)
    stray_start = reply_start(fresh, verdict)
    stray_start.packet["icmp_id"] = 99
    assert not delivered(fresh.trace(stray_start))
    assert not send(lab, "ovn-control-plane", COREDNS_VIF, stray, "ovn-worker", NGINX_VIF)
