"""What ``collect`` shows while and after it reads: each node as it finishes, the
``--dry-run`` plan, the summary of the snapshot written; and the one-line
warnings every command prints for what a live read could not get."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ofrace.render.escape import escape

if TYPE_CHECKING:  # ``warn`` is on every command's path: the rest is imported when used
    from rich.console import Console

    from ofrace.collect.cluster import CollectEvent
    from ofrace.collect.inventory import Inventory
    from ofrace.snapshot import Snapshot


def warn(text: str) -> None:
    """One line on stderr, node text made visible."""
    click.echo(escape(f"ofrace: warning: {text}", markup=False), err=True)


def print_warning(console: Console, event: CollectEvent) -> None:
    if event.what == "warning":
        console.print(f"[yellow]warning:[/] {escape(event.name)}: {escape(event.detail)}",
                      highlight=False, soft_wrap=True)   # one line per host, for grep


class ProgressPrinter:
    """Shows each node as it starts and finishes; a spinner line when on a terminal."""

    def __init__(self, console: Console, total: int | None, doing: str = "collecting"):
        self.console, self.total, self.finished, self.doing = console, total, 0, doing
        self.status = console.status(f"{doing}…") if console.is_terminal else None
        if self.status:
            self.status.start()

    def __call__(self, event: CollectEvent) -> None:
        if event.what == "start":
            return
        if event.what == "warning":
            print_warning(self.console, event)
            return
        self.finished += 1
        mark = {"done": "[green]✓[/]", "partial": "[yellow]![/]"}.get(event.what, "[red]✗[/]")
        self.console.print(f"{mark} {escape(event.name)}: {escape(event.detail)}",
                           highlight=False)
        if self.status:
            done = f"{self.finished}/{self.total}" if self.total else f"{self.finished} read"
            self.status.update(f"{self.doing}… {done}")

    def close(self) -> None:
        if self.status:
            self.status.stop()


@contextmanager
def live_progress(live: bool) -> Iterator:
    """What a live trace reads, as it reads it (the databases, then each node as the
    packet reaches it): on a terminal only, so scripts and pipes see nothing new."""
    from rich.console import Console

    err = Console(stderr=True)
    if not live or not err.is_terminal:
        yield None
        return
    printer = ProgressPrinter(err, None, "reading the cluster")
    try:
        yield printer
    finally:
        printer.close()


@contextmanager
def collect_progress(inventory: Inventory, quiet: bool) -> Iterator:
    """The progress callback for ``collect_cluster``: every node on stderr, or (for
    ``--json``) only the warnings."""
    total = (len(inventory.nodes) + bool(inventory.southbound) + bool(inventory.northbound)
             + bool(inventory.interconnect)
             + sum(bool(n.southbound) + bool(n.northbound) for n in inventory.nodes))
    from rich.console import Console

    err = Console(stderr=True)
    printer = ProgressPrinter(err, total) if not quiet else None
    try:
        yield printer or partial(print_warning, err)
    finally:
        if printer:
            printer.close()


def print_plan(plan: dict, as_json: bool) -> None:
    """--dry-run's plan (``ofrace.collect.plan.describe_plan``)."""
    if as_json:
        click.echo(json.dumps(plan, indent=2))
        return
    for name, how in plan["nodes"].items():
        click.echo(f"node {name}: {how}")
    for name, db in plan["databases"].items():
        click.echo(f"{name}: {db['remote'] or '(its ovn-remote)'} via {db['via']}")
    for line in plan["skipped"]:
        click.echo(f"skipped {line}")


def print_collected(snapshot: Snapshot, output: Path, as_json: bool) -> None:
    """The summary of a snapshot just written."""
    from rich.console import Console

    from ofrace.render.summary import print_summary, snapshot_summary

    if as_json:
        click.echo(json.dumps({**snapshot_summary(snapshot), "output": str(output)}, indent=2))
        return
    console = Console(width=None if sys.stdout.isatty() else 120)
    print_summary(snapshot, console)
    size = output.stat().st_size
    console.print(f"snapshot written to {output} ({size / 1e6:.1f} MB)")


def print_snapshot(snapshot: Snapshot, as_json: bool) -> None:
    """``show``: a snapshot file's summary."""
    from rich.console import Console

    from ofrace.render.summary import print_summary, snapshot_summary

    if as_json:
        click.echo(json.dumps(snapshot_summary(snapshot), indent=2))
    else:
        print_summary(snapshot, Console())
