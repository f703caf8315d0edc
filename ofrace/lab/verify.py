"""``ofrace lab verify``: every generated conversation sent for real in the lab and read
back at every capture point, beside ofrace's prediction (``ofrace.compare.sweep``).

Why here: the lab is the only place ofrace may send packets.  Each conversation starts
from a known state: the lab's own conntrack flushed on each chassis, the provider
bridges' MAC tables settled, and a snapshot read just before it, so a prediction sees
what earlier conversations taught the network (MAC tables, MAC bindings: each in flows
on every chassis before the snapshot, ``Lab.settle_learning``).  Packets are
real frames (``ofrace.openflow.frames``): TCP with the seq/ack of its conversation,
ICMP with its echo id, DHCP and ND with their bodies.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ofrace.collect.cluster import collect_cluster
from ofrace.collect.inventory import DatabaseSpec, Inventory, NodeSpec
from ofrace.compare.generator import Conversation, Entry, Step, generate
from ofrace.compare.recording import RecordingSide
from ofrace.compare.sweep import HUB, Capture, Expectation, run_sweep
from ofrace.compare.verify import VerifyReport, parse_dump_conntrack
from ofrace.errors import LabError
from ofrace.lab.chassis import UNDERLAY_BRIDGE
from ofrace.lab.lab import Lab
from ofrace.lab.wire import read_pcap
from ofrace.openflow.bridge import parse_fdb
from ofrace.openflow.frames import encode
from ofrace.snapshot import Snapshot

QUIET = 0.15         # s without a new captured frame: the step is over
CONTROLLER_QUIET = 0.4   # the same where ovn-controller answers (packet-in and back)
STEP_TIMEOUT = 3.0
MIN_PACKETS = 1000   # issue 12: every topology sends at least this many real packets


def lab_inventory(lab: Lab) -> Inventory:
    """The lab's chassis read locally (they share this host's filesystem)."""
    if lab.state.get("zones"):   # each chassis' zone NB and SB, read on it; the IC-SB
        return Inventory(
            nodes=[NodeSpec(name=c["name"], transport="local", env=c["env"],
                            northbound=c["northbound"], southbound=c["southbound"])
                   for c in lab.state["chassis"]],
            interconnect=DatabaseSpec(remote=lab.state["ic_sb_remote"]))
    return Inventory(
        nodes=[NodeSpec(name=c["name"], transport="local", env=c["env"])
               for c in lab.state["chassis"]],
        southbound=DatabaseSpec(remote=lab.state["sb_remote"]),
        northbound=DatabaseSpec(remote=lab.state["nb_remote"]))


class Captures:
    """Every port with a tx pcap: VIFs and uplinks (``seen_at``), tunnel underlay ports."""

    def __init__(self, snapshot: Snapshot, hub: dict[str, Path] | None = None):
        """``hub``: per chassis, the pcap of what the lab's hub delivers to its underlay."""
        self.points: list[tuple[str, str, Path, bool]] = []
        for chassis in sorted(snapshot.chassis.values(), key=lambda c: c.name):
            for iface in chassis.interfaces:
                tx = iface.options.get("tx_pcap")
                if tx:
                    underlay = iface.bridge not in chassis.bridges
                    self.points.append((chassis.name, iface.name, Path(tx), underlay))
        for name, path in sorted((hub or {}).items()):
            self.points.append((HUB, name, path, True))
        self.offsets = {p[2]: read_pcap(p[2], 0, raw=True)[1] for p in self.points}
        self.seen_at = {(c, port) for c, port, _, underlay in self.points
                        if not underlay or c == HUB}

    def collect(self) -> list[Capture]:
        """What each point sent since the last call, as raw frames."""
        out = []
        for chassis, port, path, underlay in self.points:
            frames, self.offsets[path] = read_pcap(path, self.offsets[path], raw=True)
            out += [Capture(chassis, port, underlay, frame) for frame in frames]
        return out

    def settle(self, expect: Expectation | None = None) -> list[Capture]:
        """Read until at least ``expect.frames`` frames came (or ``STEP_TIMEOUT``) and then
        no point gained one for ``QUIET`` seconds (``CONTROLLER_QUIET`` where
        ovn-controller is to answer)."""
        expect = expect or Expectation()
        quiet = CONTROLLER_QUIET if expect.controller else QUIET
        out = []
        deadline, quiet_since = time.monotonic() + STEP_TIMEOUT, time.monotonic()
        while True:
            more = self.collect()
            out += more
            now = time.monotonic()
            if more:
                quiet_since = now
            if now >= deadline or (now - quiet_since >= quiet and len(out) >= expect.frames):
                return out
            time.sleep(0.02)


