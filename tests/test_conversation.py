"""Conversations on one conntrack (issue 13 item 3), on the recorded kind snapshot: every
packet of a connection, a packet of an established connection in its own direction,
and why a packet conntrack finds invalid ends where it does."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from conftest import FIXTURES, recorded

from ofrace.annotate.annotated import Annotator
from ofrace.annotate.session import TraceRequest, run_trace
from ofrace.errors import InputError
from ofrace.trace.cluster import ClusterTracer
from ofrace.trace.conversation import find_step, plan_steps, run_conversation
from ofrace.trace.request import start_from_short_form

NGINX = "default_nginx-deployment-9456bbbf9-x6pc6"
COREDNS = "kube-system_coredns-64897985d-wdvs9"
SNAP = FIXTURES / "kind" / "snapshot.ofr"
SEED = ('inport == "breth0_ovn-worker" && eth.src == 02:42:7a:79:82:ca && '
        "eth.dst == 02:42:ac:12:00:04 && ip4.src == 172.18.0.1 && ip4.dst == 172.18.0.4 && "
        "ip.ttl == 64 && tcp.src == 12345 && tcp.dst == 30007")


def _request(**options) -> TraceRequest:
    return TraceRequest.from_options(None, NGINX, "10.244.2.5:53", options.pop("protocol",
                                                                             "tcp"),
                                     None, False, **options)


def _states(step) -> list[str]:
    return [hit.state for hit in step.ct]


def test_tcp_conversation_crosses_chassis_on_one_conntrack():
    result = run_trace(recorded("kind")[0], _request(conversation=True))
    names = [s.name for s in result.conversation]
    assert names == ["SYN", "SYN-ACK", "ACK", "data", "FIN", "FIN-ACK", "last ACK"]
    assert result.stopped is None and result.exit_code == 0
    for step in result.conversation:
        (verdict,) = step.annotated.verdicts
        assert verdict.kind == "delivered"
        assert verdict.logical_port == (NGINX if step.reply else COREDNS)
    syn, syn_ack, ack = result.conversation[:3]
    assert all("new" in s for s in _states(syn)) and any(h.committed for h in syn.ct)
    assert all("est" in s and "rpl" in s for s in _states(syn_ack))
    # the ACK crossed a tunnel: the far chassis' conntrack saw its seq/ack too
    assert {h.chassis for h in ack.ct} == {"ovn-worker", "ovn-control-plane"}
    assert all("est" in s and "rpl" not in s and "inv" not in s for s in _states(ack))
    assert syn_ack.request["tcp_ack"] == syn.request["tcp_seq"] + 1


@pytest.mark.parametrize("protocol, names", [("udp", ["request", "reply"]),
                                             ("icmp", ["echo request", "echo reply"])])
def test_udp_and_icmp_conversations(protocol, names):
    result = run_trace(recorded("kind")[0], _request(conversation=True, protocol=protocol))
    assert [s.name for s in result.conversation] == names
    request, reply = result.conversation
    assert [v.kind for v in reply.annotated.verdicts] == ["delivered"]
    assert any("est" in s and "rpl" in s for s in _states(reply))
    assert not any("est" in s for s in _states(request))


def _flows(annotated) -> set[tuple]:
    out, stack = set(), [annotated.root]
    while stack:
        hop = stack.pop()
        stack += hop.children
        out |= {(hop.chassis, e.table, e.priority, e.flow) for e in hop.events
                if e.kind == "flow"}
    return out


def test_established_ack_takes_the_est_flows_a_plain_trace_misses():
    snapshot = recorded("kind")[0]
    est = run_trace(snapshot, _request(established=True))
    assert est.request["step"] == "ACK"
    assert [s["step"] for s in est.request["simulated_first"]] == ["SYN", "SYN-ACK"]
    assert est.start.packet["tcp_flags"] == 0x010
    assert [v.kind for v in est.annotated.verdicts] == ["delivered"]
    stages = {e.logical_match for e in est.annotated.root.events if e.stage}
    assert any("ct.est" in (m or "") and "!ct.new" in (m or "") for m in stages)
    # negative control: the same ACK traced alone is a new connection, other flows
    tracer = ClusterTracer(snapshot)
    alone = start_from_short_form(tracer, NGINX, "10.244.2.5:53", "tcp")
    alone.packet.update(tcp_flags=0x010, **{k: est.start.packet[k]
                                            for k in ("tcp_seq", "tcp_ack")})
    plain = run_trace(snapshot, _request())   # a SYN: new
    assert _flows(est.annotated) != _flows(plain.annotated)
    lone = Annotator(tracer.names).trace(tracer.trace(alone))
    assert _flows(lone) != _flows(est.annotated)


def test_a_step_after_a_failed_one_says_the_connection_was_not_established():
    """The seed's SYN is held for ARP on the recorded snapshot (a cold gateway): the ACK
    cannot be traced as established, and the output says which step was shown."""
    snapshot = recorded("kind")[0]
    request = TraceRequest.from_options(SEED + " && tcp.flags == 2", None, None, "tcp", None,
                                        False, step="ACK")
    result = run_trace(snapshot, request)
    assert result.request["step"] == "ACK" and "not ACK" in result.stopped
    assert [v.kind for v in result.annotated.verdicts] == ["controller"]
    assert result.exit_code == 1


def test_step_names_and_mistakes():
    packet = {"dl_type": 0x0800, "nw_proto": 6, "tp_src": 1, "tp_dst": 2}
    steps, i = find_step(packet, "fin-ack")
    assert steps[i].name == "FIN-ACK" and steps[i].reply
    assert find_step(packet, None)[0][find_step(packet, None)[1]].name == "ACK"
    assert find_step(dict(packet, nw_proto=1, tp_src=8, tp_dst=0), "reply")[1] == 1
    with pytest.raises(InputError, match="no such step in a tcp conversation"):
        find_step(packet, "SYN-FIN")
    with pytest.raises(InputError, match="ICMP echo"):
        plan_steps({"dl_type": 0x0800, "nw_proto": 1, "tp_src": 0})
    with pytest.raises(InputError, match="cannot be combined"):
        TraceRequest.from_options(None, NGINX, "10.0.0.1", "tcp", None, True,
                                  conversation=True)


def test_each_step_stays_in_the_window_the_previous_ones_opened():
    snapshot = recorded("kind")[0]
    tracer = ClusterTracer(snapshot)
    start = start_from_short_form(tracer, NGINX, "10.244.2.5:53", "tcp")
    steps = plan_steps(start.packet)
    # negative control: an ACK whose ack number is off by 100 000 is out of window
    bad = [steps[0], steps[1], type(steps[2])("ACK", False, 0x010,
                                              dict(steps[2].wire, tcp_ack=steps[2].wire[
                                                  "tcp_ack"] + 100000))]
    conv = run_conversation(tracer, start, bad)
    assert conv.stopped and "ACK was not delivered (dropped)" in conv.stopped
    text = [s.text for s in conv.steps[-1].trace.root.root.walk() if s.kind == "ct"]
    assert any("outside the window" in t for t in text)


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ofrace", "trace", "--snapshot", str(SNAP),
                           *args], capture_output=True, text=True)


def test_seed_without_tcp_flags_is_dropped_as_invalid_and_says_how_to_ask_for_a_syn():
    run = _cli(SEED, "--json")
    assert run.returncode == 1, run.stderr
    (verdict,) = json.loads(run.stdout)["verdicts"]
    assert verdict["kind"] == "dropped"
    assert "said +inv" in verdict["text"] and "TCP flags 0" in verdict["text"]
    assert "tcp.flags == 2" in verdict["text"]
    text = _cli(SEED, "--summary").stdout
    result = text[text.index("Result"):]
    assert "said +inv" in result and "tcp.flags == 2" in " ".join(result.split())
    # negative control: the SYN is not invalid, and its verdict says nothing of it
    syn = json.loads(_cli(SEED + " && tcp.flags == 2", "--json").stdout)["verdicts"]
    assert syn and not any("+inv" in v["text"] for v in syn)


def test_a_syn_ack_with_no_connection_is_dropped_and_says_why():
    run = _cli(SEED + " && tcp.flags == 0x12", "--json")
    (verdict,) = json.loads(run.stdout)["verdicts"]
    assert verdict["kind"] == "dropped" and "SYN-ACK with no connection" in verdict["text"]
    assert "--conversation" in verdict["text"]


def test_conversation_json_is_a_list_of_steps_and_text_one_block_each():
    run = _cli("--from", NGINX, "--to", "10.244.2.5:53", "--udp", "--conversation", "--json")
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert [s["step"] for s in doc["conversation"]] == ["request", "reply"]
    assert doc["conversation"][1]["ct"][0]["state"] == "est+rpl+trk+dnat"
    assert doc["conversation"][1]["verdicts"][0]["logical_port"] == NGINX
    text = _cli("--from", NGINX, "--to", "10.244.2.5:53", "--tcp", "--conversation").stdout
    assert re.findall(r"^\d\. (\S+)", text, re.M) == [
        "SYN", "SYN-ACK", "ACK", "data", "FIN", "FIN-ACK", "last"]
    assert text.count("ct: ") == 7
