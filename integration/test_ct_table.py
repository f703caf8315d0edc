"""A connection established for real before ``collect`` (issue 13 item 2): a trace of its
next packet starts from the node's connection table in the snapshot, names the entry it
found, and equals the wire; the same trace with ``--ct empty`` says there was no entry
and what state the packet got instead.

Real frames with real sequence numbers (``ofrace.openflow.frames.encode``), injected
with ``netdev-dummy/receive`` as ``ofrace lab verify`` does; what the pod received is
read from its VIF's pcap.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import replace

import pytest
from lab_inventory import local_inventory

from ofrace.collect.cluster import collect_cluster
from ofrace.lab.verify import flush_conntrack
from ofrace.lab.wire import read_pcap
from ofrace.openflow.frames import encode
from ofrace.trace.cluster import ClusterTracer, TraceOptions
from ofrace.trace.request import reply_start, start_from_short_form

NGINX, NGINX_VIF = "default_nginx-deployment-9456bbbf9-x6pc6", "nginx-x6pc6"
COREDNS, VIP = "10.244.2.5", "10.96.91.159"
SYN, ACK, PSH_ACK, SYN_ACK = 0x02, 0x10, 0x18, 0x12
HEADERS = ("dl_src", "dl_dst", "nw_src", "nw_dst", "nw_ttl", "tp_src", "tp_dst", "tcp_flags")


def _send(lab, chassis, iface, packet, wire, out_chassis, out_iface, wait=1.5):
    """Inject a real frame; what ``out_iface`` sent meanwhile on the same ports."""
    path = lab.layout.pcap(out_chassis, out_iface, "tx")
    _, offset = read_pcap(path, 0)
    lab.run_on(chassis, ["ovs-appctl", "netdev-dummy/receive", iface,
                         encode(packet, wire).hex()])
    ports = {packet["tp_src"], packet["tp_dst"]}
    deadline, seen = time.monotonic() + wait, []
    while time.monotonic() < deadline and not seen:
        time.sleep(0.1)
        frames, _ = read_pcap(path, offset)
        seen = [f for f in frames if f.get("nw_proto") == 6
                and {f.get("tp_src"), f.get("tp_dst")} == ports]
    return seen


@pytest.fixture(scope="module")
def opened(lab_slot):
    """A whole handshake (46001) and a lone SYN (46002) from nginx to coredns, sent for
    real, then the cluster collected: its snapshot holds both connections."""
    lab = lab_slot.ensure("kind")
    flush_conntrack(lab)
    tracer = ClusterTracer(collect_cluster(local_inventory(lab)))
    conversations = {}
    for sport in (46001, 46002):
        start = start_from_short_form(tracer, NGINX, f"{COREDNS}:53", "tcp")
        start.packet["tp_src"] = sport
        (verdict,) = [v for v in tracer.trace(start).verdicts() if v.kind == "delivered"]
        conversations[sport] = (start, reply_start(tracer, verdict), verdict)
    start, back, verdict = conversations[46001]
    assert _send(lab, start.chassis, NGINX_VIF, dict(start.packet, tcp_flags=SYN),
                 {"tcp_seq": 1000}, verdict.chassis, verdict.port)
    assert _send(lab, back.chassis, verdict.port, dict(back.packet, tcp_flags=SYN_ACK),
                 {"tcp_seq": 5000, "tcp_ack": 1001}, start.chassis, NGINX_VIF)
    assert _send(lab, start.chassis, NGINX_VIF, dict(start.packet, tcp_flags=ACK),
                 {"tcp_seq": 1001, "tcp_ack": 5001}, verdict.chassis, verdict.port)
    start, _, verdict = conversations[46002]
    assert _send(lab, start.chassis, NGINX_VIF, dict(start.packet, tcp_flags=SYN),
                 {"tcp_seq": 7000}, verdict.chassis, verdict.port)
    # A SYN to nginx's own VIP: DNATed to nginx, SNATed to the VIP (hairpin).
    start = start_from_short_form(tracer, NGINX, f"{VIP}:80", "tcp")
    start.packet["tp_src"] = 46003
    (seen,) = _send(lab, start.chassis, NGINX_VIF, dict(start.packet, tcp_flags=SYN),
                    {"tcp_seq": 3000}, start.chassis, NGINX_VIF)
    conversations[46003] = (start, seen, None)
    return lab, collect_cluster(local_inventory(lab)), conversations


def dict_start(start, packet):
    """The same start with a fresh copy of ``packet`` (a trace may rewrite what it gets)."""
    return replace(start, packet=dict(packet))


def _ct_texts(trace):
    return [s.text for hop in trace.hops for s in hop.root.walk() if s.kind == "ct"]


def test_the_next_data_packet_finds_its_entry_and_equals_the_wire(opened):
    lab, snapshot, conversations = opened
    start, _, verdict = conversations[46001]
    worker = snapshot.chassis[start.chassis]
    assert "sport=46001" in worker.conntrack and "ESTABLISHED" in worker.conntrack
    data = dict(start.packet, tcp_flags=PSH_ACK)
    trace = ClusterTracer(snapshot).trace(dict_start(start, data))
    first = _ct_texts(trace)[0]
    assert ": est+trk (" in first
    assert (f"found tcp 10.244.1.3:46001 > {COREDNS}:53 zone " in first
            and "ESTABLISHED from the node's table" in first)
    (predicted,) = [v for v in trace.verdicts() if v.kind == "delivered"]
    seen = _send(lab, start.chassis, NGINX_VIF, data,
                 {"tcp_seq": 1001, "tcp_ack": 5001, "payload_len": 10},
                 verdict.chassis, verdict.port)
    assert [{k: f.get(k) for k in HEADERS} for f in seen] == [
        {k: predicted.packet.get(k) for k in HEADERS}]
    # --ct empty: no entry, so the same packet is new (picked up mid-stream) and committed.
    empty = ClusterTracer(snapshot, TraceOptions(ct_from_node=False)).trace(
        dict_start(start, data))
    texts = _ct_texts(empty)
    assert ": new+trk (" in texts[0] and "no entry in zone" in texts[0]
    assert "--ct empty" in texts[0] and any("committed" in t for t in texts)
    assert not any("committed" in t for t in _ct_texts(trace))


def test_a_syn_ack_to_a_syn_sent_before_collect(opened):
    lab, snapshot, conversations = opened
    start, back, verdict = conversations[46002]
    syn_ack = dict(back.packet, tcp_flags=SYN_ACK)
    trace = ClusterTracer(snapshot).trace(dict_start(back, syn_ack))
    assert "SYN_SENT/CLOSED from the node's table (its reply direction)" in _ct_texts(trace)[0]
    (predicted,) = [v for v in trace.verdicts() if v.kind == "delivered"]
    seen = _send(lab, back.chassis, verdict.port, syn_ack,
                 {"tcp_seq": 9000, "tcp_ack": 7001}, start.chassis, NGINX_VIF)
    assert [{k: f.get(k) for k in HEADERS} for f in seen] == [
        {k: predicted.packet.get(k) for k in HEADERS}]
    # --ct empty: a SYN-ACK with no connection is invalid, and OVN drops it.
    empty = ClusterTracer(snapshot, TraceOptions(ct_from_node=False)).trace(
        dict_start(back, syn_ack))
    assert ": inv+trk (" in _ct_texts(empty)[0]
    assert "SYN-ACK with no connection" in _ct_texts(empty)[0]
    assert [v.kind for v in empty.verdicts()] == ["dropped"]


def test_the_hairpin_syn_ack_leaves_from_the_vip_as_on_the_wire(opened):
    """The pod answers the SYN it got from the VIP: the node's SNAT and DNAT entries undo
    both translations, and the answer reaches the pod from the VIP."""
    lab, snapshot, conversations = opened
    start, syn, _ = conversations[46003]
    assert syn["nw_src"] == int(ipaddress.IPv4Address(VIP))    # what the pod received
    answer = dict(start.packet, nw_src=syn["nw_dst"], nw_dst=syn["nw_src"],
                  tp_src=syn["tp_dst"], tp_dst=syn["tp_src"], tcp_flags=SYN_ACK)
    entry = replace(start, packet=answer)
    trace = ClusterTracer(snapshot).trace(dict_start(entry, answer))
    natted = [t for t in _ct_texts(trace) if "reverse NAT" in t]
    assert len(natted) == 2 and all("from the node's table" in t for t in natted)
    (predicted,) = [v for v in trace.verdicts() if v.kind == "delivered"]
    assert predicted.packet["nw_src"] == int(ipaddress.IPv4Address(VIP))
    seen = _send(lab, start.chassis, NGINX_VIF, answer, {"tcp_seq": 8000, "tcp_ack": 3001},
                 start.chassis, NGINX_VIF)
    assert [{k: f.get(k) for k in HEADERS} for f in seen] == [
        {k: predicted.packet.get(k) for k in HEADERS}]
    empty = ClusterTracer(snapshot, TraceOptions(ct_from_node=False)).trace(
        dict_start(entry, answer))
    assert [v.kind for v in empty.verdicts()] == ["dropped"]
