"""``ofrace import`` of real sosreports of the kind lab, made now by the real ``sos
report`` (ofrace.lab.sosreport), against a live collect of the same lab at the same
moment: the seed's NodePort SYN and its reply trace the same, audit finds the same."""

from __future__ import annotations

import json
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


def _json(*args: str) -> dict:
    run = subprocess.run([*OFRACE, *args], capture_output=True, text=True, timeout=600)
    assert run.returncode in (0, 1), run.stderr
    return json.loads(run.stdout)


@pytest.mark.skipif(shutil.which("sos") is None, reason="sos is not installed "
                    "(apt-get install sosreport)")
def test_import_of_sosreports_traces_as_live_collect(kind_lab, tmp_path):
    live = tmp_path / "live.ofr"
    with ThreadPoolExecutor(max_workers=2) as pool:      # the same moment
        reports = pool.submit(lab_sosreports, kind_lab, tmp_path / "sos", ["sos"])
        subprocess.run([*OFRACE, "collect", "-i", str(kind_lab.layout.inventory_file),
                        "-o", str(live)], capture_output=True, timeout=600)
        archives = reports.result()
    imported = tmp_path / "imported.ofr"
    run = subprocess.run([*OFRACE, "import", *map(str, archives), "-o", str(imported)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode in (0, 1), run.stderr
    for args in (["trace", "--reply", "--json", SEED], ["audit", "--json"]):
        want = _json(args[0], "--snapshot", str(live), *args[1:])
        got = _json(args[0], "--snapshot", str(imported), *args[1:])
        assert normalize(got) == normalize(want), args[0]
