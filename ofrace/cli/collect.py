"""``ofrace collect``: read every node and the OVN databases into one snapshot file."""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

import click
from rich.console import Console

from ofrace.collect.cluster import CollectEvent, Limits, collect_cluster
from ofrace.collect.inventory import (
    DatabaseSpec,
    Inventory,
    byte_size,
    check_discover_template,
    check_remote,
    discovered_nodes,
    load_inventory,
    parse_node_arg,
    positive_number,
)
from ofrace.collect.secrets import scrub
from ofrace.collect.transport import DEFAULT_MAX_OUTPUT, DEFAULT_TIMEOUT
from ofrace.errors import Exit, InputError
from ofrace.render.escape import escape
from ofrace.render.summary import print_summary, snapshot_summary
from ofrace.snapshot import Snapshot

EXIT_PARTIAL = Exit.FOUND


def lab_inventory() -> Path:
    """The inventory the embedded lab wrote, or a one-line error if no lab is up."""
    from ofrace.lab.lab import default_dir

    path = default_dir() / "inventory.toml"
    if not path.is_file():
        raise InputError(f"no lab inventory at {path}: bring the lab up with "
                         "`ofrace lab up --topology kind`")
    return path


def build_inventory(inventory_file, nodes, sb, sb_via, nb, nb_via,
                    discover: str | None = None) -> Inventory:
    """Merge the inventory file and command-line specs (the command line wins)."""
    inventory = load_inventory(inventory_file) if inventory_file else Inventory()
    for arg in nodes:
        spec = parse_node_arg(arg)
        inventory.nodes = [n for n in inventory.nodes if n.name != spec.name] + [spec]
    for attr, remote, via, flag in (("southbound", sb, sb_via, "--sb"),
                                    ("northbound", nb, nb_via, "--nb")):
        if remote:
            check_remote(remote, flag)
        if remote or via:
            current = getattr(inventory, attr) or DatabaseSpec()
            current.remote = remote or (current.remote if not via else None)
            current.via = via or current.via
            setattr(inventory, attr, current)
    if discover:
        inventory.nodes += [n for n in discover_from_sb(inventory, discover)
                            if n.name not in {m.name for m in inventory.nodes}]
    names = {n.name for n in inventory.nodes}
    for db in (inventory.southbound, inventory.northbound):
        if db and db.via and db.via not in names:
            raise InputError(f"via node {db.via!r} is not one of the nodes "
                             f"({', '.join(sorted(names)) or 'none given'})")
    if not inventory.nodes and not inventory.southbound and not inventory.northbound:
        raise InputError("nothing to collect: give --inventory FILE, --node NAME=SPEC, "
                         "or --sb REMOTE")
    return inventory


def discover_from_sb(inventory: Inventory, template: str):
    """Nodes from the SB's Chassis rows, each reached through ``template``."""
    from ofrace.collect.cluster import collect_database
    from ofrace.snapshot import Snapshot

    check_discover_template(template)   # before reading anything
    if inventory.southbound is None or not inventory.southbound.remote:
        raise InputError("--discover needs the Southbound DB: give --sb REMOTE")
    if inventory.southbound.via:
        raise InputError("--discover reads the SB from here: give --sb REMOTE without --sb-via")
    db = collect_database("southbound", ("Chassis", "Encap"), inventory.southbound, {},
                          Snapshot())
    if db.error:
        raise InputError(f"--discover: cannot read the Southbound DB: {scrub(db.error, [])}")
    chassis, encaps = db.tables.get("Chassis", []), db.tables.get("Encap", [])
    nodes, problems = discovered_nodes(chassis if isinstance(chassis, list) else [],
                                       encaps if isinstance(encaps, list) else [],
                                       template, inventory.defaults)
    inventory.problems += problems
    if not nodes and not problems:
        raise InputError("--discover: the Southbound DB has no Chassis rows")
    return nodes


def print_plan(inventory: Inventory, as_json: bool) -> None:
    """--dry-run: what would be read, and how (templates named by their program only)."""
    from ofrace.collect.cluster import make_transport

    plan = {"nodes": {spec.name: make_transport(spec).describe() for spec in inventory.nodes},
            "databases": {name: {"remote": scrub(db.remote, []), "via": db.via or "local"}
                          for name, db in (("southbound", inventory.southbound),
                                           ("northbound", inventory.northbound)) if db},
            "skipped": [f"{p.where}: {p.error}" for p in inventory.problems]}
    if as_json:
        click.echo(json.dumps(plan, indent=2))
        return
    for name, how in plan["nodes"].items():
        click.echo(f"node {name}: {how}")
    for name, db in plan["databases"].items():
        click.echo(f"{name}: {db['remote'] or '(its ovn-remote)'} via {db['via']}")
    for line in plan["skipped"]:
        click.echo(f"skipped {line}")


