"""``ofrace trace``: one packet through every chassis, both directions, with its meaning."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console

from ofrace.annotate.annotated import Annotator
from ofrace.cli.collect import lab_inventory
from ofrace.collect.cluster import collect_cluster
from ofrace.collect.inventory import load_inventory
from ofrace.errors import Exit, InputError
from ofrace.openflow.bridge import parse_groups
from ofrace.render.escape import escape
from ofrace.render.trace_json import trace_json
from ofrace.render.trace_text import render_trace
from ofrace.simulate.conntrack import parse_ct_state
from ofrace.snapshot import Snapshot
from ofrace.trace.cluster import ClusterTracer, TraceOptions
from ofrace.trace.request import (
    reply_start,
    start_from_expression,
    start_from_short_form,
    to_expression,
)

EXIT_DELIVERED, EXIT_NOT_DELIVERED, EXIT_INCOMPLETE = Exit.OK, Exit.FOUND, Exit.GAP
EXIT_UNKNOWN = Exit.UNKNOWN
DELIVERED = {"delivered", "left", "host"}


def _snapshot(snapshot_file, inventory_file, use_lab) -> Snapshot:
    if snapshot_file:
        return Snapshot.load(snapshot_file)
    if use_lab:
        inventory_file = lab_inventory()
    if not inventory_file:
        raise InputError("give --snapshot FILE, or --inventory FILE / --lab to read the "
                         "cluster now")
    inventory = load_inventory(inventory_file)
    if inventory.southbound is None:
        raise InputError("tracing needs the Southbound DB: add [southbound] to the inventory")
    snapshot = collect_cluster(inventory)
    for problem in snapshot.all_problems():
        click.echo(escape(f"ofrace: warning: {problem.where} {problem.what}: {problem.error}",
                          markup=False), err=True)
    return snapshot


def check_against_ovn_trace(snapshot, forward, annotated, expression: str) -> dict:
    """Run ovn-trace on the snapshot's SB with the engine's ct choices; compare."""
    import shutil
    import subprocess

    from ofrace.compare.ovn_trace import (
        ct_arguments,
        first_divergence,
        parse_ovn_trace,
        physical_steps,
        trivial_lflows,
    )

    sb = snapshot.southbound
    if shutil.which("ovn-trace") is None:
        raise InputError("--check-logical needs ovn-trace here (apt-get install ovn-common)")
    if sb is None or not sb.remote or sb.via != "local":
        raise InputError("--check-logical needs the SB remote readable from here")
    states = [s.data["state"] for hop in forward.hops for s in hop.root.walk()
              if s.kind == "ct" and s.data.get("recirculates")]
    argv = ["ovn-trace", f"--db={sb.remote}", *ct_arguments(states), expression]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        raise InputError(f"ovn-trace failed: {run.stderr.strip().splitlines()[-1:]}")
    logical = parse_ovn_trace(run.stdout)
    physical = physical_steps(annotated)
    divergence = first_divergence(physical, logical,
                                  trivial_lflows(sb.tables.get("Logical_Flow", [])))
    if divergence is None:
        return {"agree": True, "summary": f"same {len(physical)} logical flows",
                "command": argv}
    return {"agree": False, "command": argv, "index": divergence.index,
            "summary": f"they part after {divergence.index} logical flows in common",
            "physical": str(divergence.physical) if divergence.physical else None,
            "logical": str(divergence.logical) if divergence.logical else None,
            "detail": str(divergence)}


def _buckets(values) -> dict[int, int]:
    result = {}
    for value in values:
        group, sep, bucket = value.partition("=")
        if (not sep or not group.isdigit() or not bucket.isdigit() or len(group) > 10
                or len(bucket) > 10):
            raise InputError(f"--bucket {value!r}: expected GROUP=BUCKET, e.g. 3=0")
        result[int(group)] = int(bucket)
    return result


def check_buckets(snapshot: Snapshot, buckets: dict[int, int]) -> None:
    """Each ``--bucket G=B`` names a group some read bridge has, with a bucket B."""
    if not buckets:
        return
    sizes: dict[int, set[int]] = {}
    for ch in snapshot.chassis.values():
        for bridge in ch.bridges.values():
            for group in parse_groups(bridge.groups):
                sizes.setdefault(group.group_id, set()).add(len(group.buckets))
    for group_id, bucket in sorted(buckets.items()):
        if group_id not in sizes:
            known = ", ".join(map(str, sorted(sizes)[:20])) or "none"
            raise InputError(f"--bucket {group_id}={bucket}: no bridge in the snapshot has "
                             f"group {group_id} (groups: {known})")
        most = max(sizes[group_id])
        if bucket >= most:
            raise InputError(f"--bucket {group_id}={bucket}: group {group_id} has "
                             f"{most} bucket(s) (0-{most - 1})" if most else
                             f"--bucket {group_id}={bucket}: group {group_id} has no buckets")


@click.command()
@click.argument("expression", required=False)
@click.option("--snapshot", "snapshot_file", type=click.Path(dir_okay=False),
              help="Trace offline on a snapshot file.")
@click.option("-i", "--inventory", "inventory_file", type=click.Path(dir_okay=False),
              help="Read the cluster now (what the trace needs) from this inventory.")
@click.option("--lab", "use_lab", is_flag=True, help="Read the embedded lab now.")
@click.option("--from", "source", metavar="PORT", help="Short form: the logical port sending.")
@click.option("--to", "destination", metavar="IP[:PORT]", help="Short form: the destination.")
@click.option("--tcp", "protocol", flag_value="tcp", default=True, help="TCP SYN (default).")
@click.option("--udp", "protocol", flag_value="udp")
@click.option("--icmp", "protocol", flag_value="icmp", help="ICMP echo (ICMPv6 for IPv6).")
@click.option("--chassis", help="Where the inport is, when the SB cannot tell (localnet).")
@click.option("--reply", is_flag=True, help="Then trace the answer back, with the conntrack "
              "state the first trace left.")
@click.option("--bucket", "buckets", multiple=True, metavar="GROUP=BUCKET",
              help="Choose a select group's bucket (the datapath hashes; default: stable "
                   "choice from the 5-tuple).")
@click.option("--ct-next", "ct_next", multiple=True, metavar="FLAGS",
              help="Force the ct_state of the next ct() recirculation (repeat; like "
                   "ofproto/trace --ct-next, e.g. trk,est). Default: a conntrack model.")
@click.option("--summary", "level", flag_value="summary", help="Hops and verdicts only.")
@click.option("--detailed", "level", flag_value="detailed",
              help="Every logical stage and every OpenFlow flow.")
@click.option("--json", "as_json", is_flag=True, help="Schema ofrace-trace/1 (docs/trace-json.md).")
@click.option("--check-logical", is_flag=True,
              help="Also run ovn-trace (logical view) with the same packet and conntrack states, "
                   "and show where logical and physical part.")
def trace(expression, snapshot_file, inventory_file, use_lab, source, destination, protocol,
          chassis, reply, buckets, ct_next, level, as_json, check_logical):
    """Trace a packet through the real OpenFlow tables of every chassis it crosses.

    EXPRESSION is the microflow ovn-trace takes, e.g.
    'inport == "vm1" && eth.src == … && ip4.dst == 10.0.0.2 && ip.ttl == 64 && tcp.dst == 80'.
    Or use the short form: --from vm1 --to 10.0.0.2:80 --tcp.

    Exit codes: 0 delivered (or left the cluster), 1 not delivered (dropped, held by
    ovn-controller, loop), 2 bad input, 3 the trace hit something it could not simulate,
    4 unknown: the answer depends on data the snapshot lacks (flows never read, garbled
    flow lines on the path, no Southbound database).
    """
    if bool(expression) == bool(source):
        raise InputError("give either a microflow EXPRESSION or --from PORT --to IP")
    if source and not destination:
        raise InputError("--from needs --to IP[:PORT]")
    forced = None
    if ct_next:
        try:
            forced = [parse_ct_state(s) for s in ct_next]
        except ValueError as exc:
            raise InputError(f"--ct-next: {exc}") from None
    selected = _buckets(buckets)
    snapshot = _snapshot(snapshot_file, inventory_file, use_lab)
    check_buckets(snapshot, selected)
    tracer = ClusterTracer(snapshot, TraceOptions(select_buckets=selected, ct_next=forced))
    if expression:
        start = start_from_expression(tracer, expression, chassis)
        request = {"expression": expression}
    else:
        start = start_from_short_form(tracer, source, destination, protocol, chassis)
        request = {"from": source, "to": destination, "protocol": protocol}
    request.update(chassis=start.chassis, entry=start.entry)
    forward = tracer.trace(start)
    annotator = Annotator(tracer.names)
    annotated = annotator.trace(forward)
    back = back_request = None
    if reply:
        delivered = [v for v in forward.verdicts() if v.kind in ("delivered", "left")]
        if not delivered and any(v.kind == "unknown" for v in forward.verdicts()):
            reply = False  # whether it arrives is unknown: shown, and exit 4, below
        elif not delivered:
            raise InputError("--reply: the packet was not delivered anywhere to answer from")
    if reply:
        back_start = reply_start(tracer, delivered[0])
        back = annotator.trace(tracer.trace(back_start))
        back_request = {"from": delivered[0].logical_port or delivered[0].port,
                        "chassis": back_start.chassis, "entry": back_start.entry}
    logical = None
    if check_logical:
        text = expression or to_expression(start.packet, source)
        logical = check_against_ovn_trace(snapshot, forward, annotated, text)
    if as_json:
        doc = trace_json(annotated, request, back, back_request)
        if logical is not None:
            doc["check_logical"] = logical
        click.echo(json.dumps(doc, indent=2))
    else:
        console = Console(width=None if sys.stdout.isatty() else 140)
        render_trace(annotated, console, level or "default")
        if back is not None:
            console.print()
            render_trace(back, console, level or "default", title="Reply")
        if logical is not None:
            console.print()
            style = "green" if logical["agree"] else "red"
            console.print(f"[bold]Logical view (ovn-trace)[/]: "
                          f"[{style}]{escape(logical['summary'])}[/]", highlight=False)
            if logical.get("detail"):
                console.print(escape(logical["detail"], multiline=True), highlight=False)
    sys.exit(exit_code(annotated.verdicts, back.verdicts if back else None))


def exit_code(forward: list, back: list | None = None) -> Exit:
    """Delivered (0); else could not know (4: data missing on the way) before cannot
    simulate (3) before not delivered (1).  With a reply, both directions count."""
    codes = [_direction_code(forward)] + ([_direction_code(back)] if back is not None else [])
    order = (EXIT_UNKNOWN, EXIT_INCOMPLETE, EXIT_NOT_DELIVERED, EXIT_DELIVERED)
    return next(code for code in order if code in codes)


def _direction_code(verdicts: list) -> Exit:
    if any(v.kind in DELIVERED for v in verdicts):
        return EXIT_DELIVERED
    if any(v.kind == "unknown" for v in verdicts):
        return EXIT_UNKNOWN
    if any(v.kind == "error" for v in verdicts):
        return EXIT_INCOMPLETE
    return EXIT_NOT_DELIVERED
