"""An audit for people (one table, details on demand) and for machines (JSON)."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.table import Table

from ofrace.audit.cluster import ClusterAudit
from ofrace.render.audit_html import audit_page
from ofrace.render.escape import escape

GARBLED_SHOWN = 5


def render_audit(audit: ClusterAudit, console: Console, details: bool = False) -> None:
    table = Table(title="logical flows against OpenFlow flows, per chassis", title_justify="left",
                  show_edge=False)
    for col in ("chassis", "installed", "expected", "MISSING", "stale", "broken", "garbled"):
        table.add_column(col, justify="right" if col != "chassis" else "left")
    for ch in audit.chassis:
        if ch.logical is None:
            table.add_row(f"[yellow]{escape(ch.chassis)}[/]", "", "", "", "", "",
                          "[yellow]not audited[/]")
            continue
        lg = ch.logical
        missing, stale, broken = len(lg.missing), len(lg.stale), len(ch.health)
        table.add_row(escape(ch.chassis), str(lg.count("installed")), str(lg.count("expected")),
                      f"[red]{missing}[/]" if missing else "0",
                      f"[red]{stale}[/]" if stale else "0",
                      f"[red]{broken}[/]" if broken else "0",
                      f"[yellow]{len(lg.garbled)}[/]" if lg.garbled else "0")
    console.print(table)
    for ch in audit.chassis:
        if ch.unreadable:
            console.print(f"[yellow]{escape(ch.chassis)}[/]: not audited: "
                          f"{escape(ch.unreadable)}", highlight=False)
            _print_health(console, ch)    # what its zone's databases alone tell
            continue
        lg = ch.logical
        if lg.garbled:
            console.print(f"[yellow]GARBLED[/] on {escape(ch.chassis)}: {len(lg.garbled)} flow "
                          "line(s) could not be read (a MISSING flow may be one of them):",
                          highlight=False)
            for line in lg.garbled[:GARBLED_SHOWN]:
                console.print(f"    {escape(line[:200])}", highlight=False)
            if len(lg.garbled) > GARBLED_SHOWN:
                console.print(f"    … and {len(lg.garbled) - GARBLED_SHOWN} more "
                              "(--json lists them all)", highlight=False)
        for status in lg.missing:
            console.print(f"[red]MISSING[/] on {escape(ch.chassis)}: {escape(status.stage)} "
                          f"({escape(status.pipeline)} table {status.table_id}, priority "
                          f"{status.priority}) on {escape(_datapaths(status))}, lflow "
                          f"{escape(status.uuid[:8])}\n    match:   {escape(status.match)}\n"
                          f"    actions: {escape(status.actions)}", highlight=False)
            for nb in status.northbound:
                console.print(f"    [yellow]from NB: {escape(nb)}[/]", highlight=False)
        for stale in lg.stale:
            console.print(f"[red]STALE[/] on {escape(ch.chassis)}: cookie {stale.cookie:#x}: "
                          f"{escape(stale.why)}\n    {escape(stale.flow)}", highlight=False)
        _print_health(console, ch)
        if details:
            console.print(f"[bold]{escape(ch.chassis)}[/]: why logical flows have no OpenFlow "
                          "flows here (expected)", highlight=False)
            for reason, count in lg.reasons().most_common():
                console.print(f"  {count:5d}  {escape(reason)}", highlight=False)
    notices = sum(len(ch.notices) for ch in audit.chassis)
    if audit.clean and notices:
        console.print(f"[green]clean[/]: every logical flow without OpenFlow flows has a reason; "
                      f"no stale flows; nothing broken, but {notices} notice(s) above (BFD "
                      "sessions down whose gateway ports failed over)", highlight=False)
    elif audit.clean:
        console.print("[green]clean[/]: every logical flow without OpenFlow flows has a reason; "
                      "no stale flows; ports, tunnels and sync healthy", highlight=False)
    elif not audit.found:
        console.print("[yellow]unknown[/]: nothing MISSING, stale or broken in what was read, "
                      "but not everything could be read (see above)", highlight=False)


def _print_health(console: Console, ch) -> None:
    for problem in ch.health:
        console.print(f"[red]BROKEN[/] on {escape(ch.chassis)} ({escape(problem.kind)}): "
                      f"{escape(problem.message)}", highlight=False)
    for notice in ch.notices:
        console.print(f"[yellow]NOTICE[/] on {escape(ch.chassis)} ({escape(notice.kind)}): "
                      f"{escape(notice.message)}", highlight=False)


def _datapaths(status) -> str:
    """Its datapaths, each with the CMS's name beside it when there is one."""
    return ", ".join(f"{dp} [{status.datapath_cms[dp]}]" if dp in status.datapath_cms else dp
                     for dp in status.datapaths)


def audit_json(audit: ClusterAudit, details: bool = False) -> dict:
    out = {"schema": "ofrace-audit/1", "clean": audit.clean, "complete": audit.complete,
           "chassis": {}}
    for ch in audit.chassis:
        entry: dict = {"clean": ch.clean, "unreadable": ch.unreadable,
                       "notices": [vars(n) for n in ch.notices],
                       "broken": [vars(p) for p in ch.health]}
        if ch.logical is not None:
            lg = ch.logical
            entry.update({
                "counts": {s: lg.count(s) for s in ("installed", "expected", "missing")},
                "expected_reasons": dict(lg.reasons()),
                "missing": [vars(s) for s in lg.missing],
                "stale": [{"cookie": f"{s.cookie:#x}", "flow": s.flow, "why": s.why}
                          for s in lg.stale],
                "garbled": list(lg.garbled)})
            if details:
                entry["expected"] = [vars(s) for s in lg.lflows if s.status == "expected"]
        out["chassis"][ch.chassis] = entry
    return out


def print_audit(audit: ClusterAudit, details: bool, as_json: bool,
                html_file: str | None = None) -> None:
    """``ofrace audit``'s output: the JSON document, or the table on stdout; with
    ``--html FILE`` also the page."""
    if html_file:
        # imported here: trace_html brings the whole trace stack (0.2 s of a cold audit)
        from ofrace.render.trace_html import write_page
        write_page(html_file, audit_page(audit_json(audit)))
    if as_json:
        click.echo(json.dumps(audit_json(audit, details), indent=2))
    else:
        render_audit(audit, Console(width=None if sys.stdout.isatty() else 140), details)
