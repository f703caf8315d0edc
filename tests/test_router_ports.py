"""Traces start from router ports too: every patch, l3gateway and chassisredirect port of
the kind topology enters where ovn-controller hands packets over from its peer.

The handover is recognised from the decoded flow (OVS prints the datapath load as
``->OXM_OF_METADATA[]``, which a text search for ``->metadata`` never found)."""

from __future__ import annotations

import pytest
from conftest import FIXTURES, recorded

from ofrace.errors import InputError
from ofrace.snapshot import Snapshot
from ofrace.trace.cluster import ClusterTracer, _handover_table

ROUTER_SIDE = ("patch", "l3gateway", "chassisredirect")


def _tracer() -> ClusterTracer:
    snapshot, _ = recorded("kind")
    return ClusterTracer(snapshot)


def _router_side_ports() -> list[str]:
    snapshot, _ = recorded("kind")
    return sorted(pb["logical_port"] for pb in snapshot.southbound.tables["Port_Binding"]
                  if pb.get("type") in ROUTER_SIDE)


def test_the_fixture_has_router_and_chassisredirect_ports():
    ports = _router_side_ports()
    assert len(ports) >= 20
    assert any(p.startswith("cr-") for p in ports) and any(p.startswith("rtos-") for p in ports)


@pytest.mark.parametrize("port", _router_side_ports())
def test_a_trace_starts_from_every_router_side_port(port):
    tracer = _tracer()
    start = tracer.locate(port)
    trace = tracer.trace(start)
    pb = tracer.names.ports_by_name[port]
    if pb["type"] == "chassisredirect":
        pb = tracer.names.ports_by_name[pb["options"]["distributed-port"]]
    own_datapath = tracer.names.datapath_key(pb["datapath"])
    flows = [s for s in trace.root.root.walk() if s.kind == "flow"]
    assert flows and flows[0].table == start.table, "a first hop runs the handover flow"
    # after the handover the packet runs in the port's own logical datapath, as its inport
    facts = tracer.facts(start.chassis)
    inside = [s.data["packet"] for s in flows[1:]]
    assert any(p.get(facts.register("datapath")) == own_datapath
               and p.get(facts.register("inport")) == pb["tunnel_key"] for p in inside)


def test_a_port_whose_peer_is_handed_over_nowhere_is_an_input_error():
    """Negative control: with the handover flows gone, the start fails in one line."""
    tracer = ClusterTracer(Snapshot.load(FIXTURES / "kind" / "snapshot.ofr"))  # not cached
    ch = tracer.snapshot.chassis["ovn-worker"]
    bridge = ch.bridges[ch.integration_bridge]
    kept = [line for line in bridge.flows if "clone(" not in line]
    bridge.__dict__["flows"] = kept
    with pytest.raises(InputError, match="hands packets"):
        tracer.locate("rtos-ovn-worker", chassis="ovn-worker")


def test_the_handover_is_read_from_decoded_actions_not_text():
    facts = _tracer().facts("ovn-worker")
    printed = (" cookie=0x1, table=65, priority=100,reg15=0x1,metadata=0x1 "
               "actions=clone(ct_clear,load:0x2->OXM_OF_METADATA[],load:0x1->NXM_NX_REG14[],"
               "resubmit(,8))")
    assert _handover_table([printed], facts, 1, 1) == 65
    assert _handover_table([printed], facts, 1, 2) is None      # another outport
    assert _handover_table([printed], facts, 3, 1) is None      # another datapath
    no_datapath = printed.replace("load:0x2->OXM_OF_METADATA[],", "")
    assert _handover_table([no_datapath], facts, 1, 1) is None  # no new datapath: no handover


def test_a_packet_routed_from_a_router_port_is_delivered():
    """What failed before ("no flow on ovn-control-plane hands packets ..."): the node
    router port of ovn-worker routes a pod's packet to coredns on another chassis."""
    from ofrace.trace.request import start_from_expression

    tracer = _tracer()
    start = start_from_expression(
        tracer, 'inport == "rtos-ovn-worker" && eth.src == 0a:58:0a:f4:01:03 && '
        'eth.dst == 0a:58:0a:f4:01:01 && ip4.src == 10.244.1.3 && ip4.dst == 10.244.2.5 && '
        'ip.ttl == 64 && udp.src == 5000 && udp.dst == 53')
    assert start.chassis == "ovn-worker"
    (verdict,) = tracer.trace(start).verdicts()
    assert verdict.kind == "delivered"
    assert verdict.logical_port == "kube-system_coredns-64897985d-wdvs9"
    assert verdict.packet["nw_ttl"] == 63
