"""A live trace reads what the packet crosses (issue 17), and answers as if it had read
everything.

Recorded snapshots stand in for the cluster: ``NodesOnDemand`` reads a node by taking
its chassis from the snapshot (counted), and ``SouthboundOnDemand`` selects Logical_Flow
rows by datapath from the snapshot's rows as ovsdb-server's ``select`` does.  Every
request of tests/test_cold_path.py must give the same JSON as the whole snapshot, while
reading fewer chassis and fewer logical flows.  Negative controls: without the
datapath read the flows are unnamed, and a node whose system-id no hint names is still
found by reading every node.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
from test_cold_path import _eager, _requests, _trace

from ofrace.collect.inventory import NodeSpec
from ofrace.collect.on_demand import NodesOnDemand
from ofrace.collect.southbound_on_demand import SouthboundOnDemand

TOPOLOGIES = ["kind", "acl", "basic", "openstack"]


def _select(rows: list[dict], clause: list) -> list[dict]:
    """What ``select`` with one ``[column, "==", ["uuid", U]]`` clause returns."""
    column, _, (_, uuid) = clause
    return [r for r in rows if r.get(column) in (uuid, [uuid])]


def on_demand(topology: str, hints: bool = True):
    """The topology's snapshot as a live read gives it: nodes and logical flows counted
    as they are read."""
    whole = _eager(topology)
    reads: list[str] = []
    lflows = whole.southbound.tables["Logical_Flow"]

    def read_node(spec: NodeSpec):
        reads.append(spec.name)
        return whole.chassis[spec.name]

    def read_where(table, clauses, columns):
        found = []
        for clause in clauses:
            found += [r for r in _select(lflows, clause) if r not in found]
        if columns is not None:
            found = [{c: r[c] for c in columns} for r in found]
        return copy.deepcopy(found)

    nodes = NodesOnDemand([NodeSpec(name=n) for n in whole.chassis], read_node)
    sb = whole.southbound
    if hints:
        nodes.hint_from_southbound(sb.tables.get("Chassis", []), sb.tables.get("Encap", []))
    tables = {t: rows for t, rows in sb.tables.items() if t != "Logical_Flow"}
    live_sb = SouthboundOnDemand(tables, read_where, lambda: copy.deepcopy(lflows),
                                 lambda rows: None)
    live = replace(whole, chassis=nodes, southbound=replace(sb, tables=live_sb))
    return live, reads, live_sb


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_a_live_trace_reads_what_it_crosses_and_answers_the_same(topology):
    whole = _eager(topology)
    requests = _requests(whole)
    assert requests
    fewer = []
    for request in requests:
        live, reads, sb = on_demand(topology)
        assert _trace(live, request) == _trace(whole, request), (
            f"{topology}: {request.source} -> {request.destination} {request.protocol}")
        assert len(reads) == len(set(reads)), "a node is read once"
        assert sb._whole is None, "the whole Logical_Flow table was read"
        fewer.append(len(sb._rows) < len(whole.southbound.tables["Logical_Flow"]))
    if len(whole.southbound.tables["Datapath_Binding"]) > 2:
        assert any(fewer), "every trace read every logical flow"
    if len(whole.chassis) > 2:
        assert any(len(on_demand_reads(topology, r)) < len(whole.chassis)
                   for r in requests), "every trace read every chassis"


def on_demand_reads(topology, request):
    live, reads, _ = on_demand(topology)
    _trace(live, request)
    return reads


def test_without_the_datapath_read_the_flows_are_unnamed():
    """The control: the equality above needs the rows the datapath read brings."""
    whole = _eager("kind")
    request = _requests(whole)[0]
    live, _, sb = on_demand("kind")
    sb.fetch_datapaths = lambda datapaths, cookies: None
    assert _trace(live, request) != _trace(whole, request)


def test_a_node_no_hint_names_is_found_by_reading_every_node():
    whole = _eager("kind")
    some = next(iter(whole.chassis.values()))
    live, reads, _ = on_demand("kind", hints=False)
    assert live.find_chassis(some.system_id) is whole.chassis[some.name]
    assert sorted(reads) == sorted(whole.chassis)      # no hint: all were read
    live, reads, _ = on_demand("kind")
    assert live.find_chassis(some.system_id) is whole.chassis[some.name]
    assert reads == [some.name]                        # the SB's hint: just that one


def test_asking_for_every_chassis_reads_every_node_once():
    whole = _eager("kind")
    live, reads, _ = on_demand("kind")
    assert list(live.chassis) == sorted(whole.chassis) and not reads
    assert "nope" not in live.chassis and not reads
    assert [c.name for c in live.chassis.values()] == sorted(whole.chassis)
    live.chassis.values()
    assert sorted(reads) == sorted(whole.chassis)


def test_the_entry_port_is_read_from_the_request_as_typed():
    from ofrace.annotate.session import TraceRequest

    assert TraceRequest(source="vm1", destination="10.0.0.1").entry_port == "vm1"
    typed = 'inport == "ns/pod-1" && ip4.dst == 10.0.0.1'
    assert TraceRequest(expression=typed).entry_port == "ns/pod-1"
    assert TraceRequest(expression='outport == "x" && ip4').entry_port is None
