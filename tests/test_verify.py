"""`lab verify`'s comparison, offline: predictions from the recorded snapshots set
beside captured packets.  The wire here is made up from the predictions themselves (the
live sweep is integration/test_verify.py), so these tests check the comparison and its
gap rules: a mismatch is explained only by a cause the prediction shows, and an engine
broken on purpose (NAT ignored) yields unexplained mismatches."""

from __future__ import annotations

import copy
import ipaddress
from collections import Counter
from unittest import mock

import pytest
from conftest import recorded

import ofrace.simulate.conntrack as conntrack
from ofrace.compare.generator import PacketClass, generate
from ofrace.compare.verify import (
    GAP_CONNTRACK,
    GAP_CONTROLLER,
    UNEXPLAINED,
    Prediction,
    VerifyReport,
    WirePacket,
    compare_step,
    predict,
    reply_to,
)
from ofrace.trace.cluster import ClusterTracer


def _first_steps(topology, classes=None):
    snapshot, _ = recorded(topology)
    for conv in generate(snapshot):
        if classes and not set(conv.classes) & classes:
            continue
        step = conv.steps[0]
        yield snapshot, conv, step, {"in_port": conv.entry.ofport, **step.packet}


def _predict(snapshot, conv, packet):
    return predict(ClusterTracer(snapshot), conv.entry.chassis, conv.entry.bridge, packet,
                   conv.label)


@pytest.mark.parametrize("topology", ["basic", "kind", "acl"])
def test_a_wire_equal_to_the_prediction_is_equal(topology):
    checked = 0
    for snapshot, conv, step, packet in list(_first_steps(topology))[:60]:
        prediction = _predict(snapshot, conv, packet)
        assert compare_step(step.name, prediction, list(prediction.outputs),
                            Counter(prediction.tunnels)) == []
        checked += 1
    assert checked >= 14


def test_other_headers_on_the_predicted_port_are_unexplained():
    snapshot, conv, step, packet = next(s for s in _first_steps("acl", {PacketClass.ROUTED})
                                        if s[1].label.endswith("(routed) tcp"))
    prediction = _predict(snapshot, conv, packet)
    assert prediction.outputs and prediction.through_conntrack
    want = prediction.outputs[0]
    fields = dict(want.fields, nw_ttl=dict(want.fields)["nw_ttl"] + 1)   # not routed
    wire = WirePacket(want.chassis, want.port, tuple(sorted(fields.items())))
    [mismatch] = compare_step(step.name, prediction, [wire])
    assert mismatch.where == f"{want.chassis}/{want.port}" and mismatch.gap == UNEXPLAINED
    assert "nw_ttl=63" in mismatch.predicted and "nw_ttl=64" in mismatch.wire


def test_a_wire_that_drops_is_conntrack_only_past_a_ct():
    through = Prediction(outputs=[WirePacket("c", "p", (("nw_dst", 1),))],
                         through_conntrack=True)
    assert [m.gap for m in compare_step("ACK", through, [])] == [GAP_CONNTRACK]
    plain = Prediction(outputs=through.outputs)
    assert [m.gap for m in compare_step("ACK", plain, [])] == [UNEXPLAINED]


def test_packets_ovn_controller_writes_are_controller_answered():
    held = WirePacket("c", "controller", (("nw_dst", 9), ("nw_proto", 6), ("tp_dst", 80)))
    prediction = Prediction(controller=[held], through_conntrack=True)
    arp = WirePacket("c", "eth0", (("dl_type", 0x0806), ("nw_dst", 9), ("nw_proto", 1)))
    released = WirePacket("c", "eth0", (("dl_dst", 5), ("nw_dst", 9), ("nw_proto", 6),
                                        ("tp_dst", 80)))
    other = WirePacket("c", "eth0", (("nw_dst", 10), ("nw_proto", 6), ("tp_dst", 80)))
    gaps = [m.gap for m in compare_step("SYN", prediction, [arp, released, other])]
    assert gaps == [GAP_CONTROLLER, GAP_CONTROLLER, UNEXPLAINED]
    # negative control: without a controller exit in the prediction, nothing is explained
    assert {m.gap for m in compare_step("SYN", Prediction(), [arp, released])} == {UNEXPLAINED}