def _print_warning(console: Console, event: CollectEvent) -> None:
    if event.what == "warning":
        console.print(f"[yellow]warning:[/] {escape(event.name)}: {escape(event.detail)}",
                      highlight=False, soft_wrap=True)   # one line per host, for grep


def _limits(timeout: str | None, max_output: str | None) -> Limits:
    """``--timeout`` and ``--max-output`` (checked as the inventory's keys are)."""
    limits = Limits()
    if timeout is not None:
        try:
            seconds: object = float(timeout)
        except ValueError:
            seconds = timeout
        limits.timeout = positive_number("timeout", seconds, "--timeout")
    if max_output is not None:
        limits.max_output = byte_size("max_output", max_output, "--max-output")
    return limits


class _ProgressPrinter:
    """Shows each node as it starts and finishes; a spinner line when on a terminal."""

    def __init__(self, console: Console, total: int):
        self.console, self.total, self.finished = console, total, 0
        self.status = console.status("collecting…") if console.is_terminal else None
        if self.status:
            self.status.start()

    def __call__(self, event: CollectEvent) -> None:
        if event.what == "start":
            return
        if event.what == "warning":
            _print_warning(self.console, event)
            return
        self.finished += 1
        mark = {"done": "[green]✓[/]", "partial": "[yellow]![/]"}.get(event.what, "[red]✗[/]")
        self.console.print(f"{mark} {escape(event.name)}: {escape(event.detail)}",
                           highlight=False)
        if self.status:
            self.status.update(f"collecting… {self.finished}/{self.total}")

    def close(self) -> None:
        if self.status:
            self.status.stop()


@click.command()
@click.option("-i", "--inventory", "inventory_file", type=click.Path(dir_okay=False),
              help="Inventory file (TOML) naming the nodes and how to reach them.")
@click.option("--lab", "use_lab", is_flag=True,
              help="Collect the embedded lab (its inventory.toml; see `ofrace lab status`).")
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
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def collect(inventory_file, use_lab, nodes, discover, sb, sb_via, nb, nb_via,
            insecure_host_keys, jobs, timeout, max_output, output, dry_run, as_json):
    """Read OpenFlow tables, OVSDB rows and the OVN databases into one snapshot.

    Exits 0 when everything was read, 1 when the snapshot is partial (the
    summary says what is missing), 2 on bad input.
    """
    if use_lab:
        if inventory_file:
            raise InputError("give either --lab or --inventory, not both")
        inventory_file = lab_inventory()
    limits = _limits(timeout, max_output)
    inventory = build_inventory(inventory_file, nodes, sb, sb_via, nb, nb_via, discover)
    for spec in inventory.nodes:  # given here, they hold for every node
        spec.timeout = limits.timeout if timeout is not None else spec.timeout
        spec.max_output = limits.max_output if max_output is not None else spec.max_output
    if dry_run:
        print_plan(inventory, as_json)
        return
    if not output:
        raise InputError("give the snapshot file to write: -o FILE")
    out_path = Path(output)
    if not out_path.parent.is_dir():
        raise InputError(f"cannot write {output}: directory {out_path.parent} does not exist")
    err = Console(stderr=True)
    total = len(inventory.nodes) + bool(inventory.southbound) + bool(inventory.northbound)
    printer = _ProgressPrinter(err, total) if not as_json else None
    try:
        snapshot = collect_cluster(inventory, strict_host_keys=not insecure_host_keys,
                                   jobs=jobs, progress=printer or partial(_print_warning, err),
                                   limits=limits)
    finally:
        if printer:
            printer.close()
    try:
        snapshot.save(out_path)
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror}") from None
    if as_json:
        click.echo(json.dumps({**snapshot_summary(snapshot), "output": str(out_path)}, indent=2))
    else:
        console = Console(width=None if sys.stdout.isatty() else 120)
        print_summary(snapshot, console)
        size = out_path.stat().st_size
        console.print(f"snapshot written to {out_path} ({size / 1e6:.1f} MB)")
    if not snapshot.complete:
        sys.exit(EXIT_PARTIAL)


@click.command()
@click.argument("snapshot_file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def show(snapshot_file, as_json):
    """Summarise a snapshot file: nodes, bridges, flow counts, databases, gaps."""
    snapshot = Snapshot.load(snapshot_file)
    if as_json:
        click.echo(json.dumps(snapshot_summary(snapshot), indent=2))
    else:
        print_summary(snapshot, Console())