def flush_conntrack(lab: Lab) -> None:
    for chassis in lab.state["chassis"]:
        lab.run_on(chassis["name"], ["ovs-appctl", "dpctl/flush-conntrack"])


def settle_mac_tables(lab: Lab, snapshot, timeout: float = 10.0) -> None:
    """Wait until no provider bridge's MAC table changes for a second (GARPs after
    bring-up teach them for a while: FIELD-NOTES §7)."""
    bridges = [(c.name, b) for c in snapshot.chassis.values() for b in c.bridges
               if b != c.integration_bridge]
    last, stable_since = None, time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = [parse_fdb(lab.run_on(name, ["ovs-appctl", "fdb/show", bridge],
                                    check=False).stdout) for name, bridge in bridges]
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= 1.0:
            return
        time.sleep(0.2)


class LabSide:
    """The live lab as a sweep's wire side (``ofrace.compare.sweep.WireSide``)."""

    def __init__(self, lab: Lab, snapshot: Snapshot):
        self.lab = lab
        hub = {c["name"]: lab.layout.hub_pcap(f"{c['name']}_{UNDERLAY_BRIDGE}", "tx")
               for c in lab.state["chassis"]}
        self.captures = Captures(snapshot, {n: p for n, p in hub.items() if p.exists()})

    def begin(self, conversation: Conversation) -> Snapshot:
        flush_conntrack(self.lab)
        self.lab.settle_learning()        # what earlier conversations taught ovn-controller
        snapshot = collect_cluster(lab_inventory(self.lab))
        self.captures.settle()            # what the flush or earlier steps left
        return snapshot

    def capture_points(self, snapshot: Snapshot) -> set[tuple[str, str]]:
        return set(self.captures.seen_at)

    def send(self, entry: Entry, packet: dict, step: Step, expect: Expectation
             ) -> list[Capture]:
        frame = encode(packet, step.wire)
        self.lab.run_on(entry.chassis, ["ovs-appctl", "netdev-dummy/receive", entry.iface,
                                        frame.hex()])
        return self.captures.settle(expect)

    def connections(self) -> set[tuple]:
        wire = set()
        for chassis in self.lab.state["chassis"]:
            dump = self.lab.run_on(chassis["name"], ["ovs-appctl", "dpctl/dump-conntrack"],
                                   check=False)
            wire |= parse_dump_conntrack(chassis["name"], dump.stdout)
        return wire


def verify(lab_dir: str | None, topology: str | None, limit: int | None = None,
           progress: Callable[[str], None] | None = None,
           classes: set[str] | None = None, min_packets: int = MIN_PACKETS,
           record: str | None = None, per_class: int | None = None) -> VerifyReport:
    """Send every conversation of the lab's topology (brought up first if ``topology``
    names another or none runs), widened to at least ``min_packets`` steps, or those of
    ``classes``, or the first ``per_class`` of each class; compare each step with the
    prediction; with ``record``, write the sweep there for an offline replay
    (``ofrace.compare.recording``)."""
    say = progress or (lambda message: None)
    lab = Lab(lab_dir)
    if topology and (lab.state.get("topology") != topology or lab.state.get("status") != "up"):
        say(f"bringing up {topology}")
        lab.up(topology, progress=say)
    if lab.state.get("status") != "up":
        raise LabError(f"no lab is up in {lab.dir}: give --topology or run `ofrace lab up`")
    started = time.monotonic()
    say("waiting for settled MAC tables")
    settle_mac_tables(lab, collect_cluster(lab_inventory(lab)))
    say("reading the snapshot")
    snapshot = collect_cluster(lab_inventory(lab))
    widen = min_packets and not (limit or per_class or classes)
    required = len(generate(snapshot))
    conversations = [c for c in generate(snapshot, min_steps=2 * min_packets if widen else 0)
                     if not classes or {k.value for k in c.classes} & classes]
    if per_class:
        conversations = sample_per_class(conversations, per_class)
    conversations = conversations[:limit] if limit else conversations
    name = lab.state.get("topology", "?")
    report = VerifyReport(name)
    side = LabSide(lab, snapshot)
    if record:
        side = RecordingSide(side, Path(record), name)
    run_sweep(side, conversations, report, say, enough=min_packets if widen else 0,
              required=required)
    report.seconds = time.monotonic() - started
    if record:
        side.close(report)
    return report


def sample_per_class(conversations: list[Conversation], count: int) -> list[Conversation]:
    """The first ``count`` conversations of each packet class (by a conversation's first
    class), in generation order: a short sweep that still reaches every class."""
    taken: dict = {}
    out = []
    for conv in conversations:
        if taken.get(conv.packet_class, 0) < count:
            taken[conv.packet_class] = taken.get(conv.packet_class, 0) + 1
            out.append(conv)
    return out
