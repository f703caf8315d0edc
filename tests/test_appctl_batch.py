"""ofproto/trace in batches: the agent's "appctl" mode sends many calls over one unixctl
connection to a scripted ovs-vswitchd, refuses anything but ofproto/trace, and the
collector falls back to one ovs-appctl per trace where the agent cannot run."""

from __future__ import annotations

import io
import json
import socket
import threading

from ofrace.agents import ofrace_agent
from ofrace.collect.transport import CommandOutput, LocalTransport
from ofrace.compare import live
from ofrace.errors import ToolError


def vswitchd(rundir):
    """A scripted ovs-vswitchd control socket in ``rundir`` (pidfile included), taking any
    number of connections: each ofproto/trace answers with its arguments, a flow of
    "bad" with unixctl's error.  Gives [(connection number, method)] as they come."""
    (rundir / "ovs-vswitchd.pid").write_text("4242\n")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(rundir / "ovs-vswitchd.4242.ctl"))
    listener.listen(8)
    seen = []

    def one(conn, number):
        decoder, buffer = json.JSONDecoder(), ""
        with conn:
            while data := conn.recv(65536):
                buffer += data.decode()
                while buffer.strip():
                    try:
                        message, end = decoder.raw_decode(buffer.lstrip())
                    except ValueError:
                        break
                    buffer = buffer.lstrip()[end:]
                    seen.append((number, message["method"]))
                    params = message["params"]
                    reply = ({"id": message["id"], "result": None, "error": "bad flow"}
                             if "bad" in params else
                             {"id": message["id"], "error": None,
                              "result": f"{message['method']} {' '.join(params)}\n"})
                    conn.sendall(json.dumps(reply).encode())

    def accept():
        number = 0
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            number += 1
            threading.Thread(target=one, args=(conn, number), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return seen, listener


def appctl_mode(spec):
    buffer = io.BytesIO()
    writer = ofrace_agent.FrameWriter(buffer)
    doc = ofrace_agent.appctl_document(spec, writer)
    writer.frame("D", 0, json.dumps(doc).encode())
    writer.close()
    return ofrace_agent.read_frames(buffer.getvalue())


def test_calls_share_one_connection_and_errors_stay_per_call(tmp_path, monkeypatch):
    monkeypatch.setenv("OVS_RUNDIR", str(tmp_path))
    seen, listener = vswitchd(tmp_path)
    calls = [["ofproto/trace", "br-int", f"in_port={n}", "--ct-next", "trk,new"]
             for n in range(1, 4)] + [["ofproto/trace", "br-int", "bad"]]
    doc, blobs = appctl_mode({"calls": calls, "timeout": 30})
    listener.close()
    answers = json.loads(blobs[doc["appctl"]["blob"]])
    assert answers[:3] == [{"output": f"ofproto/trace br-int in_port={n} --ct-next trk,new\n"}
                           for n in range(1, 4)]
    assert answers[3] == {"error": "bad flow"}
    assert seen == [(1, "ofproto/trace")] * 4          # all over one connection


def test_anything_but_ofproto_trace_is_refused_before_connecting(tmp_path, monkeypatch):
    monkeypatch.setenv("OVS_RUNDIR", str(tmp_path))   # no socket there: nothing to reach
    for call in (["vlog/set", "dbg"], ["exit"], ["ofproto/trace", 7], []):
        doc, _ = appctl_mode({"calls": [["ofproto/trace", "br-int", "in_port=1"], call]})
        assert doc["error"] == "only ofproto/trace may be sent"


def test_no_vswitchd_socket_is_an_error_not_a_crash(tmp_path, monkeypatch):
    monkeypatch.setenv("OVS_RUNDIR", str(tmp_path))
    doc, _ = appctl_mode({"calls": [["ofproto/trace", "br-int", "in_port=1"]]})
    assert "ovs-vswitchd.pid" in doc["error"]


def test_the_collector_batches_through_the_agent(tmp_path, monkeypatch):
    """The real agent, run as a node runs it, one process and one connection a batch."""
    seen, listener = vswitchd(tmp_path)
    calls = [live.ofproto_trace_call("br-int", {"in_port": n, "dl_type": 0x0800})
             for n in range(1, 41)] + [["ofproto/trace", "br-int", "bad"]]
    monkeypatch.setattr(live, "BATCH_BYTES", 400)     # several batches, in order
    transport = LocalTransport(env={"OVS_RUNDIR": str(tmp_path)})
    runs = []
    real_run = transport.run
    monkeypatch.setattr(transport, "run", lambda argv, **kw: runs.append(argv[0])
                        or real_run(argv, **kw))
    answers = live.run_ofproto_traces(transport, calls, "hv1", timeout=30)
    listener.close()
    connections = {number for number, _ in seen}
    assert len(connections) > 1 and len(seen) == len(calls)
    assert runs == ["python3"] * len(connections)     # no ovs-appctl: the agent did it all
    assert answers[:-1] == [f"{' '.join(c)}\n" for c in calls[:-1]]
    assert isinstance(answers[-1], ToolError) and "bad flow" in str(answers[-1])


def test_batches_split_by_size_and_keep_their_order(monkeypatch):
    monkeypatch.setattr(live, "BATCH_BYTES", 100)
    sent = []

    def fake_mode(transport, options, budget):
        calls = options["appctl"]["calls"]
        sent.append(len(calls))
        return {"appctl": {"blob": 1}}, {1: json.dumps([{"output": c[2]} for c in calls])}

    monkeypatch.setattr(live, "run_agent_mode", fake_mode)
    calls = [["ofproto/trace", "br-int", f"in_port={n}"] for n in range(20)]
    answers = live.run_ofproto_traces(object(), calls, "hv1")
    assert answers == [f"in_port={n}" for n in range(20)]
    assert len(sent) > 1 and sum(sent) == 20


class NoPython:
    """A node without python3, whose ovs-appctl answers one flow and fails another."""

    def __init__(self):
        self.argvs = []

    def run(self, argv, timeout=120, on_stdout=None, budget=None):
        self.argvs.append(argv)
        if argv[0] == "python3":
            return CommandOutput(127, b"", b"sh: 1: python3: not found\n")
        if argv[-1] == "bad":
            return CommandOutput(2, b"", b"bad flow\novs-appctl: ovs-vswitchd: server "
                                 b"returned an error\n")
        return CommandOutput(0, f"traced {argv[-1]}\n".encode(), b"")


def test_without_python3_each_trace_is_one_ovs_appctl():
    node = NoPython()
    calls = [["ofproto/trace", "br-int", "in_port=1"], ["ofproto/trace", "br-int", "bad"]]
    answers = live.run_ofproto_traces(node, calls, "hv1")
    assert answers[0] == "traced in_port=1\n"
    assert isinstance(answers[1], ToolError) and "bad flow" in str(answers[1])
    assert [a[0] for a in node.argvs] == ["python3", "ovs-appctl", "ovs-appctl"]
