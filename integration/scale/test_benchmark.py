"""benchmarks/run.py on a small scale lab: one command, a full table, or a loud failure."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_lab_scale import SMALL

pytestmark = [pytest.mark.lab, pytest.mark.scale]

ROOT = Path(__file__).resolve().parents[2]
ROWS = ["br-int flows on one chassis", "collect one chassis (agent, SSH)", "SB logical flows",
        "read the SB (all tables ofrace uses), first", "read the SB again",
        "chassis over SSH in parallel (nodes only)", "+ SB + NB",
        "snapshot file", "index build", "memory per indexed flow", "), warm",
        "same trace, cold", "same trace, live, first", "same trace, live, next",
        "another packet, live", "audit of hv", "audit of all", "peak memory"]
# issue 17's goals: each row says its target and whether it was met
GOALS = ["same trace, cold", "same trace, live, first", "same trace, live, next",
         "audit of hv"]


def test_the_benchmark_prints_every_row_on_a_lab(lab_slot, tmp_path):
    lab = lab_slot.lab
    small = {key: int(value) for key, value in SMALL.items()}
    scale = lab.state.get("scale") or {}
    if lab.state.get("status") != "up" or lab.state.get("topology") != "scale" or \
            {key: scale.get(key) for key in small} != small:
        lab.up("scale", sizes=SMALL)       # test_lab_scale leaves this one up
    table = tmp_path / "results.md"
    run = subprocess.run([sys.executable, "benchmarks/run.py", "--keep", "--quick", "--dir",
                          str(lab.dir), "--markdown", str(table)], cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    for name in ROWS:
        assert name in run.stdout, name
    text = table.read_text()
    assert re.search(r"OVS \d+\.\d+\.\d+, ovn-controller", text), text[:400]
    assert text.count("\n| ") == len(ROWS) + 1  # and the header row
    for goal in GOALS:
        line = next(ln for ln in run.stdout.splitlines() if goal in ln)
        assert "target ≤" in line and ("**met**" in line or "**not met**" in line), line
    assert "read 2 of" in run.stdout          # the live trace read the two chassis crossed
    flows = int(re.search(r"br-int flows on one chassis\s+([\d,]+)", run.stdout)[1]
                .replace(",", ""))
    assert flows > 20_000
    assert lab.state["status"] == "up"  # --keep: the lab it was given stays up


def test_a_failed_step_fails_loudly_without_a_table(tmp_path):
    table = tmp_path / "results.md"
    run = subprocess.run([sys.executable, "benchmarks/run.py", "--keep", "--dir",
                          str(tmp_path / "nolab"), "--markdown", str(table)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.startswith("benchmark FAILED: ") and run.stderr.count("\n") == 1
    assert not table.exists() and run.stdout == ""
