"""The whole audit: logical against physical and health, for every collected chassis."""

from __future__ import annotations

from dataclasses import dataclass, field

from ofrace.audit.health import HealthAuditor, HealthProblem
from ofrace.audit.logical import ChassisLogicalAudit, LogicalAuditor
from ofrace.snapshot import Snapshot


@dataclass
class ChassisAudit:
    chassis: str
    logical: ChassisLogicalAudit | None
    health: list[HealthProblem] = field(default_factory=list)
    unreadable: str | None = None   # why this chassis could not be audited

    @property
    def clean(self) -> bool:
        return (self.unreadable is None and not self.health and self.logical is not None
                and not self.logical.missing and not self.logical.stale)


@dataclass
class ClusterAudit:
    chassis: list[ChassisAudit]

    @property
    def clean(self) -> bool:
        return all(c.clean for c in self.chassis)


def audit_snapshot(snapshot: Snapshot, only: list[str] | None = None) -> ClusterAudit:
    if snapshot.southbound is None or snapshot.southbound.error:
        from ofrace.errors import InputError

        raise InputError("the audit needs the Southbound DB in the snapshot")
    logical = LogicalAuditor(snapshot)
    health = HealthAuditor(snapshot)
    results = []
    for name, ch in snapshot.chassis.items():
        if only and name not in only:
            continue
        if not ch.reachable:
            results.append(ChassisAudit(name, None, unreadable=ch.problems[0].error))
            continue
        results.append(ChassisAudit(name, logical.audit_chassis(ch), health.audit_chassis(ch)))
    return ClusterAudit(results)
