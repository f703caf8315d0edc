"""The audit's fast paths give what its general paths give, on every fixture topology:
flow heads read by one match of the dump-flows shape (else ``_read_head``), and stale
flows found from each table's set of cookies, a keyed table's read from its store's
index (else every flow's owners read row by row, ``SouthboundIndex.cookie``)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from ofrace.audit import logical
from ofrace.audit.cluster import audit_snapshot
from ofrace.openflow import flowtext
from ofrace.openflow.bridge import classifier_index
from ofrace.openflow.stored import stored_heads
from ofrace.ovn.southbound import SouthboundIndex
from ofrace.render.audit import audit_json
from ofrace.snapshot import Snapshot

FIXTURES = Path(__file__).parent / "fixtures"
TOPOLOGIES = sorted(p.parent.name for p in FIXTURES.glob("*/snapshot.ofr"))


def _audit_doc(snapshot: Snapshot):
    """The audit, and everything it found, every lflow's status included."""
    audit = audit_snapshot(snapshot)
    doc = audit_json(audit, details=True)
    doc["lflows"] = {c.chassis: [vars(s) for s in c.logical.lflows] if c.logical else None
                     for c in audit.chassis}
    return audit, doc


def _audit_text(snapshot: Snapshot) -> str:
    return json.dumps(_audit_doc(snapshot)[1], sort_keys=True)


def _general_paths(monkeypatch) -> None:
    """The audit as it was before its fast paths: every head by ``read_head``, every
    flow's owners by ``SouthboundIndex.cookie``."""
    monkeypatch.setattr(logical, "DUMP_HEAD", re.compile(r"(?!)"))
    monkeypatch.setattr(flowtext, "DUMP_HEAD", re.compile(r"(?!)"))
    monkeypatch.setattr(logical, "DUMP_HEAD_BYTES", re.compile(rb"(?!)"))
    monkeypatch.setattr(logical, "stored_heads", lambda data, lines: None)
    monkeypatch.setattr(SouthboundIndex, "cookie_sets",
                        property(lambda self: {"Logical_Flow": set()}))
    monkeypatch.setattr(SouthboundIndex, "cookie_tables",
                        lambda self, cookie: [o.table for o in self.cookie(cookie).owners])


def _both_ways(path: Path, monkeypatch, change=None) -> tuple[str, str]:
    def load():
        snapshot = Snapshot.load(path)
        if change is not None:
            change(snapshot)
        return snapshot
    fast = _audit_text(load())
    with monkeypatch.context() as patched:
        _general_paths(patched)
        general = _audit_text(load())
    return fast, general


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_fast_and_general_paths_agree_on_the_fixture(topology, monkeypatch, tmp_path):
    path = FIXTURES / topology / "snapshot.ofr"
    fast, general = _both_ways(path, monkeypatch)
    assert fast == general
    # the same file written as version 3: the keyed tables' cookies read from their index
    Snapshot.load(path).save(tmp_path / "v3.ofr")
    again = Snapshot.load(tmp_path / "v3.ofr")
    zone = next(iter(again.zones), None)
    assert SouthboundIndex(again, zone)._keyed
    fast3, general3 = _both_ways(tmp_path / "v3.ofr", monkeypatch)
    assert fast3 == general3 == fast
    # saved with the classifier's index: every line's cookie and table read from it
    Snapshot.load(path).save(tmp_path / "indexed.ofr", flow_index=classifier_index)
    indexed = Snapshot.load(tmp_path / "indexed.ofr")
    assert any(stored_heads(b.flow_index(), b.flow_count) is not None
               for c in indexed.chassis.values() for b in c.bridges.values())
    fast4, general4 = _both_ways(tmp_path / "indexed.ofr", monkeypatch)
    assert fast4 == general4 == fast


def _stray_flows(snapshot: Snapshot) -> None:
    """One flow whose cookie no row has, one of a Port_Binding's in a pipeline table, one
    with a cookie mask and one with no duration: each path has something to find."""
    name = next(n for n, c in snapshot.chassis.items() if c.integration_bridge in c.bridges)
    chassis = snapshot.chassis[name]
    bridge = chassis.bridges[chassis.integration_bridge]
    pb = snapshot.southbound.tables["Port_Binding"][0]["_uuid"][:8]
    strays = ["cookie=0xdeadbeef, duration=1.0s, table=12, n_packets=0, n_bytes=0, "
              "priority=999,ip,metadata=0x1 actions=drop",
              f"cookie=0x{pb}, duration=1.0s, table=12, n_packets=0, n_bytes=0, "
              "priority=998,ip,metadata=0x1 actions=drop",
              "cookie=0xdeadbeee/0xffffffff, table=13, priority=5,ip actions=drop",
              "cookie=0xdeadbeed, table=14, priority=5,ip actions=drop"]
    chassis.bridges[chassis.integration_bridge] = replace(bridge, flows=list(bridge.flows)
                                                          + strays)


def test_both_paths_find_the_same_stray_flows(monkeypatch):
    path = FIXTURES / "kind" / "snapshot.ofr"
    fast, general = _both_ways(path, monkeypatch, _stray_flows)
    assert fast == general
    stale = [(s["cookie"], s["why"].split(",")[0]) for c in json.loads(fast)["chassis"].values()
             for s in c.get("stale", [])]
    pb = Snapshot.load(path).southbound.tables["Port_Binding"][0]["_uuid"][:8]
    assert stale == [("0xdeadbeef", "its cookie matches no Southbound row"),
                     (f"0x{pb.lstrip('0')}", "a logical pipeline table holds a flow whose "
                      "cookie is a Port_Binding row"),
                     ("0xdeadbeee", "its cookie matches no Southbound row"),
                     ("0xdeadbeed", "its cookie matches no Southbound row")]
    # negative control: the comparison sees a difference when there is one
    assert fast != _both_ways(path, monkeypatch)[0]
