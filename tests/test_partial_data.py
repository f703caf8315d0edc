"""Results that depend on data a snapshot lacks say so (verdict "unknown", exit 4), and
bad options are one-line input errors (exit 2).  Broken snapshots are derived from the
recorded lab snapshots: a chassis whose ovs-vswitchd was dead, garbled flow lines, no SB."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import FIXTURES

from ofrace.audit.cluster import audit_snapshot
from ofrace.cli import main
from ofrace.errors import Exit, MissingDataError
from ofrace.snapshot import Problem, Snapshot
from ofrace.trace.cluster import ClusterTracer
from ofrace.trace.request import start_from_short_form

NGINX = "default_nginx-deployment-9456bbbf9-x6pc6"
COREDNS = "10.244.2.5:53"   # on ovn-control-plane, reached from ovn-worker by tunnel
VSWITCHD_DEAD = "ovs-ofctl: br-int: failed to connect to socket (Connection refused)"


def kind() -> Snapshot:
    return Snapshot.load(FIXTURES / "kind" / "snapshot.ofr")


def vswitchd_dead(snapshot: Snapshot, name: str) -> Snapshot:
    """What collect records when ovs-vswitchd is dead on ``name``: no flows, no groups."""
    ch = snapshot.chassis[name]
    for bridge in ch.bridges.values():
        bridge.flows, bridge.groups = [], []
        bridge.errors = {"flows": VSWITCHD_DEAD, "groups": VSWITCHD_DEAD}
        ch.problems.append(Problem(name, f"{bridge.name} flows", VSWITCHD_DEAD))
    return snapshot


class _Run:
    def __init__(self, result):
        self.exit_code = result.exit_code
        self.raw = result.output
        self.output = " ".join(result.output.split())  # wrapped lines joined


def run(args: list[str]) -> _Run:
    result = CliRunner().invoke(main, args)
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return _Run(result)


def trace_verdicts(snapshot: Snapshot, source=NGINX, to=COREDNS):
    tracer = ClusterTracer(snapshot)
    return tracer.trace(start_from_short_form(tracer, source, to, "udp")).verdicts()


# --------------------------------------------------------------------------- trace


def test_intact_snapshot_delivers():  # the negative control for the tests below
    (verdict,) = trace_verdicts(kind())
    assert verdict.kind == "delivered"


def test_trace_into_a_chassis_whose_flows_were_not_read_is_unknown():
    (verdict,) = trace_verdicts(vswitchd_dead(kind(), "ovn-control-plane"))
    assert verdict.kind == "unknown"
    assert "ovn-control-plane" in verdict.text and "not read" in verdict.text
    assert "no flow matched" not in verdict.text


def test_trace_starting_on_a_chassis_whose_flows_were_not_read_is_unknown():
    (verdict,) = trace_verdicts(vswitchd_dead(kind(), "ovn-worker"))
    assert verdict.kind == "unknown"
    assert "br-int on ovn-worker were not read" in verdict.text
    assert VSWITCHD_DEAD in verdict.text


def test_trace_cli_exits_4_on_unknown(tmp_path):
    path = tmp_path / "dead.ofr"
    vswitchd_dead(kind(), "ovn-control-plane").save(path)
    result = run(["trace", "--snapshot", str(path), "--from", NGINX, "--to", COREDNS, "--udp"])
    assert result.exit_code == Exit.UNKNOWN, result.output
    assert "unknown" in result.output and "were not read" in result.output
    as_json = run(["trace", "--snapshot", str(path), "--from", NGINX, "--to", COREDNS,
                   "--udp", "--json"])
    assert as_json.exit_code == Exit.UNKNOWN
    assert [v["kind"] for v in json.loads(as_json.raw)["verdicts"]] == ["unknown"]


def test_reply_after_an_unknown_forward_trace_is_unknown_not_an_input_error(tmp_path):
    path = tmp_path / "dead.ofr"
    vswitchd_dead(kind(), "ovn-control-plane").save(path)
    result = run(["trace", "--snapshot", str(path), "--from", NGINX, "--to", COREDNS, "--udp",
                  "--reply", "--summary"])
    assert result.exit_code == Exit.UNKNOWN, result.output
    # the reply is said not to have run, and why; it is not shown as traced
    assert "Reply: not traced: whether the request arrives is unknown" in result.output
    assert "Reply\n" not in result.output


def test_trace_from_an_uncollected_chassis_is_unknown():
    snapshot = kind()
    snapshot.chassis["ovn-worker"].reachable = False
    snapshot.chassis["ovn-worker"].problems = [Problem("ovn-worker", "collect", "timed out")]
    with pytest.raises(MissingDataError, match="timed out"):
        trace_verdicts(snapshot)


def _hits(snapshot: Snapshot, chassis: str):
    tracer = ClusterTracer(snapshot)
    result = tracer.trace(start_from_short_form(tracer, NGINX, COREDNS, "udp"))
    hop = next(h for h in result.hops if h.start.chassis == chassis)
    return [s for s in hop.root.walk() if s.kind == "flow" and s.bridge == "br-int"]


def test_a_garbled_line_that_may_outrank_the_hit_makes_the_trace_unknown():
    snapshot = kind()
    flows = snapshot.chassis["ovn-worker"].bridges["br-int"].flows
    hit = _hits(snapshot, "ovn-worker")[3]
    # A line of the same table, garbled so that neither its match nor its priority reads.
    victim = next(i for i, line in enumerate(flows)
                  if f"table={hit.table}," in line and i != hit.data["flow_index"])
    flows[victim] = flows[victim].replace("priority=", "prio#ity=")
    (verdict,) = trace_verdicts(snapshot)
    assert verdict.kind == "unknown"
    assert f"table {hit.table}" in verdict.text and "could not be read" in verdict.text


def test_a_garbled_line_below_the_hit_changes_nothing():
    snapshot = kind()
    flows = snapshot.chassis["ovn-worker"].bridges["br-int"].flows
    lower = next(i for hit in _hits(snapshot, "ovn-worker") for i, line in enumerate(flows)
                 if f"table={hit.table}," in line and "priority=" in line
                 and int(line.split("priority=")[1].split(",")[0].split(" ")[0]) < hit.priority)
    flows[lower] = flows[lower].replace(" actions=", ",frobnicate=1 actions=")
    (verdict,) = trace_verdicts(snapshot)
    assert verdict.kind == "delivered"


def test_the_matching_line_garbled_makes_the_trace_unknown():
    snapshot = kind()
    flows = snapshot.chassis["ovn-worker"].bridges["br-int"].flows
    hit = _hits(snapshot, "ovn-worker")[2]
    line = flows[hit.data["flow_index"]]
    flows[hit.data["flow_index"]] = line.replace("cookie=0x", "cookie=0xZZ", 1)
    verdicts = trace_verdicts(snapshot)
    assert [v.kind for v in verdicts] == ["unknown"]


def test_five_percent_garbled_lines_never_drop_silently():
    snapshot = kind()
    for ch in snapshot.chassis.values():
        flows = ch.bridges["br-int"].flows
        for i in range(0, len(flows), 20):
            flows[i] = flows[i][: len(flows[i]) // 2] + "\x00#garbage"
    verdicts = trace_verdicts(snapshot)
    assert verdicts and all(v.kind in ("unknown", "delivered") for v in verdicts), verdicts


def test_no_southbound_is_said_by_trace_show_and_audit(tmp_path):
    snapshot = kind()
    snapshot.southbound = None
    assert not snapshot.complete
    path = tmp_path / "nosb.ofr"
    snapshot.save(path)
    trace = run(["trace", "--snapshot", str(path), "--from", NGINX, "--to", COREDNS])
    assert trace.exit_code == Exit.UNKNOWN
    assert "the snapshot has no Southbound database: logical ports cannot be resolved" \
        in trace.output
    assert "unknown logical port" not in trace.output
    show = run(["show", "--json", str(path)])
    assert json.loads(show.raw)["complete"] is False
    assert "southbound" in run(["show", str(path)]).output
    audit = run(["audit", "--snapshot", str(path)])
    assert audit.exit_code == Exit.UNKNOWN and "no Southbound" in audit.output


# --------------------------------------------------------------------------- audit


def test_audit_says_not_audited_instead_of_missing(tmp_path):
    snapshot = vswitchd_dead(kind(), "ovn-worker2")
    result = audit_snapshot(snapshot)
    dead = next(c for c in result.chassis if c.chassis == "ovn-worker2")
    assert dead.logical is None and "were not read" in dead.unreadable
    assert not result.found and not result.complete
    path = tmp_path / "dead.ofr"
    snapshot.save(path)
    cli = run(["audit", "--snapshot", str(path)])
    assert cli.exit_code == Exit.UNKNOWN, cli.output
    assert "not audited" in cli.output and "MISSING on ovn-worker2" not in cli.output
    intact = run(["audit", "--snapshot", str(FIXTURES / "kind" / "snapshot.ofr")])
    assert intact.exit_code == Exit.OK, intact.output  # negative control


def test_audit_counts_and_names_garbled_lines(tmp_path):
    snapshot = kind()
    flows = snapshot.chassis["ovn-worker"].bridges["br-int"].flows
    garbled = []
    for i in range(0, len(flows), 20):
        flows[i] = "cookie=0xnothex, " + flows[i][30:] if i % 40 else flows[i][:40]
        garbled.append(flows[i])
    result = audit_snapshot(snapshot)
    worker = next(c for c in result.chassis if c.chassis == "ovn-worker")
    assert worker.logical.garbled == garbled
    assert not worker.complete
    path = tmp_path / "garbled.ofr"
    snapshot.save(path)
    cli = run(["audit", "--snapshot", str(path), "--json"])
    assert cli.exit_code in (Exit.FOUND, Exit.UNKNOWN)
    doc = json.loads(cli.raw)
    assert doc["complete"] is False
    assert doc["chassis"]["ovn-worker"]["garbled"] == garbled


def test_audit_unknown_chassis_is_an_input_error():
    cli = run(["audit", "--snapshot", str(FIXTURES / "kind" / "snapshot.ofr"),
               "--chassis", "ovn-wroker"])
    assert cli.exit_code == Exit.INPUT
    assert "ovn-wroker" in cli.output and "ovn-worker2" in cli.output
    assert cli.raw.strip().count("\n") == 0


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize("bucket, message", [
    ("9=1", "no bridge in the snapshot has group 9"),
    ("1=5", "group 1 has 1 bucket(s)"),
    ("1=x", "expected GROUP=BUCKET"),
    ("99999999999999999999=0", "expected GROUP=BUCKET"),
])
def test_bucket_is_validated(bucket, message):
    cli = run(["trace", "--snapshot", str(FIXTURES / "kind" / "snapshot.ofr"), "--from", NGINX,
               "--to", COREDNS, "--bucket", bucket])
    assert cli.exit_code == Exit.INPUT and message in cli.output
    assert cli.raw.strip().count("\n") == 0


def test_a_valid_bucket_is_accepted():
    cli = run(["trace", "--snapshot", str(FIXTURES / "kind" / "snapshot.ofr"), "--from", NGINX,
               "--to", COREDNS, "--udp", "--bucket", "1=0", "--summary"])
    assert cli.exit_code == Exit.OK, cli.output


@pytest.mark.parametrize("port", ["99999", "-1", "65536", "1e3", "٣"])
def test_destination_port_is_validated(port):
    cli = run(["trace", "--snapshot", str(FIXTURES / "kind" / "snapshot.ofr"), "--from", NGINX,
               "--to", f"10.244.2.5:{port}", "--udp"])
    assert cli.exit_code == Exit.INPUT and "bad port" in cli.output


def test_show_says_what_failed_instead_of_a_tick(tmp_path):
    snapshot = kind()
    worker = snapshot.chassis["ovn-worker"]
    worker.ovsdb = {}
    worker.bridges = {}
    worker.problems.append(Problem("ovn-worker", "local OVSDB", "database connection failed"))
    path = tmp_path / "noovsdb.ofr"
    snapshot.save(path)
    show = run(["show", str(path)])
    row = next(line for line in show.raw.splitlines() if line.split("│")[0].strip() == "ovn-worker")
    assert "OVSDB not read" in row and "OVS " not in row
    assert "database connection failed" in show.output
    intact = run(["show", str(FIXTURES / "kind" / "snapshot.ofr")]).raw
    assert "OVSDB not read" not in intact and "OVS " in intact


def test_collect_progress_marks_a_node_read_with_problems():
    import io

    from rich.console import Console

    from ofrace.collect.cluster import _node_done
    from ofrace.render.collect import ProgressPrinter

    snapshot = kind()
    worker = snapshot.chassis["ovn-worker"]
    worker.problems.append(Problem("ovn-worker", "local OVSDB", "database connection failed"))
    events = []
    _node_done(Snapshot(), worker, events.append)
    _node_done(Snapshot(), snapshot.chassis["ovn-worker2"], events.append)
    assert [e.what for e in events] == ["partial", "done"]
    console = Console(file=io.StringIO(), width=200)
    printer = ProgressPrinter(console, 2)
    for event in events:
        printer(event)
    lines = console.file.getvalue().splitlines()
    assert lines[0].startswith("! ovn-worker:") and "1 problems" in lines[0]
    assert lines[1].startswith("✓ ovn-worker2:")
