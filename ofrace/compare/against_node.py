"""``ofrace compare``'s one entry point: ofrace against ofproto/trace on the nodes.

Given where the snapshot comes from, it does the live part itself: the inventory
names the nodes and how to reach them (ofproto/trace runs there, so an inventory
is needed even with ``--snapshot``), the snapshot is the file or those nodes
read now, and the transports are made and closed here.
"""

from __future__ import annotations

from ofrace.collect.cluster import make_transport
from ofrace.collect.source import SnapshotSource, obtain_nodes
from ofrace.compare.agreement import (
    AgreementReport,
    compare_on_node,
    reread_node,
    run_agreement,
)
from ofrace.compare.live import LiveComparison
from ofrace.compare.packets import TestPacket
from ofrace.errors import Exit, InputError, MissingDataError, ToolError
from ofrace.openflow.flowtext import FlowSyntaxError, parse_packet
from ofrace.trace.choices import parse_ct_next

NEEDS_INVENTORY = "compare runs ofproto/trace on the node: give --inventory FILE or --lab"


def compare_flow(source: SnapshotSource, node: str | None, bridge: str, flow: str | None,
                 ct_next: list[str]) -> LiveComparison:
    """Trace ``flow`` (an OVS flow string, as ofproto/trace takes it) on ``node``,
    both ways; the first place where they part is in the result."""
    inventory = source.inventory(NEEDS_INVENTORY)
    parse_ct_next(ct_next)
    if not flow or not node:
        raise InputError("give --node NAME and a FLOW (or --all)")
    spec = inventory.node(node)
    try:
        packet = parse_packet(flow)
    except FlowSyntaxError as exc:
        raise InputError(f"cannot read flow {flow!r}: {exc}") from None
    if "in_port" not in packet:
        raise InputError("the flow needs an in_port (the port the packet enters on)")
    snapshot = obtain_nodes(source, inventory, [node], with_databases=False)
    chassis = snapshot.chassis.get(node)
    if chassis is None:
        raise InputError(f"the snapshot has no node {node!r}")
    if bridge not in chassis.bridges:
        raise InputError(f"{node} has no collected bridge {bridge!r} "
                         f"(bridges: {', '.join(chassis.bridges)})")
    report = AgreementReport(total=1, keep_results=True)
    transport = make_transport(spec)
    try:
        compare_on_node(report, spec, chassis, transport,
                        [(TestPacket(bridge, packet, flow), tuple(ct_next))],
                        reread=None if source.snapshot_file else reread_node)
    finally:
        transport.close()
    if report.refused:
        raise ToolError(report.refused[0].split(" ", 1)[-1].removeprefix(flow + ": "))
    if report.state_changed:
        raise MissingDataError("state changed during the comparison: the node's flows, "
                               "groups, ports or MAC tables changed while it was traced, "
                               "twice (" + "; ".join(report.changes) + ")")
    return report.results[0]


def compare_all(source: SnapshotSource, ct_next: list[str],
                limit: int | None = None) -> AgreementReport:
    """Generated packets on every VIF, tunnel and uplink of every node of the inventory."""
    inventory = source.inventory(NEEDS_INVENTORY)
    parse_ct_next(ct_next)
    snapshot = obtain_nodes(source, inventory, [n.name for n in inventory.nodes],
                            with_databases=True)
    return run_agreement(snapshot, inventory, limit=limit,
                         reread=None if source.snapshot_file else reread_node)


def exit_code(outcome: LiveComparison | AgreementReport) -> Exit:
    """0 when ofrace and ofproto/trace agree on everything compared; 1 when they part
    (or ofproto/trace refused a generated packet)."""
    if isinstance(outcome, AgreementReport):
        if outcome.disagreements or outcome.refused:
            return Exit.FOUND
        return Exit.UNKNOWN if outcome.state_changed else Exit.OK
    return Exit.OK if outcome.comparison.agree else Exit.FOUND
