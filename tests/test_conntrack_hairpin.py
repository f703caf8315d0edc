"""Conntrack on the recorded kind cluster: hairpin SNAT to the VIP reaches the final
packet, and TCP without a SYN is invalid as the datapath finds it."""

from conftest import recorded

from ofrace.trace.cluster import ClusterTracer
from ofrace.trace.request import reply_start, start_from_expression, start_from_short_form

POD, POD_IP, POD_MAC = "default_nginx-deployment-9456bbbf9-x6pc6", 0x0AF40103, "0a:58:0a:f4:01:03"
VIP = 0x0A605B9F   # default/nginx-np's cluster IP, 10.96.91.159:80 → the pod itself


def delivered(trace):
    return [v for v in trace.verdicts() if v.kind == "delivered"]


def test_hairpin_final_packet_carries_the_snat_to_the_vip():
    tracer = ClusterTracer(recorded("kind")[0])
    trace = tracer.trace(start_from_short_form(tracer, POD, "10.96.91.159:80", "tcp"))
    (verdict,) = delivered(trace)
    assert verdict.logical_port == POD
    final = verdict.packet
    assert (final["nw_src"], final["nw_dst"], final["tp_dst"]) == (VIP, POD_IP, 80)
    assert "_datapath_nat" not in final        # applied, not carried

    back = tracer.trace(reply_start(tracer, verdict))
    (answer,) = delivered(back)
    # The pod answers the VIP; conntrack un-SNATs then un-DNATs: from VIP:80 to itself.
    assert (answer.packet["nw_src"], answer.packet["tp_src"]) == (VIP, 80)
    assert (answer.packet["nw_dst"], answer.packet["tp_dst"]) == (POD_IP, final["tp_src"])


def test_no_snat_without_hairpin():
    # Negative control: the same pod to another service keeps its own source.
    tracer = ClusterTracer(recorded("kind")[0])
    trace = tracer.trace(start_from_short_form(tracer, POD, "10.244.2.5:53", "udp"))
    (verdict,) = delivered(trace)
    assert verdict.packet["nw_src"] == POD_IP


def test_tcp_without_flags_is_dropped_as_invalid_and_says_why():
    tracer = ClusterTracer(recorded("kind")[0])
    expression = (f'inport == "{POD}" && eth.src == {POD_MAC} && eth.dst == 0a:58:0a:f4:01:01'
                  " && ip4.src == 10.244.1.3 && ip4.dst == 10.244.2.5 && ip.ttl == 64"
                  " && tcp.src == 40000 && tcp.dst == 53")
    trace = tracer.trace(start_from_expression(tracer, expression))
    assert not delivered(trace)
    texts = [s.text for s in trace.root.root.walk() if s.kind == "ct"]
    assert texts and "inv" in texts[0] and "tcp.flags == 2" in texts[0]
    with_syn = tracer.trace(start_from_expression(tracer, expression + " && tcp.flags == 2"))
    assert delivered(with_syn)                 # negative control: the SYN gets through
