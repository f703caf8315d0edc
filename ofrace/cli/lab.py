"""``ofrace lab up|down|status``: the embedded multi-chassis OVN lab."""

from __future__ import annotations

import json
import shlex
from dataclasses import fields

import click
from rich.console import Console
from rich.table import Table

from ofrace.lab.catalog import available
from ofrace.lab.lab import Lab, default_dir
from ofrace.lab.topology import Scale

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
def up(topology_name, lab_dir, sizes, warm):
    """Bring the lab up (taking down this directory's previous lab first)."""
    the_lab = Lab(lab_dir)
    with Console(stderr=True).status("bringing the lab up") as spinner:
        state = the_lab.up(topology_name, progress=lambda m: spinner.update(m), sizes=sizes)
        if warm:
            from ofrace.lab.traffic import warm_up

            spinner.update("warming up: real traffic through every gateway")
            warmed = warm_up(the_lab)
    _print_status(the_lab.status())
    scale = state.get("scale")
    Console().print(f"\n[green]lab up[/]: topology {state['topology']}, "
                    f"{len(state['chassis'])} chassis, in {state['bringup_seconds']}s"
                    + (f"; warmed {len(warmed)} gateway router(s)" if warm else ""))
    if scale:
        Console().print("size: " + " ".join(f"{k}={v}" for k, v in scale.items()),
                        soft_wrap=True)


@lab.command()
@_dir_option
def down(lab_dir):
    """Stop exactly what `up` started and remove its namespaces and links."""
    report = Lab(lab_dir).down()
    stopped = len(report["stopped"])
    click.echo(f"stopped {stopped} process{'es' if stopped != 1 else ''}; removed "
               f"{len(report['namespaces'])} namespace(s) and {len(report['links'])} link(s)")


@lab.command()
@_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the lab state as JSON.")
def status(lab_dir, as_json):
    """What runs, where, and how to reach each node."""
    state = Lab(lab_dir).status()
    if as_json:
        click.echo(json.dumps(state, indent=2))
    else:
        _print_status(state)


def _print_status(state: dict) -> None:
    console = Console()
    if state["status"] == "absent":
        console.print(f"no lab in {state['dir']}")
        return
    console.print(f"lab [bold]{state['topology']}[/] in {state['dir']}: {state['status']}")
    if state["status"] not in ("up", "degraded", "starting"):
        return
    console.print(f"  northbound  {state['nb_remote']}  {state['nb_tcp']}", soft_wrap=True)
    console.print(f"  southbound  {state['sb_remote']}  {state['sb_tcp']}", soft_wrap=True)
    console.print(f"  inventory   {state['dir']}/inventory.toml")
    for chassis in state["chassis"]:
        console.print(f"\n[bold]{chassis['name']}[/]  system-id {chassis['system_id']}  "
                      f"netns {chassis['netns']}  {chassis['address']}  "
                      f"encap {chassis['encap_ip']}", soft_wrap=True)
        console.print(f"  ssh:  {shlex.join(chassis['ssh_command'])}", soft_wrap=True)
        console.print(f"  exec: {shlex.join(chassis['exec_command'])} ovs-vsctl show",
                      soft_wrap=True)
    table = Table("where", "process", "pid", "alive", box=None, pad_edge=False)
    for proc in state["processes"]:
        alive = "[green]yes[/]" if proc["alive"] else "[red]no[/]"
        name = proc.get("name") or proc["what"]
        what = proc["what"] if name == proc["what"] else f"{proc['what']} ({name})"
        table.add_row(proc["chassis"], what, str(proc["pid"]), alive)
    console.print()
    console.print(table)
