"""``ofrace audit``: which logical flows have no OpenFlow flows, and whether that is fine."""

from __future__ import annotations

import sys

import click

from ofrace.audit.cluster import audit_snapshot
from ofrace.cli.options import json_option, snapshot_source
from ofrace.collect.source import obtain_snapshot
from ofrace.render.audit import print_audit
from ofrace.render.collect import warn


@click.command()
@snapshot_source(snapshot="Audit a snapshot file.")
@click.option("--chassis", "only", multiple=True, help="Only these chassis (repeat).")
@click.option("--details", is_flag=True, help="Also list why each expected gap is expected.")
@json_option("Schema ofrace-audit/1.")
@click.option("--html", "html_file", metavar="FILE", help="Also write the audit as a page.")
def audit(source, only, details, as_json, html_file):
    """Logical flows against the OpenFlow flows installed on every chassis.

    Every logical flow with no OpenFlow flows on a chassis is either expected, with the
    reason ovn-controller has (datapath not local, port not resident, empty set, …), or
    MISSING. Also: stale flows, broken port bindings, missing tunnels, lagging chassis.
    Exits 1 when anything is MISSING, stale or broken; else 4 when a chassis could not be
    audited (its flows or OVSDB were not read, or flow lines are garbled); 2 on bad input.
    """
    result = audit_snapshot(obtain_snapshot(source, warn=warn), list(only) or None)
    print_audit(result, details, as_json, html_file)
    sys.exit(result.exit_code)
