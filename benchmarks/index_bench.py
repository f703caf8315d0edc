"""Index throughput and memory on a real lab dump scaled up to N flows.

Usage: python benchmarks/index_bench.py [SNAPSHOT] [--flows 200000] [--chassis NAME]

The lab's br-int dump (a few hundred OVN flows) is replicated with each copy
moved to its own logical datapath (``metadata=0x…``) and its own cookie, as a
big chassis has many datapaths with the same pipeline: the flows keep their
real shapes, tokens and actions.  Prints flows/s for building the index,
bytes per flow (index + flow text, measured with tracemalloc) and the
latency of one lookup chain through the scaled table.
"""

from __future__ import annotations

import argparse
import gc
import re
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

from ofrace.openflow.bridge import BridgeIndex
from ofrace.snapshot import Bridge, Chassis, Snapshot

_META = re.compile(r"metadata=0x([0-9a-f]+)")
_COOKIE = re.compile(r"cookie=0x([0-9a-f]+)")


def scale_flows(flows: list[str], target: int) -> list[str]:
    """Copies of ``flows`` on fresh datapaths until ``target`` flows exist."""
    out: list[str] = []
    copy = 0
    while len(out) < target:
        shift = copy * 0x1000
        for line in flows:
            if copy and "metadata=" not in line:
                continue  # datapath-independent flows exist once
            line = _META.sub(lambda m, s=shift: f"metadata={int(m.group(1), 16) + s:#x}", line)
            line = _COOKIE.sub(
                lambda m, c=copy: f"cookie={(int(m.group(1), 16) + c) & 0xffffffff:#x}",
                line, count=1)
            out.append(line)
            if len(out) >= target:
                break
        copy += 1
    return out


@dataclass
class IndexMeasure:
    index: BridgeIndex
    flows: int
    seconds: float       # wall time of one build
    cpu_seconds: float   # CPU time of that build (not skewed by other load)
    index_bytes: int     # what the index allocates (tracemalloc, a second build)
    text_bytes: int      # the flow lines themselves


def measure_index(bridge: Bridge, ch: Chassis, repeat: int = 3) -> IndexMeasure:
    """Build the index of ``bridge`` ``repeat`` times timed (best kept: this machine's
    speed wanders by a third from run to run), then once under tracemalloc."""
    seconds = cpu = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        index = BridgeIndex(bridge, ch.interfaces, ch.name).build_all()
        seconds = min(seconds, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
        del index
    gc.collect()
    tracemalloc.start()
    index = BridgeIndex(bridge, ch.interfaces, ch.name).build_all()
    allocated, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # The index's own list of lines points at the same strings: count them once.
    text = sum(sys.getsizeof(s) for s in bridge.flows) + sys.getsizeof(bridge.flows)
    return IndexMeasure(index, index.flow_count, seconds, cpu, allocated, text)


def one_packet_trace(snap, ch, index) -> tuple[float, float, int]:
    """A real packet of the lab (the first VIF to a remote pod, through the router and
    out the tunnel) through the scaled br-int: first (cold: actions decoded) and
    repeated (warm) latency."""
    from ofrace.compare.packets import chassis_packets
    from ofrace.simulate.engine import ChassisDatapath

    bridges = {name: BridgeIndex(b, ch.interfaces, ch.name)
               for name, b in ch.bridges.items() if name != index.name}
    bridges[index.name] = index
    tests = [t for t in chassis_packets(snap, ch) if "routed tcp to" in t.label]
    if not tests:
        raise SystemExit("no routed packet to trace in this snapshot")
    test = tests[0]
    t0 = time.perf_counter()
    root, _ = ChassisDatapath(ch.name, bridges).inject(test.bridge, test.packet)
    cold = time.perf_counter() - t0
    runs = 50
    t0 = time.perf_counter()
    for _ in range(runs):
        ChassisDatapath(ch.name, bridges).inject(test.bridge, test.packet)
    warm = (time.perf_counter() - t0) / runs
    return cold, warm, sum(1 for s in root.walk() if s.kind == "flow")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("snapshot", nargs="?", default=str(Path(__file__).parent.parent / "tests"
                                                       / "fixtures" / "kind" / "snapshot.ofr"))
    ap.add_argument("--flows", type=int, default=200_000)
    ap.add_argument("--chassis", default="ovn-worker")
    ap.add_argument("--dump", help="read flows from a raw `ovs-ofctl dump-flows` file instead")
    args = ap.parse_args()
    if args.dump:
        raw = [ln.strip() for ln in Path(args.dump).read_text().splitlines()
               if ln.startswith(" ")]
        ch = Chassis(name="dump", transport="file")
        base = Bridge(name="br-int", flows=raw)
    else:
        snap = Snapshot.load(args.snapshot)
        ch = snap.chassis[args.chassis]
        base = ch.bridges[ch.integration_bridge]
    lines = scale_flows(base.flows, args.flows)
    bridge = Bridge(name=base.name, flows=lines, groups=base.groups, tlv_map=base.tlv_map,
                    ports_desc=base.ports_desc)
    m = measure_index(bridge, ch)
    n, elapsed, cpu = m.flows, m.seconds, m.cpu_seconds
    per_flow_index, per_flow_total = m.index_bytes / n, (m.index_bytes + m.text_bytes) / n
    index = m.index

    packet = {"in_port": 0, "dl_type": 0x0800, "nw_proto": 6, "nw_ttl": 64}
    t1 = time.perf_counter()
    rounds = 200
    for _ in range(rounds):
        for table in index.tables.values():
            table.lookup(packet)
    lookup_us = (time.perf_counter() - t1) / (rounds * len(index.tables)) * 1e6
    trace_line = ""
    if not args.dump:
        cold, warm, hits = one_packet_trace(snap, ch, index)
        trace_line = (f"one-packet trace        {warm * 1000:>12,.2f} ms warm, "
                      f"{cold * 1000:,.1f} ms cold ({hits} flows hit, on the {n:,}-flow br-int)")

    print(f"flows indexed          {n:>12,} ({len(index.unparsed)} unparsed)")
    print(f"index build            {elapsed:>12.2f} s")
    print(f"throughput             {n / elapsed:>12,.0f} flows/s (wall; by CPU time "
          f"{n / cpu:,.0f} flows/s, which other load on the machine does not skew)")
    print(f"memory, index only     {per_flow_index:>12,.0f} bytes/flow")
    print(f"memory, index + text   {per_flow_total:>12,.0f} bytes/flow")
    print(f"one table lookup       {lookup_us:>12,.1f} us (mean over {len(index.tables)} tables)")
    if trace_line:
        print(trace_line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
