"""A sweep: generated conversations sent by a wire side, each step predicted by ofrace and
compared with what every capture point saw.

Why a side: the same loop runs against the live lab (``ofrace.lab.verify``, which sends
for real) and against a recording of such a run (``ofrace.compare.recording``), so CI
replays a real sweep offline with exactly the comparison the lab makes.  The side owns
the known state a conversation starts from and the snapshot read just before it; this
module never touches a node.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ofrace.compare.generator import Conversation, Entry, Step
from ofrace.compare.verify import (
    GENEVE_PORT,
    HUB_TO,
    UNEXPLAINED,
    VerifyReport,
    WirePacket,
    compare_connections,
    compare_step,
    is_noise,
    predict,
    predicted_connections,
    reply_to,
    towards,
)
from ofrace.openflow.frames import decode
from ofrace.snapshot import Snapshot
from ofrace.trace.cluster import ClusterTracer

# Replies built from the request as delivered: (TCP flags, ICMP type) by step name.
REPLY_FLAGS = {"SYN-ACK": (0x012, None), "FIN-ACK": (0x011, None), "echo reply": (None, 0),
               "reply": (None, None)}


HUB = "hub"      # Capture.chassis of what the network between chassis delivered


@dataclass(frozen=True)
class Capture:
    """One frame a capture point sent: at a VIF or uplink, or on a tunnel underlay port;
    or (chassis ``HUB``, port: the receiving chassis) what the underlay network between
    the chassis delivered to one of them."""

    chassis: str
    port: str
    underlay: bool
    frame: bytes


@dataclass(frozen=True)
class Expectation:
    """What the prediction says a step makes the capture points send: a live side waits
    for that many frames (or its deadline) instead of trusting a quiet spell alone, and
    waits longer where ovn-controller is to answer (a packet-in and back)."""

    frames: int = 0
    controller: bool = False


class WireSide(Protocol):
    """Where conversations are sent: the lab, or a recording of it."""

    def begin(self, conversation: Conversation) -> Snapshot:
        """Bring the network to a known state; the snapshot read just before sending."""

    def capture_points(self, snapshot: Snapshot) -> set[tuple[str, str]]:
        """(chassis, port) of every VIF and uplink whose output is captured, and
        (``HUB``, chassis) for every chassis whose underlay deliveries are."""

    def send(self, entry: Entry, packet: dict, step: Step, expect: Expectation
             ) -> list[Capture]:
        """Send ``step`` as ``packet`` where it enters (its ``wire`` details: TCP seq/ack,
        payload, ICMP id, in the frame); every frame the capture points sent after it
        (``expect``: how long that may take, by the prediction)."""

    def connections(self) -> set[tuple] | None:
        """The connections the datapaths hold after the conversation (None: not read)."""


def encap_addresses(snapshot: Snapshot) -> dict[str, set[int]]:
    """Each chassis' tunnel endpoint addresses (``ovn-encap-ip``, comma-separated)."""
    out = {}
    for name, chassis in snapshot.chassis.items():
        found = set()
        for text in str(chassis.external_ids.get("ovn-encap-ip") or "").split(","):
            try:
                found.add(int(ipaddress.ip_address(text.strip())))
            except ValueError:
                continue
        out[name] = found
    return out


def observe(captures: list[Capture], endpoints: dict[str, set[int]] | None = None
            ) -> tuple[list[WirePacket], Counter]:
    """Frames as the comparison reads them: packets at VIFs and uplinks, and Geneve copies
    per (chassis, VNI, options) on the underlay, sent and delivered; BFD and gratuitous
    ARP left out (the lab sends them on its own).  A copy the underlay network delivered
    to a chassis counts only if it is addressed to one of that chassis' tunnel endpoints
    (``endpoints``): an L2 network floods a frame for a MAC it has not learned to every
    port, and a chassis drops what is not for it."""
    seen, underlay = [], Counter()
    for cap in captures:
        frame = decode(cap.frame)
        if cap.underlay:
            inner = frame.get("inner") or {}
            if frame.get("tp_dst") == GENEVE_PORT and not is_noise(inner):
                options = tuple(sorted(frame.get("geneve_options", [])))
                if cap.chassis == HUB and endpoints is not None and \
                        frame.get("nw_dst") not in endpoints.get(cap.port, set()):
                    continue
                where = HUB_TO + cap.port if cap.chassis == HUB else cap.chassis
                underlay[(where, frame.get("tun_id", 0), options)] += 1
        elif not is_noise(frame) and not _gratuitous(frame):
            seen.append(WirePacket.of(cap.chassis, cap.port, frame))
    return seen, underlay


