"""``ofrace compare``'s output: one flow's comparison with ofproto/trace, or the
agreement over every generated packet; as text or as JSON."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console

from ofrace.compare.agreement import AgreementReport
from ofrace.compare.live import LiveComparison
from ofrace.render.escape import escape


def _console() -> Console:
    return Console(stderr=False, width=None if sys.stdout.isatty() else 120)


def comparison_json(live: LiveComparison) -> dict:
    result = live.comparison
    flows = sum(len(p.hits) for p in result.theirs[:result.compared_passes])
    return {"agree": result.agree, "flow": live.flow, "passes_compared": result.compared_passes,
            "flows_compared": flows, "notes": result.notes,
            "divergence": None if result.agree else {
                "pass": result.divergence.pass_no, "step": result.divergence.index,
                "what": result.divergence.what, "ofrace": result.divergence.ours,
                "ofproto_trace": result.divergence.theirs}}


def print_comparison(live: LiveComparison, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(comparison_json(live), indent=2))
        return
    console, result = _console(), live.comparison
    if result.agree:
        flows = sum(len(p.hits) for p in result.theirs[:result.compared_passes])
        console.print(f"[green]agree[/]: {result.compared_passes} datapath pass(es), "
                      f"{flows} flows, same outputs", highlight=False)
        for note in result.notes:
            console.print(f"  note: {escape(note)}", highlight=False)
        return
    d = result.divergence
    console.print("[red]first divergence[/]", highlight=False)
    if d.index:
        for hit in result.ours[d.pass_no].hits[max(0, d.index - 3):d.index]:
            console.print(f"    same:          {escape(hit)}", highlight=False)
    console.print(f"    {escape(d, multiline=True)}", highlight=False)


def agreement_json(report: AgreementReport) -> dict:
    return {"total": report.total, "agreed": report.agreed, "answerable": report.answerable,
            "answered": report.answered,
            "blind_spots": report.blind, "classes": report.classes, "seconds": report.seconds,
            "notes": report.notes, "refused": report.refused,
            "disagreements": [{"chassis": d.chassis, "packet": d.label,
                               "ct_next": list(d.ct_next), "flow": d.result.flow,
                               "divergence": str(d.result.comparison.divergence)}
                              for d in report.disagreements]}


def print_agreement(report: AgreementReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(agreement_json(report), indent=2))
        return
    console = _console()
    console.print(f"{report.answered}/{report.answerable} packets ofproto/trace can answer "
                  f"agree ({100 * report.ratio:.1f}%) in {report.seconds:.1f}s; "
                  f"{report.total} sent, {report.agreed} agreed in all")
    for reason, count in sorted(report.blind.items()):
        console.print(f"  counted apart ({count}×, agreed as far as it sees): "
                      f"{escape(reason)}", highlight=False)
    for note, count in sorted(report.notes.items()):
        console.print(f"  note ({count}×): {escape(note)}", highlight=False)
    for line in report.refused:
        console.print(f"[red]✗[/] {escape(line)}", highlight=False)
    for d in report.disagreements:
        console.print(f"[red]✗[/] {escape(d.chassis)}: {escape(d.label)} (ct-next "
                      f"{escape(','.join(d.ct_next) or 'default')})\n"
                      f"    {escape(d.result.flow)}\n"
                      f"    {escape(d.result.comparison.divergence, multiline=True)}",
                      highlight=False)
