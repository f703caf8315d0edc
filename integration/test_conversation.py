"""The seed's handshake on the kind lab's wire, and the flow its ACK really hits.

The SYN, the SYN-ACK and the ACK ofrace's conversation builds (with their seq/ack) are
injected as real frames; br-int's flow counters on the pod's chassis, read around the
ACK, must have gone up by one on every flow ofrace's ``--step ACK`` trace says the ACK
matched with an established ct_state, and not on the ``+new`` flows a plain trace of the
same ACK (as a new connection) would name.
"""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest
from lab_inventory import local_inventory

from ofrace.annotate.annotated import Annotator
from ofrace.annotate.session import TraceRequest, run_trace
from ofrace.collect.cluster import collect_cluster
from ofrace.lab.wire import read_pcap
from ofrace.openflow.frames import WIRE_KEYS, encode
from ofrace.trace.cluster import ClusterTracer
from ofrace.trace.conversation import plan_steps, run_conversation
from ofrace.trace.request import start_from_expression

SEED = ('inport == "breth0_ovn-worker" && eth.src == 02:42:7a:79:82:ca && '
        "eth.dst == 02:42:ac:12:00:04 && ip4.src == 172.18.0.1 && ip4.dst == 172.18.0.4 && "
        "ip.ttl == 64 && tcp.src == {sport} && tcp.dst == 30007 && tcp.flags == 2")
HOST_IFACE = "eth0"             # breth0's uplink on ovn-worker, where the seed enters
ARP_REQUEST = {"dl_src": 0x02427A7982CA, "dl_dst": 0xFFFFFFFFFFFF, "dl_type": 0x0806,
               "nw_proto": 1, "arp_sha": 0x02427A7982CA, "nw_src": 0xAC120001,
               "nw_dst": 0xAC120004}
STATS = re.compile(r"\b(duration|n_packets|n_bytes|idle_age|hard_age)=[^,]*, ?")


def _iface(snapshot, chassis: str, bridge: str, ofport: int) -> str:
    return next(i.name for i in snapshot.chassis[chassis].interfaces
                if i.bridge == bridge and i.ofport == ofport)


def _send(lab, snapshot, start, out: tuple[str, str], wait: float = 3.0) -> list[dict]:
    """Inject a traced step's packet as a frame; what ``out`` (chassis, iface) sent of the
    same connection meanwhile."""
    iface = _iface(snapshot, start.chassis, start.bridge, start.packet["in_port"])
    fields = {k: v for k, v in start.packet.items() if k not in WIRE_KEYS}
    wire = {k: v for k, v in start.packet.items() if k in WIRE_KEYS}
    path = lab.layout.pcap(*out, "tx")
    _, offset = read_pcap(path, 0)
    lab.run_on(start.chassis, ["ovs-appctl", "netdev-dummy/receive", iface,
                               encode(fields, wire).hex()])
    deadline, seen = time.monotonic() + wait, []
    while time.monotonic() < deadline and not seen:
        time.sleep(0.1)
        frames, _ = read_pcap(path, offset)
        seen = [f for f in frames if f.get("nw_proto") == 6 and f.get("tcp_flags", 0)
                == start.packet.get("tcp_flags", 0)]
    return seen


def _counters(lab, chassis: str) -> dict[str, int]:
    """br-int's flows, by their text without counters, with their n_packets (after the
    revalidators pushed the datapath's statistics to the rules)."""
    lab.run_on(chassis, ["ovs-appctl", "revalidator/purge"])
    dump = lab.run_on(chassis, ["ovs-ofctl", "dump-flows", "--no-names", "br-int"]).stdout
    out = {}
    for line in dump.splitlines():
        found = re.search(r"n_packets=(\d+)", line)
        if found:
            out[STATS.sub("", line.strip())] = int(found.group(1))
    return out


def _flows(annotated, chassis: str) -> Counter:
    hops, out = [annotated.root], Counter()
    while hops:
        hop = hops.pop()
        hops += hop.children
        if hop.chassis == chassis:
            out.update(STATS.sub("", e.flow.strip()) for e in hop.events
                       if e.kind == "flow" and e.bridge == "br-int" and e.flow)
    return out


