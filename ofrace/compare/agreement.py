"""Agreement with ofproto/trace over many generated packets on every chassis."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ofrace.collect.cluster import make_transport
from ofrace.collect.inventory import Inventory
from ofrace.compare.live import LiveComparison, compare_with_ofproto_trace
from ofrace.compare.packets import TestPacket, chassis_packets
from ofrace.errors import ToolError
from ofrace.openflow.bridge import BridgeIndex
from ofrace.snapshot import Snapshot

# ct states handed to ct() recirculations, as ofproto/trace's --ct-next takes them.
CT_VARIANTS: tuple[tuple[str, ...], ...] = ((), ("trk,est",), ("trk,est,rpl",),
                                            ("trk,new", "trk,est"))


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
    notes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ratio(self) -> float:
        return self.agreed / self.total if self.total else 0.0


def run_agreement(snapshot: Snapshot, inventory: Inventory,
                  variants: tuple[tuple[str, ...], ...] = CT_VARIANTS,
                  limit: int | None = None, every_variant: bool = False,
                  progress: Callable[[str], None] | None = None) -> AgreementReport:
    """Compare every generated packet on every chassis with the node's ofproto/trace.

    Each packet gets one of ``variants`` of --ct-next states in turn, or, with
    ``every_variant``, is traced once with each.
    """
    report = AgreementReport()
    started = time.perf_counter()
    for spec in inventory.nodes:
        chassis = snapshot.chassis.get(spec.name)
        if chassis is None or not chassis.reachable:
            continue
        transport = make_transport(spec)
        indexes = {n: BridgeIndex(b, chassis.interfaces, chassis.name)
                   for n, b in chassis.bridges.items()}
        packets: list[TestPacket] = chassis_packets(snapshot, chassis)
        runs = [(test, ct) for i, test in enumerate(packets)
                for ct in (variants if every_variant else [variants[i % len(variants)]])]
        for test, ct_next in runs:
            report.total += 1
            try:
                result = compare_with_ofproto_trace(chassis, transport, test.bridge,
                                                    test.packet, list(ct_next), indexes)
            except ToolError as exc:
                report.refused.append(f"{spec.name} {test.label}: {exc}")
                continue
            for note in result.comparison.notes:
                key = note.split(":", 1)[-1].strip().split(";")[0]
                report.notes[key] = report.notes.get(key, 0) + 1
            if result.comparison.agree:
                report.agreed += 1
            else:
                report.disagreements.append(Disagreement(spec.name, test.label, ct_next, result))
            if limit and report.total >= limit:
                break
        transport.close()
        if progress:
            progress(f"{spec.name}: {len(packets)} packets")
    report.seconds = time.perf_counter() - started
    return report
