"""Frames across the physical network between uplinks (``ofrace.trace.provider_network``),
on the kind lab's recorded snapshots: who owns a MAC, broadcast to every other chassis,
an unowned MAC leaving the cluster, and a whole trace that crosses and comes back."""

from __future__ import annotations

import copy
from pathlib import Path
from unittest import mock

import pytest
from conftest import recorded

from ofrace.compare.verify import predict
from ofrace.errors import InputError
from ofrace.snapshot import Snapshot
from ofrace.trace.cluster import ClusterTracer, TraceStart
from ofrace.trace.provider_network import ProviderNetworks
from ofrace.trace.request import start_from_expression, start_from_short_form

FIXTURES = Path(__file__).parent / "fixtures"
# a snapshot of the kind sweep taken after the gateway routers had learned each other's
# MACs (the first one's routers would still ARP)
RESOLVED = FIXTURES / "kind" / "sweep" / "snapshot-13cb96c2f27a04b3.ofr"
NGINX = "default_nginx-deployment-9456bbbf9-x6pc6"
GR_WORKER_MAC = 0x0242AC120004          # etor-/rtoe-GR_ovn-worker
GR_CONTROL_PLANE_MAC = 0x0242AC120003   # etor-/rtoe-GR_ovn-control-plane
BROADCAST = 0xFFFFFFFFFFFF
NOBODY = 0x02000000AA99


@pytest.fixture(scope="module")
def kind() -> Snapshot:
    return recorded("kind")[0]


@pytest.fixture(scope="module")
def resolved() -> Snapshot:
    return Snapshot.load(str(RESOLVED))


def _networks(snapshot: Snapshot) -> ProviderNetworks:
    return ClusterTracer(snapshot).provider


def test_a_gateway_routers_mac_is_owned_by_its_chassis_on_the_network(kind):
    networks = _networks(kind)
    [owner] = networks.owners[GR_WORKER_MAC]
    assert networks.chassis_name(owner.system_id) == "ovn-worker"
    assert ("physnet", None) in owner.attachments and "l3gateway port" in owner.what
    assert networks.receiving_chassis("physnet", None, GR_CONTROL_PLANE_MAC) == \
        ["ovn-control-plane"]
    # negative controls: a pod's MAC is on no switch with a localnet port, and a
    # tagged frame does not reach an owner on an untagged localnet
    assert 0x0A580AF40103 not in networks.owners
    assert networks.receiving_chassis("physnet", 7, GR_WORKER_MAC) == []
    assert networks.receiving_chassis("other", None, GR_WORKER_MAC) == []


def test_a_unicast_frame_reaches_only_the_owner_and_keeps_its_vlan(kind):
    networks = _networks(kind)
    worker = kind.chassis["ovn-worker"]
    packet = {"dl_dst": GR_CONTROL_PLANE_MAC, "dl_src": GR_WORKER_MAC, "dl_type": 0x0800,
              "vlan_tci": 0x1000 | 7, "reg14": 3, "metadata": 9, "in_port": 2}
    crossing = networks.crossing(worker, "breth0", "eth0", packet)
    assert crossing.networks == ["physnet"] and crossing.unknown == []
    # a tagged frame: no owner on VLAN 7, it leaves
    assert crossing.receivers == [] and "no chassis owns" in crossing.left
    packet.pop("vlan_tci")
    [receiver] = networks.crossing(worker, "breth0", "eth0", packet).receivers
    assert (receiver.chassis, receiver.bridge, receiver.uplink.name) == \
        ("ovn-control-plane", "breth0", "eth0")
    assert receiver.packet["in_port"] == receiver.uplink.ofport
    # the sender's registers and metadata stay behind
    assert "reg14" not in receiver.packet and "metadata" not in receiver.packet


def test_broadcast_reaches_every_other_chassis_on_the_network(kind):
    networks = _networks(kind)
    packet = {"dl_dst": BROADCAST, "dl_src": GR_WORKER_MAC, "dl_type": 0x0806,
              "vlan_tci": 0x1000 | 5}
    crossing = networks.crossing(kind.chassis["ovn-worker"], "breth0", "eth0", packet)
    assert sorted(r.chassis for r in crossing.receivers) == ["ovn-control-plane",
                                                             "ovn-worker2"]
    assert all(r.packet["vlan_tci"] == 0x1000 | 5 and r.why == "broadcast"
               for r in crossing.receivers)


def test_an_unowned_mac_leaves_the_cluster(kind):
    tracer = ClusterTracer(kind)
    worker = kind.chassis["ovn-worker"]
    crossing = tracer.provider.crossing(worker, "breth0", "eth0", {"dl_dst": NOBODY})
    assert crossing.receivers == [] and "02:00:00:00:aa:99" in crossing.left
    # a bridge mapped to no physical network is no provider network
    assert tracer.provider.crossing(worker, "br-phys", "br-phys_tunnel",
                                    {"dl_dst": NOBODY}) is None
    # the whole trace: the host's frame to that MAC floods out of eth0 and leaves
    local = next(i.ofport for i in worker.interfaces if i.name == "breth0")
    trace = tracer.trace(TraceStart("ovn-worker", "breth0",
                                    {"in_port": local, "dl_dst": NOBODY,
                                     "dl_src": 0x020000000001, "dl_type": 0x0800},
                                    "host"))
    left = [v for v in trace.verdicts() if v.kind.value == "left"]
    assert [v.port for v in left] == ["eth0"]
    assert "02:00:00:00:aa:99" in left[0].text and "physnet" in left[0].text