def test_underlay_copies_are_counted():
    key = ("hv1", 7, ((0x0102, 0x80, 0x30005),))
    prediction = Prediction(tunnels=Counter({key: 1}))
    assert compare_step("SYN", prediction, [], Counter({key: 1})) == []
    [m] = compare_step("SYN", prediction, [], Counter())
    assert m.where == "hv1 tunnel underlay" and m.gap == UNEXPLAINED
    assert "VNI 7 option 0x102/0x80=0x30005" in m.predicted
    other_port = ("hv1", 7, ((0x0102, 0x80, 0x30006),))
    assert len(compare_step("SYN", prediction, [], Counter({other_port: 1}))) == 2


def test_an_engine_that_ignores_nat_is_caught():
    """Negative control: with nat() translating nothing, LB conversations part from the
    unbroken engine's prediction, and none of it is put down to a known gap."""
    found = Counter()
    for snapshot, conv, step, packet in _first_steps("kind", {PacketClass.LB}):
        wire = _predict(snapshot, conv, packet).outputs
        with mock.patch.object(conntrack, "nat_translate", lambda tup, nat: tup):
            broken = _predict(snapshot, conv, packet)
        mismatches = compare_step(step.name, broken, wire)
        found[mismatches[0].gap if mismatches else "equal"] += 1
    assert found[UNEXPLAINED] >= 10
    assert found[GAP_CONTROLLER] == found[GAP_CONNTRACK] == 0


def test_a_reply_is_built_from_the_packet_as_delivered():
    delivered = WirePacket("c", "p", (("dl_dst", 2), ("dl_src", 1), ("nw_dst", 20),
                                      ("nw_src", 10), ("nw_ttl", 62), ("tp_dst", 80),
                                      ("tp_src", 4000)))
    synack = reply_to(delivered, 0x012, None)
    assert (synack["dl_src"], synack["nw_src"], synack["tp_src"], synack["tcp_flags"],
            synack["nw_ttl"]) == (2, 20, 80, 0x012, 64)


def test_the_report_counts_per_class():
    report = VerifyReport("t")
    report.add("LB", [])
    report.add("LB", compare_step("SYN", Prediction(), [WirePacket("c", "p", ())]))
    doc = report.as_json()
    assert doc["classes"]["LB"] == {"sent": 2, "equal": 1, "mismatched": 1}
    assert len(report.unexplained) == 1 and doc["mismatches"][0]["where"] == "c/p"


