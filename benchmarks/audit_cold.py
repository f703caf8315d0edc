"""The audit of one chassis as a user runs it: ``ofrace audit --snapshot FILE --chassis
NAME --json`` as a new process (issue 17: ≤ 2 s on a 261k-flow chassis).

Usage:  .venv/bin/python benchmarks/audit_cold.py FILE [--chassis NAME ...]
            [--repeat N] [--checkout DIR]

Measured as benchmarks/cold_trace.py measures a trace (its ``run_once``): wall, CPU of
the reaped child, VmHWM; best and median of ``--repeat`` runs, with the load average
before the first.  No ``--chassis``: the whole cluster (in forked workers when cores
are idle; ``OFRACE_AUDIT_WORKERS=1`` serial, ``=2`` two workers whatever the load).
``--checkout DIR`` times an older checkout on the same file.  Exit 1 if the runs' outputs differ.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cold_trace import ROOT, _children_cpu, run_once  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("snapshot")
    ap.add_argument("--chassis", action="append", default=[])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--checkout", help="time the ofrace of this directory instead")
    ap.add_argument("--save", metavar="FILE", help="write the last run's JSON here")
    args = ap.parse_args()
    compileall.compile_dir(str(Path(args.checkout or ROOT) / "ofrace"), quiet=1)
    argv = ["audit", "--snapshot", str(Path(args.snapshot).resolve()), "--json"]
    for name in args.chassis:
        argv += ["--chassis", name]
    load = os.getloadavg()
    _children_cpu()
    runs = [run_once(argv, args.checkout) for _ in range(args.repeat)]
    walls, cpus, peaks = ([r[i] for r in runs] for i in range(3))
    outputs = {r[3] for r in runs}
    if args.save:
        Path(args.save).write_bytes(runs[-1][3])
    what = ", ".join(args.chassis) or "every chassis"
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"{os.cpu_count()} cores; audit of {what}")
    print(f"audit wall  best {min(walls):.2f} s  median {statistics.median(walls):.2f} s "
          f"(target ≤ 2 s for one chassis)")
    print(f"audit CPU   best {min(cpus):.2f} s  median {statistics.median(cpus):.2f} s")
    print(f"peak memory {max(peaks) / 1024:.0f} MiB (VmHWM)")
    print(f"output      {len(outputs)} distinct over {len(runs)} runs, {len(runs[0][3])} bytes")
    return 0 if len(outputs) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
