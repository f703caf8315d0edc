"""ofrace on kind-ic (a zone per node, joined by ovn-ic): collect reads every zone's NB and
SB through its node and the IC-SB; a trace across zones ends with the packet the wire
shows, each hop read in its own zone; the audit is clean per zone and finds faults
injected in the IC-SB and in one zone's transit switch.

Real packets go in with netdev-dummy/receive and are read from the pcaps
(test_kind_ic's helpers); the snapshot is taken first, so the trace predicts what the
wire then shows.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager

import pytest
from test_kind_ic import NGINX_VIF, NODEPORT_SYN, _send, packet_fields, zone

from ofrace.annotate.session import TraceRequest, run_trace
from ofrace.audit.cluster import audit_snapshot
from ofrace.collect.cluster import collect_cluster
from ofrace.collect.inventory import load_inventory
from ofrace.lab import interconnect
from ofrace.lab.lab import Lab
from ofrace.openflow.fields import format_mac

pytestmark = pytest.mark.lab

NODES = ("ovn-control-plane", "ovn-worker", "ovn-worker2")
NGINX = "default_nginx-deployment-9456bbbf9-x6pc6"
WIRE_FIELDS = ("dl_src", "dl_dst", "nw_src", "nw_dst", "nw_ttl", "tp_src", "tp_dst")


@pytest.fixture(scope="module")
def lab(lab_slot) -> Lab:
    return lab_slot.ensure("kind-ic")


def snapshot_of(lab: Lab):
    """The lab read as a user reads it: its inventory, over SSH, with the real collector."""
    return collect_cluster(load_inventory(lab.layout.inventory_file))


def wire_view(packet: dict) -> dict[str, str]:
    """A traced packet's headers as ``ovs-ofctl parse-pcap`` prints them."""
    ip = lambda value: ".".join(str(value >> s & 0xFF) for s in (24, 16, 8, 0))  # noqa: E731
    return {"dl_src": format_mac(packet["dl_src"]), "dl_dst": format_mac(packet["dl_dst"]),
            "nw_src": ip(packet["nw_src"]), "nw_dst": ip(packet["nw_dst"]),
            "nw_ttl": str(packet["nw_ttl"]), "tp_src": str(packet["tp_src"]),
            "tp_dst": str(packet["tp_dst"])}


def _hops(hop):
    yield hop
    for child in hop.children:
        yield from _hops(child)


def _delivered(annotated):
    return [v for v in annotated.verdicts if v.kind == "delivered"]


def test_collect_reads_every_zone_and_the_ic_sb(lab):
    snapshot = snapshot_of(lab)
    assert snapshot.complete, snapshot.all_problems()
    assert list(snapshot.zones) == list(NODES)
    for name, found in snapshot.zones.items():
        assert found.chassis == [name]
        assert found.southbound.via == name and found.southbound.tables["Logical_Flow"]
        assert found.northbound.tables["NB_Global"][0]["name"] == name
    assert len(snapshot.interconnect.tables["Port_Binding"]) == 3


def test_pod_to_pod_across_zones_equals_the_wire(lab):
    """ovn-worker2's management port -> nginx on ovn-worker: two cluster routers, the
    transit switch's tunnel between them."""
    snapshot = snapshot_of(lab)
    expression = ('inport == "k8s-ovn-worker2" && eth.src == 4e:19:7f:89:93:bc && '
                  "eth.dst == 0a:58:0a:f4:00:01 && ip4.src == 10.244.0.2 && "
                  "ip4.dst == 10.244.1.3 && ip.ttl == 64 && tcp.src == 41600 && "
                  "tcp.dst == 80 && tcp.flags == 2")
    result = run_trace(snapshot, TraceRequest.from_options(expression, None, None, "tcp",
                                                           None, False))
    [verdict] = _delivered(result.annotated)
    assert verdict.logical_port == NGINX
    assert [(h.chassis, h.zone) for h in _hops(result.annotated.root)] == [
        ("ovn-worker2", "ovn-worker2"), ("ovn-worker", "ovn-worker")]
    arrived = _send(lab, "ovn-worker2", "ovn-k8s-mp0",
                    "eth(src=4e:19:7f:89:93:bc,dst=0a:58:0a:f4:00:01),eth_type(0x0800),"
                    "ipv4(src=10.244.0.2,dst=10.244.1.3,proto=6,tos=0,ttl=64,frag=no),"
                    "tcp(src=41600,dst=80),tcp_flags(syn)", "ovn-worker", NGINX_VIF)
    assert len(arrived) == 1, arrived
    assert {k: arrived[0][k] for k in WIRE_FIELDS} == wire_view(verdict.packet)


