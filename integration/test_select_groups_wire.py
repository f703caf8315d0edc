"""An OVN load balancer's select group (selection_method=dp_hash) chooses, on the lab's
userspace datapath, the backend ofrace predicts: real SYNs to the VIP from many source
ports, the backend whose VIF really received each one, against the trace's delivery."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from lab_inventory import local_inventory
from wire import captured

from ofrace.collect.cluster import collect_cluster
from ofrace.lab.wire import datapath_packet
from ofrace.trace.cluster import ClusterTracer
from ofrace.trace.request import start_from_short_form

pytestmark = pytest.mark.lab

VIP = "172.16.0.10:80"  # lb-web: 10.0.1.11:80 (vm1), 10.0.1.12:80 (vm2)
BACKENDS = ("vm1", "vm2")
SOURCE_PORTS = [40000 + 97 * i for i in range(24)]


def _vif(lab, port: str) -> tuple[str, str]:
    chassis = next(c["name"] for c in lab.state["chassis"] if port in c["vifs"])
    return chassis, lab.chassis(chassis)["vifs"][port]


def _wire_backend(lab, client, start, sport: int) -> list[str]:
    before = {b: len(captured(lab, *_vif(lab, b))) for b in BACKENDS}
    packet = dict(start.packet, tp_src=sport)
    lab.inject(client[0], client[1], datapath_packet(packet))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        got = [b for b in BACKENDS
               if any(p.get("tp_src") == sport for p in captured(lab, *_vif(lab, b))[before[b]:])]
        if got:
            return got
        time.sleep(0.05)
    return []


def _compare(lab, what: str, sports) -> None:
    tracer = ClusterTracer(collect_cluster(local_inventory(lab)))
    start = start_from_short_form(tracer, "vm3", VIP, "tcp")
    client = _vif(lab, "vm3")
    pairs = []
    for sport in sports:
        traced = tracer.trace(replace(start, packet=dict(start.packet, tp_src=sport)))
        delivered = [v.logical_port for v in traced.verdicts() if v.kind == "delivered"]
        notes = [n for hop in traced.hops for n in hop.notes if "not known" in n]
        assert not notes, notes  # the lab's datapath is userspace: the choice is computed
        pairs.append((sport, delivered, _wire_backend(lab, client, start, sport)))
    agree = sum(traced == wire for _, traced, wire in pairs)
    wire_backends = {b for _, _, wire in pairs for b in wire}
    print(f"{what}: {agree}/{len(pairs)} backends equal to the wire")
    assert wire_backends == set(BACKENDS), pairs  # both backends chosen: not vacuous
    assert agree == len(pairs), pairs


def test_dp_hash_backend_equals_the_wire(lab_slot):
    _compare(lab_slot.ensure("acl"), "dp_hash", SOURCE_PORTS)


def test_selection_fields_backend_equals_the_wire(lab_slot):
    """selection_fields on the load balancer: OVN asks for selection_method=hash."""
    lab = lab_slot.ensure("acl")
    lab.nbctl("set", "load_balancer", "lb-web", "selection_fields=ip_src,tp_src")
    try:
        chassis = _vif(lab, "vm3")[0]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            groups = lab.run_on(chassis, ["ovs-ofctl", "-O", "OpenFlow15", "dump-groups",
                                          "br-int"]).stdout
            if "selection_method=hash" in groups:
                break
            time.sleep(0.2)
        assert "selection_method=hash,fields(ip_src,tcp_src)" in groups, groups
        _compare(lab, "hash fields", [p + 1 for p in SOURCE_PORTS])
    finally:
        lab.nbctl("clear", "load_balancer", "lb-web", "selection_fields")
