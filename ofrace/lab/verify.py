"""``ofrace lab verify``: every generated conversation sent for real in the lab and read
back at every capture point, beside ofrace's prediction (``ofrace.compare.verify``).

Why here: the lab is the only place ofrace may send packets.  Each conversation starts
from a known state: the lab's own conntrack flushed on each chassis, the provider
bridges' MAC tables settled.  The snapshot is read once, before the sweep: predictions
for later conversations do not see what earlier ones taught the network (MAC tables,
MAC bindings), which docs/gaps.md names.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from ofrace.collect.cluster import collect_cluster
from ofrace.collect.inventory import DatabaseSpec, Inventory, NodeSpec
from ofrace.compare.generator import Conversation, Entry, generate
from ofrace.compare.verify import (
    GENEVE_PORT,
    UNEXPLAINED,
    VerifyReport,
    WirePacket,
    compare_connections,
    compare_step,
    is_noise,
    parse_dump_conntrack,
    predict,
    predicted_connections,
    reply_to,
)
from ofrace.errors import LabError
from ofrace.lab.lab import Lab
from ofrace.lab.wire import datapath_packet, read_pcap
from ofrace.trace.cluster import ClusterTracer

QUIET = 0.15         # s without a new captured frame: the step is over
STEP_TIMEOUT = 3.0
_REPLY_FLAGS = {"SYN-ACK": (0x012, None), "echo reply": (None, 0), "reply": (None, None)}


def lab_inventory(lab: Lab) -> Inventory:
    """The lab's chassis read locally (they share this host's filesystem)."""
    return Inventory(
        nodes=[NodeSpec(name=c["name"], transport="local", env=c["env"])
               for c in lab.state["chassis"]],
        southbound=DatabaseSpec(remote=lab.state["sb_remote"]),
        northbound=DatabaseSpec(remote=lab.state["nb_remote"]))


class Captures:
    """Every port with a tx pcap: VIFs and uplinks (``seen``), tunnel underlay ports."""

    def __init__(self, snapshot):
        self.points: list[tuple[str, str, Path, bool]] = []
        for chassis in sorted(snapshot.chassis.values(), key=lambda c: c.name):
            for iface in chassis.interfaces:
                tx = iface.options.get("tx_pcap")
                if tx:
                    underlay = iface.bridge not in chassis.bridges
                    self.points.append((chassis.name, iface.name, Path(tx), underlay))
        self.offsets = {p[2]: read_pcap(p[2], 0)[1] for p in self.points}
        self.seen_at = {(c, port) for c, port, _, underlay in self.points if not underlay}

    def collect(self) -> tuple[list[WirePacket], Counter, int]:
        """What each point sent since the last call: (frames at VIFs and uplinks,
        encapsulated non-BFD copies by (chassis, VNI, Geneve options), how many frames)."""
        seen, underlay, total = [], Counter(), 0
        for chassis, port, path, is_underlay in self.points:
            frames, self.offsets[path] = read_pcap(path, self.offsets[path])
            total += len(frames)
            for frame in frames:
                if is_underlay:
                    inner = frame.get("inner") or {}
                    if frame.get("tp_dst") == GENEVE_PORT and not is_noise(inner):
                        options = tuple(sorted(frame.get("geneve_options", [])))
                        underlay[(chassis, frame.get("tun_id", 0), options)] += 1
                elif not is_noise(frame) and not _gratuitous(frame):
                    seen.append(WirePacket.of(chassis, port, frame))
        return seen, underlay, total

    def settle(self) -> tuple[list[WirePacket], Counter]:
        """Read until no point gained a frame for ``QUIET`` seconds (at least once)."""
        seen, underlay = [], Counter()
        deadline, quiet_since = time.monotonic() + STEP_TIMEOUT, time.monotonic()
        while True:
            more, copies, count = self.collect()
            seen += more
            underlay.update(copies)
            now = time.monotonic()
            if count:
                quiet_since = now
            if now - quiet_since >= QUIET or now >= deadline:
                return seen, underlay
            time.sleep(0.05)


def _gratuitous(frame: dict) -> bool:
    return frame.get("dl_type") == 0x0806 and frame.get("nw_src") == frame.get("nw_dst")


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
        now = [lab.run_on(name, ["ovs-appctl", "fdb/show", bridge], check=False).stdout
               for name, bridge in bridges]
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= 1.0:
            return
        time.sleep(0.2)


def _entry_of(snapshot, wire: WirePacket) -> Entry | None:
    chassis = snapshot.chassis.get(wire.chassis)
    for iface in chassis.interfaces if chassis else []:
        if iface.name == wire.port and iface.ofport not in (None, -1):
            return Entry(chassis.name, iface.bridge, iface.name, iface.ofport)
    return None


def run_conversation(lab: Lab, snapshot, captures: Captures, conv: Conversation,
                     report: VerifyReport) -> None:
    tracer = ClusterTracer(snapshot)     # one conntrack for the whole conversation
    flush_conntrack(lab)
    captures.settle()                    # what the flush or earlier steps left
    delivered: WirePacket | None = None
    earlier_gap = None
    for step in conv.steps:
        if step.reply and step.packet is not None and conv.reply_entry is not None:
            packet, entry = step.packet, conv.reply_entry
        elif step.reply:
            entry = _entry_of(snapshot, delivered) if delivered else None
            if entry is None:
                report.skipped.append(f"{conv.label}: {step.name} (the request was not "
                                      "delivered anywhere a reply could be sent from)")
                continue
            flags, icmp = _REPLY_FLAGS.get(step.name, (None, None))
            if icmp is not None and dict(delivered.fields).get("nw_proto") == 58:
                icmp = 129                   # ICMPv6 echo reply
            packet = reply_to(delivered, flags, icmp)
        else:
            packet, entry = step.packet, conv.entry
        prediction = predict(tracer, entry.chassis, entry.bridge,
                             {"in_port": entry.ofport, **packet}, conv.label)
        # a port without a capture (a bridge's LOCAL port) cannot be checked: say so
        hidden = [p for p in prediction.outputs if (p.chassis, p.port) not in captures.seen_at]
        prediction.outputs = [p for p in prediction.outputs if p not in hidden]
        report.unobservable += len(hidden)
        lab.inject(entry.chassis, entry.iface, datapath_packet(packet))
        seen, underlay = captures.settle()
        mismatches = compare_step(f"{conv.label}: {step.name}", prediction, seen, underlay,
                                  packet)
        for m in mismatches:
            # After a step parted for a known reason, ofrace's conntrack no longer holds
            # what the wire's does: later steps part for that reason too.
            if earlier_gap and m.gap == UNEXPLAINED:
                m.gap = earlier_gap
        if mismatches and not earlier_gap and mismatches[0].gap != UNEXPLAINED:
            earlier_gap = mismatches[0].gap
        report.add(conv.packet_class.value, mismatches)
        if not step.reply:
            out = [p for p in seen if (p.chassis, p.port) != (entry.chassis, entry.iface)]
            delivered = out[0] if out else None
    wire = set()
    for chassis in lab.state["chassis"]:
        dump = lab.run_on(chassis["name"], ["ovs-appctl", "dpctl/dump-conntrack"], check=False)
        wire |= parse_dump_conntrack(chassis["name"], dump.stdout)
    connections = compare_connections(f"{conv.label}: conntrack after the conversation",
                                      predicted_connections(tracer), wire)
    report.add_connections(conv.packet_class.value, connections)


def verify(lab_dir: str | None, topology: str | None, limit: int | None = None,
           progress: Callable[[str], None] | None = None,
           classes: set[str] | None = None) -> VerifyReport:
    """Send every conversation of the lab's topology (brought up first if ``topology``
    names another or none runs), or those of ``classes``; compare each step with the
    prediction."""
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
    conversations = [c for c in generate(snapshot)
                     if not classes or {k.value for k in c.classes} & classes]
    conversations = conversations[:limit] if limit else conversations
    report = VerifyReport(lab.state.get("topology", "?"))
    captures = Captures(snapshot)
    for n, conv in enumerate(conversations, 1):
        say(f"{n}/{len(conversations)} {conv.label}")
        run_conversation(lab, snapshot, captures, conv, report)
    report.seconds = time.monotonic() - started
    return report
