"""A packet held by ovn-controller, sent for real on kind: a pod's UDP to an outside
address reaches its node's gateway router, which knows no MAC for its next hop; pinctrl
holds the packet and sends an ARP request out of the node's uplink.  The ARP request
ofrace predicts (built as pinctrl_handle_arp builds it, then through the packet-out's
nested actions and the provider bridge) equals the one captured on the wire."""

from __future__ import annotations

import ipaddress

import pytest
from lab_inventory import local_inventory
from wire import send_and_capture, wire_fields

from ofrace.collect.cluster import collect_cluster
from ofrace.trace.cluster import ClusterTracer
from ofrace.trace.request import start_from_expression

pytestmark = pytest.mark.lab

NODE = "ovn-worker"
UDP_OUT = ('inport == "default_nginx-deployment-9456bbbf9-x6pc6" && '
           "eth.src == 0a:58:0a:f4:01:03 && eth.dst == 0a:58:0a:f4:01:01 && "
           "ip4.src == 10.244.1.3 && ip4.dst == 203.0.113.77 && ip.ttl == 64 && "
           "udp.src == 40123 && udp.dst == 53")


def test_held_packets_arp_request_equals_the_wire(lab_slot):
    lab = lab_slot.ensure("kind")
    tracer = ClusterTracer(collect_cluster(local_inventory(lab)))
    start = start_from_expression(tracer, UDP_OUT)
    trace = tracer.trace(start)
    [held] = trace.verdicts()
    assert held.kind == "controller" and "waiting for the MAC of" in held.text, held.text
    arp_hop = next(h for h in trace.hops if h.start.entry.startswith(
        f"built by ovn-controller on {NODE}: ARP request for "))
    # the broadcast leaves the uplink and is followed across the provider network (an
    # exit with hops after it, not a verdict): read it where it leaves
    predicted = [e for h in trace.hops if h.start.chassis == NODE for e in h.exits
                 if e.kind == "output" and e.port_name == "eth0"
                 and e.packet.get("dl_type") == 0x0806]
    assert len(predicted) == 1, [v.text for v in trace.all_verdicts()]
    want = predicted[0].packet
    assert want["dl_dst"] == 0xFFFFFFFFFFFF and want["nw_proto"] == 1
    asked = arp_hop.start.entry.rsplit(" ", 1)[1]     # the next hop the packet waits for
    assert want["nw_dst"] == int(ipaddress.IPv4Address(asked))
    assert held.text.split("waiting for the MAC of ")[1].startswith(asked)

    iface = next(i.name for i in tracer.snapshot.chassis[NODE].interfaces
                 if i.ofport == start.packet["in_port"] and i.bridge == "br-int")
    seen = send_and_capture(lab, NODE, iface, start.packet, NODE, "eth0",
                            {"dl_type": 0x0806, "nw_dst": want["nw_dst"]})
    assert seen is not None, "no ARP request on the uplink"
    assert wire_fields(seen) == wire_fields(want)
    assert seen.get("arp_sha") == want.get("arp_sha") and not seen.get("arp_tha")
