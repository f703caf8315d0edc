"""A live trace as a user runs it: ``ofrace trace -i INVENTORY`` as a new process, first
with an empty cache, then again with the cache the first left (issue 17: on a `scale`
lab with 20 chassis a 2-hop trace reads 2 chassis, ≤ 10 s the first time, ≤ 3 s next).

Usage (root):  .venv/bin/python benchmarks/live_trace.py LAB_DIR [--next N]

Picks a VIF and an IPv4 VIF on another switch and chassis from the SB (as
benchmarks/run.py does), times the trace, and counts in this process which chassis a
live trace reads (``NodesOnDemand.order``).  Every answer must be the same JSON
(counters aside: they change between reads); exit 1 when a goal is not met.  "Next"
asks the same trace again, so it reads the nodes the first needed at once
(``path_cache``); "another packet" (other destination ports) has no path kept and
reads each node as the trace reaches it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ofrace.annotate.session import TraceRequest, run_trace  # noqa: E402
from ofrace.collect.cluster import collect_on_demand  # noqa: E402
from ofrace.collect.inventory import Inventory, load_inventory  # noqa: E402
from ofrace.render.trace_json import without_counters  # noqa: E402

FIRST_TARGET, NEXT_TARGET = 10.0, 3.0


class LiveTraceFailed(RuntimeError):
    pass


def live_traces(inventory_file: Path, inventory: Inventory, src: str, dst: str,
                expected: bytes | None = None, nexts: int = 3) -> dict:
    """The first trace (empty cache) and the median of ``nexts`` more; each answer equal
    to ``expected`` (a snapshot file's JSON) or to the first's."""
    cache = Path(tempfile.mkdtemp(prefix="ofrace-cache-"))
    env = {**os.environ, "OFRACE_CACHE_DIR": str(cache)}
    argv = [sys.executable, "-m", "ofrace", "trace", "-i", str(inventory_file),
            "--from", src, "--to", f"{dst}:80", "--tcp", "--json"]
    want = [without_counters(json.loads(expected))] if expected else []

    def once(asked: list[str] = argv) -> float:
        t0 = time.perf_counter()
        done = subprocess.run(asked, capture_output=True, timeout=900, env=env, cwd=ROOT)
        took = time.perf_counter() - t0
        if done.returncode not in (0, 1) or not done.stdout.startswith(b"{"):
            raise LiveTraceFailed(f"live trace failed (exit {done.returncode}): "
                                  f"{done.stderr.decode()[-300:]}")
        if b"read ahead" in done.stderr:
            raise LiveTraceFailed("a node was read ahead for nothing")
        doc = without_counters(json.loads(done.stdout))
        if asked is not argv:
            return took
        if not want:
            want.append(doc)
        elif doc != want[0]:
            raise LiveTraceFailed("a live trace's answer differs from the first "
                                  "(or from the snapshot file's)")
        return took

    first = once()
    later = [once() for _ in range(nexts)]
    # another packet on the same cache: no path kept for it, so each node is read
    # when the trace reaches it (the flow and database caches still serve)
    other = [once([*argv[:-3], f"{dst}:{8000 + n}", "--tcp", "--json"]) for n in range(nexts)]
    # the same read here, on the same cache: which chassis it reads, how the SB came
    before = os.environ.get("OFRACE_CACHE_DIR")
    os.environ["OFRACE_CACHE_DIR"] = str(cache)
    try:
        snapshot = collect_on_demand(inventory)
        run_trace(snapshot, TraceRequest(source=src, destination=f"{dst}:80"))
    finally:
        if before is None:
            os.environ.pop("OFRACE_CACHE_DIR")
        else:
            os.environ["OFRACE_CACHE_DIR"] = before
    names = list(snapshot.chassis.order)
    sb = snapshot.southbound
    return {"first": first, "next": statistics.median(later),
            "other": statistics.median(other), "read": len(names),
            "names": names, "nodes": len(inventory.nodes),
            "sb_read_as": getattr(sb, "read_as", None) or "a full read"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lab_dir")
    ap.add_argument("--next", type=int, default=3, help="traces after the first")
    args = ap.parse_args()
    from run import pick_cross_chassis_pair

    inventory_file = Path(args.lab_dir) / "inventory.toml"
    inventory = load_inventory(inventory_file)
    src, dst = pick_cross_chassis_pair(collect_on_demand(inventory))
    live = live_traces(inventory_file, inventory, src, dst, nexts=args.next)
    met_first = live["first"] <= FIRST_TARGET and live["read"] == 2
    print(f"live trace {src} → {dst}: read {live['read']} of {live['nodes']} chassis "
          f"({', '.join(live['names'])})")
    print(f"  first (empty cache)  {live['first']:6.2f} s  target ≤ {FIRST_TARGET:.0f} s, "
          f"2 chassis: {'met' if met_first else 'NOT met'}")
    print(f"  next (median of {args.next})   {live['next']:6.2f} s  target ≤ "
          f"{NEXT_TARGET:.0f} s: {'met' if live['next'] <= NEXT_TARGET else 'NOT met'}; "
          f"the SB read as {live['sb_read_as']}")
    print(f"  another packet (median of {args.next}) {live['other']:6.2f} s  (no path kept "
          "for it: each node read as the trace reaches it)")
    return 0 if met_first and live["next"] <= NEXT_TARGET else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "benchmarks"))
    sys.exit(main())
