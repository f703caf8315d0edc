"""What ``collect`` reads: the inventory file merged with the command line's nodes,
databases and limits, nodes discovered from the SB's Chassis rows, and the plan
``--dry-run`` shows (how each node would be reached) without reading any node."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ofrace.collect.cluster import Limits, collect_database, make_transport
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
from ofrace.errors import InputError
from ofrace.snapshot import Snapshot


@dataclass
class CollectOptions:
    """The command line's additions to (or the whole of) an inventory."""

    nodes: tuple[str, ...] = ()                 # NAME=SPEC
    sb: str | None = None
    sb_via: str | None = None
    nb: str | None = None
    nb_via: str | None = None
    discover: str | None = None                 # a transport template per SB Chassis
    timeout: str | None = None                  # as typed: checked like the inventory's keys
    max_output: str | None = None


def limits_from(timeout: str | None, max_output: str | None) -> Limits:
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


def plan_collection(inventory_file: str | Path | None,
                    options: CollectOptions) -> tuple[Inventory, Limits]:
    """The inventory to read (the command line wins) and each node's limits."""
    limits = limits_from(options.timeout, options.max_output)
    inventory = build_inventory(inventory_file, options.nodes, options.sb, options.sb_via,
                                options.nb, options.nb_via, options.discover)
    for spec in inventory.nodes:  # given on the command line, they hold for every node
        spec.timeout = limits.timeout if options.timeout is not None else spec.timeout
        spec.max_output = limits.max_output if options.max_output is not None \
            else spec.max_output
    return inventory, limits


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


def describe_plan(inventory: Inventory) -> dict:
    """--dry-run: what would be read, and how (templates named by their program only)."""
    return {"nodes": {spec.name: make_transport(spec).describe() for spec in inventory.nodes},
            "databases": {
                **{name: {"remote": scrub(db.remote, []), "via": db.via or "local"}
                   for name, db in (("southbound", inventory.southbound),
                                    ("northbound", inventory.northbound),
                                    ("interconnect", inventory.interconnect)) if db},
                # interconnect mode: each node's zone NB and SB, read through the node
                **{f"{spec.name} {name}": {"remote": scrub(remote, []), "via": spec.name}
                   for spec in inventory.nodes
                   for name, remote in (("southbound", spec.southbound),
                                        ("northbound", spec.northbound)) if remote}},
            "skipped": [f"{p.where}: {p.error}" for p in inventory.problems]}
