"""Record every lab topology's `lab verify` sweep for the offline replay in tests/.

Usage (as root):  .venv/bin/python scripts/record_sweeps.py [TOPOLOGY ...] [--out DIR]
       (anyone):  .venv/bin/python scripts/record_sweeps.py --report [TOPOLOGY ...]

For each topology (default: basic, kind, acl): a fresh lab in its own directory
(/var/tmp/ofr-rec-<topology>, so it runs beside any other lab), `ofrace lab verify
--record <out>/<topology>/sweep --json`, and the lab taken down again.  The recording
holds the frames every capture point sent, the connections each datapath listed and the
snapshots read before the conversations (tests/test_verify_replay.py replays them); the
JSON is what the lab printed, which docs/fidelity.md records.  Default out:
tests/fixtures; with ``--ovn PREFIX`` (a source build of another OVN release) the
recordings go to tests/fixtures/versions/<release>/ by ``--out``.  ``--report`` prints
docs/fidelity.md's tables from the recordings: what the lab printed when it recorded,
and what the replay with today's engine gives.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OFRACE = [sys.executable, "-m", "ofrace"]


def record(topology: str, out: Path, ovn_prefix: str | None = None) -> dict:
    lab_dir = f"/var/tmp/ofr-rec-{topology}" + (f"-{Path(ovn_prefix).name}" if ovn_prefix
                                                 else "")
    target = out / topology / "sweep"
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run([*OFRACE, "lab", "down", "--dir", lab_dir], capture_output=True)
    subprocess.run([*OFRACE, "lab", "up", "--topology", topology, "--dir", lab_dir,
                    *(["--ovn", ovn_prefix] if ovn_prefix else [])],
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


def report(topology: str, out: Path) -> None:
    """Markdown: per class, sent / equal / mismatched / unexplained, live and replayed."""
    from collections import Counter

    from ofrace.compare.recording import replay

    directory = out / topology / "sweep"
    live = json.loads(gzip.decompress((directory / "sweep.json.gz").read_bytes()))["live"]
    again = replay(directory).as_json()
    print(f"### {topology}: recorded in {live['seconds']} s, replayed in {again['seconds']} s\n")
    print("| class | sent | equal (live) | equal (replay) | mismatched (replay) | "
          "unexplained (replay) |\n|---|---:|---:|---:|---:|---:|")
    unexplained = Counter(m["class"] for m in again["mismatches"] if m["gap"] == "unexplained")
    rows = sorted(again["classes"].items())
    for cls, v in rows:
        print(f"| {cls} | {v['sent']} | {live['classes'].get(cls, {}).get('equal', '-')} | "
              f"{v['equal']} | {v['mismatched']} | {unexplained[cls]} |")
    total = {k: sum(v[k] for _, v in rows) for k in ("sent", "equal", "mismatched")}
    live_equal = sum(v["equal"] for v in live["classes"].values())
    print(f"| **total** | {total['sent']} | {live_equal} | {total['equal']} | "
          f"{total['mismatched']} | {sum(unexplained.values())} |\n")
    from unittest import mock

    import ofrace.simulate.conntrack as conntrack
    with mock.patch.object(conntrack, "nat_translate", lambda tup, nat: tup):
        broken = replay(directory)
    gaps = Counter(m["gap"] for m in again["mismatches"])
    print(f"negative control (the engine ignoring NAT): {len(broken.unexplained)} "
          f"unexplained of {sum(broken.sent.values())} steps\n")
    print("first mismatches by gap (replay): " + (", ".join(
        f"{g} {n}" for g, n in sorted(gaps.items())) or "none") + "; conntrack entries after "
        f"each conversation: {again['conntrack']['equal']}/{again['conntrack']['conversations']}"
        f" equal; unobservable outputs {again['unobservable_outputs']}; reply steps not "
        f"sendable {len(again['skipped'])}\n")


def generator_table(topologies: list[str]) -> None:
    """Markdown: what the generator makes of each topology's fixture snapshot."""
    from ofrace.compare.generator import classes_generated, generate
    from ofrace.snapshot import Snapshot

    print("| topology | conversations | steps | steps with >= 1,000 asked | per class |\n"
          "|---|---:|---:|---:|---|")
    for topology in topologies:
        snapshot = Snapshot.load(str(ROOT / "tests" / "fixtures" / topology / "snapshot.ofr"))
        base = generate(snapshot)
        wide = generate(snapshot, min_steps=1000)
        per_class = ", ".join(f"{c} {n}" for c, n in sorted(classes_generated(base).items()))
        print(f"| {topology} | {len(base)} | {sum(len(c.steps) for c in base)} | "
              f"{sum(len(c.steps) for c in wide)} | {per_class} |")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("topologies", nargs="*", default=["basic", "kind", "acl", "openstack"])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures")
    parser.add_argument("--ovn", metavar="PREFIX",
                        help="record on a source build of OVN (lab up --ovn); with "
                             "--out tests/fixtures/versions/<release>")
    parser.add_argument("--report", action="store_true",
                        help="print the tables of the recordings instead of recording")
    args = parser.parse_args()
    if args.report:
        for topology in args.topologies:
            report(topology, args.out)
        generator_table(args.topologies)
        return 0
    for topology in args.topologies:
        live = record(topology, args.out, args.ovn)
        sent = sum(c["sent"] for c in live["classes"].values())
        equal = sum(c["equal"] for c in live["classes"].values())
        unexplained = sum(m["gap"] == "unexplained" for m in live["mismatches"])
        print(f"{topology}: {sent} sent, {equal} equal, {unexplained} unexplained, "
              f"{live['seconds']} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
