"""The packets ovn-controller builds (controller/pinctrl.c), and a held packet released
within one trace, on the recorded kind snapshot and flows recorded from real labs."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from conftest import recorded

from ofrace.openflow.actions import Move, SetField
from ofrace.ovn import pinctrl
from ofrace.ovn.versions import facts_for
from ofrace.simulate.packet import read_ref, write, write_ref
from ofrace.snapshot import Snapshot
from ofrace.trace.cluster import ClusterTracer, TraceStart
from ofrace.trace.request import start_from_expression

FLOWS = json.loads((Path(__file__).parent / "fixtures/pinctrl/controller_flows.json")
                   .read_text())["flows"]
FACTS = facts_for("ovn-controller 23.03.1")
SEED = ('inport == "breth0_ovn-worker" && eth.src == 02:42:7a:79:82:ca && '
        "eth.dst == 02:42:ac:12:00:04 && ip4.src == 172.18.0.1 && ip4.dst == 172.18.0.4 && "
        "ip.ttl == 64 && tcp.src == 12345 && tcp.dst == 30007 && tcp.flags == 2")


def ip(text: str) -> int:
    return int(ipaddress.ip_address(text))


def userdata(opcode: str) -> bytes:
    return bytes.fromhex(next(f["userdata"] for f in FLOWS if f["opcode"] == opcode))


def run_rewrites(packet: dict, actions) -> dict:
    """The set_field and move actions of a packet-out, applied (resubmits left out)."""
    out = dict(packet)
    for action in actions:
        if isinstance(action, SetField):
            write(out, action.target.name, action.value, action.mask)
        elif isinstance(action, Move):
            write_ref(out, action.dst, read_ref(out, action.src))
    return out


def test_arp_request_composed_as_pinctrl_handle_arp():
    """From the IP packet's MACs and addresses, VLAN kept; the nested actions (recorded
    from a real lab) broadcast it and ask for the next hop in reg0, from reg1."""
    held = {"dl_src": 0x0A5864400002, "dl_dst": 0, "dl_type": 0x0800, "vlan_tci": 0x1000 | 7,
            "nw_src": ip("10.244.1.3"), "nw_dst": ip("203.0.113.77"), "nw_proto": 6,
            "reg0": ip("100.64.0.1"), "reg1": ip("100.64.0.4"), "reg15": 2, "metadata": 10}
    built = pinctrl.build("arp", userdata("arp"), held, 0, FACTS)
    assert built.what == "ARP request for 100.64.0.1"
    assert built.packet == {"dl_src": 0x0A5864400002, "dl_dst": 0, "dl_type": 0x0806,
                            "nw_proto": 1, "arp_sha": 0x0A5864400002, "arp_tha": 0,
                            "nw_src": ip("10.244.1.3"), "nw_dst": ip("203.0.113.77"),
                            "vlan_tci": 0x1007, "in_port": pinctrl.CONTROLLER_PORT}
    sent = run_rewrites(built.packet, built.actions)
    assert (sent["dl_dst"], sent["nw_src"], sent["nw_dst"], sent["nw_proto"]) == (
        0xFFFFFFFFFFFF, ip("100.64.0.4"), ip("100.64.0.1"), 1)
    assert (sent["reg15"], sent["metadata"]) == (2, 10)   # the packet-in's, reloaded
    # an IPv6 packet gets no ARP before 25.03 (pinctrl_handle_arp checks the ethertype)
    assert pinctrl.build("arp", userdata("arp"), {**held, "dl_type": 0x86DD}, 0, FACTS) is None
    assert pinctrl.build("arp", userdata("arp"), {**held, "dl_type": 0x86DD}, 0,
                         facts_for("25.03.0")) is not None


def test_neighbour_solicitation_and_advertisement():
    """compose_nd_ns: from the link-local address of the source MAC to the solicited-node
    group; compose_nd_na: back to the NS's sender, the target's MAC as TLL."""
    mac = 0x0A580AF40101          # kind's router port: fe80::858:aff:fef4:101
    built = pinctrl.build("nd_ns", userdata("nd_ns"),
                          {"dl_src": mac, "dl_type": 0x86DD, "ipv6_dst": ip("fd00::1:2:3"),
                           "reg0": 0xFD000000, "reg3": 0x99}, 0, FACTS)
    assert built.packet["ipv6_src"] == ip("fe80::858:aff:fef4:101")
    assert built.packet["ipv6_dst"] == ip("ff02::1:ff02:3")
    assert built.packet["dl_dst"] == 0x3333FF020003 and built.payload_length == 24
    assert built.what == "Neighbor Solicitation for fd00::99"
    ns = {"dl_src": 0x505400000111, "dl_dst": 0x3333FF000014, "dl_type": 0x86DD,
          "nw_proto": 58, "tp_src": 135, "ipv6_src": ip("fd00:1::11"),
          "ipv6_dst": ip("ff02::1:ff00:14"), "nd_target": ip("fd00:1::14")}
    na = pinctrl.build("nd_na", userdata("nd_na"), ns, 0, FACTS)
    sent = run_rewrites(na.packet, na.actions)
    assert (sent["ipv6_src"], sent["ipv6_dst"], sent["tp_src"], sent["nd_target"]) == (
        ip("fd00:1::14"), ip("fd00:1::11"), 136, ip("fd00:1::14"))
    assert sent["dl_dst"] == 0x505400000111 and sent["arp_tha"] == sent["dl_src"]
    assert na.packet["nd_reserved"] == pinctrl.ND_RSO_SOLICITED | pinctrl.ND_RSO_OVERRIDE


def test_tcp_reset_and_reject():
    syn = {"dl_src": 1, "dl_dst": 2, "dl_type": 0x0800, "nw_src": ip("10.0.0.1"),
           "nw_dst": ip("10.0.0.2"), "nw_proto": 6, "tp_src": 40000, "tp_dst": 23,
           "tcp_flags": 2, "tcp_seq": 1000}
    rst = pinctrl.build("reject", userdata("reject"), syn, 0, FACTS).packet
    assert (rst["nw_src"], rst["nw_dst"], rst["tp_src"], rst["tp_dst"]) == (
        ip("10.0.0.2"), ip("10.0.0.1"), 23, 40000)
    assert (rst["tcp_flags"], rst["tcp_ack"], rst["nw_ttl"]) == (0x14, 1001, 63)
    # pinctrl_handle_reject_ignore_pkt: nothing answers a RST
    assert pinctrl.build("reject", userdata("reject"), {**syn, "tcp_flags": 4}, 0,
                         FACTS) is None


def test_a_held_packet_is_released_by_the_arp_reply_in_the_same_trace():
    """The seed's SYN reaches a cold gateway router: held for 100.64.0.1; its ARP request
    is answered inside the cluster (the join switch's ARP responder), put_arp learns the
    binding, and the SYN is re-injected and delivered, as on the wire."""
    tracer = ClusterTracer(recorded("kind")[0])
    trace = tracer.trace(start_from_expression(tracer, SEED))
    entries = [hop.start.entry for hop in trace.hops]
    assert "built by ovn-controller on ovn-worker: ARP request for 100.64.0.1" in entries
    released = next(h for h in trace.hops if h.start.entry.startswith("released"))
    assert released.start.packet["dl_dst"] == 0x0A5864400001
    assert "packet-out to table 37" in released.start.entry
    assert [v.kind for v in trace.verdicts()] == ["delivered"]
    assert not tracer.controller_state.held


def test_unanswered_arp_leaves_the_packet_held(monkeypatch):
    """Negative control: without put_arp learning, the SYN stays held and the verdict
    says for which address and where the ARP request went."""
    monkeypatch.setattr(pinctrl, "LEARNS", ())
    tracer = ClusterTracer(recorded("kind")[0])
    trace = tracer.trace(start_from_expression(tracer, SEED))
    [held] = trace.verdicts()
    assert held.kind == "controller"
    assert "waiting for the MAC of 100.64.0.1" in held.text
    assert "ARP request" in held.text and "on ovn-worker" in held.text
    assert not any(h.start.entry.startswith("released") for h in trace.hops)


def test_ttl_exceeded_reaches_the_sender():
    """A TTL-1 echo at the cluster router: pinctrl's ICMP time exceeded (type 11, from the
    router, TTL 254 after its nested actions) is delivered to the pod, related by
    conntrack to the echo it quotes (the recorded sweep's wire saw the same)."""
    snapshot = Snapshot.load(Path(__file__).parent /
                             "fixtures/kind/sweep/snapshot-13cb96c2f27a04b3.ofr")
    tracer = ClusterTracer(snapshot)
    packet = {"in_port": 11, "dl_dst": 0x0A580AF40101, "dl_src": 0x0A580AF40103,
              "dl_type": 0x0800, "nw_src": ip("10.244.1.3"), "nw_dst": ip("203.0.113.77"),
              "nw_proto": 1, "nw_ttl": 1, "tp_src": 8, "tp_dst": 0, "icmp_id": 7}
    trace = tracer.trace(TraceStart("ovn-worker", "br-int", packet, "VIF nginx"))
    [answer] = [v for v in trace.all_verdicts() if v.kind == "delivered"]
    assert (answer.packet["nw_src"], answer.packet["nw_dst"], answer.packet["tp_src"],
            answer.packet["nw_ttl"]) == (ip("203.0.113.77"), ip("10.244.1.3"), 11, 254)
    assert any(h.start.entry == "built by ovn-controller on ovn-worker: ICMP time exceeded "
               "(code 0)" for h in trace.hops)
    # the echo itself is not delivered: the answer is ovn-controller's packet
    assert [v.kind for v in trace.verdicts()] == ["controller"]


def test_release_per_release():
    """To 24.03 a packet-out from CONTROLLER to table 37, untracked; from 24.09 the paused
    translation resumes (modelled in the output table, conntrack state kept)."""
    held = {"dl_src": 1, "dl_dst": 0, "dl_type": 0x0800, "nw_dst": ip("10.0.0.9"),
            "reg0": ip("10.0.0.1"), "reg15": 3, "metadata": 5, "ct_state": 0x22,
            "pkt_mark": 7, "in_port": 4}
    packet, actions, how = pinctrl.release(held, 0x0A0000000001, FACTS)
    assert packet["dl_dst"] == 0x0A0000000001 and "ct_state" not in packet
    assert packet["in_port"] == pinctrl.CONTROLLER_PORT and "reg15" not in packet
    assert actions[-1].table == 37 and actions[-1].port == pinctrl.CONTROLLER_PORT
    assert SetField(actions[-2].target, 7, 0xFFFFFFFF) == actions[-2]     # pkt_mark
    assert "packet-out to table 37" in how
    packet, actions, how = pinctrl.release(held, 0x0A0000000001, facts_for("24.09.0"))
    assert packet["ct_state"] == 0x22 and actions[-1].table == 40 and "resumed" in how


SWEEP = Path(__file__).parent / "fixtures/kind/sweep"
# The kind sweep's conversation "pod -> snat GR_ovn-worker2 external address icmp".
ECHO_TO_OTHER_GR = ('inport == "default_nginx-deployment-9456bbbf9-x6pc6" && '
                    "eth.src == 0a:58:0a:f4:01:03 && eth.dst == 0a:58:0a:f4:01:01 && "
                    "ip4.src == 10.244.1.3 && ip4.dst == 172.18.0.2 && ip.ttl == 64 && "
                    "icmp4.type == 8")


def _echo_trace(version: str):
    snapshot = Snapshot.load(SWEEP / "snapshot-13cb96c2f27a04b3.ofr")
    for chassis in snapshot.chassis.values():
        chassis.ovn_version = f"ovn-controller {version}"
    tracer = ClusterTracer(snapshot)
    return tracer.trace(start_from_expression(tracer, ECHO_TO_OTHER_GR))


def test_a_binding_learned_earlier_in_the_trace_is_a_race_both_ways_traced():
    """Measured on the kind sweep's wire: GR_ovn-worker2 learns 172.18.0.4 from the ARP
    request, and the echo reply for it comes a Southbound round trip later (it follows
    the echo request ovn-controller released).  Whether GR_ovn-worker2's flows have the
    binding by then is a race, seen both ways on the wire: recorded sweeps held the reply
    and sent an ARP request; a CI sweep sent the reply at once.  The trace follows both,
    each marked ``maybe``.  23.03's pinctrl re-injects only for inserted or changed rows, so
    there the held branch may never go; 23.06 (which also looks bindings up) says nothing."""
    racy = _echo_trace("23.03.1")
    [released] = [h for h in racy.hops
                  if h.start.entry.startswith("released by ovn-controller on ovn-worker2")]
    assert released.start.maybe and "a race" in released.start.entry
    [asked] = [h for h in racy.hops if h.start.chassis == "ovn-worker2"
               and h.start.entry.startswith("built by ovn-controller") and h.start.maybe]
    assert asked.start.packet["dl_type"] == 0x0806   # the held branch's ARP request
    [why] = [v.text for h in racy.hops for v in h.verdicts if "learned as" in v.text]
    assert "OVN 23.03" in why and "may never go" in why
    assert "delivered" in [v.kind for v in racy.verdicts()]
    later = _echo_trace("23.06.0")
    [why] = [v.text for h in later.hops for v in h.verdicts if "learned as" in v.text]
    assert "A race" in why and "may never go" not in why