def test_pod_to_cluster_ip_with_its_backend_in_another_zone_equals_the_wire(lab):
    """coredns (ovn-control-plane) -> nginx-np's ClusterIP: the node switch's load
    balancer in ovn-control-plane's zone DNATs, the transit switch carries it."""
    snapshot = snapshot_of(lab)
    expression = ('inport == "kube-system_coredns-64897985d-rzjfr" && '
                  "eth.src == 0a:58:0a:f4:02:03 && eth.dst == 0a:58:0a:f4:02:01 && "
                  "ip4.src == 10.244.2.3 && ip4.dst == 10.96.91.159 && ip.ttl == 64 && "
                  "tcp.src == 41700 && tcp.dst == 80 && tcp.flags == 2")
    result = run_trace(snapshot, TraceRequest.from_options(expression, None, None, "tcp",
                                                           None, False))
    [verdict] = _delivered(result.annotated)
    hops = list(_hops(result.annotated.root))
    assert [(h.chassis, h.zone) for h in hops] == [
        ("ovn-control-plane", "ovn-control-plane"), ("ovn-worker", "ovn-worker")]
    lb = [e for e in hops[0].events if e.stage and "ct_lb_mark" in (e.logical_actions or "")]
    assert lb and lb[0].datapath == "ovn-control-plane"
    arrived = _send(lab, "ovn-control-plane", "coredns-rzjfr",
                    "eth(src=0a:58:0a:f4:02:03,dst=0a:58:0a:f4:02:01),eth_type(0x0800),"
                    "ipv4(src=10.244.2.3,dst=10.96.91.159,proto=6,tos=0,ttl=64,frag=no),"
                    "tcp(src=41700,dst=80),tcp_flags(syn)", "ovn-worker", NGINX_VIF)
    assert len(arrived) == 1, arrived
    assert {k: arrived[0][k] for k in WIRE_FIELDS} == wire_view(verdict.packet)


def test_seed_nodeport_and_its_reply_across_zones_equal_the_wire(lab):
    """The seed's NodePort on ovn-control-plane -> nginx in ovn-worker's zone; then the
    SYN-ACK back, which GR_ovn-control-plane holds while it asks for 172.18.0.1's MAC:
    the wire shows that ARP request leave on the uplink."""
    warm = _send(lab, "ovn-control-plane", "eth0", NODEPORT_SYN.format(sport=40300),
                 "ovn-worker", NGINX_VIF)
    assert len(warm) == 1, warm   # the cold gateway router's ARP, out of the way
    snapshot = snapshot_of(lab)
    expression = ('inport == "breth0_ovn-control-plane" && eth.src == 02:42:7a:79:82:ca && '
                  "eth.dst == 02:42:ac:12:00:03 && ip4.src == 172.18.0.1 && "
                  "ip4.dst == 172.18.0.3 && ip.ttl == 64 && tcp.src == 12500 && "
                  "tcp.dst == 30007 && tcp.flags == 2")
    result = run_trace(snapshot, TraceRequest.from_options(expression, None, None, "tcp",
                                                           None, True))
    [verdict] = _delivered(result.annotated)
    zones_seen = [(h.chassis, h.zone) for h in _hops(result.annotated.root)]
    assert zones_seen == [("ovn-control-plane", "ovn-control-plane"),
                          ("ovn-worker", "ovn-worker")]
    gr = {e.datapath for e in result.annotated.root.events if e.stage}
    assert "GR_ovn-control-plane" in gr and "transit_switch" in gr
    arrived = _send(lab, "ovn-control-plane", "eth0", NODEPORT_SYN.format(sport=12500),
                    "ovn-worker", NGINX_VIF)
    assert len(arrived) == 1, arrived
    assert {k: arrived[0][k] for k in WIRE_FIELDS} == wire_view(verdict.packet)
    # the reply: held on ovn-control-plane for 172.18.0.1's MAC; its ARP request leaves
    back_hops = list(_hops(result.back.root))
    assert (back_hops[0].chassis, back_hops[0].zone) == ("ovn-worker", "ovn-worker")
    assert back_hops[1].zone == "ovn-control-plane"
    assert [v.kind for v in result.back.verdicts][0] == "controller"
    [arp] = [h for h in back_hops if h.entry.startswith("built by ovn-controller")]
    before = len(lab.pcap_packets("ovn-control-plane", "eth0"))
    lab.inject("ovn-worker", NGINX_VIF,
               "eth(src=0a:58:0a:f4:01:03,dst=0a:58:0a:f4:01:01),eth_type(0x0800),"
               "ipv4(src=10.244.1.3,dst=100.64.0.4,proto=6,tos=0,ttl=64,frag=no),"
               "tcp(src=80,dst=12500),tcp_flags(syn|ack)")
    sent = [packet_fields(p) for p in
            lab.wait_for_packets("ovn-control-plane", "eth0", before + 1)[before:]]
    assert [(p.get("arp_op"), p.get("arp_tpa"), p.get("dl_src")) for p in sent] == [
        ("1", "172.18.0.1", format_mac(arp.packet_in["dl_src"]))]


