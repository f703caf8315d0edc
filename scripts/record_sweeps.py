"""Record every lab topology's `lab verify` sweep for the offline replay in tests/.

Usage (as root):  .venv/bin/python scripts/record_sweeps.py [TOPOLOGY ...] [--out DIR]

For each topology (default: basic, kind, acl): a fresh lab in its own directory
(/var/tmp/ofr-rec-<topology>, so it runs beside any other lab), `ofrace lab verify
--record <out>/<topology>/sweep --json`, and the lab taken down again.  The recording
holds the frames every capture point sent, the connections each datapath listed and the
snapshots read before the conversations (tests/test_verify_replay.py replays them); the
JSON is what the lab printed, which docs/fidelity.md records.  Default out:
tests/fixtures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OFRACE = [sys.executable, "-m", "ofrace"]


def record(topology: str, out: Path) -> dict:
    lab_dir = f"/var/tmp/ofr-rec-{topology}"
    target = out / topology / "sweep"
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run([*OFRACE, "lab", "down", "--dir", lab_dir], capture_output=True)
    subprocess.run([*OFRACE, "lab", "up", "--topology", topology, "--dir", lab_dir],
                   check=True, capture_output=True)
    started = time.monotonic()
    try:
        done = subprocess.run([*OFRACE, "lab", "verify", "--dir", lab_dir, "--record",
                               str(target), "--json"], capture_output=True, text=True)
    finally:
        subprocess.run([*OFRACE, "lab", "down", "--dir", lab_dir], capture_output=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"{topology}: lab verify failed: {done.stderr.strip()[-300:]}")
    report = json.loads(done.stdout)
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("topologies", nargs="*", default=["basic", "kind", "acl"])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures")
    args = parser.parse_args()
    for topology in args.topologies:
        report = record(topology, args.out)
        sent = sum(c["sent"] for c in report["classes"].values())
        equal = sum(c["equal"] for c in report["classes"].values())
        unexplained = sum(m["gap"] == "unexplained" for m in report["mismatches"])
        print(f"{topology}: {sent} sent, {equal} equal, {unexplained} unexplained, "
              f"{report['seconds']} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
