"""A snapshot at a glance: what was read from each node and database, and what is missing."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ofrace.render.escape import escape
from ofrace.snapshot import Snapshot


def snapshot_summary(snapshot: Snapshot) -> dict:
    """The same facts as the table, for ``--json``."""
    nodes = {}
    for name, ch in snapshot.chassis.items():
        nodes[name] = {
            "reachable": ch.reachable, "transport": ch.transport, "system_id": ch.system_id,
            "hostname": ch.hostname, "ovs_version": ch.ovs_version,
            "ovn_version": ch.ovn_version,
            "bridges": {b: br.flow_count for b, br in ch.bridges.items()},
            "unread": ch.unread(),
            "seconds": round(ch.finished - ch.started, 3) if ch.finished and ch.started
            else None,
        }
    dbs = {}
    for where, db in snapshot.databases():
        dbs[where] = {"remote": db.remote, "via": db.via, "error": db.error,
                      "rows": _row_counts(db.tables),
                      "missing_tables": db.missing_tables}
    return {"complete": snapshot.complete, "nodes": nodes, "databases": dbs,
            "problems": [vars(p) for p in snapshot.all_problems()],
            "redacted": snapshot.redacted}


def _row_counts(tables) -> dict[str, int]:
    """Rows per table; a version-3 file's are counted without decoding them."""
    count = getattr(tables, "row_count", None)
    return {t: count(t) if count else len(tables[t]) for t in tables}


def _versions(ch) -> str:
    ovn = (ch.ovn_version or "").split()[-1:] or ["?"]
    return f"OVS {ch.ovs_version or '?'} / OVN {ovn[0]}"


def print_summary(snapshot: Snapshot, console: Console) -> None:
    table = Table(title="nodes", title_justify="left", show_edge=False)
    for col in ("node", "via", "system-id", "bridges (flows)", "versions", "time"):
        table.add_column(col)
    for name, ch in snapshot.chassis.items():
        via = escape(ch.transport.split(":")[0].split(" ")[0])
        if not ch.reachable:
            table.add_row(f"[red]{escape(name)}[/]", via, "", "[red]unreachable[/]", "", "")
            continue
        unread = ch.unread()
        bridges = ", ".join(f"{escape(b)} ({br.flow_count})" + (
            " [red]flows not read[/]" if br.errors.get("flows") else "")
            for b, br in ch.bridges.items()) or "[red]none read[/]"
        versions = "[red]OVSDB not read[/]" if not ch.ovsdb_read else escape(_versions(ch))
        secs = f"{ch.finished - ch.started:.2f}s" if ch.finished and ch.started else ""
        node = f"[yellow]{escape(name)}[/]" if unread or ch.problems else escape(name)
        table.add_row(node, via, escape((ch.system_id or "?")[:8]), bridges, versions, secs)
    console.print(table)
    for name, ch in snapshot.chassis.items():
        if ch.reachable and ch.unread():
            console.print(f"[yellow]{escape(name)}[/]: {escape(ch.unread())}", highlight=False)
    shown = [("southbound", snapshot.southbound), ("northbound", snapshot.northbound)]
    if snapshot.zones:   # interconnect: no central pair, a pair per zone
        shown = [(where, db) for where, db in snapshot.databases()]
    for which, db in shown:
        if db is None:
            if which == "northbound":  # optional: only names of NB objects are lost
                console.print("[dim]northbound: not in this snapshot (NB object names are "
                              "not shown)[/]", highlight=False)
            continue
        if db.error:
            console.print(f"[red]{escape(which)}[/]: {escape(db.error)}", highlight=False)
            continue
        counts = _row_counts(db.tables)
        rows = sum(counts.values())
        lflows = counts.get("Logical_Flow", 0)
        extra = f", {lflows} logical flows" if db.name == "southbound" else ""
        console.print(f"{escape(which)}: {rows} rows in {len(db.tables)} tables{extra} "
                      f"from {escape(db.remote)} (via {escape(db.via)})"
                      + (f"; not in this schema: {escape(', '.join(db.missing_tables))}"
                         if db.missing_tables else ""), highlight=False)
    if snapshot.redacted:
        console.print(f"redacted at collect (values not stored): {len(snapshot.redacted)}")
        for place in snapshot.redacted:
            console.print(f"  {escape(place)}", highlight=False)
    problems = snapshot.all_problems()
    if problems:
        console.print(f"[yellow]partial snapshot: {len(problems)} problem(s)[/]")
        for p in problems:
            console.print(f"  [yellow]{escape(p.where)}[/] {escape(p.what)}: {escape(p.error)}",
                          highlight=False)
