"""Agreement with ofproto/trace over many generated packets on every chassis.

Per chassis, the node's forwarding state is read before and after its batch
of ofproto/trace calls (:func:`ofrace.compare.live.read_node_state`).  If it
differs from the snapshot before the batch, the snapshot is stale: the node
is read again (when the snapshot was taken for this run) and the batch runs
on the fresh one.  If it changed during the batch, the packets that
disagreed are traced once more on a fresh reading; those that still meet a
changing node are "state changed during the comparison", counted apart from
disagreements -- the engine was not wrong, the node moved.

ofproto/trace is also a weak oracle exactly where ofrace is weakest: it stops at dp_hash
select groups, it takes conntrack states forced by hand (so ofrace's conntrack model is
never tested by it), and its final flow leaves NAT undone.  A packet that agrees past
one of those is counted in ``blind`` by reason: ``answered`` is what ofproto/trace could
really check (`lab verify` is the oracle for the rest).  The packets are the generated
conversations (``ofrace.compare.generator``), each step with the ct states it implies.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ofrace.collect.cluster import collect_cluster, make_transport
from ofrace.collect.inventory import Inventory, NodeSpec
from ofrace.compare.generator import generate
from ofrace.compare.live import (
    LiveComparison,
    compare_with_ofproto_trace,
    ofproto_trace_call,
    read_node_state,
    run_ofproto_traces,
    snapshot_state,
    state_changes,
)
from ofrace.compare.ofproto_trace import Comparison
from ofrace.compare.packets import TestPacket, endpoints, transit_packets, tunnel_packets
from ofrace.errors import ToolError
from ofrace.openflow.bridge import BridgeIndex
from ofrace.ovn.southbound import chassis_view
from ofrace.snapshot import Chassis, Snapshot

# ct states handed to ct() recirculations, as ofproto/trace's --ct-next takes them.
CT_VARIANTS: tuple[tuple[str, ...], ...] = ((), ("trk,est",), ("trk,est,rpl",),
                                            ("trk,new", "trk,est"))
BLIND_DP_HASH = "dp_hash select group (ofproto/trace stops there)"
BLIND_NAT = "NAT (ofproto/trace's final flow leaves it undone)"
BLIND_CT = "conntrack state forced by hand (--ct-next)"
_NAT = re.compile(r"\bnat\((?:src|dst)\b")


@dataclass
class Disagreement:
    chassis: str
    label: str
    ct_next: tuple[str, ...]
    result: LiveComparison


@dataclass
class AgreementReport:
    total: int = 0
    agreed: int = 0
    disagreements: list[Disagreement] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # flows ofproto/trace would not take
    # Packets not compared because the node's state changed under them, and what changed.
    state_changed: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    # Nodes read again because the snapshot no longer matched them.
    reread: list[str] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)
    # Of the agreed: packets past one of ofproto/trace's blind spots, by reason.
    blind: dict[str, int] = field(default_factory=dict)
    classes: dict[str, int] = field(default_factory=dict)   # packets sent per class
    seconds: float = 0.0
    # With keep_results, the final comparison of every packet compared (single-packet use).
    keep_results: bool = False
    results: list[LiveComparison] = field(default_factory=list, repr=False)

    @property
    def answerable(self) -> int:
        """Packets ofproto/trace could really check."""
        return self.total - sum(self.blind.values())

    @property
    def answered(self) -> int:
        """Agreed, on what ofproto/trace could really check."""
        return self.agreed - sum(self.blind.values())

    @property
    def ratio(self) -> float:
        return self.answered / self.answerable if self.answerable else 0.0


def blind_spot(comparison: Comparison, ofproto_trace: str) -> str | None:
    """Why ofproto/trace could not really answer for this packet, or None."""
    if any("dp_hash" in note for note in comparison.notes):
        return BLIND_DP_HASH
    actions = [line for line in ofproto_trace.splitlines()
               if line.startswith("Datapath actions:")]
    if any(_NAT.search(line) for line in actions):
        return BLIND_NAT
    if any("recirc(" in line for line in actions) or len(comparison.ours) > 1:
        return BLIND_CT
    return None


def chassis_tests(snapshot: Snapshot, chassis: Chassis,
                  conversations=None) -> list[tuple[TestPacket, tuple[str, ...], str]]:
    """(packet, its own ct states, packet class) entering ``chassis``: every step of every
    generated conversation whose headers are known before sending, at the port it enters
    by, and packets arriving over each tunnel.  In a cluster of zones, all of it comes
    from the chassis' zone's SB and NB (``conversations``, if given, from the same)."""
    snapshot = chassis_view(snapshot, chassis.name)
    out = []
    for conv in generate(snapshot) if conversations is None else conversations:
        for step in conv.steps:
            entry = conv.reply_entry if step.reply else conv.entry
            if step.packet is None or entry is None or entry.chassis != chassis.name:
                continue
            label = f"{conv.label}: {step.name}"
            out.append((TestPacket(entry.bridge, {"in_port": entry.ofport, **step.packet},
                                   label), step.ct, conv.packet_class.value))
    points = endpoints(snapshot)
    for test in (tunnel_packets(snapshot, chassis, points)
                 + transit_packets(snapshot, chassis, points)):
        out.append((test, (), "tunnel"))
    return out


def run_agreement(snapshot: Snapshot, inventory: Inventory,
                  variants: tuple[tuple[str, ...], ...] = CT_VARIANTS,
                  limit: int | None = None, every_variant: bool = False,
                  progress: Callable[[str], None] | None = None,
                  reread: Callable[[NodeSpec], Chassis | None] | None = None) -> AgreementReport:
    """Compare every generated packet on every chassis with the node's ofproto/trace.

    Each packet is traced with the ct states its conversation step implies, or, with
    ``every_variant``, once with each of ``variants``.  ``reread`` reads a node
    afresh; give it when ``snapshot`` was taken for this run, so that a node
    that changed since is compared with its new state.  Without it, a
    snapshot that differs from the node is compared as it is (that may be
    the point, as with an edited snapshot) and the difference is noted.
    """
    report = AgreementReport()
    started = time.perf_counter()
    # zones: each chassis' own, generated from its zone's databases (chassis_tests)
    conversations = generate(snapshot) if not snapshot.zones else None
    for spec in inventory.nodes:
        chassis = snapshot.chassis.get(spec.name)
        if chassis is None or not chassis.reachable:
            continue
        transport = make_transport(spec)
        try:
            packets = chassis_tests(snapshot, chassis, conversations)
            runs = [(test, ct, cls) for test, own, cls in packets
                    for ct in (variants if every_variant else [own])]
            if limit:
                runs = runs[:max(0, limit - report.total)]
            report.total += len(runs)
            for _, _, cls in runs:
                report.classes[cls] = report.classes.get(cls, 0) + 1
            runs = [(test, ct) for test, ct, _ in runs]
            compare_on_node(report, spec, chassis, transport, runs, reread)
        finally:
            transport.close()
        if progress:
            progress(f"{spec.name}: {len(packets)} packets")
        if limit and report.total >= limit:
            break
    report.seconds = time.perf_counter() - started
    return report


def compare_on_node(report: AgreementReport, spec: NodeSpec, chassis: Chassis, transport,
                    runs: list[tuple[TestPacket, tuple[str, ...]]],
                    reread: Callable[[NodeSpec], Chassis | None] | None = None) -> None:
    """Trace ``runs`` on one node, twice at most, and put each outcome in ``report``.

    With ``report.keep_results``, ``report.results`` gets the final comparison of every
    packet compared.
    """
    pending = runs
    for attempt in (1, 2):
        try:
            before = read_node_state(transport, chassis.bridges)
        except ToolError as exc:
            # ofproto/trace may still answer; only a change would go unnoticed.
            before = None
            report.notes[f"{spec.name}: its state could not be read, so a change during the "
                         f"comparison would go unnoticed ({exc})"] = 1
        stale = [] if before is None else state_changes(snapshot_state(chassis), before)
        if stale and reread is not None:
            fresh = reread(spec)
            if fresh is not None and fresh.reachable:
                report.reread.append(f"{spec.name}: {'; '.join(stale)}")
                chassis = fresh
                before = snapshot_state(chassis)
                stale = []
        if stale:
            report.notes[f"{spec.name}: the node's state differs from the snapshot "
                         f"({'; '.join(stale)})"] = 1
        indexes = {n: BridgeIndex(b, chassis.interfaces, chassis.name)
                   for n, b in chassis.bridges.items()}
        texts = run_ofproto_traces(
            transport, [ofproto_trace_call(test.bridge, test.packet, ct_next)
                        for test, ct_next in pending], spec.name)
        outcomes = []
        for (test, ct_next), text in zip(pending, texts, strict=True):
            if isinstance(text, ToolError):
                outcomes.append((test, ct_next, text))
                continue
            try:
                outcomes.append((test, ct_next, compare_with_ofproto_trace(
                    chassis, transport, test.bridge, test.packet, list(ct_next), indexes,
                    text=text)))
            except ToolError as exc:
                outcomes.append((test, ct_next, exc))
        try:
            changed = [] if before is None else \
                state_changes(before, read_node_state(transport, chassis.bridges))
        except ToolError as exc:
            changed = [f"cannot read the node's state again: {exc}"]
        retry = []
        for test, ct_next, result in outcomes:
            if isinstance(result, ToolError):
                report.refused.append(f"{spec.name} {test.label}: {result}")
                continue
            final = result.comparison.agree or not changed
            for note in result.comparison.notes if final else ():
                key = note.split(":", 1)[-1].strip().split(";")[0]
                report.notes[key] = report.notes.get(key, 0) + 1
            if result.comparison.agree:
                report.agreed += 1
                reason = blind_spot(result.comparison, result.ofproto_trace)
                if reason is not None:
                    report.blind[reason] = report.blind.get(reason, 0) + 1
                if report.keep_results:
                    report.results.append(result)
            elif changed and attempt == 1:
                retry.append((test, ct_next))
            elif changed:
                report.state_changed.append(f"{spec.name} {test.label} ct-next={ct_next}")
            else:
                report.disagreements.append(Disagreement(spec.name, test.label, ct_next, result))
                if report.keep_results:
                    report.results.append(result)
        if changed:
            report.changes.append(f"{spec.name}: {'; '.join(changed)}")
        if not retry:
            return
        pending = retry
        fresh = reread(spec) if reread is not None else None
        if fresh is not None and fresh.reachable:
            chassis = fresh


def reread_node(spec: NodeSpec) -> Chassis | None:
    """Read one node afresh, as collect would (no databases)."""
    return collect_cluster(Inventory(nodes=[spec])).chassis.get(spec.name)
