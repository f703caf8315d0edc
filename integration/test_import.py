"""``ofrace import`` of real sosreports of the kind lab, made now by the real ``sos
report`` (ofrace.lab.sosreport), against a live collect of the same lab at the same
moment: the seed's NodePort SYN and its reply trace the same, audit finds the same.

``$OFRACE_SOS`` says how to run sos (default ``sos``, Debian 12's sos 4.0, which dumps
no groups for OVN's br-int: then the trace must say the groups were not in the
sosreport); e.g. ``env PYTHONPATH=/x python3 /x/bin/sos`` for a checkout of current sos.
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

from ofrace.lab.sosreport import lab_sosreports

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from test_import_sos import SEED, normalize  # noqa: E402

OFRACE = [sys.executable, "-m", "ofrace"]
SOS = shlex.split(os.environ.get("OFRACE_SOS", "sos"))


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*OFRACE, *args], capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(shutil.which(SOS[0]) is None, reason="sos is not installed "
                    "(apt-get install sosreport)")
def test_import_of_sosreports_traces_as_live_collect(kind_lab, tmp_path):
    live = tmp_path / "live.ofr"
    with ThreadPoolExecutor(max_workers=2) as pool:      # the same moment
        reports = pool.submit(lab_sosreports, kind_lab, tmp_path / "sos", SOS)
        collected = _run("collect", "-i", str(kind_lab.layout.inventory_file), "-o", str(live))
        archives = reports.result()
    assert collected.returncode == 0, collected.stderr
    imported = tmp_path / "imported.ofr"
    run = _run("import", "--json", *map(str, archives), "-o", str(imported))
    assert run.returncode in (0, 1), run.stderr
    summary = json.loads(run.stdout)
    assert len([s for s in summary["sources"] if s["kind"] == "node sosreport"]) == 3
    no_groups = any(what == "br-int groups" for ch in summary["chassis"]
                    for what, _ in ch["missing"])
    want = _run("trace", "--snapshot", str(live), "--reply", "--json", SEED)
    got = _run("trace", "--snapshot", str(imported), "--reply", "--json", SEED)
    if no_groups:
        assert got.returncode in (1, 4) and "groups of br-int were not read" in got.stdout
    else:
        assert normalize(json.loads(got.stdout)) == normalize(json.loads(want.stdout))
    want = _run("audit", "--snapshot", str(live), "--json")
    got = _run("audit", "--snapshot", str(imported), "--json")
    assert normalize(json.loads(got.stdout)) == normalize(json.loads(want.stdout))
