"""``ofrace audit``: which logical flows have no OpenFlow flows, and whether that is fine."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console

from ofrace.audit.cluster import audit_snapshot
from ofrace.cli.trace import _snapshot
from ofrace.errors import Exit
from ofrace.render.audit import audit_json, render_audit

EXIT_PROBLEMS, EXIT_UNKNOWN = Exit.FOUND, Exit.UNKNOWN


@click.command()
@click.option("--snapshot", "snapshot_file", type=click.Path(dir_okay=False),
              help="Audit a snapshot file.")
@click.option("-i", "--inventory", "inventory_file", type=click.Path(dir_okay=False),
              help="Read the cluster now from this inventory.")
@click.option("--lab", "use_lab", is_flag=True, help="Read the embedded lab now.")
@click.option("--chassis", "only", multiple=True, help="Only these chassis (repeat).")
@click.option("--details", is_flag=True, help="Also list why each expected gap is expected.")
@click.option("--json", "as_json", is_flag=True, help="Schema ofrace-audit/1.")
def audit(snapshot_file, inventory_file, use_lab, only, details, as_json):
    """Logical flows against the OpenFlow flows installed on every chassis.

    Every logical flow with no OpenFlow flows on a chassis is either expected, with the
    reason ovn-controller has (datapath not local, port not resident, empty set, …), or
    MISSING. Also: stale flows, broken port bindings, missing tunnels, lagging chassis.
    Exits 1 when anything is MISSING, stale or broken; else 4 when a chassis could not be
    audited (its flows or OVSDB were not read, or flow lines are garbled); 2 on bad input.
    """
    snapshot = _snapshot(snapshot_file, inventory_file, use_lab)
    result = audit_snapshot(snapshot, list(only) or None)
    if as_json:
        click.echo(json.dumps(audit_json(result, details), indent=2))
    else:
        render_audit(result, Console(width=None if sys.stdout.isatty() else 140), details)
    if result.found:
        sys.exit(EXIT_PROBLEMS)
    if not result.complete:
        sys.exit(EXIT_UNKNOWN)
