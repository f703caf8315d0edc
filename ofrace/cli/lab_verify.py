"""``ofrace lab verify``: generated conversations sent for real in the lab, compared
with ofrace's prediction at every capture point."""

from __future__ import annotations

import sys

import click
from rich.console import Console

from ofrace.cli.lab import lab
from ofrace.cli.options import json_option
from ofrace.errors import Exit
from ofrace.render.verify import print_verify


@lab.command()
@click.option("--topology", "topology_name", default=None,
              help="Bring this topology up first unless the lab already runs it.")
@click.option("--dir", "lab_dir", type=click.Path(file_okay=False), default=None,
              help="Lab directory [default: $OFRACE_LAB_DIR or the lab's default].")
@click.option("--limit", type=int, help="Send only the first N conversations.")
@json_option("Machine-readable result.")
def verify(topology_name, lab_dir, limit, as_json):
    """Send every generated conversation where it enters, read every capture point, and
    compare with ofrace's prediction.  Exits 1 on a mismatch no known gap explains."""
    from ofrace.lab.verify import verify as run

    with Console(stderr=True).status("lab verify") as spinner:
        report = run(lab_dir, topology_name, limit, lambda m: spinner.update(m))
    print_verify(report, as_json)
    sys.exit(Exit.FOUND if report.unexplained else Exit.OK)
