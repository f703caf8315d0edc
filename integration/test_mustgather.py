"""``ofrace import`` of an OpenShift network must-gather–shaped tree of the kind-ic lab
(every zone's clustered NB and SB, copied from the lab's own ovsdb-servers:
ofrace.lab.mustgather) with the nodes' real sosreports, against a live collect of the
same lab at the same moment: cross-zone traces give the same JSON.  The must-gather
alone: the summary says in one line that the OpenFlow tables are missing, a trace
exits 4 (could not know), and the audit still checks each zone against the IC-SB.

``$OFRACE_SOS`` says how to run sos (default ``sos``).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ofrace.lab.mustgather import interconnect_database, must_gather, node_sosreports

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from test_import_sos import normalize  # noqa: E402

pytestmark = pytest.mark.lab
OFRACE = [sys.executable, "-m", "ofrace"]
SOS = shlex.split(os.environ.get("OFRACE_SOS", "sos"))
# The cross-zone packets both must-gather tests trace (the file says which).
_PACKETS = json.loads((ROOT / "tests" / "fixtures" / "mustgather" /
                       "cross_zone_packets.json").read_text())
CROSS_ZONE = [_PACKETS["pod-to-pod"], _PACKETS["pod-to-clusterip"]]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*OFRACE, *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def gathered(lab_slot, tmp_path_factory):
    """The must-gather, the node sosreports, the IC-SB and a live collect, together."""
    lab = lab_slot.ensure("kind-ic")
    tmp = tmp_path_factory.mktemp("mustgather")
    live = tmp / "live.ofr"
    with ThreadPoolExecutor(max_workers=3) as pool:      # the same moment
        sos = pool.submit(node_sosreports, lab, tmp / "sos", SOS)
        tree = pool.submit(must_gather, lab, tmp)
        collected = _run("collect", "-i", str(lab.layout.inventory_file), "-o", str(live))
        archives, top = sos.result(), tree.result()
    assert collected.returncode == 0, collected.stderr
    return {"tmp": tmp, "live": live, "tree": top, "sos": archives,
            "ic": interconnect_database(lab, tmp / "ic")}


def _steps(trace: dict) -> int:
    count, hops = 0, [trace["trace"]]
    while hops:
        hop = hops.pop()
        count += len(hop["events"])
        hops += hop["next_hops"]
    return count


@pytest.mark.skipif(shutil.which(SOS[0]) is None, reason="sos is not installed")
def test_must_gather_and_node_sosreports_trace_as_live_collect(gathered):
    imported = gathered["tmp"] / "imported.ofr"
    run = _run("import", "--json", str(gathered["tree"]), *map(str, gathered["sos"]),
               str(gathered["ic"]), "-o", str(imported))
    assert run.returncode in (0, 1), run.stderr
    summary = json.loads(run.stdout)
    nodes = [s for s in summary["sources"] if s["kind"] == "node sosreport"]
    assert sorted(s["chassis"] for s in nodes) == ["ovn-control-plane", "ovn-worker",
                                                   "ovn-worker2"]
    assert all(f"of zone {s['chassis']}" in s["matched"] for s in nodes)
    # Debian 12's sos 4.0 dumps no groups for br-int: the load-balanced packet then ends
    # where the group is, saying so (as integration/test_import.py)
    no_groups = any(what == "br-int groups" for ch in summary["chassis"]
                    for what, _ in ch["missing"])
    compared = 0
    for n, expression in enumerate(CROSS_ZONE):
        want = _run("trace", "--snapshot", str(gathered["live"]), "--json", expression)
        got = _run("trace", "--snapshot", str(imported), "--json", expression)
        assert want.returncode == 0, want.stdout[-2000:]
        live_trace = json.loads(want.stdout)
        first = live_trace["trace"]
        assert [first["zone"], *(h["zone"] for h in first["next_hops"])] != [first["zone"]]
        if no_groups and n == 1:
            assert got.returncode in (1, 4) and "groups of br-int were not read" in got.stdout
            continue
        assert got.returncode == want.returncode
        assert normalize(json.loads(got.stdout)) == normalize(live_trace)
        compared += _steps(live_trace)
    print(f"{compared} steps equal in the cross-zone traces")
    assert compared > 100


def test_must_gather_alone_says_what_is_missing_in_one_line(gathered):
    imported = gathered["tmp"] / "alone.ofr"
    run = _run("import", str(gathered["tree"]), str(gathered["ic"]), "-o", str(imported))
    assert run.returncode == 1, run.stderr
    missing = [line for line in run.stdout.splitlines() if line.startswith("missing:")]
    assert len(missing) == 1 and "no OpenFlow tables" in missing[0], run.stdout
    assert "3 zones (ovn-control-plane, ovn-worker, ovn-worker2)" in run.stdout
    trace = _run("trace", "--snapshot", str(imported), CROSS_ZONE[0])
    assert trace.returncode == 4, trace.stdout + trace.stderr
    audit = _run("audit", "--snapshot", str(imported), "--json")
    assert audit.returncode == 4, audit.stderr
    chassis = json.loads(audit.stdout)["chassis"]
    # each zone's transit ports were checked against the IC-SB: no notice that they
    # were not, nothing broken (the lab is sound); test_mustgather_fixture shows a
    # fault found this way
    assert set(chassis) == {"ovn-control-plane", "ovn-worker", "ovn-worker2"}
    assert all(c["unreadable"] and not c["notices"] and not c["broken"]
               for c in chassis.values())
    without_ic = _run("import", str(gathered["tree"]), "-o", str(imported))
    assert without_ic.returncode == 1
    audit = json.loads(_run("audit", "--snapshot", str(imported), "--json").stdout)
    assert all("IC-SB is not in the snapshot" in c["notices"][0]["message"]
               for c in audit["chassis"].values())
