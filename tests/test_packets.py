"""The agreement test's packets come from the snapshot, not from a lab: the outside
host from the gateway routers' default route (and the SB's MAC_Binding), service
ports from the Load_Balancer rows — and the recorded labs' packets are unchanged
but for the outside host's MAC, which an unwarmed lab's SB has not learned."""

from __future__ import annotations

import copy
import ipaddress

import pytest
from conftest import recorded

from ofrace.compare.packets import (
    LOCAL_MAC_PREFIX,
    UNKNOWN_IP4,
    chassis_packets,
    endpoints,
    node_ports,
    outside_host,
)

NEXTHOP = int(ipaddress.IPv4Address("172.18.0.1"))   # the kind topology's default route


def _generated(snapshot, traces):
    chassis = dict.fromkeys(t["chassis"] for t in traces)
    return [(name, p) for name in chassis
            for p in chassis_packets(snapshot, snapshot.chassis[name])]


@pytest.mark.parametrize("topology", ["kind", "basic", "acl"])
def test_generator_reproduces_the_recorded_packets(topology):
    snapshot, traces = recorded(topology)
    generated = _generated(snapshot, traces)
    assert [(n, p.bridge, p.label) for n, p in generated] == \
        [(t["chassis"], t["bridge"], t["label"]) for t in traces]
    mac, _ = outside_host(snapshot)
    for (_, test), trace in zip(generated, traces, strict=True):
        recorded_packet = dict(trace["packet"])
        if "/" in test.label.split(":", 1)[0]:          # an uplink: from the outside host
            for key in ("dl_src", "arp_sha"):
                if key in recorded_packet:
                    recorded_packet[key] = mac
        assert test.packet == recorded_packet, test.label


def test_outside_host_is_the_default_route_nexthop():
    snapshot, _ = recorded("kind")
    mac, ip = outside_host(snapshot)
    assert ip == NEXTHOP
    assert mac == LOCAL_MAC_PREFIX | NEXTHOP and mac >> 40 & 0x03 == 0x02   # local, unicast


def test_outside_host_mac_is_the_one_the_sb_learned():
    snapshot = copy.deepcopy(recorded("kind")[0])
    snapshot.southbound.tables["MAC_Binding"] = [
        {"ip": "10.9.9.9", "mac": "02:11:11:11:11:11"},
        {"ip": "172.18.0.1", "mac": "02:42:7a:79:82:ca"}]
    assert outside_host(snapshot) == (0x02427A7982CA, NEXTHOP)


def test_without_a_default_route_the_outside_host_is_no_network():
    snapshot = copy.deepcopy(recorded("kind")[0])
    snapshot.northbound.tables["Logical_Router_Static_Route"] = [
        r for r in snapshot.northbound.tables["Logical_Router_Static_Route"]
        if r["ip_prefix"] != "0.0.0.0/0"]
    assert outside_host(snapshot) == (LOCAL_MAC_PREFIX | UNKNOWN_IP4, UNKNOWN_IP4)


def test_node_ports_are_vips_on_a_gateway_address():
    snapshot, _ = recorded("kind")
    gateways = [p for p in endpoints(snapshot) if p.datapath == "" and p.ip4]
    assert node_ports(snapshot, gateways) == [("tcp", 30007)]
    # negative control: the cluster-IP VIP (10.96.91.159:80) is on no gateway port
    assert node_ports(snapshot, [g for g in gateways if not g.name.startswith("rtoe-")]) == []
    acl, _ = recorded("acl")
    assert node_ports(acl, [p for p in endpoints(acl) if p.datapath == "" and p.ip4]) == []
