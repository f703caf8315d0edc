"""A big table is indexed only for the metadata a packet carries (``BridgeIndex``'s
slices), and a node's own count of each table's flows replaces reading every line's
table: both must answer exactly as the whole table does."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import recorded
from test_engine_agreement import TOPOLOGIES, _replay

from ofrace.openflow import bridge as bridge_module
from ofrace.openflow.bridge import BridgeIndex, _split_by_metadata
from ofrace.snapshot import Bridge


def _from_lines(chassis):
    """The chassis' bridges indexed from their lines (no stored index to answer)."""
    return {n: BridgeIndex(replace(b, flows=list(b.flows)), chassis.interfaces, chassis.name)
            for n, b in chassis.bridges.items()}


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_sliced_tables_agree_with_ofproto_trace(topology, monkeypatch):
    """Every table cut by metadata, however small: the recorded ofproto/trace outputs of
    the real lab still agree step by step."""
    monkeypatch.setattr(bridge_module, "SLICE_FROM", 1)
    snapshot, traces = recorded(topology)
    indexes, failures = {}, []
    for trace in traces:
        chassis = snapshot.chassis[trace["chassis"]]
        if chassis.name not in indexes:
            indexes[chassis.name] = _from_lines(chassis)
        result = _replay(snapshot, trace, indexes[chassis.name])
        if not result.agree:
            failures.append(f"{trace['chassis']} {trace['label']}: {result.divergence}")
    assert not failures, "\n".join(failures[:5])
    sliced = sum(len(ix._sliced) for by_bridge in indexes.values() for ix in by_bridge.values())
    whole = sum(len(ix.tables) for by_bridge in indexes.values() for ix in by_bridge.values())
    assert sliced > whole, "the slices answered (not the whole tables)"


def test_the_split_reads_the_match_only():
    lines = [
        "cookie=0x1, table=9, priority=10,metadata=0x5,reg14=0x1 actions=drop",
        "cookie=0x2, table=9, priority=10,reg14=0x1,metadata=0x6 actions=drop",
        "cookie=0x3, table=9, priority=5,tun_metadata0=0x5 actions=drop",        # not metadata
        "cookie=0x4, table=9, priority=5,metadata=0x5/0xff actions=drop",       # masked
        "cookie=0x5, table=9, priority=5 actions=learn(table=10,metadata=0x5)",  # in actions
        "cookie=0x6, table=9, priority=5,metadata=0x5",                          # no actions
        "cookie=0x7, table=9, priority=5,metadata=5 actions=drop",               # decimal
        "cookie=0x8, table=9, priority=5,metadata=0xzz actions=drop",            # garbled
    ]
    by_value, rest = _split_by_metadata(lines, range(len(lines)))
    assert by_value == {5: [0, 5, 6], 6: [1]}
    assert rest == [2, 3, 4, 7]


def test_a_mostly_unsplit_table_is_built_whole():
    lines = [f"cookie=0x1, table=9, priority={p},reg14=0x{p:x} actions=drop" for p in range(9)]
    lines.append("cookie=0x1, table=9, priority=1,metadata=0x1 actions=drop")
    assert _split_by_metadata(lines, range(len(lines))) is False


def _bridge(lines, layout=None):
    bridge = Bridge(name="br-int", flows=lines)
    if layout is not None:
        bridge.read_with(None, layout)
    return BridgeIndex(bridge)


def test_the_nodes_table_counts_replace_the_sort_when_they_fit():
    lines = (["cookie=0x1, table=0, priority=1 actions=resubmit(,8)"]
             + [f"cookie=0x2, table=8, priority={p},metadata=0x1 actions=drop" for p in range(3)]
             + ["cookie=0x3, table=65, priority=1 actions=drop"])
    sorted_ = _bridge(lines)
    laid = _bridge(lines, [(0, 1), (8, 3), (65, 1)])
    assert {t: list(v) for t, v in laid._pending.items()} == \
        {t: list(v) for t, v in sorted_._pending.items()}
    assert all(isinstance(v, range) for v in laid._pending.values())
    for wrong in ([(0, 1), (8, 2), (65, 2)],      # a boundary off by one
                  [(0, 1), (8, 3)],               # lines left over
                  [(0, 1), (8, 3), (65, 1), (66, 1)],
                  [(0, 1), (8, 3), (0, 1)]):
        fallback = _bridge(lines, wrong)
        assert not any(isinstance(v, range) for v in fallback._pending.values()), wrong
        assert {t: list(v) for t, v in fallback._pending.items()} == \
            {t: list(v) for t, v in sorted_._pending.items()}
