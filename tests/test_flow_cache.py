"""The kept flow text of a node (``ofrace.collect.flow_cache``): used only for the same
node, digests and line count; a file that is not the user's own is never read; the
oldest go past ``MAX_FILES``; an agent answer of "unchanged" without a fitting file asks
for a whole read."""

from __future__ import annotations

import base64
import os
import threading
import zlib

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
    assert found == {"br-int": (None, [(0, 1), (8, 1)])}
    assert "flow_tables" not in doc["bridges"]["br-int"]
    again = {"bridges": {"br-int": {"flows": [], "errors": {}, "flows_unchanged": True,
                                    "flow_tables": {"digests": DIGESTS, "sizes": [[0, 1], [8, 1]],
                                                    "counters": _counters([(2, 0, 9, 900),
                                                                           (0, 0, 0, 0)])}}}}
    found = cache.settle(again)
    assert again["bridges"]["br-int"]["flows"] == LINES
    fresh, layout = found["br-int"]
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
