"""Frames across the kind lab's provider network, on the wire: a pod's echo, SNATed by
its node's gateway router, goes out of that node's uplink to another node's gateway
router, which answers; the answer crosses back and reaches the pod.  What each uplink
and the pod's VIF send equals ofrace's trace, which follows the frame between uplinks
(``ofrace.trace.provider_network``)."""

from __future__ import annotations

import ipaddress
import time
from unittest import mock

from lab_inventory import local_inventory

from ofrace.collect.cluster import collect_cluster
from ofrace.compare.sweep import Expectation, encap_addresses, observe
from ofrace.compare.verify import compare_step, predict
from ofrace.lab.verify import Captures, flush_conntrack, settle_mac_tables
from ofrace.openflow.frames import encode
from ofrace.trace.cluster import ClusterTracer
from ofrace.trace.provider_network import ProviderNetworks
from ofrace.trace.request import start_from_short_form

NGINX, NGINX_VIF = "default_nginx-deployment-9456bbbf9-x6pc6", "nginx-x6pc6"  # ovn-worker
GR_CONTROL_PLANE = "172.18.0.3"      # GR_ovn-control-plane's external address


def _send(lab, snapshot, start, wire: dict, frames: int):
    captures = Captures(snapshot)
    packet = {k: v for k, v in start.packet.items() if k != "in_port"}
    lab.run_on(start.chassis, ["ovs-appctl", "netdev-dummy/receive", NGINX_VIF,
                               encode(packet, wire).hex()])
    seen, _ = observe(captures.settle(Expectation(frames)), encap_addresses(snapshot))
    return seen


def test_an_echo_to_another_nodes_gateway_router_crosses_and_comes_back(kind_lab):
    lab = kind_lab
    settle_mac_tables(lab, collect_cluster(local_inventory(lab)))
    # GR_ovn-worker resolves the other router's address first (dynamic_neigh_routers:
    # the first packet is held while it ARPs); the snapshot is read once it knows it
    snapshot = collect_cluster(local_inventory(lab))
    tracer = ClusterTracer(snapshot)
    start = start_from_short_form(tracer, NGINX, GR_CONTROL_PLANE, "icmp")
    _send(lab, snapshot, start, {"icmp_id": 4100, "icmp_seq": 1}, 1)
    time.sleep(1.0)
    flush_conntrack(lab)
    snapshot = collect_cluster(local_inventory(lab))

    tracer = ClusterTracer(snapshot)
    start = start_from_short_form(tracer, NGINX, GR_CONTROL_PLANE, "icmp")
    wire = {"icmp_id": 4101, "icmp_seq": 1}
    prediction = predict(tracer, start.chassis, start.bridge, dict(start.packet),
                         start.entry, wire)
    where = sorted((p.chassis, p.port) for p in prediction.outputs)
    assert where == [("ovn-control-plane", "eth0"), ("ovn-worker", "eth0"),
                     ("ovn-worker", NGINX_VIF)], prediction.outputs
    seen = _send(lab, snapshot, start, wire, len(prediction.outputs))
    # the SNATed request at ovn-worker's uplink, the answer at ovn-control-plane's, the
    # un-SNATed answer at the pod: equal, header for header
    assert compare_step("echo request", prediction, seen) == []
    answer = dict(next(p for p in seen if (p.chassis, p.port) == ("ovn-control-plane",
                                                                   "eth0")).fields)
    assert answer["nw_src"] == int(ipaddress.IPv4Address(GR_CONTROL_PLANE))
    assert "tp_src" not in answer        # ICMP type 0: an echo reply (zeros are left out)

    # negative control: not followed across the network, the trace ends at the uplink
    # and the same wire has an answer and a delivery ofrace did not predict
    flush_conntrack(lab)
    tracer = ClusterTracer(snapshot)
    with mock.patch.object(ProviderNetworks, "crossing", return_value=None):
        alone = predict(tracer, start.chassis, start.bridge, dict(start.packet),
                        start.entry, wire)
    assert [(p.chassis, p.port) for p in alone.outputs] == [("ovn-worker", "eth0")]
    assert len(compare_step("echo request", alone, seen)) == 2