def _warm(lab, sport: int):
    """A snapshot where the seed's SYN and SYN-ACK are delivered: each gateway router
    learns its next hop from the first packet it routes (held for ARP, FIELD-NOTES §4), so
    warm-up handshakes (other source ports) go first, until ofrace's trace of the
    collected snapshot delivers both."""
    for attempt in range(10):
        snapshot = collect_cluster(local_inventory(lab))
        tracer = ClusterTracer(snapshot)
        start = start_from_expression(tracer, SEED.format(sport=sport + 20000 + attempt))
        conv = run_conversation(tracer, start, plan_steps(start.packet)[:2])
        if conv.stopped is None:
            return snapshot
        # the seed's host asks for the gateway's address: OVN learns the host's MAC from
        # an ARP request for a router address (lr_in_learn_neighbor), the SYN-ACK's next hop
        lab.run_on(start.chassis, ["ovs-appctl", "netdev-dummy/receive", HOST_IFACE,
                                   encode(ARP_REQUEST).hex()])
        for step in conv.steps:
            _send(lab, snapshot, step.start, (step.start.chassis, "none"), wait=1.0)
    pytest.fail(f"the seed's handshake never got through in ofrace's trace: {conv.stopped}")


@pytest.fixture(scope="module")
def warm(lab_slot):
    lab = lab_slot.ensure("kind")
    sport = 10000 + int(time.time()) % 10000     # a connection no earlier run left open
    return lab, _warm(lab, sport), sport


@pytest.mark.parametrize("flags, why", [
    ("", "TCP flags 0"),                         # the seed's microflow as written
    (" && tcp.flags == 0x12", "SYN-ACK with no connection"),
])
def test_seed_packets_conntrack_finds_invalid_are_dropped_as_on_the_wire(warm, flags, why):
    lab, snapshot, sport = warm
    expression = SEED.format(sport=sport + 5000 + len(flags)).replace(
        " && tcp.flags == 2", flags)
    result = run_trace(snapshot, TraceRequest(expression=expression))
    (verdict,) = result.annotated.verdicts
    assert verdict.kind == "dropped" and "said +inv" in verdict.text and why in verdict.text
    pod = next(i.name for i in snapshot.chassis["ovn-worker"].interfaces
               if i.iface_id and i.iface_id.startswith("default_nginx"))
    assert not _send(lab, snapshot, result.start, ("ovn-worker", pod))


def test_seed_handshake_ack_hits_the_est_flow_ofrace_names(warm):
    lab, snapshot, sport = warm
    expression = SEED.format(sport=sport)
    tracer = ClusterTracer(snapshot)
    start = start_from_expression(tracer, expression)
    conv = run_conversation(tracer, start, plan_steps(start.packet)[:3])
    assert conv.stopped is None, conv.stopped
    syn, syn_ack, ack = conv.steps
    pod = syn.arrived[0]
    pod_side = (pod.chassis, pod.port)
    uplink = (syn_ack.arrived[0].chassis, syn_ack.arrived[0].port)

    (seen,) = _send(lab, snapshot, syn.start, pod_side)
    assert (seen["nw_src"], seen["nw_dst"], seen["tp_dst"]) == (
        pod.packet["nw_src"], pod.packet["nw_dst"], pod.packet["tp_dst"])
    assert _send(lab, snapshot, syn_ack.start, uplink), "the SYN-ACK did not leave"

    est = run_trace(snapshot, TraceRequest(expression=expression, step="ACK"))
    assert [v.kind for v in est.annotated.verdicts] == ["delivered"]
    matched = _flows(est.annotated, pod.chassis)
    est_flows = {f for f in matched if re.search(r"ct_state=[^ ,]*\+est", f)}
    assert est_flows, "ofrace's ACK trace names no +est flow"
    # negative control: the flows a plain trace of the ACK (a new connection) names
    fresh = ClusterTracer(snapshot)
    alone = start_from_expression(fresh, expression.replace("tcp.flags == 2",
                                                            "tcp.flags == 0x10"))
    alone.packet.update({k: v for k, v in ack.start.packet.items() if k in WIRE_KEYS})
    plain = _flows(Annotator(fresh.names).trace(fresh.trace(alone)), pod.chassis)
    new_flows = {f for f in plain if f not in matched and "+new" in f}
    assert new_flows, "the plain trace should take a +new flow the established one does not"

    before = _counters(lab, pod.chassis)
    assert _send(lab, snapshot, ack.start, pod_side), "the ACK did not reach the pod"
    after = _counters(lab, pod.chassis)
    assert {f: after[f] - before[f] for f in est_flows} == {f: matched[f] for f in est_flows}
    assert {f: after[f] - before[f] for f in new_flows} == dict.fromkeys(new_flows, 0)
