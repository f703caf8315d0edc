"""A live trace takes the text of unchanged flow tables from its cache (issue 17): the
node sends each table's digest and the flows' counters instead of printing every flow;
the answer is the one a whole read gives, the counters are the node's now, and a table
that changed is read again."""

from __future__ import annotations

import threading
import time

import pytest

from ofrace.annotate.session import TraceRequest, run_trace
from ofrace.collect import cluster
from ofrace.collect.flow_cache import FlowCache
from ofrace.collect.inventory import load_inventory
from ofrace.lab.wire import datapath_packet
from ofrace.render.trace_json import trace_json, without_counters

COREDNS = "kube-system_coredns-64897985d-rzjfr"     # on ovn-control-plane
NGINX_IP = "10.244.1.3"                              # a pod on ovn-worker
CROSSED = {"ovn-control-plane", "ovn-worker"}
# an ACL that matches nothing the trace sends, on the switch the trace starts in
ACL = ("to-lport", "1001", "ip4.src == 192.0.2.99", "drop")


@pytest.fixture
def cached(kind_lab, tmp_path, monkeypatch):
    monkeypatch.setenv("OFRACE_CACHE_DIR", str(tmp_path / "cache"))
    used: list[tuple[str, str]] = []
    real = FlowCache.settle

    def settle(self, doc):
        found = real(self, doc)
        used.extend((self.node, bridge) for bridge in self.used)
        self.used.clear()
        return found

    monkeypatch.setattr(FlowCache, "settle", settle)
    return used


def _trace(lab) -> tuple[dict, object]:
    """A live trace (a new read of the cluster), as JSON, and its snapshot; waits for the
    flow text it read whole to be kept (the process would, at exit)."""
    snapshot = cluster.collect_on_demand(load_inventory(lab.dir / "inventory.toml"))
    result = run_trace(snapshot, TraceRequest(source=COREDNS, destination=f"{NGINX_IP}:80"))
    for thread in threading.enumerate():
        if thread.name.startswith("keep flows of"):
            thread.join()
    return trace_json(result.annotated, result.request), snapshot


def _entry_counters(doc: dict) -> dict:
    return next(e["counters"] for e in doc["trace"]["events"]
                if e["kind"] == "flow" and e["table"] == 0)


def test_unchanged_tables_come_from_the_cache_with_the_counters_of_now(kind_lab, cached):
    first, snapshot = _trace(kind_lab)
    assert not cached, "nothing is kept before the first read"
    assert set(snapshot.chassis.order) == CROSSED
    second, again = _trace(kind_lab)
    assert {node for node, bridge in cached if bridge == "br-int"} == CROSSED
    assert without_counters(second) == without_counters(first)
    # a packet through the entry flow: the cached trace shows the node's counters of now,
    # not those of the text it kept (the control: the kept line still says the old count)
    iface = next(i.name for i in again.chassis["ovn-control-plane"].interfaces
                 if i.iface_id == COREDNS)
    before = _entry_counters(second)["n_packets"]
    kind_lab.inject("ovn-control-plane", iface, datapath_packet({
        "dl_src": 0x0A5800000001, "dl_dst": 0x0A5800000002, "dl_type": 0x0800,
        "nw_src": 0xC0000263, "nw_dst": 0xC0000264, "nw_proto": 17, "tp_src": 1,
        "tp_dst": 2}))
    deadline = time.monotonic() + 30     # the switch counts it once it has handled it
    while True:
        cached.clear()
        third, latest = _trace(kind_lab)
        if _entry_counters(third)["n_packets"] > before or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert {node for node, bridge in cached if bridge == "br-int"} == CROSSED
    assert _entry_counters(third)["n_packets"] == before + 1
    bridge = latest.chassis["ovn-control-plane"].bridges["br-int"]
    line = next(li for li in bridge.flows if li.endswith(
        third["trace"]["events"][0]["flow"].split(" actions=", 1)[1])
        and f"in_port={third['trace']['packet_in']['fields']['in_port']} " in li)
    assert f"n_packets={before}," in line, "the kept line is the old read's"


def test_a_table_that_changed_is_read_again(kind_lab, cached, monkeypatch):
    _trace(kind_lab)
    name = kind_lab.nbctl("lsp-get-ls", COREDNS).split("(", 1)[1].rstrip(")\n")
    kind_lab.nbctl("--wait=hv", "acl-add", name, *ACL)
    try:
        cached.clear()
        changed, _ = _trace(kind_lab)
        # the ACL's flows are on the chassis of the port's switch: its br-int is read whole
        assert ("ovn-control-plane", "br-int") not in cached
        monkeypatch.setenv("OFRACE_NO_CACHE", "1")
        whole, _ = _trace(kind_lab)
        assert without_counters(changed) == without_counters(whole)
        monkeypatch.delenv("OFRACE_NO_CACHE")
        cached.clear()
        again, _ = _trace(kind_lab)
        assert {node for node, bridge in cached if bridge == "br-int"} == CROSSED, \
            "and kept again"
        assert without_counters(again) == without_counters(whole)
    finally:
        kind_lab.nbctl("--wait=hv", "acl-del", name, *ACL[:3])
