"""``ofrace collect``: read every node and the OVN databases into one snapshot file."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ofrace.cli.options import json_option, snapshot_source
from ofrace.collect.plan import CollectOptions, describe_plan, plan_collection
from ofrace.collect.source import collect_to_file, collected_exit_code
from ofrace.collect.transport import DEFAULT_MAX_OUTPUT, DEFAULT_TIMEOUT
from ofrace.openflow.bridge import classifier_index
from ofrace.render.collect import collect_progress, print_collected, print_plan, print_snapshot
from ofrace.snapshot import Snapshot


@click.command()
@snapshot_source(snapshot=None,
                 inventory="Inventory file (TOML) naming the nodes and how to reach them.",
                 lab="Collect the embedded lab (its inventory.toml; see `ofrace lab status`).")
@click.option("--node", "nodes", multiple=True, metavar="NAME=SPEC",
              help="A node: NAME=ssh://[user@]host[:port], NAME=exec:TEMPLATE or NAME=local.")
@click.option("--discover", metavar="TEMPLATE",
              help="Add a node per SB Chassis, reached through TEMPLATE: "
                   "'ssh://root@{encap_ip}', 'exec:docker exec -i {hostname}' "
                   "(fields {hostname}, {system_id}, {encap_ip}).")
@click.option("--sb", metavar="REMOTE", help="Southbound DB remote (tcp:, ssl:, unix:).")
@click.option("--sb-via", metavar="NODE", help="Read the Southbound DB through this node.")
@click.option("--nb", metavar="REMOTE", help="Northbound DB remote (optional).")
@click.option("--nb-via", metavar="NODE", help="Read the Northbound DB through this node.")
@click.option("--insecure-host-keys", is_flag=True,
              help="Accept SSH host keys that are not in known_hosts (not recommended).")
@click.option("-j", "--jobs", default=16, show_default=True, help="Nodes read in parallel.")
@click.option("--timeout", metavar="SECONDS",
              help=f"Deadline for each node, connect to last byte (overrides the inventory's "
                   f"timeout; default {DEFAULT_TIMEOUT:g}).")
@click.option("--max-output", metavar="SIZE",
              help=f"Most bytes one node's answer may take, also after decompression: 512M, "
                   f"2G (overrides the inventory's max_output; default "
                   f"{DEFAULT_MAX_OUTPUT >> 20}M).")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Snapshot file to write (required unless --dry-run).")
@click.option("--dry-run", is_flag=True,
              help="Check the inventory and node specs, print how each node would be reached, "
                   "read nothing from the nodes (--discover still reads the SB's Chassis).")
@json_option("Print the summary as JSON.")
def collect(source, nodes, discover, sb, sb_via, nb, nb_via, insecure_host_keys, jobs, timeout,
            max_output, output, dry_run, as_json):
    """Read OpenFlow tables, OVSDB rows and the OVN databases into one snapshot.

    Exits 0 when everything was read, 1 when the snapshot is partial (the
    summary says what is missing), 2 on bad input.
    """
    inventory, limits = plan_collection(source.inventory_file, CollectOptions(
        nodes, sb, sb_via, nb, nb_via, discover, timeout, max_output))
    if dry_run:
        print_plan(describe_plan(inventory), as_json)
        return
    with collect_progress(inventory, quiet=as_json) as progress:
        snapshot = collect_to_file(inventory, output, strict_host_keys=not insecure_host_keys,
                                   jobs=jobs, limits=limits, progress=progress,
                                   flow_index=classifier_index)
    print_collected(snapshot, Path(output), as_json)
    sys.exit(collected_exit_code(snapshot))


@click.command()
@click.argument("snapshot_file", type=click.Path(dir_okay=False))
@json_option("Print the summary as JSON.")
def show(snapshot_file, as_json):
    """Summarise a snapshot file: nodes, bridges, flow counts, databases, gaps."""
    print_snapshot(Snapshot.load(snapshot_file), as_json)
