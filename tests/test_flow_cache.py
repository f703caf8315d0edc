"""The kept flow text of a node (``ofrace.collect.flow_cache``): used only for the same
node, digests and line count; a file that is not the user's own is never read; the
oldest go past ``MAX_FILES``; an agent answer of "unchanged" without a fitting file asks
for a whole read."""

from __future__ import annotations

import base64
import os
import sys
import threading
import zlib

import pytest

from ofrace.agents import ofrace_agent
from ofrace.collect import flow_cache
from ofrace.collect.flow_cache import FlowCache

LINES = ["cookie=0x1, duration=1.0s, table=0, n_packets=3, n_bytes=180, priority=1 "
         "actions=resubmit(,8)", "cookie=0x2, duration=1.0s, table=8, n_packets=0, "
         "n_bytes=0, priority=1,metadata=0x1 actions=drop"]
DIGESTS = {"0": "a" * 40, "8": "b" * 40}


def _cache(tmp_path, node="hv1"):
    return FlowCache(node, "ssh root@192.0.2.1", tmp_path / "cache")


def test_kept_text_comes_back_only_for_the_same_digests_and_count(tmp_path):
    cache = _cache(tmp_path)
    assert cache.known() == {}
    assert cache.keep("br-int", DIGESTS, LINES)
    assert cache.known() == {"br-int": DIGESTS}
    assert cache.lines("br-int", DIGESTS) == LINES
    assert cache.lines("br-int", {**DIGESTS, "8": "c" * 40}) is None
    assert cache.lines("br-ex", DIGESTS) is None
    assert _cache(tmp_path, "hv2").known() == {}, "another node's text is not this one's"
    mode = os.stat(next((tmp_path / "cache").glob("flows-*"))).st_mode & 0o777
    assert mode == 0o600


def test_digests_no_switch_would_send_are_not_kept(tmp_path):
    """They would go back to the node on its command line: a hostile node's thousands of
    "tables" are not kept, nor sent back."""
    cache = _cache(tmp_path)
    many = {str(n): "a" * 40 for n in range(5000)}
    doc = {"bridges": {"br-int": {"flows": LINES, "errors": {},
                                  "flow_tables": {"digests": many}}}}
    cache.settle(doc)
    _join_keepers()
    assert cache.known() == {}
    cache.keep("br-int", {"0": "x" * 100_000}, LINES)     # even when kept by hand
    assert cache.known() == {}


def test_a_file_that_is_not_ours_is_not_read(tmp_path):
    cache = _cache(tmp_path)
    cache.keep("br-int", DIGESTS, LINES)
    kept = next((tmp_path / "cache").glob("flows-*"))
    elsewhere = tmp_path / "elsewhere"
    kept.rename(elsewhere)
    kept.symlink_to(elsewhere)
    assert cache.known() == {}
    assert cache.lines("br-int", DIGESTS) is None
    kept.unlink()
    kept.write_bytes(b"not a header\n" + zlib.compress(b"x"))
    assert cache.lines("br-int", DIGESTS) is None


def test_the_least_recently_used_files_go(tmp_path, monkeypatch):
    monkeypatch.setattr(flow_cache, "MAX_FILES", 3)
    for n in range(5):
        cache = _cache(tmp_path, f"hv{n}")
        cache.keep("br-int", DIGESTS, LINES)
        os.utime(cache._path("br-int"), (1000 + n, 1000 + n))   # an order not left to the clock
    left = sorted(n for n in range(5) if _cache(tmp_path, f"hv{n}").known())
    assert left == [2, 3, 4]


def _counters(rows):
    raw = b"".join(ofrace_agent.COUNTERS.pack(*row) for row in rows)
    return {"count": len(rows), "data": base64.b64encode(zlib.compress(raw)).decode()}


def _join_keepers():
    for thread in threading.enumerate():
        if thread.name.startswith("keep flows of"):
            thread.join()


def test_settle_takes_kept_lines_and_keeps_new_ones(tmp_path):
    cache = _cache(tmp_path)
    doc = {"bridges": {"br-int": {"flows": LINES, "errors": {},
                                  "flow_tables": {"digests": DIGESTS,
                                                  "sizes": [[0, 1], [8, 1]]}}}}
    found = cache.settle(doc)
    _join_keepers()
    assert found == {"br-int": (None, [(0, 1), (8, 1)], None)}
    assert "flow_tables" not in doc["bridges"]["br-int"]
    again = {"bridges": {"br-int": {"flows": [], "errors": {}, "flows_unchanged": True,
                                    "flow_tables": {"digests": DIGESTS, "sizes": [[0, 1], [8, 1]],
                                                    "counters": _counters([(2, 0, 9, 900),
                                                                           (0, 0, 0, 0)])}}}}
    found = cache.settle(again)
    assert again["bridges"]["br-int"]["flows"] == LINES
    fresh, layout, _ = found["br-int"]
    assert fresh[0] == {"n_packets": 9, "n_bytes": 900, "duration": 2.0}
    assert layout == [(0, 1), (8, 1)]
    # "unchanged", but the counters say three flows: the kept text is not theirs
    wrong = {"bridges": {"br-int": {"flows": [], "errors": {}, "flows_unchanged": True,
                                    "flow_tables": {"digests": DIGESTS,
                                                    "counters": _counters([(0, 0, 0, 0)] * 3)}}}}
    assert cache.settle(wrong) is None
    # a node's counters that would inflate past the kept lines' worth are not inflated
    bomb = {"count": 2, "data": base64.b64encode(zlib.compress(bytes(1 << 24))).decode()}
    assert flow_cache.counters(bomb, 2) is None
    corrupt = {"bridges": {"br-int": {"flows": [], "errors": {}, "flows_unchanged": True,
                                      "flow_tables": {"digests": DIGESTS,
                                                      "counters": {"count": 2, "data": "!!"}}}}}
    assert cache.settle(corrupt) is None


