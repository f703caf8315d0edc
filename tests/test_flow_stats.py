"""The agent's binary read of a bridge's flows (``ofrace_agent.FlowStats``), against a
scripted switch speaking OpenFlow 1.3 on the bridge's management socket: per table a
digest that ignores counters and ages, the counters in the switch's order, errors named;
and ``read_flows`` skips the text dump only when every digest is the collector's."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from ofrace.agents import ofrace_agent
from ofrace.collect.flow_cache import counters

HEADER = struct.Struct("!BBHI")


def flow(table, priority, cookie, packets=0, octets=0, seconds=0, port=1):
    """One ofp_flow_stats (OpenFlow 1.3 7.3.5.2): an in_port match, no instructions."""
    oxm = struct.pack("!HBBI", 0x8000, 0, 4, port)          # OXM_OF_IN_PORT
    match = struct.pack("!HH", 1, 4 + len(oxm)) + oxm
    match += bytes(-len(match) % 8)
    length = 48 + len(match)
    return struct.pack("!HBxIIHHHH4xQQQ", length, table, seconds, 5_000_000, priority, 0, 0,
                       0, cookie, packets, octets) + match


def reply(flows, more=False, xid=2):
    body = struct.pack("!HH4x", 1, 1 if more else 0) + b"".join(flows)
    return HEADER.pack(4, 19, 8 + len(body), xid) + body


def switch(rundir, answers, echo=False):
    """A scripted bridge ``br-int`` in ``rundir``: answers the flow-stats request with
    ``answers`` (whole messages), first asking an echo when ``echo``; gives what it got."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(rundir / "br-int.mgmt"))
    listener.listen(1)
    got = []

    def serve():
        conn, _ = listener.accept()
        with conn:
            def message():
                head = conn.recv(8, socket.MSG_WAITALL)
                version, kind, length, xid = HEADER.unpack(head)
                body = conn.recv(length - 8, socket.MSG_WAITALL) if length > 8 else b""
                got.append((version, kind, body))
                return kind
            message()                                       # hello
            conn.sendall(HEADER.pack(6, 0, 8, 1))
            message()                                       # the request
            if echo:
                conn.sendall(HEADER.pack(4, 2, 12, 77) + b"ping")
                message()
            for answer in answers:
                conn.sendall(answer)
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return got


@pytest.fixture
def rundir(tmp_path, monkeypatch):
    monkeypatch.setenv("OVS_RUNDIR", str(tmp_path))
    return tmp_path


def read(rundir, answers, **kw):
    got = switch(rundir, answers, **kw)
    stats = ofrace_agent.FlowStats("br-int", timeout=5)
    stats.run()
    return stats, got


def test_digests_ignore_counters_and_ages(rundir, tmp_path):
    flows = [flow(0, 100, 0xA, port=1), flow(0, 100, 0xB, port=2), flow(8, 50, 0xC)]
    first, got = read(rundir, [reply(flows[:2], more=True), reply(flows[2:])], echo=True)
    assert first.error is None
    assert got[1][1] == 18 and got[1][2][:2] == b"\x00\x01"        # OFPMP_FLOW asked
    assert got[2][1] == 3 and got[2][2] == b"ping"                 # the echo answered
    assert set(first.digests) == {"0", "8"} and first.sizes == [[0, 2], [8, 1]]
    busy = [flow(0, 100, 0xA, packets=7, octets=700, seconds=99, port=1),
            flow(0, 100, 0xB, port=2), flow(8, 50, 0xC, packets=1, octets=60)]
    (tmp_path / "br-int.mgmt").unlink()
    second, _ = read(rundir, [reply(busy)])
    assert second.digests == first.digests
    found = counters(second.counters, 3)
    assert len(found) == 3
    assert found[0] == {"n_packets": 7, "n_bytes": 700, "duration": 99.005}
    assert found[2]["n_packets"] == 1
    # the control: a changed priority, or another order, is another digest
    for changed in ([flow(0, 101, 0xA, port=1), flows[1], flows[2]],
                    [flows[1], flows[0], flows[2]]):
        (tmp_path / "br-int.mgmt").unlink()
        other, _ = read(rundir, [reply(changed)])
        assert other.digests["0"] != first.digests["0"]
        assert other.digests["8"] == first.digests["8"]


def test_a_refusal_or_a_cut_answer_is_an_error(rundir, tmp_path):
    refused, _ = read(rundir, [HEADER.pack(4, 1, 12, 2) + struct.pack("!HH", 1, 1)])
    assert refused.digests is None and "refused" in refused.error
    (tmp_path / "br-int.mgmt").unlink()
    whole = flow(0, 1, 1)
    cut = reply([whole])[:-8]
    cut = HEADER.pack(4, 19, len(cut), 2) + cut[8:]
    broken, _ = read(rundir, [cut])
    assert broken.digests is None and "cut" in broken.error
    (tmp_path / "br-int.mgmt").unlink()
    gone, _ = read(rundir, [])                       # the switch hangs up
    assert gone.digests is None and gone.error


class Commands:
    def __init__(self):
        self.argv = []

    def __call__(self, argv):
        self.argv.append(argv)
        return {"argv": argv, "rc": 0, "stdout": "NXST_FLOW reply:\n cookie=0x1, table=0, "
                "priority=1 actions=drop\n", "started": 0, "elapsed": 0, "error": None}


def test_the_text_is_dumped_unless_every_digest_is_the_collectors(rundir, tmp_path):
    flows = [flow(0, 1, 1)]
    known = None
    for expect_dump in (True, False, True):
        switch(rundir, [reply(flows)])
        commands = Commands()
        result = ofrace_agent.read_flows(ofrace_agent.Reader(commands), "br-int", known)
        (tmp_path / "br-int.mgmt").unlink()
        assert bool(commands.argv) == expect_dump
        assert bool(result.get("unchanged")) != expect_dump
        digests = result["flow_tables"]["digests"]
        if known is None:
            known = digests
        else:
            known = {"0": "0" * 40}                  # the collector's text is another


def test_a_switch_slow_to_answer_gives_no_digests(rundir, tmp_path, monkeypatch):
    """Digests the switch had not started answering before the text dump began do not
    describe that text: none are sent."""
    monkeypatch.setattr(ofrace_agent, "FLOW_STATS_ANSWER", 0.2)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(rundir / "br-int.mgmt"))
    listener.listen(1)                       # accepts, and never answers
    commands = Commands()
    try:
        result = ofrace_agent.read_flows(ofrace_agent.Reader(commands), "br-int", {"0": "x"})
    finally:
        listener.close()
    assert commands.argv, "the text is dumped"
    assert "digests" not in result["flow_tables"]
    assert "did not answer" in result["flow_tables"]["error"]
