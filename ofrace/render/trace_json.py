"""A trace for machines: ``--json``, schema ``ofrace-trace/1`` (docs/trace-json.md).

Stable keys, packets both as one readable line and as named fields (MACs and
IPs as text, numbers as numbers), so scripts can gate on a verdict or
compare the final packet without parsing text.
"""

from __future__ import annotations

import json

import click

from ofrace import __version__
from ofrace.annotate.annotated import AnnotatedHop, AnnotatedTrace, AnnotatedVerdict, Event
from ofrace.annotate.session import ConversationStep, TraceResult
from ofrace.openflow.fields import FIELDS, format_value
from ofrace.simulate.packet import describe
from ofrace.simulate.steps import StepKind
from ofrace.trace.cluster import Verdict

SCHEMA = "ofrace-trace/1"


BODY_KEYS = ("dhcp_reply", "nd_ra", "dns_reply")


def without_counters(doc):
    """A trace document without its flows' counters: what the node observed when it was
    read (n_packets, duration), which differs between any two reads of the same tables,
    so two traces of one cluster (a file and a live read, two live reads) compare equal."""
    if isinstance(doc, dict):
        return {k: without_counters(v) for k, v in doc.items() if k != "counters"}
    if isinstance(doc, list):
        return [without_counters(v) for v in doc]
    return doc


def packet_json(packet: dict) -> dict:
    fields = {}
    for name, value in sorted(packet.items()):
        spec = FIELDS.get(name)
        if spec is None or value == 0 and name not in ("in_port", "nw_ttl"):
            continue
        fields[name] = format_value(spec, value) if spec.kind in ("mac", "ipv4", "ipv6") \
            else value
    out = {"summary": describe(packet), "fields": fields}
    body = {k: list(packet[k]) for k in BODY_KEYS if packet.get(k)}
    if body:   # an answer ovn-controller built: its DHCP/DHCPv6/RA/DNS body, in wire order
        out["body"] = body
    return out


def _event(ev: Event) -> dict:
    out = {"kind": ev.kind, "bridge": ev.bridge, "depth": ev.depth}
    if ev.kind == StepKind.FLOW:
        out.update({
            "table": ev.table, "priority": ev.priority, "cookie": f"{ev.cookie:#x}",
            "flow": ev.flow, "datapath": ev.datapath, "inport": ev.inport,
            "outport": ev.outport,
            "logical_flow": None if ev.stage is None else {
                "stage": ev.stage, "pipeline": ev.pipeline, "match": ev.logical_match,
                "actions": ev.logical_actions, "source": ev.source},
            "cms": {role: name.as_json() for role, name in ev.cms.items()},
            "northbound": ev.northbound, "owner": ev.owner,
            "cookie_collision": ev.collision,
            "counters": counters_json(ev.counters),
            "changes": [{"field": c.field, "before": c.before, "after": c.after}
                        for c in ev.changes]})
    else:
        out["text"] = ev.text
        if ev.table is not None:
            out["table"] = ev.table
        if ev.changes:
            out["changes"] = [{"field": c.field, "before": c.before, "after": c.after}
                              for c in ev.changes]
        if ev.conntrack is not None:
            out["conntrack"] = ev.conntrack
    return out


def counters_json(counters: dict | None) -> dict | None:
    """A flow's counters when the node was read; ``unused`` flags a flow the trace takes
    that no packet had taken (a new flow, or traffic that never goes this way)."""
    if counters is None:
        return None
    return {**counters, "unused": counters["n_packets"] == 0}


def _verdict(v: Verdict | AnnotatedVerdict) -> dict:
    cms = getattr(v, "cms", None)
    return {"kind": v.kind, "chassis": v.chassis, "text": v.text,
            "logical_port": v.logical_port, "cms": cms.as_json() if cms else None,
            "port": v.port, "packet": packet_json(v.packet)}


def _hop(hop: AnnotatedHop) -> dict:
    found = {"chassis": hop.chassis, "bridge": hop.bridge, "entry": hop.entry,
             "cms": hop.cms.as_json() if hop.cms else None,
             "packet_in": packet_json(hop.packet_in), "events": [_event(e) for e in hop.events],
             "verdicts": [_verdict(v) for v in hop.verdicts], "notes": hop.notes,
             "next_hops": [_hop(c) for c in hop.children]}
    if hop.zone is not None:   # interconnect: the OVN zone whose SB annotated the hop
        found["zone"] = hop.zone
    return found


def trace_json(trace: AnnotatedTrace, request: dict, reply: AnnotatedTrace | None = None,
               reply_request: dict | None = None, reply_not_run: str | None = None) -> dict:
    doc = {"schema": SCHEMA, "ofrace_version": __version__, "request": request,
           "trace": _hop(trace.root), "verdicts": [_verdict(v) for v in trace.verdicts]}
    if reply is not None:
        doc["reply"] = {"run": True, "request": reply_request, "trace": _hop(reply.root),
                        "verdicts": [_verdict(v) for v in reply.verdicts]}
    elif reply_not_run:
        doc["reply"] = {"run": False, "why": reply_not_run, "request": None, "trace": None,
                        "verdicts": []}
    return doc


def step_json(step: ConversationStep) -> dict:
    """One packet of a conversation (--conversation's list, --step's ``simulated_first``)."""
    return {"step": step.name, "reply": step.reply, "request": step.request,
            "ct": [{"chassis": h.chassis, "zone": h.zone, "state": h.state,
                    "committed": h.committed, "nat": h.nat} for h in step.ct],
            "trace": _hop(step.annotated.root),
            "verdicts": [_verdict(v) for v in step.annotated.verdicts]}


def print_trace_json(result: TraceResult) -> None:
    """``ofrace trace --json``: the document, with --check-logical's answer if asked."""
    if result.conversation is not None:
        click.echo(json.dumps({"schema": SCHEMA, "ofrace_version": __version__,
                               "request": result.request,
                               "conversation": [step_json(s) for s in result.conversation],
                               "stopped": result.stopped}, indent=2))
        return
    doc = trace_json(result.annotated, result.request, result.back, result.back_request,
                     result.reply_not_run)
    if result.logical is not None:
        doc["check_logical"] = result.logical
    click.echo(json.dumps(doc, indent=2))
