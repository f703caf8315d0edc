"""The cold path traces exactly like the eager one (issue 17).

A recorded snapshot (version 2: every row decoded at load, every table indexed from its
lines) is saved as version 3 with the classifier's index, loaded again (tables decoded
when asked, Logical_Flow read by cookie, flows looked up in the stored index, lines
read a block at a time), and the same requests are traced on both: the JSON documents
must be equal.  Negative control: a snapshot whose hit flow was changed traces
differently on the cold path.
"""

from __future__ import annotations

import json
from functools import cache

import pytest
from conftest import FIXTURES

from ofrace.annotate.session import TraceRequest, run_trace
from ofrace.errors import OfraceError
from ofrace.openflow.bridge import classifier_index
from ofrace.render.trace_json import trace_json
from ofrace.snapshot import Snapshot, StoredTables
from ofrace.trace.cluster import ClusterTracer

TOPOLOGIES = ["kind", "acl", "basic", "openstack", "localport", "kind-ic"]
PAIRS = 8   # requests per topology and protocol


@cache
def _eager(topology: str) -> Snapshot:
    return Snapshot.load(FIXTURES / topology / "snapshot.ofr")


def _cold(topology: str, tmp_path, snapshot: Snapshot | None = None) -> Snapshot:
    path = tmp_path / f"{topology}.ofr"
    (snapshot or _eager(topology)).save(path, flow_index=classifier_index)
    return Snapshot.load(path)


def _requests(snapshot: Snapshot) -> list[TraceRequest]:
    """VIF to VIF (any zone), by IPv4, over TCP and ICMP, with the reply."""
    vifs = []
    for db in [snapshot.southbound] + [z.southbound for z in snapshot.zones.values()]:
        for pb in (db.tables.get("Port_Binding", []) if db else []):
            if pb.get("type") or not pb.get("chassis") or not pb.get("mac"):
                continue
            ips = [p for p in pb["mac"][0].split()[1:] if "." in p]
            if ips:
                vifs.append((pb["logical_port"], ips[0].split("/")[0]))
    vifs.sort()
    pairs = [(a, b) for a, _ in vifs for _, b in vifs if a != b][:PAIRS]
    return [TraceRequest.from_options(None, src, f"{dst}:80", protocol, None, True)
            for src, dst in pairs for protocol in ("tcp", "icmp")]


def _trace(snapshot: Snapshot, request: TraceRequest) -> str:
    try:
        result = run_trace(snapshot, request)
    except OfraceError as exc:   # the same error both ways counts as the same answer
        return f"error {type(exc).__name__}: {exc}"
    return json.dumps(trace_json(result.annotated, result.request, result.back,
                                 result.back_request, result.reply_not_run), sort_keys=True)


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_the_cold_path_traces_like_the_eager_one(topology, tmp_path):
    eager, cold = _eager(topology), _cold(topology, tmp_path)
    requests = _requests(eager)
    assert requests, "no VIF pair to trace"
    for request in requests:
        assert _trace(cold, request) == _trace(eager, request), (
            f"{topology}: {request.source} -> {request.destination} {request.protocol}")
    # and it was the cold path: rows decoded on demand, flows from the stored index
    databases = [cold.southbound] + [z.southbound for z in cold.zones.values()]
    assert all(isinstance(db.tables, StoredTables) for db in databases if db)
    assert not any(db.tables._loaded.get("Logical_Flow") for db in databases if db)
    tracer = ClusterTracer(cold)
    for name, ch in cold.chassis.items():
        if ch.reachable and ch.bridges:
            dp = tracer.datapath(name)
            assert all(getattr(b, "_stored", None) is not None
                       for n, b in dp.bridges.items() if ch.bridges[n].flow_count), name
            break


def test_a_changed_flow_traces_differently_on_the_cold_path(tmp_path):
    """Negative control: the comparison above can fail."""
    eager = _eager("kind")
    request = _requests(eager)[0]
    hit = run_trace(eager, request).forward.root
    first = hit.start.chassis
    changed = Snapshot.load(FIXTURES / "kind" / "snapshot.ofr")
    bridge = changed.chassis[first].bridges[hit.start.bridge]
    # every flow where the packet enters drops now: it goes nowhere
    bridge.flows = [line.split(" actions=")[0] + " actions=drop" for line in bridge.flows]
    assert _trace(_cold("kind", tmp_path, changed), request) != _trace(eager, request)


def test_an_index_this_python_cannot_use_falls_back_to_the_lines(tmp_path, monkeypatch):
    """A classifier index written with another hash (another build) is not used: the
    lines are indexed as before, and the trace is the same."""
    import ofrace.openflow.stored as stored

    eager = _eager("acl")
    path = tmp_path / "other-hash.ofr"
    monkeypatch.setattr(stored, "_PROBE", (2, 3))    # the writer's probe hashes differently
    eager.save(path, flow_index=classifier_index)
    monkeypatch.undo()
    cold = Snapshot.load(path)
    tracer = ClusterTracer(cold)
    name = next(n for n, c in cold.chassis.items() if c.reachable and c.bridges)
    assert all(getattr(b, "_stored", None) is None for b in tracer.datapath(name).bridges.values())
    for request in _requests(eager)[:4]:
        assert _trace(cold, request) == _trace(eager, request)


def test_lines_changed_after_load_are_not_looked_up_in_the_stored_index(tmp_path):
    """The index answers for the lines it was written with: lines set since (a test, a
    learned copy) are indexed from themselves, and trace like the eager snapshot."""
    eager = Snapshot.load(FIXTURES / "kind" / "snapshot.ofr")
    cold = _cold("kind", tmp_path)
    request = _requests(eager)[0]
    first = run_trace(eager, request).forward.root.start
    for snapshot in (eager, cold):
        bridge = snapshot.chassis[first.chassis].bridges[first.bridge]
        bridge.flows = [line.split(" actions=")[0] + " actions=drop" for line in bridge.flows]
    tracer = ClusterTracer(cold)
    assert getattr(tracer.datapath(first.chassis).bridges[first.bridge], "_stored", None) is None
    assert _trace(cold, request) == _trace(eager, request)


def test_a_trace_on_a_file_imports_nothing_of_reading_live(tmp_path):
    """A new process pays for what it imports: tracing a snapshot file must not load the
    SSH stack (paramiko: ~0.2 s) nor the collectors.  Control: a live command does."""
    import subprocess
    import sys

    path = tmp_path / "kind.ofr"
    _eager("kind").save(path, flow_index=classifier_index)
    probe = ("import sys, runpy; sys.argv = ['ofrace'] + sys.argv[1:]\n"
             "try:\n    runpy.run_module('ofrace', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "print(sorted(m for m in sys.modules if m.startswith(('paramiko', "
             "'ofrace.collect.transport', 'ofrace.collect.cluster'))), file=sys.stderr)")
    vifs = _requests(_eager("kind"))[0]
    done = subprocess.run([sys.executable, "-c", probe, "trace", "--snapshot", str(path),
                           "--from", vifs.source, "--to", vifs.destination, "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith("{"), done.stderr
    assert done.stderr.strip().splitlines()[-1] == "[]"
    live = subprocess.run([sys.executable, "-c", probe, "collect", "-i", str(tmp_path / "x"),
                           "-o", str(tmp_path / "y.ofr")], capture_output=True, text=True,
                          timeout=120)
    assert "paramiko" in live.stderr.strip().splitlines()[-1]
