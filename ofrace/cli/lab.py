"""``ofrace lab up|down|status``: the embedded multi-chassis OVN lab."""

from __future__ import annotations

from dataclasses import fields

import click
from rich.console import Console

from ofrace.cli.options import json_option
from ofrace.lab.catalog import available
from ofrace.lab.lab import Lab, default_dir
from ofrace.lab.topology import Scale
from ofrace.render.lab import print_lab_down, print_lab_status, print_lab_up

_dir_option = click.option(
    "--dir", "lab_dir", type=click.Path(file_okay=False), default=None,
    help=f"Lab directory [default: $OFRACE_LAB_DIR or {default_dir()}].",
)


@click.group()
def lab():
    """A real OVN on this machine: central, chassis in network namespaces, sshd in each."""


def _parse_sizes(ctx, param, values) -> dict[str, str]:
    sizes = {}
    for value in values:
        key, sep, number = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", ctx=ctx, param=param)
        sizes[key.strip()] = number.strip()
    return sizes


@lab.command()
@click.option("--topology", "topology_name", default="kind", show_default=True,
              help=f"Topology name ({', '.join(available())}) or path to a TOML file.")
@_dir_option
@click.option("--size", "sizes", multiple=True, metavar="KEY=VALUE", callback=_parse_sizes,
              help="Replace a size parameter of a generated topology (one with a [scale] "
                   "table, like scale); repeatable.  Keys: "
                   f"{', '.join(f.name for f in fields(Scale))}.  "
                   "E.g. --size chassis=10 --size switches=500.")
@click.option("--warm", is_flag=True,
              help="Then send real traffic so neighbours are resolved, as in a running cluster "
                   "(the outside host announces itself; one connection per gateway VIP).")
@click.option("--ovn", "ovn_prefix", metavar="PREFIX", envvar="OFRACE_OVN_PREFIX",
              help="Run the lab on a source build of OVN and the OVS it pins, installed "
                   "with --prefix=PREFIX (env OFRACE_OVN_PREFIX); default: the system's "
                   "packages.  `lab status` shows the versions.")
def up(topology_name, lab_dir, sizes, warm, ovn_prefix):
    """Bring the lab up (taking down this directory's previous lab first)."""
    the_lab = Lab(lab_dir)
    with Console(stderr=True).status("bringing the lab up") as spinner:
        state = the_lab.up(topology_name, progress=lambda m: spinner.update(m), sizes=sizes,
                           ovn_prefix=ovn_prefix)
        if warm:
            from ofrace.lab.traffic import warm_up

            spinner.update("warming up: real traffic through every gateway")
            warmed = warm_up(the_lab)
    print_lab_status(the_lab.status())
    print_lab_up(state, warmed if warm else None)


@lab.command()
@_dir_option
def down(lab_dir):
    """Stop exactly what `up` started and remove its namespaces and links."""
    print_lab_down(Lab(lab_dir).down())


@lab.command()
@_dir_option
@json_option("Print the lab state as JSON.")
def status(lab_dir, as_json):
    """What runs, where, and how to reach each node."""
    print_lab_status(Lab(lab_dir).status(), as_json)
