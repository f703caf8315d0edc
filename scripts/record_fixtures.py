"""Record lab data for the fast unit tests: a snapshot and ofproto/trace outputs.

Usage (as root):  .venv/bin/python scripts/record_fixtures.py [TOPOLOGY] [--dir LAB_DIR]
                  [--ovn PREFIX] [--out DIR]

Writes tests/fixtures/<topology>/snapshot.ofr (the collected cluster) and
traces.json.gz (for every generated packet: where it entered, its fields,
the --ct-next states, and ofproto/trace's full output on that node, taken
right after the snapshot so both describe the same flows).  The unit tests
replay those traces against the engine offline; the real lab stays the
ground truth, the fixtures only freeze one moment of it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

from ofrace.collect.cluster import collect_cluster, make_transport
from ofrace.collect.inventory import DatabaseSpec, Inventory, NodeSpec
from ofrace.compare.agreement import CT_VARIANTS
from ofrace.compare.live import format_microflow
from ofrace.compare.packets import chassis_packets
from ofrace.lab.lab import Lab

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("topology", nargs="?")
    parser.add_argument("--dir", help="the lab directory")
    parser.add_argument("--ovn", metavar="PREFIX", help="bring the lab up on this OVN build")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures")
    args = parser.parse_args()
    lab = Lab(args.dir)
    topology = args.topology or lab.state.get("topology")
    if lab.state.get("status") != "up" or lab.state.get("topology") != topology:
        lab.up(topology, ovn_prefix=args.ovn)
    if lab.state.get("zones"):   # interconnect: each node's zone NB/SB, and the IC-SB
        inventory = Inventory(
            nodes=[NodeSpec(name=c["name"], transport="local", env=c["env"],
                            northbound=c["northbound"], southbound=c["southbound"])
                   for c in lab.state["chassis"]],
            interconnect=DatabaseSpec(remote=lab.state["ic_sb_remote"]))
    else:
        inventory = Inventory(
            nodes=[NodeSpec(name=c["name"], transport="local", env=c["env"])
                   for c in lab.state["chassis"]],
            southbound=DatabaseSpec(remote=lab.state["sb_remote"]),
            northbound=DatabaseSpec(remote=lab.state["nb_remote"]))
    snapshot = collect_cluster(inventory)
    if not snapshot.complete:
        print(f"incomplete snapshot: {snapshot.all_problems()}", file=sys.stderr)
        return 1
    traces = []
    for spec in inventory.nodes:
        chassis = snapshot.chassis[spec.name]
        transport = make_transport(spec)
        for i, test in enumerate(chassis_packets(snapshot, chassis)):
            ct_next = CT_VARIANTS[i % len(CT_VARIANTS)]
            argv = ["ovs-appctl", "ofproto/trace", test.bridge, format_microflow(test.packet)]
            for state in ct_next:
                argv += ["--ct-next", state]
            out = transport.run(argv)
            if out.rc != 0:
                print(f"ofproto/trace failed: {out.stderr.decode()}", file=sys.stderr)
                return 1
            traces.append({"chassis": spec.name, "bridge": test.bridge, "label": test.label,
                           "packet": test.packet, "ct_next": list(ct_next),
                           "output": out.stdout.decode()})
    out_dir = args.out / topology
    out_dir.mkdir(parents=True, exist_ok=True)
    snapshot.save(out_dir / "snapshot.ofr")
    with gzip.open(out_dir / "traces.json.gz", "wt") as fh:
        json.dump({"topology": topology, "traces": traces}, fh)
    print(f"{topology}: snapshot and {len(traces)} ofproto/trace outputs in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
