"""A live trace reads only the chassis the packet crosses (issue 17): the node where it
enters, then each node a tunnel takes it to, counted from the transports' own calls;
and it traces exactly as the whole cluster read at once does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from ofrace.annotate.session import TraceRequest, run_trace
from ofrace.collect import cluster
from ofrace.collect.inventory import load_inventory
from ofrace.collect.path_cache import PathCache, remember
from ofrace.render.trace_json import without_counters

COREDNS = "kube-system_coredns-64897985d-rzjfr"     # on ovn-control-plane
NGINX_IP = "10.244.1.3"                              # a pod on ovn-worker
WORKER2_MP_IP = "10.244.0.2"                         # ovn-worker2's management port


@pytest.fixture
def counted(monkeypatch):
    """Every command a node's transport runs, by node."""
    calls: Counter = Counter()
    real = cluster.make_transport

    def counting(spec, *args, **kwargs):
        transport = real(spec, *args, **kwargs)
        run = transport.run

        def counted_run(*a, **kw):
            calls[spec.name] += 1
            return run(*a, **kw)

        transport.run = counted_run
        return transport

    monkeypatch.setattr(cluster, "make_transport", counting)
    return calls


def hop_chassis(result) -> set[str]:
    found = set()

    def walk(hop):
        found.add(hop.chassis)
        for child in hop.children:
            walk(child)
    walk(result.annotated.root)
    return found


def test_live_trace_reads_only_the_chassis_it_crosses(kind_lab, counted):
    inventory = load_inventory(kind_lab.dir / "inventory.toml")
    snapshot = cluster.collect_on_demand(inventory)
    assert not counted, "no node is read before the trace asks for one"
    result = run_trace(snapshot, TraceRequest(source=COREDNS, destination=f"{NGINX_IP}:80"))
    assert [v.kind for v in result.annotated.verdicts] == ["delivered"]
    crossed = hop_chassis(result)
    assert crossed == {"ovn-control-plane", "ovn-worker"}
    assert set(counted) == crossed          # the transports ran commands there only
    assert set(snapshot.chassis.order) == crossed
    assert len(inventory.nodes) == 3
    # the node the packet enters by is read with the databases when the port is known
    counted.clear()
    early = cluster.collect_on_demand(inventory, entry_port=COREDNS)
    assert set(counted) == {"ovn-control-plane"}
    assert early.chassis.order == ["ovn-control-plane"]
    # the control: a packet to ovn-worker2 does read it, so the count above can fail
    again = run_trace(snapshot, TraceRequest(source=COREDNS,
                                             destination=f"{WORKER2_MP_IP}:80"))
    assert "ovn-worker2" in hop_chassis(again)
    assert counted["ovn-worker2"] > 0


def test_on_demand_trace_equals_a_whole_cluster_snapshot(kind_lab, tmp_path):
    inv = kind_lab.dir / "inventory.toml"
    snap = tmp_path / "kind.ofr"
    ofrace = [sys.executable, "-m", "ofrace"]
    collected = subprocess.run([*ofrace, "collect", "-i", str(inv), "-o", str(snap)],
                               capture_output=True, text=True, timeout=180)
    assert collected.returncode == 0, collected.stderr
    asked = ["--json", "--reply", "--from", COREDNS, "--to", f"{NGINX_IP}:80"]
    live = subprocess.run([*ofrace, "trace", "-i", str(inv), *asked],
                          capture_output=True, text=True, timeout=180)
    offline = subprocess.run([*ofrace, "trace", "--snapshot", str(snap), *asked],
                             capture_output=True, text=True, timeout=180)
    assert live.returncode == 0, live.stderr
    assert offline.returncode == 0, offline.stderr
    live_doc, offline_doc = json.loads(live.stdout), json.loads(offline.stdout)
    assert without_counters(live_doc) == without_counters(offline_doc)
    assert "counters" in json.dumps(offline_doc)          # the control: not vacuous
    assert live_doc["verdicts"][0]["kind"] == "delivered"
    assert live_doc["reply"]["verdicts"][0]["kind"] == "delivered"


def test_a_trace_asked_again_reads_the_nodes_it_crossed_at_once(kind_lab, tmp_path,
                                                                monkeypatch, counted):
    """The second run reads the crossed nodes with the databases (``path_cache``), still
    only those, and answers the same; a remembered node it does not reach is said."""
    monkeypatch.setenv("OFRACE_CACHE_DIR", str(tmp_path / "cache"))
    inv = kind_lab.dir / "inventory.toml"
    env = {**os.environ, "OFRACE_CACHE_DIR": str(tmp_path / "cache")}
    asked = ["--json", "--from", COREDNS, "--to", f"{NGINX_IP}:80"]
    argv = [sys.executable, "-m", "ofrace", "trace", "-i", str(inv), *asked]
    first = subprocess.run(argv, capture_output=True, text=True, timeout=180, env=env)
    assert first.returncode == 0, first.stderr
    request = TraceRequest.from_options(None, COREDNS, f"{NGINX_IP}:80", "tcp", None, False)
    inventory = load_inventory(inv)
    paths = PathCache.for_request(inventory.nodes, repr(request))
    assert set(paths.recall()) == {"ovn-control-plane", "ovn-worker"}, \
        "the CLI keeps the path under the request it traced"
    # in this process, counted: both nodes read before the trace asks, and no other
    snapshot = cluster.collect_on_demand(inventory, entry_port=COREDNS,
                                         path_key=repr(request))
    assert set(snapshot.chassis.ahead) == {"ovn-control-plane", "ovn-worker"}
    result = run_trace(snapshot, request)
    assert set(counted) == hop_chassis(result) == {"ovn-control-plane", "ovn-worker"}
    assert remember(snapshot) == []
    # the control: a remembered node the packet does not reach is read, and said
    paths.remember(["ovn-control-plane", "ovn-worker", "ovn-worker2"])
    again = subprocess.run(argv, capture_output=True, text=True, timeout=180, env=env)
    assert again.returncode == 0, again.stderr
    assert "ovn-worker2: read ahead" in again.stderr
    assert without_counters(json.loads(again.stdout)) == \
        without_counters(json.loads(first.stdout))
    assert set(paths.recall()) == {"ovn-control-plane", "ovn-worker"}, "and forgotten"
    last = subprocess.run(argv, capture_output=True, text=True, timeout=180, env=env)
    assert last.returncode == 0 and "read ahead" not in last.stderr, last.stderr
