"""``ofrace compare``: ofrace's engine against ``ofproto/trace`` on the live node."""

from __future__ import annotations

import sys

import click

from ofrace.cli.options import json_option, snapshot_source
from ofrace.compare.against_node import compare_all, compare_flow, exit_code
from ofrace.render.compare import print_agreement, print_comparison


@click.command()
@click.argument("flow", required=False)
@snapshot_source(snapshot="Simulate on this snapshot instead of reading the node now.",
                 inventory="Inventory naming the node and how to reach it.",
                 lab="Use the embedded lab's inventory.")
@click.option("--node", help="The node to compare on (a name from the inventory).")
@click.option("--bridge", default="br-int", show_default=True, help="Bridge the packet enters.")
@click.option("--ct-next", "ct_next", multiple=True, metavar="FLAGS",
              help="ct_state for the next recirculation, as ofproto/trace takes it (repeat).")
@click.option("--all", "all_packets", is_flag=True,
              help="Compare generated packets on every node of the inventory.")
@click.option("--limit", type=int, help="With --all: stop after this many packets.")
@json_option("Machine-readable result.")
def compare(flow, source, node, bridge, ct_next, all_packets, limit, as_json):
    """Trace FLOW (an OVS flow string, as ofproto/trace takes it) with ofrace and with
    ofproto/trace on the node, and show the first place where they part.

    Exits 0 when they agree, 1 when they diverge, 2 on bad input, 5 when the node
    cannot be read or ofproto/trace fails there.
    """
    if all_packets:
        outcome = compare_all(source, list(ct_next), limit)
        print_agreement(outcome, as_json)
    else:
        outcome = compare_flow(source, node, bridge, flow, list(ct_next))
        print_comparison(outcome, as_json)
    sys.exit(exit_code(outcome))
