"""A trace for people: one block per chassis visit, logical stages, rewrites, verdicts.

Three levels, like ovn-trace: ``summary`` (hops and verdicts), the default
(logical stages that did something, conntrack, groups, crossings, header
rewrites where they happened), ``detailed`` (every stage and every OpenFlow
flow under it).  Each verdict ends with the final packet on one line.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ofrace.annotate.annotated import AnnotatedHop, AnnotatedTrace, Event
from ofrace.annotate.session import ConversationStep, TraceResult
from ofrace.ovn.cms_names import CmsName
from ofrace.render.escape import escape
from ofrace.simulate.packet import describe
from ofrace.simulate.steps import StepKind
from ofrace.trace.verdicts import VerdictKind

if TYPE_CHECKING:  # rich is imported when text is printed: --json never pays for it
    from rich.console import Console

LEVELS = ("summary", "default", "detailed")
V = VerdictKind
_VERDICT_STYLE = {V.DELIVERED: "green", V.LEFT: "cyan", V.HOST: "cyan",
                  V.CONTROLLER: "yellow", V.DROPPED: "red", V.ERROR: "red", V.LOOP: "red",
                  V.UNKNOWN: "yellow"}
_VERDICT_MARK = {V.DELIVERED: "✔", V.LEFT: "↗", V.HOST: "↗", V.CONTROLLER: "⚙",
                 V.DROPPED: "✘", V.ERROR: "!", V.LOOP: "↻", V.UNKNOWN: "?"}
# Events shown at the default level besides flows.
S = StepKind
_EVENTS = {S.CT, S.RECIRC, S.GROUP, S.PATCH, S.LEARN, S.TTL, S.NORMAL, S.FLOOD, S.SKIP,
           S.EXIT, S.CLONE, S.UNKNOWN}


def _named(ovn: str | None, cms: CmsName | None) -> str | None:
    """An OVN name with the CMS's beside it: ``neutron-1a2b… [Neutron network "web"]``."""
    if not ovn or cms is None:
        return ovn
    return f"{ovn} [{cms.label}]"


def _trivial(ev: Event) -> bool:
    """A logical stage that only passed the packet on."""
    actions = (ev.logical_actions or "").strip()
    return actions in ("next;", "") and not ev.changes and not ev.northbound


def render_trace(trace: AnnotatedTrace, console: Console, level: str = "default",
                 title: str | None = None) -> None:
    if title:
        console.print(f"[bold]{escape(title)}[/]", highlight=False)
    _hop(trace.root, console, level, 0)
    console.print()
    console.print("[bold]Result[/]", highlight=False)
    for verdict in trace.verdicts:
        style = _VERDICT_STYLE.get(verdict.kind, "white")
        mark = _VERDICT_MARK.get(verdict.kind, "•")
        console.print(f"  [{style}]{mark} {escape(verdict.text)}[/]", highlight=False)
        console.print(f"      {escape(describe(verdict.packet))}", highlight=False)


def _hop(hop: AnnotatedHop, console: Console, level: str, indent: int) -> None:
    pad = "  " * indent
    entry = f"{hop.entry} [{hop.cms.detailed}]" if hop.cms is not None else hop.entry
    zone = f" [dim](zone {escape(hop.zone)})[/]" if hop.zone else ""
    console.print(f"{pad}[bold magenta]● {escape(hop.chassis)}[/]{zone} — "
                  f"{escape(entry)} on bridge {escape(hop.bridge)}", highlight=False)
    console.print(f"{pad}  [dim]in:[/] {escape(describe(hop.packet_in))}", highlight=False)
    if level != "summary":
        _events(hop.events, console, level, pad + "  ")
    for note in hop.notes:
        console.print(f"{pad}  [yellow]✎ {escape(note)}[/]", highlight=False)
    for verdict in hop.verdicts:
        style = _VERDICT_STYLE.get(verdict.kind, "white")
        console.print(f"{pad}  [{style}]⇒ {escape(verdict.text)}[/]", highlight=False)
        console.print(f"{pad}    [dim]out:[/] {escape(describe(verdict.packet))}",
                      highlight=False)
    for child in hop.children:
        _hop(child, console, level, indent + 1)


def _events(events: list[Event], console: Console, level: str, pad: str) -> None:
    context = None
    last_stage = None
    for ev in events:
        if ev.kind == StepKind.FLOW:
            if ev.stage is not None:
                ctx = (ev.datapath, ev.pipeline)
                if ctx != context:
                    context = ctx
                    last_stage = None
                    which = "inport" if ev.pipeline == "ingress" else "outport"
                    port = _named(ev.inport if which == "inport" else ev.outport,
                                  ev.cms.get(which))
                    console.print(f"{pad}[bold blue]┌ "
                                  f"{escape(_named(ev.datapath or '?', ev.cms.get('datapath')))}"
                                  f" {escape(ev.pipeline or '')}[/]"
                                  + (f" [dim]({which} {escape(port)})[/]" if port else ""),
                                  highlight=False)
                show = level == "detailed" or not _trivial(ev)
                if show and (ev.stage, ev.logical_match) != last_stage:
                    last_stage = (ev.stage, ev.logical_match)
                    console.print(f"{pad}│ [cyan]{escape(ev.stage)}[/]: "
                                  f"{escape(ev.logical_match or '')} → "
                                  f"[white]{escape(ev.logical_actions or '')}[/]",
                                  highlight=False)
                    for nb in ev.northbound:
                        console.print(f"{pad}│   [yellow]{escape(nb)}[/]", highlight=False)
            elif level == "detailed":
                what = ev.owner or "physical flow"
                console.print(f"{pad}│ [dim]{escape(what)}[/]", highlight=False)
            if ev.collision:
                console.print(f"{pad}│   [red]cookie {ev.cookie:#x} matches several rows: "
                              f"{escape('; '.join(ev.collision))}[/]", highlight=False)
            if level == "detailed":
                console.print(f"{pad}│   [dim]{escape(ev.bridge)} table {ev.table} priority "
                              f"{ev.priority} cookie {ev.cookie:#x}: "
                              f"{escape(ev.flow or '')}[/]{_counters(ev.counters)}",
                              highlight=False)
            for change in ev.changes:
                console.print(f"{pad}│   [green]{escape(str(change))}[/]", highlight=False)
        elif ev.kind == StepKind.MISS:
            if level == "detailed":
                console.print(f"{pad}│   [dim]{escape(ev.bridge)} {escape(ev.text)}[/]",
                              highlight=False)
        elif ev.kind in _EVENTS:
            if ev.kind == StepKind.EXIT:
                continue  # verdicts say it, with the packet
            if ev.kind == StepKind.PATCH:
                context = None
            style = {"ct": "magenta", "recirc": "magenta", "group": "yellow",
                     "patch": "blue", "ttl": "red", "skip": "dim",
                     "unknown": "yellow"}.get(ev.kind, "white")
            console.print(f"{pad}│   [{style}]{escape(ev.text)}[/]", highlight=False)
            if ev.changes:
                console.print(f"{pad}│     [bold green]{escape(', '.join(map(str, ev.changes)))}"
                              "[/]", highlight=False)