def test_a_node_that_says_unchanged_to_text_no_longer_kept_is_read_whole(tmp_path,
                                                                          monkeypatch):
    from ofrace.collect import cluster
    from ofrace.collect.inventory import NodeSpec

    cache = _cache(tmp_path)
    cache.keep("br-int", DIGESTS, LINES)
    asked = []

    def doc(flows, tables, unchanged=False):
        bridge = {"name": "br-int", "flows": flows, "groups": [], "meters": [],
                  "tlv_map": "", "ports_desc": "", "fdb": "", "errors": {},
                  "flow_tables": tables}
        if unchanged:
            bridge["flows_unchanged"] = True
        return {"agent_version": ofrace_agent.AGENT_VERSION, "mode": "agent", "errors": [],
                "hostname": "hv1", "integration_bridge": "br-int", "dpif": "",
                "bridges": {"br-int": bridge}, "ovsdb": {}}

    def run_agent(transport, options=None, budget=None):
        asked.append(options)
        if len(asked) == 1:     # "unchanged", but three flows: not the kept text
            return doc([], {"digests": DIGESTS,
                            "counters": _counters([(0, 0, 0, 0)] * 3)}, unchanged=True)
        return doc(LINES, {"digests": DIGESTS, "sizes": [[0, 1], [8, 1]]})

    class Transport:
        def describe(self):
            return "ssh root@192.0.2.1"

    monkeypatch.setattr(cluster, "run_agent", run_agent)
    chassis = cluster.collect_node(NodeSpec(name="hv1"), Transport(), flow_cache=cache)
    _join_keepers()
    assert asked == [{"flow_digests": {"br-int": DIGESTS}}, {"flow_digests": {}}]
    assert chassis.reachable and chassis.bridges["br-int"].flows == LINES
    assert chassis.bridges["br-int"].fresh_counters() is None


def _unchanged(lines, digests):
    return {"bridges": {"br-int": {"flows": [], "errors": {}, "flows_unchanged": True,
                                   "flow_tables": {"digests": digests,
                                                   "counters": _counters([(0, 0, 0, 0)]
                                                                         * len(lines))}}}}


def _keep_splits(cache):
    cache.keep_splits()
    for thread in threading.enumerate():
        if thread.name.startswith("keep splits of"):
            thread.join()


def test_the_tables_a_trace_cut_come_back_with_the_same_lines(tmp_path, monkeypatch):
    """A trace's tables cut by metadata are kept beside the text and given back for the
    same digests and lines, and an index then looks up without cutting them again; for
    other digests, another line count, or a file that does not fit the lines, nothing
    comes back."""
    from conftest import recorded

    from ofrace.openflow import bridge as openflow_bridge
    from ofrace.openflow.bridge import BridgeIndex
    from ofrace.snapshot import Bridge

    monkeypatch.setattr(openflow_bridge, "SLICE_FROM", 8)    # the recording's tables are small
    lines = recorded("kind")[0].chassis["ovn-worker"].bridges["br-int"].flows
    cache = _cache(tmp_path)
    cache.keep("br-int", DIGESTS, lines)

    def read():
        found = cache.settle(_unchanged(lines, DIGESTS))
        model = Bridge(name="br-int", flows=lines)
        model.read_with(*found["br-int"])
        cache.watch("br-int", model)
        return model, found["br-int"][2]

    model, splits = read()
    assert splits is None                                   # nothing cut yet
    first = BridgeIndex(model)
    packets = [{"metadata": m, "reg14": 1, "eth_type": 0x800} for m in (1, 2, 3, 5)]
    tables = sorted({int(line.split("table=")[1].split(",")[0]) for line in lines})
    def looked_up(index):
        return [(e.index if e is not None else None, conj)
                for e, conj in (index.lookup(t, p) for t in tables for p in packets)]
    hits = looked_up(first)
    assert any(index is not None for index, _ in hits)
    cut = dict(model.table_splits())
    assert len([s for s in cut.values() if s]) >= 3
    _keep_splits(cache)

    model, splits = read()
    assert {t: s if s is False else ({v: list(i) for v, i in s[0].items()}, list(s[1]))
            for t, s in splits.items()} == cut

    def refuse(*_):
        raise AssertionError("cut again")
    monkeypatch.setattr(openflow_bridge, "_split_by_metadata", refuse)
    again = BridgeIndex(model)
    assert looked_up(again) == hits
    # the control: an index of other lines (no splits kept for them) must cut
    with pytest.raises(AssertionError, match="cut again"):
        looked_up(BridgeIndex(Bridge(name="br-int", flows=list(lines))))

    assert cache._splits("br-int", {**DIGESTS, "8": "c" * 40}, len(lines)) is None
    assert cache._splits("br-int", DIGESTS, len(lines) - 1) is None
    kept = cache._path("br-int").with_suffix(flow_cache.SPLITS)
    head, body = kept.read_bytes().split(b"\n", 1)
    raw = bytearray(zlib.decompress(body))
    raw[:4] = (len(lines) + 7).to_bytes(4, "little" if sys.byteorder == "little" else "big")
    kept.write_bytes(head + b"\n" + zlib.compress(bytes(raw)))
    assert cache._splits("br-int", DIGESTS, len(lines)) is None     # a line not there
    kept.write_bytes(b"{}\n")
    assert cache._splits("br-int", DIGESTS, len(lines)) is None
