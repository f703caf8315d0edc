"""`ofrace trace` on the kind lab, checked against real packets on the wire.

Every trace here is also done for real: the same packet is injected where
the trace starts (netdev-dummy/receive) and must come out of the port the
trace predicts with exactly the headers it predicts.  The lab is warmed up
first as a running cluster would be: the outside host (172.18.0.1) has
announced itself with ARP, and the gateway routers have resolved the
cluster router (a cold gateway router holds the first packet for ARP; that
case is traced separately).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from lab_inventory import local_inventory
from wire import send_and_capture, wire_fields

from ofrace.collect.cluster import collect_cluster
from ofrace.lab.traffic import warm_up
from ofrace.render.trace_json import without_counters
from ofrace.trace.cluster import ClusterTracer
from ofrace.trace.request import reply_start, start_from_expression, start_from_short_form

NGINX = "default_nginx-deployment-9456bbbf9-x6pc6"
NGINX_VIF = "nginx-x6pc6"
OUTSIDE_MAC = "02:42:7a:79:82:ca"
SEED = ('inport == "breth0_ovn-worker" && eth.src == 02:42:7a:79:82:ca && '
        'eth.dst == 02:42:ac:12:00:04 && ip4.src == 172.18.0.1 && ip4.dst == 172.18.0.4 && '
        'ip.ttl == 64 && tcp.src == {sport} && tcp.dst == 30007 && tcp.flags == 0x2')
NODES = {"ovn-worker": ("172.18.0.4", "02:42:ac:12:00:04"),
         "ovn-worker2": ("172.18.0.2", "02:42:ac:12:00:02"),
         "ovn-control-plane": ("172.18.0.3", "02:42:ac:12:00:03")}


@pytest.fixture(scope="module")
def warm_kind(lab_slot):
    """The kind lab as a cluster that has seen traffic: neighbours resolved."""
    lab = lab_slot.up("kind")
    warmed = warm_up(lab)
    assert {g["chassis"] for g in warmed} == set(NODES)
    return lab


@pytest.fixture
def tracer(warm_kind):
    return ClusterTracer(collect_cluster(local_inventory(warm_kind)))


def only(verdicts, kind):
    found = [v for v in verdicts if v.kind == kind]
    assert len(found) == 1, [v.text for v in verdicts]
    return found[0]


def fields(**kw) -> dict:
    def mac(text):
        return int(text.replace(":", ""), 16)

    def ip(text):
        return int.from_bytes(bytes(int(x) for x in text.split(".")), "big")

    out = {}
    for key, value in kw.items():
        if key in ("dl_src", "dl_dst"):
            out[key] = mac(value)
        elif key in ("nw_src", "nw_dst"):
            out[key] = ip(value)
        else:
            out[key] = value
    return out


def test_seed_nodeport_forward_and_reply_match_the_wire(tracer, warm_kind):
    lab = warm_kind
    start = start_from_expression(tracer, SEED.format(sport=12345))
    assert (start.chassis, start.bridge) == ("ovn-worker", "breth0")
    forward = tracer.trace(start)
    delivered = only(forward.verdicts(), "delivered")
    assert delivered.logical_port == NGINX and delivered.chassis == "ovn-worker"
    expected = fields(dl_src="0a:58:0a:f4:01:01", dl_dst="0a:58:0a:f4:01:03",
                      nw_src="100.64.0.3", nw_dst="10.244.1.3", tp_src=12345, tp_dst=80,
                      nw_ttl=62)
    assert {k: delivered.packet[k] for k in expected} == expected
    # DNAT and SNAT are shown at the ct() steps that did them
    nat = [s.text for hop in forward.hops for s in hop.root.walk() if s.kind == "ct"
           and s.data.get("nat")]
    assert any("dst-NAT to tcp 172.18.0.1:12345 > 10.244.1.3:80" in t for t in nat), nat
    assert any("src-NAT to tcp 100.64.0.3:12345 > 10.244.1.3:80" in t for t in nat), nat
    # the real packet: exactly these headers on the pod's VIF
    seen = send_and_capture(lab, "ovn-worker", "eth0", start.packet, "ovn-worker", NGINX_VIF,
                            {"tp_src": 12345})
    assert seen is not None, "the real SYN did not reach the pod"
    assert wire_fields(seen) == wire_fields(delivered.packet)

    # --reply: the SYN-ACK leaves on breth0_ovn-worker with DNAT and SNAT undone
    back_start = reply_start(tracer, delivered)
    back = tracer.trace(back_start)
    left = only(back.verdicts(), "left")
    assert left.chassis == "ovn-worker" and left.port == "eth0"
    expected = fields(dl_src="02:42:ac:12:00:04", dl_dst=OUTSIDE_MAC, nw_src="172.18.0.4",
                      nw_dst="172.18.0.1", tp_src=30007, tp_dst=12345)
    assert {k: left.packet[k] for k in expected} == expected
    seen = send_and_capture(lab, "ovn-worker", NGINX_VIF, back_start.packet, "ovn-worker",
                            "eth0", {"tp_dst": 12345, "tp_src": 30007})
    assert seen is not None, "the real SYN-ACK did not leave on eth0"
    assert wire_fields(seen) == wire_fields(left.packet)


def test_nodeport_on_another_node_crosses_the_tunnel(tracer, warm_kind):
    lab = warm_kind
    expr = ('inport == "breth0_ovn-worker2" && eth.src == 02:42:7a:79:82:ca && '
            'eth.dst == 02:42:ac:12:00:02 && ip4.src == 172.18.0.1 && ip4.dst == 172.18.0.2 && '
            'ip.ttl == 64 && tcp.src == 23456 && tcp.dst == 30007 && tcp.flags == 0x2')
    start = start_from_expression(tracer, expr)
    forward = tracer.trace(start)
    assert [h.start.chassis for h in forward.hops] == ["ovn-worker2", "ovn-worker"]
    assert "tunnel" in forward.hops[1].start.entry
    delivered = only(forward.verdicts(), "delivered")
    assert delivered.logical_port == NGINX
    assert delivered.packet["nw_src"] == fields(nw_src="100.64.0.2")["nw_src"]
    seen = send_and_capture(lab, "ovn-worker2", "eth0", start.packet, "ovn-worker", NGINX_VIF,
                            {"tp_src": 23456})
    assert seen is not None
    assert wire_fields(seen) == wire_fields(delivered.packet)
    back_start = reply_start(tracer, delivered)
    back = tracer.trace(back_start)
    left = only(back.verdicts(), "left")
    assert left.chassis == "ovn-worker2"
    assert left.packet["nw_src"] == fields(nw_src="172.18.0.2")["nw_src"]
    assert left.packet["tp_src"] == 30007 and left.packet["tp_dst"] == 23456
    seen = send_and_capture(lab, "ovn-worker", NGINX_VIF, back_start.packet, "ovn-worker2",
                            "eth0", {"tp_dst": 23456})
    assert seen is not None
    assert wire_fields(seen) == wire_fields(left.packet)


@pytest.mark.parametrize("source, destination, protocol, out_chassis, out_iface, port", [
    # pod to pod on another node
    (NGINX, "10.244.2.5:53", "udp", "ovn-control-plane", "coredns-wdvs9",
     "kube-system_coredns-64897985d-wdvs9"),
    # pod to the nginx ClusterIP (the switch's load balancer sends it back to the pod)
    ("kube-system_coredns-64897985d-wdvs9", "10.96.91.159:80", "tcp", "ovn-worker",
     NGINX_VIF, NGINX),
])
def test_pod_traffic_matches_the_wire(tracer, warm_kind, source, destination, protocol,
                                      out_chassis, out_iface, port):
    start = start_from_short_form(tracer, source, destination, protocol)
    delivered = only(tracer.trace(start).verdicts(), "delivered")
    assert delivered.logical_port == port and delivered.chassis == out_chassis
    iface = warm_kind.chassis(start.chassis)["vifs"][source]
    seen = send_and_capture(warm_kind, start.chassis, iface, start.packet, out_chassis,
                            out_iface, {"tp_src": start.packet["tp_src"]})
    assert seen is not None
    assert wire_fields(seen) == wire_fields(delivered.packet)


def test_arp_for_the_gateway_is_answered(tracer, warm_kind):
    expr = (f'inport == "{NGINX}" && eth.src == 0a:58:0a:f4:01:03 && '
            'eth.dst == ff:ff:ff:ff:ff:ff && arp.op == 1 && arp.spa == 10.244.1.3 && '
            'arp.tpa == 10.244.1.1 && arp.sha == 0a:58:0a:f4:01:03')
    start = start_from_expression(tracer, expr)
    delivered = only(tracer.trace(start).verdicts(), "delivered")
    assert delivered.logical_port == NGINX  # the router port's ARP reply comes back
    assert delivered.packet["nw_proto"] == 2
    assert delivered.packet["dl_src"] == fields(dl_src="0a:58:0a:f4:01:01")["dl_src"]
    seen = send_and_capture(warm_kind, "ovn-worker", NGINX_VIF, start.packet, "ovn-worker",
                            NGINX_VIF, {"nw_proto": 2})
    assert seen is not None
    assert wire_fields(seen) == wire_fields(delivered.packet)


def test_unknown_destination_mac_is_dropped(tracer, warm_kind):
    expr = (f'inport == "{NGINX}" && eth.src == 0a:58:0a:f4:01:03 && '
            'eth.dst == 0a:00:00:fe:fe:fe && ip4.src == 10.244.1.3 && ip4.dst == 10.244.1.99 && '
            'ip.ttl == 64 && udp.src == 5000 && udp.dst == 5001')
    result = tracer.trace(start_from_expression(tracer, expr))
    assert [v.kind for v in result.verdicts()] == ["dropped"]
    before = {n: len(warm_kind.pcap_packets("ovn-worker", n)) for n in ("eth0", "ovn-k8s-mp0")}
    start = start_from_expression(tracer, expr)
    seen = send_and_capture(warm_kind, "ovn-worker", NGINX_VIF, start.packet, "ovn-worker",
                            "eth0", {"tp_dst": 5001}, timeout=1.5)
    assert seen is None
    assert len(warm_kind.pcap_packets("ovn-worker", "ovn-k8s-mp0")) == before["ovn-k8s-mp0"]


def test_snapshot_file_traces_exactly_like_the_live_cluster(warm_kind, tmp_path):
    inv = warm_kind.dir / "inventory.toml"
    snap = tmp_path / "kind.ofr"
    run = subprocess.run([sys.executable, "-m", "ofrace", "collect", "-i", str(inv), "-o",
                          str(snap)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    expr = SEED.format(sport=12345)
    live = subprocess.run([sys.executable, "-m", "ofrace", "trace", "-i", str(inv), "--json",
                           "--reply", expr], capture_output=True, text=True, timeout=120)
    offline = subprocess.run([sys.executable, "-m", "ofrace", "trace", "--snapshot", str(snap),
                              "--json", "--reply", expr], capture_output=True, text=True,
                             timeout=120)
    assert live.returncode == 0, live.stderr
    assert offline.returncode == 0, offline.stderr
    assert without_counters(json.loads(live.stdout)) == \
        without_counters(json.loads(offline.stdout))
    # the control: the counters are there, so leaving them out is not vacuous
    assert "counters" in json.dumps(json.loads(offline.stdout))
    doc = json.loads(offline.stdout)
    assert doc["schema"] == "ofrace-trace/1"
    assert doc["verdicts"][0]["kind"] == "delivered"
    assert doc["reply"]["verdicts"][0]["kind"] == "left"


def test_text_output_and_exit_codes(warm_kind, tmp_path):
    inv = warm_kind.dir / "inventory.toml"
    run = subprocess.run([sys.executable, "-m", "ofrace", "trace", "-i", str(inv),
                          SEED.format(sport=12345)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "GR_ovn-worker ingress" in out and "lr_in_dnat" in out
    assert "delivered to default_nginx-deployment-9456bbbf9-x6pc6 on ovn-worker" in out
    assert "0a:58:0a:f4:01:01 > 0a:58:0a:f4:01:03, TCP 100.64.0.3:12345 > 10.244.1.3:80" in out
    dropped = subprocess.run([sys.executable, "-m", "ofrace", "trace", "-i", str(inv),
                              f'inport == "{NGINX}" && eth.src == 0a:58:0a:f4:01:03 && '
                              'eth.dst == 0a:00:00:fe:fe:fe && ip4.src == 10.244.1.3 && '
                              'ip4.dst == 10.244.1.99 && ip.ttl == 64 && udp.src == 1 && '
                              'udp.dst == 2'], capture_output=True, text=True, timeout=120)
    assert dropped.returncode == 1
    bad = subprocess.run([sys.executable, "-m", "ofrace", "trace", "-i", str(inv),
                          'inport == "nope" && ip4'], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown logical port" in bad.stderr


def test_acl_drop_is_named_and_matches_the_wire(lab_slot):
    """On the acl topology: vm3 → vm1:22 is dropped by ACL web-deny (and logged), and the
    real packet does not arrive; vm3 → vm1:80 is allowed and arrives as predicted."""
    lab = lab_slot.ensure("acl")
    tracer = ClusterTracer(collect_cluster(local_inventory(lab)))
    from ofrace.annotate.annotated import Annotator

    denied = start_from_short_form(tracer, "vm3", "10.0.1.11:22", "tcp")
    result = tracer.trace(denied)
    (verdict,) = Annotator(tracer.names).trace(result).verdicts
    assert verdict.kind == "dropped" and 'ACL "web-deny"' in verdict.text
    vm3 = lab.chassis(denied.chassis)["vifs"]["vm3"]
    vm1_chassis = next(c["name"] for c in lab.state["chassis"] if "vm1" in c["vifs"])
    vm1 = lab.chassis(vm1_chassis)["vifs"]["vm1"]
    assert send_and_capture(lab, denied.chassis, vm3, denied.packet, vm1_chassis, vm1,
                            {"tp_dst": 22}, timeout=1.5) is None
    allowed = start_from_short_form(tracer, "vm3", "10.0.1.11:80", "tcp")
    delivered = only(tracer.trace(allowed).verdicts(), "delivered")
    seen = send_and_capture(lab, allowed.chassis, vm3, allowed.packet, vm1_chassis, vm1,
                            {"tp_dst": 80})
    assert seen is not None and wire_fields(seen) == wire_fields(delivered.packet)