def _gratuitous(frame: dict) -> bool:
    return frame.get("dl_type") == 0x0806 and frame.get("nw_src") == frame.get("nw_dst")


def entry_of(snapshot: Snapshot, wire: WirePacket) -> Entry | None:
    """The interface a packet left by, as the place its reply enters."""
    chassis = snapshot.chassis.get(wire.chassis)
    for iface in chassis.interfaces if chassis else []:
        if iface.name == wire.port and iface.ofport not in (None, -1):
            return Entry(chassis.name, iface.bridge, iface.name, iface.ofport)
    return None


def run_conversation(side: WireSide, conv: Conversation, report: VerifyReport,
                     held: set | None = None) -> None:
    """Every step of one conversation: predicted on one conntrack (SYN to last ACK), sent,
    compared; then the connections each side holds.  ``held``: where packets predicted
    to go to ovn-controller were headed, over the whole sweep (pinctrl may hold one until
    a later step teaches it the next hop, and release it then)."""
    held = set() if held is None else held
    snapshot = side.begin(conv)
    tracer = ClusterTracer(snapshot)
    seen_at = side.capture_points(snapshot)
    endpoints = encap_addresses(snapshot)
    delivered: WirePacket | None = None
    earlier_gap = None
    controller_involved = False
    for step in conv.steps:
        if step.entry is not None and step.packet is not None:
            packet, entry = step.packet, step.entry       # a step as it was sent (replay)
        elif step.reply and step.packet is not None and conv.reply_entry is not None:
            packet, entry = step.packet, conv.reply_entry
        elif step.reply:
            entry = entry_of(snapshot, delivered) if delivered else None
            if entry is None:
                report.skipped.append(f"{conv.label}: {step.name} (the request was not "
                                      "delivered anywhere a reply could be sent from)")
                continue
            flags, icmp = REPLY_FLAGS.get(step.name, (None, None))
            if icmp is not None and dict(delivered.fields).get("nw_proto") == 58:
                icmp = 129                   # ICMPv6 echo reply
            packet = reply_to(delivered, flags, icmp)
        else:
            packet, entry = step.packet, conv.entry
        prediction = predict(tracer, entry.chassis, entry.bridge,
                             {"in_port": entry.ofport, **packet}, conv.label, step.wire)
        # a port without a capture (a bridge's LOCAL port) cannot be checked: say so
        hidden = [p for p in prediction.outputs if (p.chassis, p.port) not in seen_at]
        prediction.outputs = [p for p in prediction.outputs if p not in hidden]
        report.unobservable += len(hidden)
        for key in [k for k in prediction.tunnels if k[0].startswith(HUB_TO)
                    and (HUB, k[0][len(HUB_TO):]) not in seen_at]:
            del prediction.tunnels[key]     # no capture of what the hub delivers there
        expect = Expectation(len(prediction.outputs) + sum(prediction.tunnels.values()),
                             bool(prediction.controller))
        seen, underlay = observe(side.send(entry, packet, step, expect), endpoints)
        mismatches = compare_step(f"{conv.label}: {step.name}", prediction, seen, underlay,
                                  held)
        held |= {towards(p) for p in prediction.controller}
        controller_involved |= bool(prediction.controller)
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
    wire = side.connections()
    if wire is not None:
        connections = compare_connections(f"{conv.label}: conntrack after the conversation",
                                          predicted_connections(tracer), wire,
                                          controller_involved, held)
        report.add_connections(conv.packet_class.value, connections)


def run_sweep(side: WireSide, conversations: list[Conversation], report: VerifyReport,
              progress: Callable[[str], None] | None = None, enough: int = 0,
              required: int = 0) -> VerifyReport:
    """Every conversation in order; past the first ``required`` ones, stop once ``enough``
    steps were sent (replies a network did not let through are never sent, so a sweep
    asked for N packets is given more conversations than N steps' worth)."""
    say = progress or (lambda message: None)
    held: set = set()
    for n, conv in enumerate(conversations, 1):
        if enough and n > required and sum(report.sent.values()) >= enough:
            break
        say(f"{n}/{len(conversations)} {conv.label}")
        run_conversation(side, conv, report, held)
    return report
