"""The whole audit: logical against physical and health, for every collected chassis."""

from __future__ import annotations

from dataclasses import dataclass, field

from ofrace.audit.bfd import BfdAuditor
from ofrace.audit.health import HealthAuditor, HealthProblem
from ofrace.audit.logical import ChassisLogicalAudit, LogicalAuditor
from ofrace.errors import Exit, InputError, MissingDataError
from ofrace.snapshot import Snapshot


@dataclass
class ChassisAudit:
    chassis: str
    logical: ChassisLogicalAudit | None
    health: list[HealthProblem] = field(default_factory=list)
    unreadable: str | None = None   # why this chassis could not be audited
    # Worth knowing, nothing broken (a BFD session down whose gateway port failed
    # over): shown, in the JSON, and never a reason for exit 1.
    notices: list[HealthProblem] = field(default_factory=list)

    @property
    def found(self) -> bool:
        """Something MISSING, stale or broken."""
        return bool(self.health) or (self.logical is not None and bool(
            self.logical.missing or self.logical.stale))

    @property
    def complete(self) -> bool:
        """Audited on all of its flows (none unread, none garbled)."""
        return self.unreadable is None and self.logical is not None and not self.logical.garbled

    @property
    def clean(self) -> bool:
        return self.complete and not self.found


@dataclass
class ClusterAudit:
    chassis: list[ChassisAudit]

    @property
    def clean(self) -> bool:
        return all(c.clean for c in self.chassis)

    @property
    def found(self) -> bool:
        return any(c.found for c in self.chassis)

    @property
    def complete(self) -> bool:
        return all(c.complete for c in self.chassis)

    @property
    def exit_code(self) -> Exit:
        """Something found (1) before could not audit a chassis (4) before clean (0)."""
        return Exit.FOUND if self.found else Exit.UNKNOWN if not self.complete else Exit.OK


def audit_snapshot(snapshot: Snapshot, only: list[str] | None = None) -> ClusterAudit:
    if only:
        unknown = [name for name in only if name not in snapshot.chassis]
        if unknown:
            raise InputError(f"--chassis {', '.join(unknown)}: not in the snapshot "
                             f"(chassis: {', '.join(snapshot.chassis) or 'none'})")
    if snapshot.southbound is None:
        raise MissingDataError("the snapshot has no Southbound database: logical flows "
                               "cannot be audited (collect with --sb REMOTE)")
    if snapshot.southbound.error:
        raise MissingDataError(f"the Southbound database was not read: "
                               f"{snapshot.southbound.error}")
    logical = LogicalAuditor(snapshot)
    health = HealthAuditor(snapshot)
    bfd = BfdAuditor(health.names)
    results = []
    for name, ch in snapshot.chassis.items():
        if only and name not in only:
            continue
        why = ch.unread()
        if why is not None:
            results.append(ChassisAudit(name, None, unreadable=why))
            continue
        broken, notices = bfd.audit_chassis(ch)
        results.append(ChassisAudit(name, logical.audit_chassis(ch),
                                    health.audit_chassis(ch) + broken, notices=notices))
    return ClusterAudit(results)
