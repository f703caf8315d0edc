"""An audit for people (one table, details on demand) and for machines (JSON)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ofrace.audit.cluster import ClusterAudit


def render_audit(audit: ClusterAudit, console: Console, details: bool = False) -> None:
    table = Table(title="logical flows against OpenFlow flows, per chassis", title_justify="left",
                  show_edge=False)
    for col in ("chassis", "installed", "expected", "MISSING", "stale", "broken"):
        table.add_column(col, justify="right" if col != "chassis" else "left")
    for ch in audit.chassis:
        if ch.logical is None:
            table.add_row(f"[red]{ch.chassis}[/]", "", "", "", "", "[red]unreadable[/]")
            continue
        lg = ch.logical
        missing, stale, broken = len(lg.missing), len(lg.stale), len(ch.health)
        table.add_row(ch.chassis, str(lg.count("installed")), str(lg.count("expected")),
                      f"[red]{missing}[/]" if missing else "0",
                      f"[red]{stale}[/]" if stale else "0",
                      f"[red]{broken}[/]" if broken else "0")
    console.print(table)
    for ch in audit.chassis:
        if ch.unreadable:
            console.print(f"[red]{escape(ch.chassis)}[/]: not audited: {escape(ch.unreadable)}",
                          highlight=False)
            continue
        lg = ch.logical
        for status in lg.missing:
            console.print(f"[red]MISSING[/] on {escape(ch.chassis)}: {escape(status.stage)} "
                          f"({status.pipeline} table {status.table_id}, priority "
                          f"{status.priority}) on {escape(', '.join(status.datapaths))}, lflow "
                          f"{status.uuid[:8]}\n    match:   {escape(status.match)}\n"
                          f"    actions: {escape(status.actions)}", highlight=False)
        for stale in lg.stale:
            console.print(f"[red]STALE[/] on {escape(ch.chassis)}: cookie {stale.cookie:#x}: "
                          f"{escape(stale.why)}\n    {escape(stale.flow)}", highlight=False)
        for problem in ch.health:
            console.print(f"[red]BROKEN[/] on {escape(ch.chassis)} ({problem.kind}): "
                          f"{escape(problem.message)}", highlight=False)
        if details:
            console.print(f"[bold]{escape(ch.chassis)}[/]: why logical flows have no OpenFlow "
                          "flows here (expected)", highlight=False)
            for reason, count in lg.reasons().most_common():
                console.print(f"  {count:5d}  {escape(reason)}", highlight=False)
    if audit.clean:
        console.print("[green]clean[/]: every logical flow without OpenFlow flows has a reason; "
                      "no stale flows; ports, tunnels and sync healthy", highlight=False)


def audit_json(audit: ClusterAudit, details: bool = False) -> dict:
    out = {"schema": "ofrace-audit/1", "clean": audit.clean, "chassis": {}}
    for ch in audit.chassis:
        entry: dict = {"clean": ch.clean, "unreadable": ch.unreadable}
        if ch.logical is not None:
            lg = ch.logical
            entry.update({
                "counts": {s: lg.count(s) for s in ("installed", "expected", "missing")},
                "expected_reasons": dict(lg.reasons()),
                "missing": [vars(s) for s in lg.missing],
                "stale": [{"cookie": f"{s.cookie:#x}", "flow": s.flow, "why": s.why}
                          for s in lg.stale],
                "broken": [vars(p) for p in ch.health]})
            if details:
                entry["expected"] = [vars(s) for s in lg.lflows if s.status == "expected"]
        out["chassis"][ch.chassis] = entry
    return out
