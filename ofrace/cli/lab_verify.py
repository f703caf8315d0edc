"""``ofrace lab verify``: generated conversations sent for real in the lab, compared
with ofrace's prediction at every capture point; or a recorded sweep replayed."""

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
@click.option("--min-packets", type=click.IntRange(0), default=1000, show_default=True,
              help="Repeat L4 conversations with new ports/ids until this many are sent.")
@click.option("--record", type=click.Path(file_okay=False), help="Write the sweep here.")
@click.option("--replay", type=click.Path(file_okay=False, exists=True),
              help="Replay a recorded sweep offline instead (no lab needed).")
@json_option("Machine-readable result.")
def verify(topology_name, lab_dir, limit, min_packets, record, replay, as_json):
    """Send every generated conversation where it enters, read every capture point, and
    compare with ofrace's prediction.  Exits 1 on a mismatch no known gap explains."""
    with Console(stderr=True).status("lab verify") as spinner:
        if replay:
            from ofrace.compare.recording import replay as run_replay
            report = run_replay(replay, lambda m: spinner.update(m))
        else:
            from ofrace.lab.verify import verify as run
            report = run(lab_dir, topology_name, limit, lambda m: spinner.update(m),
                         min_packets=min_packets, record=record)
    print_verify(report, as_json)
    sys.exit(Exit.FOUND if report.unexplained else Exit.OK)
