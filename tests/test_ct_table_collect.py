"""The node's connection table in the snapshot (issue 13 item 2): read-only, bounded,
and absent (not empty) where it was never read."""

from __future__ import annotations

import sys

from conftest import recorded

from ofrace.agents import ofrace_agent as agent
from ofrace.collect.cluster import chassis_from_agent


def test_the_read_is_the_read_only_dump():
    assert agent.CONNTRACK_READ == ["ovs-appctl", "dpctl/dump-conntrack", "-m"]


def test_a_dump_past_the_bound_is_cut_at_a_line_and_said(monkeypatch):
    line = "udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1,dport=2),reply=(x)\n"
    monkeypatch.setattr(agent, "MAX_CONNTRACK_BYTES", 10 * len(line) + 5)
    argv = [sys.executable, "-c", f"import sys; sys.stdout.write({line!r} * 100000)"]
    result = agent.run_bounded(argv, agent.MAX_CONNTRACK_BYTES)
    assert result["truncated"] and not result["error"]
    text, truncated, error = agent.conntrack_doc(result)
    assert truncated and error is None and text == line * 10
    # Negative control: a dump within the bound is whole.
    small = agent.run_bounded([sys.executable, "-c", f"print({line!r} * 3, end='')"], 10**6)
    assert agent.conntrack_doc(small) == (line * 3, False, None)


def test_a_failed_read_is_not_an_empty_table():
    doc = agent.collect_node(lambda argv: {"argv": argv, "rc": 1, "stdout": "", "started": 0,
                                           "elapsed": 0, "error": "no such command"})
    assert doc["conntrack"] is None
    assert {"what": "conntrack", "error": "no such command"} in doc["errors"]
    chassis = chassis_from_agent("hv1", "local", doc)
    assert chassis.conntrack is None


def test_an_older_snapshot_loads_with_the_table_unknown():
    snapshot, _ = recorded("kind")
    assert all(c.conntrack is None for c in snapshot.chassis.values())


def test_the_table_survives_save_and_load(tmp_path):
    snapshot, _ = recorded("kind")
    chassis = next(iter(snapshot.chassis.values()))
    chassis.conntrack, chassis.conntrack_truncated = "tcp,orig=(…)\n", True
    snapshot.save(tmp_path / "s.ofr")
    again = type(snapshot).load(tmp_path / "s.ofr").chassis[chassis.name]
    assert (again.conntrack, again.conntrack_truncated) == ("tcp,orig=(…)\n", True)


def test_the_table_leaves_room_in_the_document():
    """It travels in the JSON document, whose size the collector bounds."""
    assert agent.MAX_CONNTRACK_BYTES * 3 // 2 < agent.MAX_DOCUMENT
