"""The node's connection table read into the conntrack model, and traces starting from
it (issue 13 item 2), on real tables recorded from the kind lab by
scripts/record_ct_table.py: a TCP handshake (45101), a lone SYN (45102), a UDP query
and answer (45103), an ICMP echo and reply (id 77), a SYN hairpinned through the nginx
VIP (45104: DNAT and SNAT)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from ofrace.annotate.session import TraceRequest, run_trace
from ofrace.compare.verify import parse_dump_conntrack
from ofrace.render.trace_json import trace_json
from ofrace.simulate.conntrack import TCPS_CLOSED, TCPS_ESTABLISHED, TCPS_SYN_SENT, packet_key
from ofrace.simulate.conntrack_dump import connection_of, parse_dump, parse_entry
from ofrace.snapshot import Snapshot

HERE = Path(__file__).resolve().parent / "fixtures" / "kind" / "ct_table"
NGINX_IP, COREDNS_IP, VIP = "10.244.1.3", "10.244.2.5", "10.96.91.159"
FROM_NGINX = ('inport == "default_nginx-deployment-9456bbbf9-x6pc6" && '
              "eth.src == 0a:58:0a:f4:01:03 && eth.dst == 0a:58:0a:f4:01:01 && "
              "ip4.src == 10.244.1.3 && ip4.dst == 10.244.2.5 && ip.ttl == 64 && {l4}")
FROM_COREDNS = ('inport == "kube-system_coredns-64897985d-wdvs9" && '
                "eth.src == 0a:58:0a:f4:02:05 && eth.dst == 0a:58:0a:f4:02:01 && "
                "ip4.src == 10.244.2.5 && ip4.dst == 10.244.1.3 && ip.ttl == 64 && {l4}")


@pytest.fixture(scope="module")
def snapshot() -> Snapshot:
    return Snapshot.load(HERE / "snapshot.ofr")


@pytest.fixture(scope="module")
def plain_dumps() -> dict[str, str]:
    return json.loads((HERE / "sent.json").read_text())["plain_dumps"]


def _ip(text: str) -> int:
    return int(ipaddress.ip_address(text))


def _entries(snapshot, chassis):
    entries, unreadable = parse_dump(snapshot.chassis[chassis].conntrack)
    assert not unreadable
    return entries


def test_every_recorded_line_is_read(snapshot, plain_dumps):
    counts = {name: len(_entries(snapshot, name)) for name in snapshot.chassis}
    assert counts == {"ovn-worker": 7, "ovn-control-plane": 4, "ovn-worker2": 0}
    for name, text in plain_dumps.items():  # without -m: the same connections
        assert parse_dump_conntrack(name, text) == parse_dump_conntrack(
            name, snapshot.chassis[name].conntrack)


def test_tcp_states_per_direction(snapshot):
    by_port = {e.original.sport: e for e in _entries(snapshot, "ovn-control-plane")
               if e.protocol == 6}
    assert by_port[45101].tcp_states == (TCPS_ESTABLISHED, TCPS_ESTABLISHED)
    assert by_port[45102].tcp_states == (TCPS_SYN_SENT, TCPS_CLOSED)
    assert by_port[45102].state_text() == "SYN_SENT/CLOSED"
    conn = connection_of(by_port[45101])
    assert [p.state for p in conn.tcp.peers] == [TCPS_ESTABLISHED, TCPS_ESTABLISHED]
    assert not conn.tcp.windows_known
    assert any("sequence numbers" in a for a in conn.assumed)


def test_nat_is_read_from_the_reply_tuple(snapshot):
    entries = _entries(snapshot, "ovn-worker")
    natted = {(e.zone, e.nat_kinds) for e in entries if e.nat_kinds}
    dnat = next(e for e in entries if e.original.dst == _ip(VIP))
    assert dnat.nat_kinds == ("dst",) and dnat.mark == 2
    assert dnat.reply.src == _ip(NGINX_IP)
    snat = next(e for e in entries if e.reply.dst == _ip(VIP))
    assert snat.nat_kinds == ("src",)
    assert natted == {(dnat.zone, ("dst",)), (snat.zone, ("src",))}
    # Negative control: the plain connections to coredns are not NATed.
    assert all(not e.nat_kinds for e in entries if e.original.dst == _ip(COREDNS_IP))


def test_icmp_and_udp_entries(snapshot):
    entries = _entries(snapshot, "ovn-control-plane")
    icmp = next(e for e in entries if e.protocol == 1)
    assert (icmp.original.sport, icmp.original.stype, icmp.reply.stype) == (77, 8, 0)
    reply = {"dl_type": 0x0800, "nw_proto": 1, "nw_src": _ip(COREDNS_IP),
             "nw_dst": _ip(NGINX_IP), "tp_src": 0, "tp_dst": 0, "icmp_id": 77}
    assert packet_key(reply).tuple == icmp.reply
    udp = connection_of(next(e for e in entries if e.protocol == 17))
    assert udp.seen_reply and any("reply was seen" in a for a in udp.assumed)


@pytest.mark.parametrize("line, error", [
    ("tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1,dport=2)", "no orig"),
    ("tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1,dport=2,reply=(", "unreadable from"),
    ("gre,orig=(src=1.1.1.1,dst=2.2.2.2),reply=(src=2.2.2.2,dst=1.1.1.1)", "protocol"),
    ("tcp,orig=(src=1.1.1.1,dst=2.2.2.2,sport=x,dport=2),reply=(src=2.2.2.2,dst=1.1.1.1,"
     "sport=2,dport=1)", "not a number"),
])
def test_a_line_that_is_no_entry_is_said(line, error):
    entries, unreadable = parse_dump(line + "\n")
    assert not entries and error in unreadable[0]


def test_kernel_style_status_says_whether_a_reply_was_seen():
    line = ("udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1,dport=2),reply=(src=10.0.0.2,"
            "dst=10.0.0.1,sport=2,dport=1),id=5,zone=3,status=CONFIRMED,labels=0x20")
    entry = parse_entry(line)
    assert (entry.zone, entry.labels, entry.status) == (3, 0x20, ("CONFIRMED",))
    assert not connection_of(entry).seen_reply
    seen = parse_entry(line.replace("CONFIRMED", "SEEN_REPLY|CONFIRMED"))
    assert connection_of(seen).seen_reply


def _trace(snapshot, expression, ct="node"):
    return run_trace(snapshot, TraceRequest.from_options(
        expression, None, None, "tcp", None, False, ct=ct))


def _ct_texts(result):
    return [ev.text for hop in _hops(result.annotated.root) for ev in hop.events
            if ev.kind == "ct"]


def _hops(hop):
    yield hop
    for child in hop.children:
        yield from _hops(child)


def test_the_next_packet_of_a_connection_finds_its_entry(snapshot):
    data = FROM_NGINX.format(l4="tcp.src == 45101 && tcp.dst == 53 && tcp.flags == 0x18")
    result = _trace(snapshot, data)
    (first, *_) = _ct_texts(result)
    assert first.startswith("ct: zone 14 (port default_nginx-deployment-9456bbbf9-x6pc6): "
                            "est+trk")
    assert ("found tcp 10.244.1.3:45101 > 10.244.2.5:53 zone 14 ESTABLISHED from the "
            "node's table") in first
    assert [v.kind for v in result.annotated.verdicts] == ["delivered"]
    # --ct empty: no entry, so conntrack picks the packet up as new and OVN commits it.
    empty = _trace(snapshot, data, ct="empty")
    texts = _ct_texts(empty)
    assert texts[0].startswith("ct: zone 14 (port default_nginx") and "new+trk" in texts[0]
    assert "no entry in zone 14" in texts[0]
    assert "picked up mid-stream" in texts[0] and "--ct empty" in texts[0]
    assert any("committed" in t for t in texts) and not any("committed" in t
                                                            for t in _ct_texts(result))


def test_a_syn_ack_to_a_syn_sent_before_collect(snapshot):
    syn_ack = FROM_COREDNS.format(l4="tcp.src == 53 && tcp.dst == 45102 && tcp.flags == 0x12")
    result = _trace(snapshot, syn_ack)
    assert "SYN_SENT/CLOSED from the node's table (its reply direction)" in _ct_texts(result)[0]
    assert [v.kind for v in result.annotated.verdicts] == ["delivered"]
    empty = _trace(snapshot, syn_ack, ct="empty")
    assert "inv+trk" in _ct_texts(empty)[0] and "SYN-ACK with no connection" in \
        _ct_texts(empty)[0]
    assert [v.kind for v in empty.annotated.verdicts] == ["dropped"]


def test_a_snapshot_without_a_table_says_so_once_per_chassis():
    snapshot = Snapshot.load(HERE / "snapshot.ofr")
    for chassis in snapshot.chassis.values():
        chassis.conntrack = None
    result = _trace(snapshot, FROM_NGINX.format(
        l4="tcp.src == 45101 && tcp.dst == 53 && tcp.flags == 0x18"))
    notes = [n for hop in _hops(result.annotated.root) for n in hop.notes
             if "no connection table" in n]
    assert sorted(n.split(":")[0] for n in notes) == ["ovn-control-plane", "ovn-worker"]
    assert "not in the snapshot" in _ct_texts(result)[0]


def test_the_json_names_the_entry(snapshot):
    data = FROM_NGINX.format(l4="tcp.src == 45101 && tcp.dst == 53 && tcp.flags == 0x18")
    for ct, found in (("node", True), ("empty", False)):
        result = _trace(snapshot, data, ct=ct)
        doc = trace_json(result.annotated, result.request)
        lookup = next(e["conntrack"] for e in doc["trace"]["events"] if e["kind"] == "ct")
        assert lookup["found"] is found and lookup["zone"] == 14
        assert lookup["zone_owner"] == "port default_nginx-deployment-9456bbbf9-x6pc6"
        if found:
            assert lookup["entry"]["from"] == "node" and lookup["state"] == "est+trk"
            assert lookup["entry"]["dump"] in snapshot.chassis["ovn-worker"].conntrack
        else:
            assert lookup["entry"] is None and lookup["state"] == "new+trk"


def test_zones_are_named_from_the_bridge_row(snapshot):
    from ofrace.ovn.ct_zones import zone_owners
    from ofrace.ovn.southbound import SouthboundIndex

    owners = zone_owners(snapshot.chassis["ovn-worker"], SouthboundIndex(snapshot))
    assert owners[14] == "port default_nginx-deployment-9456bbbf9-x6pc6"
    assert (owners[1], owners[2]) == ("ovn_cluster_router DNAT zone",
                                      "ovn_cluster_router SNAT zone")
    # The hairpin's SNAT entry is in a zone ovn-controller gave a datapath, not a port.
    snat = next(e for e in _entries(snapshot, "ovn-worker") if e.nat_kinds == ("src",))
    assert owners[snat.zone].endswith("SNAT zone")


def test_a_big_table_is_read_zone_by_zone_and_bad_lines_are_said():
    from ofrace.simulate.conntrack_dump import table_from_dump

    line = ("udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport={p},dport=53),reply=(src=10.0.0.2,"
            "dst=10.0.0.1,sport=53,dport={p}),zone={z}")
    text = "\n".join(line.format(p=p, z=z) for z in (3, 4) for p in range(1000, 1100))
    table = table_from_dump(text + "\nudp,orig=(src=nonsense),zone=4\n")
    assert table.started_from == "201 connections in the node's table"
    table.read_zone(3)
    assert len(table.entries) == 200 and 4 in table.unread and not table.unreadable
    assert len(table.connections()) == 200 and "nonsense" in table.unreadable[4][0]


def test_the_hairpin_reply_is_un_natted_through_the_nodes_entries(snapshot):
    """The SYN to the VIP was DNATed to nginx itself and SNATed to the VIP; its SYN-ACK
    finds both entries and leaves from the VIP, as the wire's did (test_conntrack_wire)."""
    syn_ack = FROM_NGINX.replace("ip4.dst == 10.244.2.5", f"ip4.dst == {VIP}").format(
        l4="tcp.src == 80 && tcp.dst == 45104 && tcp.flags == 0x12")
    result = _trace(snapshot, syn_ack)
    texts = _ct_texts(result)
    assert any("reverse NAT to tcp 10.244.1.3:80 > 10.244.1.3:45104" in t
               and "SNAT zone" in t for t in texts)
    assert any(f"reverse NAT to tcp {VIP}:80 > 10.244.1.3:45104" in t for t in texts)
    (verdict,) = result.annotated.verdicts
    assert verdict.kind == "delivered"
    assert (verdict.packet["nw_src"], verdict.packet["tp_src"]) == (_ip(VIP), 80)
    # Negative control: without the node's table it is a SYN-ACK with no connection.
    assert [v.kind for v in _trace(snapshot, syn_ack, ct="empty").annotated.verdicts] == [
        "dropped"]
