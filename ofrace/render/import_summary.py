"""What ``ofrace import`` prints: how each input was used (a node sosreport's match to
its SB Chassis row), per chassis what was found and what is missing with what that
prevents, and the cluster-wide gaps."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from ofrace.collect.importer import ImportReport
from ofrace.render.escape import escape
from ofrace.snapshot import Snapshot


def _line(text: str) -> None:
    click.echo(escape(text, markup=False))


def print_import(snapshot: Snapshot, report: ImportReport, output: Path,
                 as_json: bool) -> None:
    if as_json:
        doc = dataclasses.asdict(report)
        doc["output"] = str(output)
        doc["complete"] = snapshot.complete
        click.echo(json.dumps(doc, indent=2))
        return
    sb, nb = (f"from {report.databases[n]}" if n in report.databases else "missing"
              for n in ("southbound", "northbound"))
    if snapshot.zones:       # a must-gather's zones: each its own NB and SB
        _line(f"wrote {output}: {len(snapshot.chassis)} chassis, {len(snapshot.zones)} "
              f"zones ({', '.join(snapshot.zones)}), IC-SB "
              + (f"from {report.databases['interconnect']}"
                 if "interconnect" in report.databases else "not given"))
    else:
        _line(f"wrote {output}: {len(snapshot.chassis)} chassis, SB {sb}, NB {nb}")
    _line("inputs:")
    for source in report.sources:
        how = f" -> {source.chassis}: {source.matched}" if source.chassis else ""
        _line(f"  {source.label} ({source.kind}){how}")
        for note in source.notes:
            _line(f"      {note}")
    _line("chassis:")
    for chassis in report.chassis:
        _line(f"  {chassis.name}" + (f" (from {chassis.source})" if chassis.source
                                     else " (no sosreport)"))
        for found in chassis.found:
            _line(f"      found: {found}")
        for what, prevents in chassis.missing:
            _line(f"      missing: {what}: {prevents}")
    for what, prevents in report.missing:
        _line(f"missing: {what}: {prevents}")