@contextmanager
def ovn_ic_paused(lab: Lab, zone_name: str):
    """The zone's ovn-ic stopped (SIGSTOP), so a fault stays as injected; then resumed."""
    pid = next(p["pid"] for p in lab.state["processes"]
               if p["what"] == "ovn-ic" and p["chassis"] == zone(lab, zone_name)["host"])
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _interconnect_findings(lab: Lab) -> list[str]:
    audit = audit_snapshot(snapshot_of(lab))
    assert audit.complete
    return [p.message for c in audit.chassis for p in c.health if p.kind == "interconnect"]


def _until(condition, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def _remote_ports(lab: Lab, zone_name: str) -> set[str]:
    rows = lab._sb_rows("Port_Binding", "logical_port", "type",
                        remote=zone(lab, zone_name)["sb_remote"])
    return {r["logical_port"] for r in rows if r["type"] == "remote"}


def test_audit_is_clean_per_zone(lab):
    audit = audit_snapshot(snapshot_of(lab))
    assert audit.clean, [(c.chassis, c.health[:3], c.unreadable) for c in audit.chassis]


IC_PORT_COLUMNS = ("transit_switch", "availability_zone", "gateway", "tunnel_key",
                   "address")


def test_a_transit_port_deleted_from_the_ic_sb_is_found(lab):
    """ovn-worker's ovn-ic paused, its transit port's IC-SB row destroyed: the other
    zones' ovn-ic drop their remote copies, and ovn-worker's own transit port is
    registered nowhere.  The row is then put back as it was (left to ovn-ic, it would
    come back with the next free key, not its own) and the audit is clean again."""
    with ovn_ic_paused(lab, "ovn-worker"):
        uuid = interconnect.ic_sbctl(lab, "--bare", "--columns=_uuid", "find",
                                     "Port_Binding", "logical_port=tstor-ovn-worker").strip()
        saved = {column: interconnect.ic_sbctl(lab, "get", "Port_Binding", uuid,
                                               column).strip()
                 for column in IC_PORT_COLUMNS}
        interconnect.ic_sbctl(lab, "destroy", "Port_Binding", uuid)
        try:
            _until(lambda: "tstor-ovn-worker" not in _remote_ports(lab, "ovn-control-plane"),
                   "ovn-control-plane's ovn-ic to drop the remote port")
            found = _interconnect_findings(lab)
            assert any(m.startswith("zone ovn-worker: transit port tstor-ovn-worker") and
                       "no IC-SB Port_Binding" in m for m in found), found
        finally:
            interconnect.ic_sbctl(lab, "create", "Port_Binding",
                                  "logical_port=tstor-ovn-worker",
                                  *(f"{column}={value}" for column, value in saved.items()))
    _until(lambda: "tstor-ovn-worker" in _remote_ports(lab, "ovn-control-plane")
           and "tstor-ovn-worker" in _remote_ports(lab, "ovn-worker2"),
           "ovn-worker's transit port to come back")
    _until(lambda: not _interconnect_findings(lab), "a clean audit again")


def test_a_stale_remote_port_in_one_zone_is_found(lab):
    """ovn-worker2's ovn-ic paused, a remote port no IC-SB row backs added to its transit
    switch (as one left behind by a zone that is gone): found in that zone only."""
    nb = zone(lab, "ovn-worker2")["nb_remote"]
    gateway = lab.chassis("ovn-worker")["system_id"]
    with ovn_ic_paused(lab, "ovn-worker2"):
        lab.nbctl("lsp-add", "transit_switch", "tstor-gone", "--",
                  "lsp-set-type", "tstor-gone", "remote", "--",
                  "lsp-set-addresses", "tstor-gone", "0a:58:64:58:00:09 100.88.0.9/16", "--",
                  "lsp-set-options", "tstor-gone", f"requested-chassis={gateway}",
                  "requested-tnl-key=9", remote=nb)
        try:
            _until(lambda: "tstor-gone" in _remote_ports(lab, "ovn-worker2"),
                   "northd to bind the stale port")
            found = _interconnect_findings(lab)
            assert found == ["zone ovn-worker2: remote port tstor-gone of transit_switch has "
                             "no IC-SB Port_Binding: a stale transit port, no zone owns it"]
        finally:
            lab.nbctl("--if-exists", "lsp-del", "tstor-gone", remote=nb)
    _until(lambda: not _interconnect_findings(lab), "a clean audit again")
