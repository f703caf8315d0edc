"""The cold trace, as a user at a terminal feels it: ``ofrace trace --snapshot FILE``
as a new process, to the end of its output, and its peak memory (issue 17).

Usage:  .venv/bin/python benchmarks/cold_trace.py FILE --from PORT --to IP[:PORT]
            [--repeat N] [--checkout DIR]

Each run is a new ``python -m ofrace trace … --json`` process: wall time to its exit,
its CPU time (user + system of the reaped child: what the machine's load inflates
less) and its VmHWM, read by the process itself as it exits (``ru_maxrss`` would
carry the parent's size at fork).  Prints the best and the median of ``--repeat`` runs,
and the machine's load average before the first, since 2 shared cores make wall time
noisy.  ``--checkout DIR`` times another checkout's ``ofrace`` (``git archive`` of an
older commit, put first on PYTHONPATH, the editable install's finder set aside) on the
same file: before and after, side by side.  Exit 1 if any run fails.

The checkout's modules are byte-compiled first (``compileall``), as ``pip install``
leaves them: with PYTHONDONTWRITEBYTECODE set (this workplace's machines) every run
would otherwise compile ~60 modules from source, ~0.1 s a user does not pay.
``--no-bytecode`` measures that case too: the checkout's ``__pycache__`` directories
removed and none written (the installed libraries keep theirs, as here).
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)

# The trace as ``python -m ofrace``, VmHWM written to stderr at exit (atexit runs after
# click's sys.exit).
PROBE = ("import atexit, runpy, sys\n"
         "def peak():\n"
         "    for line in open('/proc/self/status'):\n"
         "        if line.startswith('VmHWM'):\n"
         "            sys.stderr.write('\\nVMHWM ' + line.split()[1] + '\\n')\n"
         "atexit.register(peak)\n"
         "import os\n"
         "if os.environ.get('OFRACE_CHECKOUT'):\n"
         "    sys.meta_path[:] = [f for f in sys.meta_path\n"
         "                        if '__editable__' not in getattr(f, '__module__', '')]\n"
         "sys.argv = ['ofrace'] + sys.argv[1:]\n"
         "runpy.run_module('ofrace', run_name='__main__')\n")


def run_once(argv: list[str], checkout: str | None) -> tuple[float, float, int, bytes]:
    """(wall s, CPU s, VmHWM KiB, stdout) of one cold trace."""
    env = dict(os.environ, PYTHONPATH=checkout, OFRACE_CHECKOUT=checkout) if checkout else None
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", PROBE, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=checkout or ROOT, env=env)
    out, err = proc.communicate(timeout=600)
    wall = time.perf_counter() - t0
    cpu = _children_cpu()
    if proc.returncode not in (0, 1) or not out.startswith(b"{"):
        raise SystemExit(f"cold trace failed (exit {proc.returncode}): {err.decode()[-400:]}")
    peak = next(int(line.split()[1]) for line in err.decode().splitlines()
                if line.startswith("VMHWM "))
    return wall, cpu, peak, out


_last_cpu = [0.0]


def _children_cpu() -> float:
    """CPU of the child just reaped (the difference in the children's totals)."""
    times = os.times()
    total = times.children_user + times.children_system
    spent, _last_cpu[0] = total - _last_cpu[0], total
    return spent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("snapshot")
    ap.add_argument("--from", dest="source", required=True)
    ap.add_argument("--to", dest="destination", required=True)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--checkout", help="time the ofrace of this directory instead")
    ap.add_argument("--no-bytecode", action="store_true",
                    help="do not byte-compile the checkout first")
    args = ap.parse_args()
    package = Path(args.checkout or ROOT) / "ofrace"
    if args.no_bytecode:
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
        for cache in package.rglob("__pycache__"):
            shutil.rmtree(cache)
    else:
        compileall.compile_dir(str(package), quiet=1)
    argv = ["trace", "--snapshot", str(Path(args.snapshot).resolve()), "--from", args.source,
            "--to", args.destination, "--tcp", "--json"]
    load = os.getloadavg()
    _children_cpu()
    runs = [run_once(argv, args.checkout) for _ in range(args.repeat)]
    walls, cpus, peaks = ([r[i] for r in runs] for i in range(3))
    outputs = {r[3] for r in runs}
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"{os.cpu_count()} cores; bytecode {'not ' if args.no_bytecode else ''}compiled")
    print(f"cold trace wall  best {min(walls):.2f} s  median {statistics.median(walls):.2f} s "
          f"(target ≤ 1.0 s)")
    print(f"cold trace CPU   best {min(cpus):.2f} s  median {statistics.median(cpus):.2f} s")
    print(f"peak memory      {max(peaks) / 1024:.0f} MiB (VmHWM; target ≤ 300 MiB)")
    print(f"output           {len(outputs)} distinct over {len(runs)} runs, "
          f"{len(runs[0][3])} bytes")
    return 0 if len(outputs) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
