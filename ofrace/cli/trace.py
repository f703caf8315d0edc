"""``ofrace trace``: one packet through every chassis, both directions, with its meaning."""

from __future__ import annotations

import sys
from importlib import import_module

import click

from ofrace.annotate.session import TraceRequest, run_trace
from ofrace.cli.options import json_option, request_body_options, snapshot_source
from ofrace.collect.source import snapshot_for_trace
from ofrace.render.collect import live_progress, warn
from ofrace.render.trace_html import print_trace


@click.command()
@click.argument("expression", required=False)
@snapshot_source(snapshot="Trace offline on a snapshot file.",
                 inventory="Read the cluster now (what the trace needs) from this inventory.")
@click.option("--from", "source_port", metavar="PORT",
              help="Short form: the logical port sending.")
@click.option("--to", "destination", metavar="IP[:PORT]", help="Short form: the destination.")
@click.option("--tcp", "protocol", flag_value="tcp", default=True, help="TCP SYN (default).")
@click.option("--udp", "protocol", flag_value="udp")
@click.option("--icmp", "protocol", flag_value="icmp", help="ICMP echo (ICMPv6 for IPv6).")
@request_body_options
@click.option("--chassis", help="Where the inport is, when the SB cannot tell (localnet).")
@click.option("--reply", is_flag=True, help="Then trace the answer back, with the conntrack "
              "state the first trace left.")
@click.option("--conversation", is_flag=True, help="Every packet of the connection on one "
              "conntrack: TCP SYN to last ACK, UDP request and reply, ICMP echo and reply.")
@click.option("--step", metavar="NAME", help="One packet of the connection (ACK, data, FIN, "
              "SYN-ACK, …), the packets before it simulated first on the same conntrack.")
@click.option("--established", is_flag=True, help="The packet as part of an established "
              "connection in its own direction (TCP: the ACK; or --step): opened first.")
@click.option("--bucket", "buckets", multiple=True, metavar="GROUP=BUCKET",
              help="Choose a select group's bucket (default: the one OVS's hash picks; "
                   "where that is unknowable, e.g. kernel dp_hash, every bucket as a branch).")
@click.option("--ct-next", "ct_next", multiple=True, metavar="FLAGS",
              help="Force the ct_state of the next ct() recirculation (repeat; like "
                   "ofproto/trace --ct-next, e.g. trk,inv; states of an existing "
                   "connection are refused: use --reply). Default: a conntrack model.")
@click.option("--ct", type=click.Choice(["node", "empty"]), default="node",
              help="Conntrack starts from the node's connection table in the snapshot "
                   "(default) or empty.")
@click.option("--summary", "level", flag_value="summary", help="Hops and verdicts only.")
@click.option("--detailed", "level", flag_value="detailed",
              help="Every logical stage and every OpenFlow flow.")
@json_option("Schema ofrace-trace/1 (docs/trace-json.md).")
@click.option("--html", "html_file", metavar="FILE", help="Also write the path as a page.")
@click.option("--svg", "svg_file", metavar="FILE", help="Also write the path as an SVG.")
@click.option("--check-logical", is_flag=True, help="Also run ovn-trace (logical view) with "
              "the same packet and conntrack states, and show where logical and physical part.")
def trace(expression, source, source_port, destination, protocol, body, chassis, reply,
          conversation, step, established, buckets, ct_next, ct, level, as_json, html_file,
          svg_file, check_logical):
    """Trace a packet through the real OpenFlow tables of every chassis it crosses.

    EXPRESSION is the microflow ovn-trace takes, e.g.
    'inport == "vm1" && eth.src == … && ip4.dst == 192.0.2.2 && ip.ttl == 64 && tcp.dst == 80'.
    Or use the short form: --from vm1 --to 192.0.2.2:80 --tcp.

    Exit codes: 0 delivered (or left the cluster), 1 not delivered (dropped, held by
    ovn-controller, loop), 2 bad input, 3 the trace hit something it could not simulate,
    4 unknown: the answer depends on data the snapshot lacks (flows never read, garbled
    flow lines on the path, no Southbound database), 5 the environment failed (ovn-trace
    for --check-logical missing or failing).
    """
    request = TraceRequest.from_options(expression, source_port, destination, protocol,
                                        chassis, reply, buckets, ct_next, conversation, step,
                                        established, ct, body)
    with live_progress(not source.snapshot_file) as progress, \
            snapshot_for_trace(source, warn, progress, request) as snapshot:
        result = run_trace(snapshot, request)   # reads each node as the packet reaches it
    if check_logical:
        # imported only when asked: every trace pays for what it imports
        result.logical = import_module("ofrace.compare.ovn_trace").check_logical(snapshot, result)
    print_trace(result, level, as_json, html_file, svg_file)
    sys.exit(result.exit_code)
