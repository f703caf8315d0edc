"""A live trace asked again reads the nodes the last one needed at once (``path_cache``),
answers the same, and says when a node read ahead was not reached.

Recorded snapshots stand in for the cluster, as in test_on_demand.py.  Negative
controls: a remembered node the packet does not reach is reported as read for nothing,
and a request or an inventory not seen before recalls nothing.
"""

from __future__ import annotations

import json
import os
import stat

import pytest
from test_cold_path import _eager, _requests, _trace
from test_on_demand import on_demand

from ofrace.collect import path_cache
from ofrace.collect.inventory import NodeSpec
from ofrace.collect.path_cache import PathCache


def _crossing(topology: str):
    """A request of the topology whose trace needs more than one node."""
    whole = _eager(topology)
    for request in _requests(whole):
        live, _, _ = on_demand(topology)
        _trace(live, request)
        if len(live.chassis.needed) > 1:
            return whole, request, list(live.chassis.needed)
    pytest.skip(f"no request of {topology} crosses chassis")


def _wait_for(_nodes) -> None:
    """The reads started ahead, finished (their threads, by name)."""
    import threading

    for thread in threading.enumerate():
        if thread.name.startswith("read ahead "):
            thread.join(30)


@pytest.mark.parametrize("topology", ["kind", "openstack"])
def test_a_trace_asked_again_reads_its_nodes_ahead_and_answers_the_same(topology, tmp_path):
    whole, request, needed = _crossing(topology)
    nodes = [NodeSpec(name=n) for n in whole.chassis]
    PathCache(nodes, repr(request), tmp_path).remember(needed)
    recalled = PathCache(nodes, repr(request), tmp_path).recall()
    assert recalled == needed
    live, reads, _ = on_demand(topology)
    live.chassis.read_ahead(recalled)
    _wait_for(live.chassis)
    assert sorted(reads) == sorted(needed)             # read before the trace asked
    assert _trace(live, request) == _trace(whole, request)
    assert sorted(reads) == sorted(needed), "the trace read no node twice, nor more"
    assert live.chassis.needed == needed
    assert live.chassis.read_for_nothing() == []


def test_a_node_read_ahead_and_not_reached_is_said():
    whole, request, needed = _crossing("kind")
    other = next(n for n in whole.chassis if n not in needed)   # the control
    live, reads, _ = on_demand("kind")
    live.chassis.read_ahead([*needed, other])
    _wait_for(live.chassis)
    assert _trace(live, request) == _trace(whole, request)
    assert other in reads
    assert live.chassis.read_for_nothing() == [other]
    assert other not in live.chassis.needed


def test_a_node_found_by_system_id_among_those_read_ahead_is_needed():
    whole = _eager("kind")
    some = next(iter(whole.chassis.values()))
    live, reads, _ = on_demand("kind")
    live.chassis.read_ahead([some.name])
    _wait_for(live.chassis)
    assert live.chassis.read_for_nothing() == [some.name]
    assert live.find_chassis(some.system_id, read=False) is whole.chassis[some.name]
    assert live.chassis.needed == []                  # only looked at
    assert live.find_chassis(some.system_id) is whole.chassis[some.name]
    assert live.chassis.needed == [some.name] and reads == [some.name]


def test_each_request_and_inventory_has_its_own_path(tmp_path):
    nodes = [NodeSpec(name="a", host="192.0.2.1"), NodeSpec(name="b", host="192.0.2.2")]
    PathCache(nodes, "request 1", tmp_path).remember(["a", "b"])
    assert PathCache(nodes, "request 1", tmp_path).recall() == ["a", "b"]
    assert PathCache(nodes, "request 2", tmp_path).recall() == []
    moved = [NodeSpec(name="a", host="192.0.2.9"), nodes[1]]
    assert PathCache(moved, "request 1", tmp_path).recall() == []
    fewer = [nodes[0]]
    PathCache(fewer, "request 1", tmp_path).remember(["a", "b"])
    assert PathCache(fewer, "request 1", tmp_path).recall() == ["a"]   # only its nodes
    mode = os.stat(tmp_path / path_cache.FILE_NAME).st_mode
    assert stat.S_IMODE(mode) == 0o600
    text = (tmp_path / path_cache.FILE_NAME).read_text()
    assert "192.0.2.1" not in text and "request 1" not in text       # digests only


def test_the_oldest_paths_go(tmp_path, monkeypatch):
    monkeypatch.setattr(path_cache, "MAX_PATHS", 3)
    nodes = [NodeSpec(name="a")]
    for n in range(5):
        PathCache(nodes, f"request {n}", tmp_path).remember(["a"])
    PathCache(nodes, "request 2", tmp_path).remember(["a"])      # used again: newest
    PathCache(nodes, "request 5", tmp_path).remember(["a"])
    kept = [n for n in range(6) if PathCache(nodes, f"request {n}", tmp_path).recall()]
    assert kept == [2, 4, 5]