def _counters(counters: dict | None) -> str:
    """`` n_packets=… n_bytes=…`` as read; a flow the trace takes whose counter is 0 is
    flagged: no real packet had taken it when the node was read."""
    if counters is None:
        return ""
    text = f" [dim]n_packets={counters['n_packets']} n_bytes={counters['n_bytes']}[/]"
    return text + (" [yellow]never hit[/]" if counters["n_packets"] == 0 else "")


def _verdict_line(verdict, console: Console, pad: str) -> None:
    style = _VERDICT_STYLE.get(verdict.kind, "white")
    mark = _VERDICT_MARK.get(verdict.kind, "•")
    console.print(f"{pad}[{style}]{mark} {escape(verdict.text)}[/] [dim]⇒ "
                  f"{escape(describe(verdict.packet))}[/]", highlight=False)


def render_step(number: int, step: ConversationStep, console: Console, level: str) -> None:
    """One packet of a conversation: its name and entry, the ct() states it got, its
    verdicts on one line each (the full trace under it with --detailed)."""
    who = "reply" if step.reply else "client"
    console.print(f"[bold]{number}. {escape(step.name)}[/] [dim]({who}) from "
                  f"{escape(step.request['entry'])} on {escape(step.request['chassis'])}[/]",
                  highlight=False)
    if level == "detailed":
        render_trace(step.annotated, console, level)
        return
    hits = "; ".join(str(hit) for hit in step.ct) or "no ct()"
    console.print(f"   [magenta]ct: {escape(hits)}[/]", highlight=False)
    for verdict in step.annotated.verdicts:
        _verdict_line(verdict, console, "   ")


def print_conversation(result: TraceResult, console: Console, level: str) -> None:
    planned = result.request.get("conversation") or []
    console.print(f"[bold]Conversation[/] on one conntrack: {escape(', '.join(planned))}",
                  highlight=False)
    for n, step in enumerate(result.conversation or [], 1):
        console.print()
        render_step(n, step, console, level)
    if result.stopped:
        console.print()
        console.print(f"[yellow]stopped: {escape(result.stopped)}[/]", highlight=False)


def _simulated_first(result: TraceResult, console: Console) -> None:
    """--step/--established: say which packets established the connection, and how."""
    done = ", ".join(f"{s.name} ({s.verdict_line})" for s in result.simulated_first)
    name = result.request.get("step")
    if done:
        console.print(f"[bold]{escape(name)}[/]: {escape(done)} simulated first on the "
                      "same conntrack, to establish the connection it belongs to",
                      highlight=False)
    else:
        console.print(f"[bold]{escape(name)}[/]: the first packet of the connection",
                      highlight=False)
    if result.stopped:
        console.print(f"[yellow]{escape(result.stopped)}[/]", highlight=False)
    console.print()


def print_trace_result(result: TraceResult, level: str | None = None) -> None:
    """``ofrace trace``'s text: the trace, the reply, and --check-logical's answer."""
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 140)
    if result.conversation is not None:
        print_conversation(result, console, level or "default")
        return
    if "step" in result.request:
        _simulated_first(result, console)
    render_trace(result.annotated, console, level or "default")
    if result.back is not None:
        console.print()
        render_trace(result.back, console, level or "default", title="Reply")
    elif result.reply_not_run:
        console.print()
        console.print(f"[bold]Reply[/]: [yellow]not traced: {escape(result.reply_not_run)}[/]",
                      highlight=False)
    logical = result.logical
    if logical is not None:
        console.print()
        style = "green" if logical["agree"] else "red"
        console.print(f"[bold]Logical view (ovn-trace)[/]: "
                      f"[{style}]{escape(logical['summary'])}[/]", highlight=False)
        if logical.get("detail"):
            console.print(escape(logical["detail"], multiline=True), highlight=False)
        cause = logical.get("cause")
        if cause:
            style = "yellow" if cause["kind"] == "ovn-trace limitation" else "red"
            console.print(f"    [{style}]{escape(cause['kind'])}: {escape(cause['name'])}[/] — "
                          f"{escape(cause['why'])}", highlight=False)
            if cause.get("source"):
                console.print(f"    source: {escape(cause['source'])}", highlight=False)
            console.print(f"    {escape(cause['follows'])}", highlight=False)
        for note in logical.get("notes") or []:
            console.print(f"    [dim]note: {escape(note)}[/]", highlight=False)
