"""A snapshot at a glance: what was read from each node and database, and what is missing."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

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
            "seconds": round(ch.finished - ch.started, 3) if ch.finished and ch.started
            else None,
        }
    dbs = {}
    for db in (snapshot.southbound, snapshot.northbound):
        if db is not None:
            dbs[db.name] = {"remote": db.remote, "via": db.via, "error": db.error,
                            "rows": {t: len(r) for t, r in db.tables.items()},
                            "missing_tables": db.missing_tables}
    return {"complete": snapshot.complete, "nodes": nodes, "databases": dbs,
            "problems": [vars(p) for p in snapshot.all_problems()],
            "redacted": snapshot.redacted}


def print_summary(snapshot: Snapshot, console: Console) -> None:
    table = Table(title="nodes", title_justify="left", show_edge=False)
    for col in ("node", "via", "system-id", "bridges (flows)", "versions", "time"):
        table.add_column(col)
    for name, ch in snapshot.chassis.items():
        if not ch.reachable:
            table.add_row(f"[red]{name}[/]", ch.transport.split(":")[0], "",
                          "[red]unreachable[/]", "", "")
            continue
        bridges = ", ".join(f"{b} ({br.flow_count})" for b, br in ch.bridges.items())
        ovn = (ch.ovn_version or "").split()[-1:] or ["?"]
        versions = f"OVS {ch.ovs_version or '?'} / OVN {ovn[0]}"
        secs = f"{ch.finished - ch.started:.2f}s" if ch.finished and ch.started else ""
        table.add_row(name, ch.transport.split(":")[0].split()[0], (ch.system_id or "?")[:8],
                      bridges, versions, secs)
    console.print(table)
    for db in (snapshot.southbound, snapshot.northbound):
        if db is None:
            continue
        if db.error:
            console.print(f"[red]{db.name}[/]: {db.error}")
            continue
        rows = sum(len(r) for r in db.tables.values())
        lflows = len(db.tables.get("Logical_Flow", []))
        extra = f", {lflows} logical flows" if db.name == "southbound" else ""
        console.print(f"{db.name}: {rows} rows in {len(db.tables)} tables{extra} "
                      f"from {db.remote} (via {db.via})"
                      + (f"; not in this schema: {', '.join(db.missing_tables)}"
                         if db.missing_tables else ""))
    if snapshot.redacted:
        console.print(f"redacted at collect (values not stored): {len(snapshot.redacted)}")
        for place in snapshot.redacted:
            console.print(f"  {escape(place)}", highlight=False)
    problems = snapshot.all_problems()
    if problems:
        console.print(f"[yellow]partial snapshot: {len(problems)} problem(s)[/]")
        for p in problems:
            console.print(f"  [yellow]{p.where}[/] {p.what}: {p.error}")