@pytest.mark.parametrize("content", [b"not json", b'{"format": 2, "paths": {}}',
                                     b'{"format": 1, "paths": []}', b"[1, 2]"])
def test_a_file_that_cannot_be_read_recalls_nothing(tmp_path, content):
    nodes = [NodeSpec(name="a")]
    PathCache(nodes, "r", tmp_path).remember(["a"])
    (tmp_path / path_cache.FILE_NAME).write_bytes(content)
    assert PathCache(nodes, "r", tmp_path).recall() == []
    PathCache(nodes, "r", tmp_path).remember(["a"])          # and it is written again
    assert PathCache(nodes, "r", tmp_path).recall() == ["a"]


def test_a_symlink_is_not_read(tmp_path):
    nodes = [NodeSpec(name="a")]
    elsewhere = tmp_path / "elsewhere.json"
    cache = tmp_path / "cache"
    PathCache(nodes, "r", cache).remember(["a"])
    (cache / path_cache.FILE_NAME).rename(elsewhere)
    (cache / path_cache.FILE_NAME).symlink_to(elsewhere)
    assert PathCache(nodes, "r", cache).recall() == []
    assert json.loads(elsewhere.read_text())["paths"]          # the control: it holds one


def test_no_cache_keeps_no_path(tmp_path, monkeypatch):
    monkeypatch.setenv("OFRACE_CACHE_DIR", str(tmp_path))
    nodes = [NodeSpec(name="a")]
    assert PathCache.for_request(nodes, "r") is not None
    assert PathCache.for_request(nodes, None) is None
    monkeypatch.setenv("OFRACE_NO_CACHE", "1")
    assert PathCache.for_request(nodes, "r") is None


def _wait_for_logical() -> None:
    import threading

    for thread in threading.enumerate():
        if thread.name == "read logical flows of the last path":
            thread.join(30)


@pytest.mark.parametrize("topology", ["kind", "openstack"])
def test_the_logical_flows_the_last_trace_read_are_read_before_it_asks(topology, tmp_path):
    whole, request, needed = _crossing(topology)
    first, _, first_sb = on_demand(topology)
    _trace(first, request)
    datapaths, cookies = first_sb.fetched()
    assert datapaths and cookies
    nodes = [NodeSpec(name=n) for n in whole.chassis]
    PathCache(nodes, repr(request), tmp_path).remember(needed, datapaths, cookies)
    assert PathCache(nodes, repr(request), tmp_path).recall_logical() == (datapaths, cookies)
    live, _, sb = on_demand(topology)
    sb.prefetch(*PathCache(nodes, repr(request), tmp_path).recall_logical())
    _wait_for_logical()
    before = sb.queries
    assert before == 2                       # the datapaths' UUIDs, then the rows
    assert _trace(live, request) == _trace(whole, request)
    assert sb.queries == before, "the trace needed no more logical flows"
    # the control: without the prefetch, the same trace reads them itself
    cold, _, cold_sb = on_demand(topology)
    _trace(cold, request)
    assert cold_sb.queries >= 2


def test_a_prefetch_of_datapaths_the_sb_does_not_have_reads_nothing():
    live, _, sb = on_demand("kind")
    sb.prefetch(["00000000-0000-0000-0000-000000000000"], [1, 2])
    _wait_for_logical()
    assert sb.queries == 0


def test_kept_logical_flows_are_checked(tmp_path):
    nodes = [NodeSpec(name="a")]
    cache = PathCache(nodes, "r", tmp_path)
    cache.remember(["a"], ["dp-1", 7], [5, -1, 1 << 32, "x", True, 6])   # type: ignore
    assert cache.recall_logical() == (["dp-1"], [5, 6])
    cache.remember(["a"], ["dp-1"], list(range(3 * path_cache.MAX_KEPT)))
    assert cache.recall_logical()[1] == list(range(path_cache.MAX_KEPT))   # the rest: read


def test_a_read_ahead_that_never_ends_does_not_hold_the_answer(tmp_path):
    """A node read ahead that hangs (down since the last trace) is left behind when the
    command ends, not waited for until its deadline; the control: a read the command
    asked for is waited for."""
    import subprocess
    import sys
    import time

    script = (
        "import sys, time\n"
        "from ofrace.collect.inventory import NodeSpec\n"
        "from ofrace.collect.on_demand import NodesOnDemand\n"
        "nodes = NodesOnDemand([NodeSpec(name='a'), NodeSpec(name='b')],\n"
        "                      lambda spec: time.sleep(60 if spec.name == 'a' else 2))\n"
        "nodes.read_ahead(['a', 'b'])\n"
        "if sys.argv[1] == 'ask': nodes['b']\n"
        "print(nodes.read_for_nothing())\n")
    for ask, at_least, at_most in (("no", 0, 20), ("ask", 2, 20)):
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-c", script, ask], capture_output=True,
                              text=True, timeout=50)
        took = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        assert at_least <= took < at_most, (ask, took)
        assert done.stderr == ""
    assert done.stdout.strip() == "['a']"
