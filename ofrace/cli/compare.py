"""``ofrace compare``: ofrace's engine against ``ofproto/trace`` on the live node."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console

from ofrace.cli.collect import lab_inventory
from ofrace.collect.cluster import collect_cluster, make_transport
from ofrace.collect.inventory import Inventory, load_inventory
from ofrace.compare.agreement import run_agreement
from ofrace.compare.live import compare_with_ofproto_trace
from ofrace.errors import Exit, InputError
from ofrace.openflow.flowtext import FlowSyntaxError, parse_packet
from ofrace.render.escape import escape
from ofrace.simulate.conntrack import parse_ct_state
from ofrace.snapshot import Snapshot

EXIT_DIVERGE = Exit.FOUND


def _inventory(inventory_file: str | None, use_lab: bool) -> Inventory:
    if use_lab:
        return load_inventory(lab_inventory())
    if not inventory_file:
        raise InputError("compare runs ofproto/trace on the node: give --inventory FILE or --lab")
    return load_inventory(inventory_file)


def _snapshot(inventory: Inventory, snapshot_file: str | None, nodes: list[str],
              with_databases: bool) -> Snapshot:
    if snapshot_file:
        return Snapshot.load(snapshot_file)
    wanted = Inventory(nodes=[inventory.node(n) for n in nodes],
                       southbound=inventory.southbound if with_databases else None,
                       northbound=inventory.northbound if with_databases else None)
    snapshot = collect_cluster(wanted)
    for name in nodes:
        chassis = snapshot.chassis[name]
        if not chassis.reachable:
            raise InputError(f"cannot read {name}: {chassis.problems[0].error}")
    return snapshot


@click.command()
@click.argument("flow", required=False)
@click.option("-i", "--inventory", "inventory_file", type=click.Path(dir_okay=False),
              help="Inventory naming the node and how to reach it.")
@click.option("--lab", "use_lab", is_flag=True, help="Use the embedded lab's inventory.")
@click.option("--node", help="The node to compare on (a name from the inventory).")
@click.option("--bridge", default="br-int", show_default=True, help="Bridge the packet enters.")
@click.option("--ct-next", "ct_next", multiple=True, metavar="FLAGS",
              help="ct_state for the next recirculation, as ofproto/trace takes it (repeat).")
@click.option("--snapshot", "snapshot_file", type=click.Path(dir_okay=False),
              help="Simulate on this snapshot instead of reading the node now.")
@click.option("--all", "all_packets", is_flag=True,
              help="Compare generated packets on every node of the inventory.")
@click.option("--limit", type=int, help="With --all: stop after this many packets.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result.")
def compare(flow, inventory_file, use_lab, node, bridge, ct_next, snapshot_file, all_packets,
            limit, as_json):
    """Trace FLOW (an OVS flow string, as ofproto/trace takes it) with ofrace and with
    ofproto/trace on the node, and show the first place where they part.

    Exits 0 when they agree, 1 when they diverge, 2 on bad input.
    """
    inventory = _inventory(inventory_file, use_lab)
    for state in ct_next:
        try:
            parse_ct_state(state)
        except ValueError as exc:
            raise InputError(f"--ct-next {state!r}: {exc}") from None
    console = Console(stderr=False, width=None if sys.stdout.isatty() else 120)
    if all_packets:
        snapshot = _snapshot(inventory, snapshot_file, [n.name for n in inventory.nodes], True)
        report = run_agreement(snapshot, inventory, limit=limit)
        if as_json:
            click.echo(json.dumps({
                "total": report.total, "agreed": report.agreed, "seconds": report.seconds,
                "notes": report.notes, "refused": report.refused,
                "disagreements": [{"chassis": d.chassis, "packet": d.label,
                                   "ct_next": list(d.ct_next), "flow": d.result.flow,
                                   "divergence": str(d.result.comparison.divergence)}
                                  for d in report.disagreements]}, indent=2))
        else:
            console.print(f"{report.agreed}/{report.total} packets agree with ofproto/trace "
                          f"({100 * report.ratio:.1f}%) in {report.seconds:.1f}s")
            for note, count in sorted(report.notes.items()):
                console.print(f"  note ({count}×): {escape(note)}", highlight=False)
            for line in report.refused:
                console.print(f"[red]✗[/] {escape(line)}", highlight=False)
            for d in report.disagreements:
                console.print(f"[red]✗[/] {escape(d.chassis)}: {escape(d.label)} (ct-next "
                              f"{escape(','.join(d.ct_next) or 'default')})\n"
                              f"    {escape(d.result.flow)}\n"
                              f"    {escape(d.result.comparison.divergence, multiline=True)}",
                              highlight=False)
        if report.disagreements or report.refused:
            sys.exit(EXIT_DIVERGE)
        return
    if not flow or not node:
        raise InputError("give --node NAME and a FLOW (or --all)")
    inventory.node(node)
    try:
        packet = parse_packet(flow)
    except FlowSyntaxError as exc:
        raise InputError(f"cannot read flow {flow!r}: {exc}") from None
    if "in_port" not in packet:
        raise InputError("the flow needs an in_port (the port the packet enters on)")
    snapshot = _snapshot(inventory, snapshot_file, [node], False)
    chassis = snapshot.chassis.get(node)
    if chassis is None:
        raise InputError(f"the snapshot has no node {node!r}")
    if bridge not in chassis.bridges:
        raise InputError(f"{node} has no collected bridge {bridge!r} "
                         f"(bridges: {', '.join(chassis.bridges)})")
    transport = make_transport(inventory.node(node))
    try:
        live = compare_with_ofproto_trace(chassis, transport, bridge, packet, list(ct_next))
    except RuntimeError as exc:
        raise InputError(str(exc)) from None
    finally:
        transport.close()
    result = live.comparison
    flows = sum(len(p.hits) for p in result.theirs[:result.compared_passes])
    if as_json:
        click.echo(json.dumps({
            "agree": result.agree, "flow": live.flow, "passes_compared": result.compared_passes,
            "flows_compared": flows, "notes": result.notes,
            "divergence": None if result.agree else {
                "pass": result.divergence.pass_no, "step": result.divergence.index,
                "what": result.divergence.what, "ofrace": result.divergence.ours,
                "ofproto_trace": result.divergence.theirs}}, indent=2))
    elif result.agree:
        console.print(f"[green]agree[/]: {result.compared_passes} datapath pass(es), "
                      f"{flows} flows, same outputs", highlight=False)
        for note in result.notes:
            console.print(f"  note: {escape(note)}", highlight=False)
    else:
        d = result.divergence
        console.print("[red]first divergence[/]", highlight=False)
        if d.index:
            ours = result.ours[d.pass_no].hits
            for hit in ours[max(0, d.index - 3):d.index]:
                console.print(f"    same:          {escape(hit)}", highlight=False)
        console.print(f"    {escape(d, multiline=True)}", highlight=False)
    if not result.agree:
        sys.exit(EXIT_DIVERGE)
