"""``lab verify``'s output: per packet class sent / equal / mismatched, then each
mismatch's first place where prediction and wire part; or JSON."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from ofrace.compare.verify import VerifyReport
from ofrace.render.escape import escape


def print_verify(report: VerifyReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
        return
    table = Table(title=f"lab verify: {report.topology} ({report.seconds:.0f}s)")
    for column in ("class", "sent", "equal", "mismatched"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for cls in sorted(report.sent):
        table.add_row(cls, str(report.sent[cls]), str(report.equal[cls]),
                      str(report.mismatched[cls]))
    table.add_row("total", str(sum(report.sent.values())), str(sum(report.equal.values())),
                  str(sum(report.mismatched.values())))
    console = Console(width=120)
    console.print(table)
    console.print(f"conntrack after each conversation: {report.connections['equal']}/"
                  f"{report.connections['checked']} conversations equal; {report.unobservable} "
                  "predicted output(s) at ports without a capture", highlight=False)
    for cls, m in report.mismatches:
        console.print(f"[red]✗[/] [{escape(cls)}] {escape(m.step)} ({escape(m.gap)})\n"
                      f"    at {escape(m.where)}\n    predicted: {escape(m.predicted)}\n"
                      f"    wire:      {escape(m.wire)}", highlight=False)
    gaps = {}
    for _, m in report.mismatches:
        gaps[m.gap] = gaps.get(m.gap, 0) + 1
    console.print("mismatches by gap: " + (", ".join(f"{g} {n}" for g, n in sorted(
        gaps.items())) or "none") + f"; {len(report.skipped)} reply step(s) not sendable",
        highlight=False)
