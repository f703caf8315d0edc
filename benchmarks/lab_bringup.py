"""How long `lab up` takes per topology, on this machine (root; the real OVN lab).

Bring-up time is a figure to watch, not a test: on a loaded 2-core machine it varies
by a factor of two, so the integration suite does not assert it.  Each topology is
brought up `--runs` times in a private directory and taken down again; the table shows
the best and the median of the times the lab itself recorded.

    .venv/bin/python benchmarks/lab_bringup.py [--topology kind --topology acl] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile

from ofrace.errors import OfraceError
from ofrace.lab.lab import Lab


def measure(topology: str, runs: int) -> list[float]:
    times = []
    with tempfile.TemporaryDirectory(prefix=f"ofrace-bringup-{topology}-") as lab_dir:
        lab = Lab(lab_dir)
        try:
            for _ in range(runs):
                lab.up(topology)
                times.append(lab.state["bringup_seconds"])
        finally:
            if lab.state.get("processes") or lab.state.get("namespaces"):
                lab.down()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topology", action="append", help="kind, acl, basic (repeat)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print("| topology | best | median | runs |\n|---|---:|---:|---:|")
    for topology in args.topology or ["kind", "acl", "basic"]:
        try:
            times = measure(topology, args.runs)
        except OfraceError as exc:
            print(f"benchmark FAILED: {topology}: {exc}", file=sys.stderr)
            return 1
        print(f"| {topology} | {min(times):.1f} s | {statistics.median(times):.1f} s "
              f"| {len(times)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