def test_every_gap_class_is_named_in_docs_gaps():
    """integration/test_verify.py counts a mismatch as explained only if docs/gaps.md
    names its class: the classes the comparison can give are all there, `unexplained`
    is not."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "gaps.md").read_text()
    named = set(re.findall(r"^## gap: `([^`]+)`", text, re.M))
    assert named == {GAP_CONTROLLER, GAP_CONNTRACK, "select-group"}


def test_conntrack_dumps_read_and_compared():
    from ofrace.compare.verify import compare_connections, parse_dump_conntrack

    dump = ("tcp,orig=(src=192.0.2.1,dst=192.0.2.2,sport=40000,dport=80),reply=(src=192.0.2.2,"
            "dst=192.0.2.1,sport=80,dport=40000),zone=5,mark=2,protoinfo=(state=SYN_SENT)\n"
            "udp,orig=(src=192.0.2.1,dst=192.0.2.9,sport=40001,dport=53),reply=(src=192.0.2.9,"
            "dst=192.0.2.1,sport=53,dport=40001)\n"
            "icmp,orig=(src=192.0.2.1,dst=192.0.2.2,id=1,type=8,code=0),reply=(…),zone=5\n"
            "garbage line\n")
    wire = parse_dump_conntrack("hv1", dump)
    assert wire == {("hv1", 5, "tcp", "192.0.2.1", "192.0.2.2", 40000, 80),
                    ("hv1", 0, "udp", "192.0.2.1", "192.0.2.9", 40001, 53)}
    assert compare_connections("c", set(wire), wire) == []
    [missing, extra] = compare_connections(
        "c", {("hv1", 6, "tcp", "192.0.2.1", "192.0.2.2", 40000, 80)},
        {("hv1", 5, "tcp", "192.0.2.1", "192.0.2.2", 40000, 80)})
    assert missing.wire == "no such entry" and "zone 6" in missing.predicted
    assert extra.predicted == "no such entry" and missing.gap == GAP_CONNTRACK


def test_a_conversation_predicts_its_connections():
    from ofrace.compare.verify import predicted_connections

    snapshot, conv, step, packet = next(s for s in _first_steps("acl", {PacketClass.L2})
                                        if s[1].label.endswith(" tcp"))
    tracer = ClusterTracer(snapshot)
    predict(tracer, conv.entry.chassis, conv.entry.bridge, packet, conv.label)
    found = predicted_connections(tracer)
    assert found and all(e[2] == "tcp" and e[5:] == (packet["tp_src"], packet["tp_dst"])
                         for e in found)


def test_a_held_packet_released_with_its_source_natted_is_controller_answered():
    held = WirePacket("c", "controller", (("nw_dst", 9), ("nw_proto", 6), ("nw_src", 1),
                                          ("tp_dst", 80)))
    released = WirePacket("c", "eth0", (("nw_dst", 9), ("nw_proto", 6), ("nw_src", 7),
                                        ("tp_dst", 80)))
    [m] = compare_step("SYN", Prediction(controller=[held]), [released])
    assert m.gap == GAP_CONTROLLER


def test_a_packet_held_by_an_earlier_step_and_released_now_is_controller_answered():
    """pinctrl held a packet of an earlier conversation until this step taught it the
    next hop: its destination is one ``held`` remembers; with nothing remembered (the
    negative control) the same packet is unexplained."""
    released = WirePacket("c", "eth0", (("nw_dst", 9), ("nw_proto", 17), ("nw_src", 7),
                                        ("tp_dst", 53)))
    towards = (9, 0, 17, 53)
    [m] = compare_step("ARP", Prediction(), [released], held={towards})
    assert m.gap == GAP_CONTROLLER
    [m] = compare_step("ARP", Prediction(), [released], held=set())
    assert m.gap == UNEXPLAINED


def test_an_answer_from_across_the_provider_network_is_no_gap_any_more():
    """ofrace follows frames across the physical network now (the retired
    ``provider-network`` class): an answer the prediction lacks at another chassis'
    uplink is unexplained, not put down to a gap."""
    left = WirePacket("a", "eth0", (("dl_dst", 0xB), ("dl_src", 0xA), ("nw_dst", 2),
                                    ("nw_proto", 1), ("nw_src", 1), ("tp_src", 8)))
    answer = WirePacket("b", "eth0", (("dl_dst", 0xA), ("dl_src", 0xB), ("nw_dst", 1),
                                      ("nw_proto", 1), ("nw_src", 2)))
    [m] = compare_step("echo request", Prediction(outputs=[left]), [left, answer])
    assert m.gap == UNEXPLAINED
    assert compare_step("echo request", Prediction(outputs=[left, answer]),
                        [left, answer]) == []


def _length_checked(snapshot, chassis: str, in_port: int):
    """``snapshot`` with a first flow on ``chassis``' br-int that drops frames longer than
    1000 bytes arriving on ``in_port`` and sends the rest to LOCAL."""
    snapshot = copy.deepcopy(snapshot)
    bridge = snapshot.chassis[chassis].bridges["br-int"]
    bridge.flows = [f"table=0, priority=65535,in_port={in_port} actions=check_pkt_larger(1000)"
                    "->NXM_NX_REG0[6],resubmit(,77)",
                    "table=77, priority=10,reg0=0x40/0x40 actions=drop",
                    "table=77, priority=1 actions=output:65534"] + list(bridge.flows)
    return snapshot


def test_the_prediction_measures_the_frame_with_its_payload():
    """check_pkt_larger (a gateway MTU) decides on the frame as sent: headers plus
    Step.wire's payload_len.  42 header bytes (Ethernet, IPv4, ICMP) + 958 = 1000 is not
    larger than 1000; one byte more is.  Without the payload, nothing is ever larger."""
    snapshot = _length_checked(recorded("basic")[0], "hv1", 10)
    packet = {"in_port": 10, "dl_src": 1, "dl_dst": 2, "dl_type": 0x0800, "nw_src": 1,
              "nw_dst": 2, "nw_proto": 1, "nw_ttl": 64, "tp_src": 8, "tp_dst": 0}

    def delivered(wire):
        return bool(predict(ClusterTracer(snapshot), "hv1", "br-int", packet, "x",
                            wire).outputs)

    assert delivered(None) and delivered({"payload_len": 958})
    assert not delivered({"payload_len": 959})
    assert delivered({"icmp_id": 7, "icmp_seq": 1})           # no payload_len: headers only


def test_the_payload_crosses_the_tunnel():
    """The frame that arrives over Geneve on the next chassis is as long as the one sent."""
    snapshot, _ = recorded("basic")
    conv = next(c for c in generate(snapshot) if c.label == "sw0-port1 -> sw0-port2 icmp")
    tunnel_port = next(i.ofport for i in snapshot.chassis["hv2"].interfaces
                       if i.type == "geneve")
    checked = _length_checked(snapshot, "hv2", tunnel_port)
    packet = {"in_port": conv.entry.ofport, **conv.steps[0].packet}

    def ports(wire):
        return [(p.chassis, p.port) for p in predict(
            ClusterTracer(checked), "hv1", "br-int", packet, conv.label, wire).outputs]

    assert ports({"payload_len": 100}) == [("hv2", "br-int")]
    assert ports({"payload_len": 2000}) == []


def _select_group_case(options=None):
    """acl: vm4's DNS request to the lb-dns VIP; ofrace's hash picks one of two backends."""
    from ofrace.trace.cluster import TraceOptions

    snapshot, conv, step, packet = next(s for s in _first_steps("acl", {PacketClass.LB})
                                        if s[1].label == "vm4 -> VIP lb-dns :53 udp")
    prediction = predict(ClusterTracer(snapshot, options or TraceOptions()),
                         conv.entry.chassis, conv.entry.bridge, packet, conv.label)
    return snapshot, step, prediction


def _at_backend(want: WirePacket, port: str, address: int, mac: int) -> WirePacket:
    fields = dict(want.fields, nw_dst=address, dl_dst=mac)
    return WirePacket(want.chassis if port == want.port else "other-chassis", port,
                      tuple(sorted(fields.items())))


def test_another_bucket_of_a_select_group_is_its_own_gap():
    from ofrace.compare.verify import GAP_SELECT_GROUP

    snapshot, step, prediction = _select_group_case()
    [crossed] = prediction.select_groups
    [want] = prediction.outputs
    [(other, port)] = crossed.other_targets()
    assert port == 53 and other != dict(want.fields)["nw_dst"]
    wire = _at_backend(want, "vm-other", other, 0x505400000299)
    mismatches = compare_step(step.name, prediction, [wire])
    assert [m.gap for m in mismatches] == [GAP_SELECT_GROUP, GAP_SELECT_GROUP]
    assert mismatches[0].where == f"{want.chassis}/{want.port}"
    # its tunnel copies go to the other backend's chassis: they follow
    underlay = Counter({("hv3", 99, ()): 1})
    gaps = {m.gap for m in compare_step(step.name, prediction, [wire], underlay)}
    assert gaps == {GAP_SELECT_GROUP}
    # the other backend at the predicted port (same VIF, other address) is the same gap
    here = _at_backend(want, want.port, other, dict(want.fields)["dl_dst"])
    assert [m.gap for m in compare_step(step.name, prediction, [here])] == [GAP_SELECT_GROUP]


def test_a_port_no_bucket_targets_stays_unexplained():
    """Negative controls: an address no bucket NATs to; the chosen bucket's own address
    at another port; another source port too; and a bucket forced with --bucket (ofrace
    did not choose it, so a different wire is ofrace's error)."""
    from ofrace.trace.cluster import TraceOptions

    snapshot, step, prediction = _select_group_case()
    [want] = prediction.outputs
    [(other, _)] = prediction.select_groups[0].other_targets()
    chosen = dict(want.fields)["nw_dst"]
    nowhere = _at_backend(want, "vm-other", other + 100, 0x505400000299)
    moved = _at_backend(want, "vm-other", chosen, 0x505400000299)
    sport = WirePacket("x", "vm-other", tuple(sorted(dict(
        _at_backend(want, "vm-other", other, 1).fields, tp_src=1).items())))
    for wire in (nowhere, moved, sport):
        assert {m.gap for m in compare_step(step.name, prediction, [wire])} == {UNEXPLAINED}
    bucket = prediction.select_groups[0]
    forced = _select_group_case(TraceOptions(select_buckets={bucket.group: bucket.bucket}))[2]
    assert forced.select_groups == [] and forced.outputs == prediction.outputs
    wire = _at_backend(want, "vm-other", other, 0x505400000299)
    assert {m.gap for m in compare_step(step.name, forced, [wire])} == {UNEXPLAINED}


def test_a_connection_only_ovn_controller_made_is_controller_answered():
    """A DHCP offer pinctrl sent crossed ct() on its way out: the wire's conntrack holds a
    connection ofrace never committed.  With ovn-controller in the conversation (or the
    destination one an earlier step was held for) that is controller-answered; without
    either it stays a conntrack gap."""
    from ofrace.compare.verify import compare_connections

    offer = ("hv1", 7, "udp", "10.0.1.1", "255.255.255.255", 67, 68)
    [m] = compare_connections("dhcp", set(), {offer}, controller=True)
    assert m.gap == GAP_CONTROLLER
    [m] = compare_connections("dhcp", set(), {offer})
    assert m.gap == GAP_CONNTRACK
    released = ("c", 9, "udp", "10.244.2.4", "203.0.113.77", 40000, 53)
    held = {(int(ipaddress.ip_address("203.0.113.77")), 0, 17, 53)}
    [m] = compare_connections("arp", set(), {released}, held=held)
    assert m.gap == GAP_CONTROLLER


def test_a_race_outcome_may_be_missing_and_a_late_release_is_controller_answered():
    """An output predicted under a racy release (TraceStart.maybe) is one of two outcomes:
    missing from the wire is no mismatch, present is equal.  A released packet's output
    missing is controller-answered (pinctrl's timing); any other output missing stays
    unexplained (negative control)."""
    racy = WirePacket("c", "eth0", (("nw_dst", 4),))
    late = WirePacket("c", "eth0", (("nw_dst", 5),))
    plain = WirePacket("c", "vif", (("nw_dst", 6),))
    prediction = Prediction(outputs=[racy, late, plain], released=[racy, late], maybe=[racy])
    gaps = {m.predicted: m.gap for m in compare_step("echo", prediction, [])}
    assert gaps == {late.text(): GAP_CONTROLLER, plain.text(): UNEXPLAINED}
    assert compare_step("echo", prediction, [racy, late, plain]) == []