def test_a_pods_echo_to_another_gateway_router_crosses_and_comes_back(resolved):
    """kind: the pod's echo, SNATed by its node's gateway router, goes out of eth0 to the
    other node's gateway router, which answers; the answer crosses back and is delivered
    to the pod.  Followed across the provider network, the trace ends in a delivery;
    the negative control (no crossing) ends where the request leaves."""
    tracer = ClusterTracer(resolved)
    trace = tracer.trace(start_from_short_form(tracer, NGINX, "172.18.0.3", "icmp"))
    entries = [(h.start.chassis, h.start.entry) for h in trace.hops]
    assert [c for c, _ in entries] == ["ovn-worker", "ovn-control-plane", "ovn-worker"]
    assert "provider network physnet from ovn-worker" in entries[1][1]
    assert "provider network physnet from ovn-control-plane" in entries[2][1]
    [verdict] = trace.verdicts()
    assert verdict.kind.value == "delivered" and verdict.logical_port == NGINX
    assert verdict.packet["nw_src"] == 0xAC120003       # the answer, from 172.18.0.3

    tracer = ClusterTracer(resolved)
    with mock.patch.object(ProviderNetworks, "crossing", return_value=None):
        trace = tracer.trace(start_from_short_form(tracer, NGINX, "172.18.0.3", "icmp"))
    assert [v.kind.value for v in trace.verdicts()] == ["left"]


def test_the_prediction_counts_the_uplink_and_the_far_side(resolved):
    """The sweep's prediction has the request at ovn-worker's uplink, the answer at
    ovn-control-plane's, and the answer at the pod: what the wire captures."""
    tracer = ClusterTracer(resolved)
    start = start_from_short_form(tracer, NGINX, "172.18.0.3", "icmp")
    prediction = predict(tracer, start.chassis, start.bridge, start.packet, start.entry,
                         {"icmp_id": 7, "icmp_seq": 1})
    where = sorted((p.chassis, p.port) for p in prediction.outputs)
    assert where == [("ovn-control-plane", "eth0"), ("ovn-worker", "eth0"),
                     ("ovn-worker", "nginx-x6pc6")]


def test_a_localnet_start_picks_the_chassis_by_eth_dst(kind):
    """kind's breth0_ovn-worker is patched in on ovn-worker only: a frame to its gateway
    router's MAC, or a broadcast, enters there; another node's MAC reaches a chassis
    where this switch is not, and a MAC nobody owns reaches none: both say so."""
    tracer = ClusterTracer(kind)
    flow = 'inport == "breth0_ovn-worker" && eth.src == 02:00:00:00:00:01 && eth.dst == {}'
    for dst in ("02:42:ac:12:00:04", "ff:ff:ff:ff:ff:ff"):
        start = start_from_expression(tracer, flow.format(dst))
        assert (start.chassis, start.bridge) == ("ovn-worker", "breth0")
    with pytest.raises(InputError, match="reaches ovn-control-plane, where breth0_ovn-worker "
                                         "is not patched in"):
        start_from_expression(tracer, flow.format("02:42:ac:12:00:03"))
    with pytest.raises(InputError, match="no chassis owns eth.dst 02:00:00:00:aa:99"):
        start_from_expression(tracer, flow.format("02:00:00:00:aa:99"))
    # --chassis still decides
    start = start_from_expression(tracer, flow.format("02:42:ac:12:00:03"), "ovn-worker2")
    assert start.chassis == "ovn-worker2"
    # without the patch ports' ovn-localnet-port (not collected), a broadcast names
    # every chassis on the network
    with mock.patch.object(ProviderNetworks, "localnet_chassis", return_value=set()), \
            pytest.raises(InputError, match="ovn-control-plane, ovn-worker, ovn-worker2"):
        start_from_expression(tracer, flow.format("ff:ff:ff:ff:ff:ff"))


def _with_floating_ip(snapshot: Snapshot) -> Snapshot:
    """The kind snapshot with a distributed floating IP on GR_ovn-worker for the nginx
    pod (NB NAT dnat_and_snat with external_mac and logical_port)."""
    snapshot = copy.deepcopy(snapshot)
    nb = snapshot.northbound.tables
    router = next(r for r in nb["Logical_Router"] if r["name"] == "GR_ovn-worker")
    nb["NAT"].append({"_uuid": "fip-1", "type": "dnat_and_snat", "external_ip": "172.18.0.50",
                      "logical_ip": "10.244.1.3", "external_mac": ["02:00:00:00:0f:01"],
                      "logical_port": [NGINX]})
    router["nat"] = [*router["nat"], "fip-1"]
    return snapshot


def test_a_distributed_floating_ips_mac_is_owned_where_its_port_is_bound(kind):
    networks = _networks(_with_floating_ip(kind))
    [owner] = networks.owners[0x020000000F01]
    assert networks.chassis_name(owner.system_id) == "ovn-worker"
    assert "floating IP 172.18.0.50" in owner.what
    assert 0x020000000F01 not in _networks(kind).owners     # negative control
