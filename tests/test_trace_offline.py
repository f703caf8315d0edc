"""Cluster traces on recorded lab snapshots (the live checks with real packets are in
integration/test_trace.py)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import FIXTURES, recorded

from ofrace.annotate.annotated import Annotator
from ofrace.ovn.microflow import parse_microflow
from ofrace.trace.cluster import ClusterTracer
from ofrace.trace.request import start_from_short_form, to_expression

NGINX = "default_nginx-deployment-9456bbbf9-x6pc6"


def test_pod_to_pod_crosses_the_tunnel():
    snapshot, _ = recorded("kind")
    tracer = ClusterTracer(snapshot)
    start = start_from_short_form(tracer, NGINX, "10.244.2.5:53", "udp")
    result = tracer.trace(start)
    assert [h.start.chassis for h in result.hops] == ["ovn-worker", "ovn-control-plane"]
    (verdict,) = result.verdicts()
    assert verdict.kind == "delivered"
    assert verdict.logical_port == "kube-system_coredns-64897985d-wdvs9"
    assert verdict.packet["nw_ttl"] == 63          # one router hop
    assert verdict.packet["dl_src"] == 0x0A580AF40201  # the router's MAC on that switch


def test_expression_round_trip():
    snapshot, _ = recorded("kind")
    tracer = ClusterTracer(snapshot)
    start = start_from_short_form(tracer, NGINX, "10.244.2.5:53", "udp")
    flow = parse_microflow(to_expression(start.packet, NGINX))
    assert flow.inport == NGINX
    for key, value in flow.fields.items():
        assert start.packet.get(key, 0) == value, key


def test_annotations_name_stages_and_ports():
    snapshot, _ = recorded("kind")
    tracer = ClusterTracer(snapshot)
    result = tracer.trace(start_from_short_form(tracer, NGINX, "10.244.2.5:53", "udp"))
    annotated = Annotator(tracer.names).trace(result)
    stages = [e.stage for e in annotated.root.events if e.kind == "flow" and e.stage]
    assert "ls_in_l2_lkup" in stages and "lr_in_ip_routing" in stages
    routing = next(e for e in annotated.root.events if e.stage == "lr_in_ip_routing")
    assert routing.datapath == "ovn_cluster_router"
    assert any(c.field == "ip.ttl" and c.after == "63" for c in routing.changes)


def test_cli_json_and_exit_code():
    snap = FIXTURES / "kind" / "snapshot.ofr"
    run = subprocess.run([sys.executable, "-m", "ofrace", "trace", "--snapshot", str(snap),
                          "--from", NGINX, "--to", "10.244.2.5:53", "--udp", "--json"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["schema"] == "ofrace-trace/1"
    assert doc["verdicts"][0]["packet"]["fields"]["nw_dst"] == "10.244.2.5"
    assert doc["trace"]["next_hops"][0]["chassis"] == "ovn-control-plane"
    bad = subprocess.run([sys.executable, "-m", "ofrace", "trace", "--snapshot", str(snap),
                          'inport == "x" &&& ip4'], capture_output=True, text=True)
    assert bad.returncode == 2
    lines = bad.stderr.splitlines()
    assert lines[0].startswith("ofrace: error:") and lines[2].strip() == "^"
    assert lines[1].index("&&&") + 2 == lines[2].index("^")


def test_acl_drop_names_the_acl_and_allowed_port_is_delivered():
    snapshot, _ = recorded("acl")
    tracer = ClusterTracer(snapshot)
    ssh = tracer.trace(start_from_short_form(tracer, "vm3", "10.0.1.11:22", "tcp"))
    (verdict,) = Annotator(tracer.names).trace(ssh).verdicts
    assert verdict.kind == "dropped" and verdict.chassis == "hv1"
    assert 'ACL "web-deny"' in verdict.text
    # the annotation is its own object: the trace's verdict is left as the engine said it
    assert verdict.cause.startswith("by ACL") and "ACL" not in ssh.verdicts()[0].text
    assert any("ACL log" in note for hop in ssh.hops for note in hop.notes)
    web = tracer.trace(start_from_short_form(tracer, "vm3", "10.0.1.11:80", "tcp"))
    assert [(v.kind, v.logical_port) for v in web.verdicts()] == [("delivered", "vm1")]


def _with_option_field(snapshot, chassis: str, field: str, flows_too: bool):
    ch = snapshot.chassis[chassis]
    bridge = ch.bridges[ch.integration_bridge]
    bridge.tlv_map = bridge.tlv_map.replace("tun_metadata0", field)
    if flows_too:
        bridge.__dict__["flows"] = [line.replace("tun_metadata0", field)
                                    .replace("NXM_NX_TUN_METADATA0[", f"NXM_NX_{field.upper()}[")
                                    for line in bridge.flows]


def test_the_receiver_reads_ovns_option_from_the_field_its_tlv_map_gives():
    """ovn-controller maps OVN's Geneve option (0x102/0x80) to the first free
    tun_metadataN of each bridge: the receiving chassis may use another field."""
    from conftest import FIXTURES

    from ofrace.snapshot import Snapshot

    def deliver(field, flows_too):
        snapshot = Snapshot.load(FIXTURES / "kind" / "snapshot.ofr")  # changed: not cached
        _with_option_field(snapshot, "ovn-control-plane", field, flows_too)
        tracer = ClusterTracer(snapshot)
        trace = tracer.trace(start_from_short_form(tracer, NGINX, "10.244.2.5:53", "udp"))
        return [v.kind for v in trace.verdicts()], trace.hops[-1].start.packet

    kinds, packet = deliver("tun_metadata5", flows_too=True)
    assert kinds == ["delivered"] and "tun_metadata5" in packet and "tun_metadata0" not in packet
    # negative control: the map says tun_metadata5 but the flows still read tun_metadata0
    kinds, _ = deliver("tun_metadata5", flows_too=False)
    assert kinds != ["delivered"]
