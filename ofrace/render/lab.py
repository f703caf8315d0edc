"""The embedded lab for people: its state, its nodes and how to reach them."""

from __future__ import annotations

import json
import shlex

import click
from rich.console import Console
from rich.table import Table

from ofrace.render.escape import escape


def print_lab_up(state: dict, warmed: list | None) -> None:
    """``lab up``'s last lines: what came up, how fast, at what size."""
    scale = state.get("scale")
    Console().print(f"\n[green]lab up[/]: topology {state['topology']}, "
                    f"{len(state['chassis'])} chassis, in {state['bringup_seconds']}s"
                    + (f"; warmed {len(warmed)} gateway router(s)" if warmed is not None
                       else ""))
    if scale:
        Console().print("size: " + " ".join(f"{k}={v}" for k, v in scale.items()),
                        soft_wrap=True)


def print_lab_down(report: dict) -> None:
    stopped = len(report["stopped"])
    click.echo(f"stopped {stopped} process{'es' if stopped != 1 else ''}; removed "
               f"{len(report['namespaces'])} namespace(s) and {len(report['links'])} link(s)")


def print_lab_status(state: dict, as_json: bool = False) -> None:
    """``lab status``: what runs, where, and how to reach each node."""
    if as_json:
        click.echo(json.dumps(state, indent=2))
        return
    console = Console()
    if state["status"] == "absent":
        console.print(f"no lab in {state['dir']}")
        return
    console.print(f"lab [bold]{state['topology']}[/] in {state['dir']}: {state['status']}")
    if state["status"] not in ("up", "degraded", "starting"):
        return
    if state.get("nb_remote"):
        console.print(f"  northbound  {state['nb_remote']}  {state['nb_tcp']}", soft_wrap=True)
        console.print(f"  southbound  {state['sb_remote']}  {state['sb_tcp']}", soft_wrap=True)
    if state.get("zones"):
        console.print(f"  IC-NB       {state['ic_nb_remote']}  {state['ic_nb_tcp']}",
                      soft_wrap=True)
        console.print(f"  IC-SB       {state['ic_sb_remote']}  {state['ic_sb_tcp']}",
                      soft_wrap=True)
    for zone in state.get("zones", []):
        console.print(f"  zone [bold]{escape(zone['name'])}[/] (on {escape(zone['host'])}): "
                      f"NB {zone['nb_remote']}  SB {zone['sb_remote']}", soft_wrap=True)
    console.print(f"  inventory   {state['dir']}/inventory.toml")
    versions = state.get("versions") or {}
    if versions:
        built = f"  (build {state['ovn_prefix']})" if state.get("ovn_prefix") else ""
        shown = f"{versions.get('ovn', '?')}; {versions.get('ovs', '?')}{built}"
        console.print(f"  versions    {escape(shown)}", soft_wrap=True)
    if state.get("build_problem"):
        console.print(f"  [red]build[/]       {escape(state['build_problem'])}", soft_wrap=True)
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
