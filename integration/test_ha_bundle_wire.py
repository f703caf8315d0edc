"""OVN's HA gateway output is a bundle(active_backup) to the gateways' tunnels, with BFD
on them (controller/physical.c); OVS takes the first member BFD says forwards.  On the
kind lab, with a second (backup) gateway chassis given to a distributed gateway port:
ofrace's trace takes the member real OVS takes with BFD up, and the backup's tunnel once
BFD on the primary's is forced down -- and real packets end where the trace says."""

from __future__ import annotations

import ipaddress
import json
import time
from collections import Counter
from unittest import mock

import pytest
from lab_inventory import local_inventory
from wire import captured

from ofrace.collect.cluster import collect_cluster
from ofrace.lab.wire import datapath_packet
from ofrace.trace.cluster import ClusterTracer
from ofrace.trace.request import start_from_short_form

pytestmark = pytest.mark.lab

PORT = "rtos-ovn-worker"                      # gateway chassis: ovn-worker (priority 1)
BACKUP = "fbb949c1-6d62-44cc-b67e-9f93b40d1691"  # ovn-worker2, given priority 0 here
SOURCE = ("ovn-control-plane", "kube-system_coredns-64897985d-rzjfr", "coredns-rzjfr")
TARGET = ("ovn-worker", "nginx-x6pc6", "10.244.1.3:80")
ENCAP = {"192.168.100.4": "ovn-worker", "192.168.100.2": "ovn-worker2"}
BURST = 12


def _interfaces(lab, chassis: str) -> dict[str, dict]:
    """Tunnel name → its bfd_status, from the chassis' OVSDB."""
    doc = json.loads(lab.run_on(chassis, ["ovs-vsctl", "--format=json",
                                          "--columns=name,bfd_status", "list",
                                          "Interface"]).stdout)
    return {row[0]: dict(row[1][1]) for row in doc["data"]}


def _wait(what: str, ready, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = ready()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _tunnel_to(lab, chassis: str, remote_ip: str) -> str:
    doc = json.loads(lab.run_on(chassis, ["ovs-vsctl", "--format=json",
                                          "--columns=name,options", "list",
                                          "Interface"]).stdout)
    return next(row[0] for row in doc["data"] if dict(row[1][1]).get("remote_ip") == remote_ip)


def _underlay_geneve(lab) -> Counter:
    """Geneve frames the sender put on the underlay, by destination chassis."""
    counts: Counter = Counter()
    for packet in captured(lab, SOURCE[0], "br-phys_tunnel"):
        if packet.get("tp_dst") == 6081:
            counts[ENCAP.get(_ip(packet.get("nw_dst", 0)), "?")] += 1
    return counts


def _ip(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


def _predict(lab):
    """(the chassis ofrace tunnels to, its verdict kinds, the packet it traced)."""
    tracer = ClusterTracer(collect_cluster(local_inventory(lab)))
    start = start_from_short_form(tracer, SOURCE[1], TARGET[2], "tcp")
    trace = tracer.trace(start)
    tunnels = [e for e in trace.root.exits if e.kind == "tunnel"]
    assert len(tunnels) == 1, [e.reason for e in trace.root.exits]
    return (ENCAP[tunnels[0].data["remote_ip"]], sorted({v.kind.value for v in trace.verdicts()}),
            start)


def _trace_and_send(lab) -> tuple[str, list[str], str, int]:
    """(the chassis ofrace tunnels to, its verdict kinds, the chassis the burst really went
    to, how many of the burst reached the target VIF)."""
    predicted, kinds, start = _predict(lab)
    before_vif = len(captured(lab, TARGET[0], TARGET[1]))
    before = _underlay_geneve(lab)
    for n in range(BURST):
        lab.inject(SOURCE[0], SOURCE[2], datapath_packet(dict(start.packet,
                                                              tp_src=41000 + n)))
    time.sleep(1.0)
    sent = _underlay_geneve(lab) - before
    went = sent.most_common(1)[0][0] if sent else "nowhere"
    assert sent[went] >= BURST and all(n < BURST // 2 for c, n in sent.items() if c != went), sent
    arrived = sum(1 for p in captured(lab, TARGET[0], TARGET[1])[before_vif:]
                  if 41000 <= p.get("tp_src", 0) < 41000 + BURST)
    return predicted, kinds, went, arrived


def test_ha_gateway_bundle_takes_the_member_bfd_lets_through(lab_slot):
    lab = lab_slot.ensure("kind")
    cp = SOURCE[0]
    lab.nbctl("lrp-set-gateway-chassis", PORT, BACKUP, "0")
    primary = None
    try:
        _wait("the bundle on the sender", lambda: "bundle(eth_src,0,active_backup" in
              lab.run_on(cp, ["ovs-ofctl", "dump-flows", "br-int"]).stdout)
        primary = _tunnel_to(lab, cp, "192.168.100.4")
        backup = _tunnel_to(lab, cp, "192.168.100.2")
        _wait("BFD up on both tunnels", lambda: all(
            _interfaces(lab, cp)[t].get("forwarding") == "true" for t in (primary, backup)))
        up = _trace_and_send(lab)
        lab.run_on(cp, ["ovs-appctl", "bfd/set-forwarding", primary, "false"])
        _wait("BFD down on the primary's tunnel in OVSDB",
              lambda: _interfaces(lab, cp)[primary].get("forwarding") == "false")
        time.sleep(1.0)
        down = _trace_and_send(lab)
        with mock.patch("ofrace.simulate.engine.port_may_enable", return_value=(True, "")):
            ignored = _predict(lab)[0]   # negative control: liveness ignored
    finally:
        if primary:
            lab.run_on(cp, ["ovs-appctl", "bfd/set-forwarding", primary, "normal"],
                       check=False)
        lab.nbctl("lrp-del-gateway-chassis", PORT, BACKUP, check=False)
    print(f"BFD up: {up}; primary's BFD down: {down}")
    assert up[0] == up[2] == "ovn-worker" and up[1] == ["delivered"] and up[3] == BURST
    # the member changed with BFD, in the trace and on the wire: not vacuous
    assert down[0] == down[2] == "ovn-worker2" and ignored == "ovn-worker"
    # and where the packet ends on the backup, the trace says as the wire does
    assert (down[1] == ["delivered"]) == (down[3] == BURST), down
