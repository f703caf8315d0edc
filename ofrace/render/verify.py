"""``lab verify``'s output: per packet class sent / equal / mismatched, then each
mismatch's first place where prediction and wire part; or JSON."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from ofrace.compare.verify import UNEXPLAINED, VerifyReport
from ofrace.render.escape import escape


def print_verify(report: VerifyReport, as_json: bool) -> None:
    """The table per class; every unexplained mismatch in full (where prediction and wire
    first part); mismatches a known gap explains counted per gap, with one example."""
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
        return
    unexplained = {}
    for cls, m in report.mismatches:
        if m.gap == UNEXPLAINED:
            unexplained[cls] = unexplained.get(cls, 0) + 1
    table = Table(title=f"lab verify: {escape(report.topology)} ({report.seconds:.0f}s)")
    for column in ("class", "sent", "equal", "mismatched", "unexplained"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for cls in sorted(report.sent):
        table.add_row(escape(cls), str(report.sent[cls]), str(report.equal[cls]),
                      str(report.mismatched[cls]), str(unexplained.get(cls, 0)))
    table.add_row("total", str(sum(report.sent.values())), str(sum(report.equal.values())),
                  str(sum(report.mismatched.values())), str(len(report.unexplained)))
    console = Console(width=120)
    console.print(table)
    console.print(f"conntrack after each conversation: {report.connections['equal']}/"
                  f"{report.connections['checked']} conversations equal; {report.unobservable} "
                  f"predicted output(s) at ports without a capture; {len(report.skipped)} "
                  "reply step(s) not sendable", highlight=False)
    by_gap: dict[str, list] = {}
    for cls, m in report.mismatches:
        if m.gap != UNEXPLAINED:
            by_gap.setdefault(m.gap, []).append((cls, m))
    for gap, found in sorted(by_gap.items()):
        cls, m = found[0]
        console.print(f"[yellow]~[/] gap {escape(gap)} (docs/gaps.md): {len(found)} "
                      f"mismatch(es), e.g. [{escape(cls)}] {escape(m.step)} at "
                      f"{escape(m.where)}", highlight=False)
    for cls, m in report.mismatches:
        if m.gap == UNEXPLAINED:
            console.print(f"[red]✗[/] [{escape(cls)}] {escape(m.step)} (unexplained)\n"
                          f"    at {escape(m.where)}\n    predicted: {escape(m.predicted)}\n"
                          f"    wire:      {escape(m.wire)}", highlight=False)
    if not report.unexplained:
        console.print("[green]✓[/] every step equals the wire or belongs to a named gap",
                      highlight=False)
