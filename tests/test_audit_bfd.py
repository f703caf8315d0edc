"""BFD sessions down in the audit, on a snapshot of the openstack-failover lab.

That lab cut gateway-0 off the tunnel network and OVN failed over: every BFD
session to gateway-0 is down, gateway-1 holds the router's chassisredirect
port.  The audit must say so (a notice per session, exit 0: nothing broken),
call it broken once the SB binding still points at the dead gateway, and say
nothing on the healthy openstack snapshot.
"""

from __future__ import annotations

import copy

import pytest
from conftest import FIXTURES

from ofrace.audit.bfd import session_down
from ofrace.audit.cluster import audit_snapshot
from ofrace.errors import Exit
from ofrace.render.audit import audit_json
from ofrace.snapshot import Snapshot


def load(name: str) -> Snapshot:
    return Snapshot.load(FIXTURES / name / "snapshot.ofr")


@pytest.fixture(scope="module")
def failover() -> Snapshot:
    return load("openstack-failover")


def by_chassis(audit) -> dict:
    return {c.chassis: c for c in audit.chassis}


def chassis_uuid(snapshot: Snapshot, hostname: str) -> str:
    return next(r["_uuid"] for r in snapshot.southbound.tables["Chassis"]
                if r.get("hostname") == hostname)


def test_the_fixture_is_what_the_lab_left():
    """The recorded state these tests rely on: sessions to gateway-0 down, gateway-1 bound."""
    snap = load("openstack-failover")
    down = {name: sorted(i.name for i in ch.interfaces if session_down(i))
            for name, ch in snap.chassis.items()}
    assert all(down[name] for name in ("compute-0", "compute-1", "gateway-1")), down
    assert len(down["gateway-0"]) == 3
    cr = next(pb for pb in snap.southbound.tables["Port_Binding"]
              if pb["type"] == "chassisredirect")
    assert cr["chassis"] == chassis_uuid(snap, "gateway-1")


def test_failed_over_gateway_is_a_notice_per_session_and_exit_0(failover):
    audit = audit_snapshot(failover)
    chassis = by_chassis(audit)
    assert audit.exit_code == Exit.OK and audit.clean
    assert not [p for c in audit.chassis for p in c.health]
    for name in ("compute-0", "compute-1", "gateway-1"):
        (notice,) = chassis[name].notices
        assert notice.kind == "bfd"
        assert "to gateway-0 is down" in notice.message
        assert "remote state down" in notice.message
        assert "Control Detection Time Expired" in notice.message
        assert "loses gateway-0 (priority 2)" in notice.message
        assert "bound to gateway-1 (failed over)" in notice.message
    # gateway-0 itself: every session down, it let go of the port and binds no VIF.
    messages = [n.message for n in chassis["gateway-0"].notices]
    assert len(messages) == 4 and "cut off" in messages[0]
    doc = audit_json(audit)
    assert doc["clean"] is True
    assert len(doc["chassis"]["compute-0"]["notices"]) == 1


def test_binding_left_on_the_dead_gateway_is_broken(failover):
    """The cr-port still bound to gateway-0 (nobody took over, or the binding is stale):
    every chassis that cannot reach it sends traffic to a dead gateway."""
    snap = copy.deepcopy(failover)
    cr = next(pb for pb in snap.southbound.tables["Port_Binding"]
              if pb["type"] == "chassisredirect")
    cr["chassis"] = chassis_uuid(snap, "gateway-0")
    audit = audit_snapshot(snap)
    chassis = by_chassis(audit)
    assert audit.exit_code == Exit.FOUND
    for name in ("compute-0", "compute-1", "gateway-1"):
        (problem,) = [p for p in chassis[name].health if p.kind == "bfd"]
        assert f"{cr['logical_port']} is still bound to gateway-0" in problem.message
        assert "cannot reach" in problem.message
        assert not chassis[name].notices
    # gateway-0 holds the port while reaching nobody: broken there too.
    held = [p for p in chassis["gateway-0"].health if p.kind == "bfd"]
    assert len(held) == 1 and "still holds" in held[0].message


def test_sessions_up_again_are_no_finding(failover):
    """Negative control on the same snapshot: the sessions marked up, nothing is said."""
    snap = copy.deepcopy(failover)
    for ch in snap.chassis.values():
        for iface in ch.interfaces:
            if iface.bfd_status:
                iface.bfd_status.update(state="up", remote_state="up", forwarding="true")
    audit = audit_snapshot(snap)
    assert not [n for c in audit.chassis for n in c.notices]
    assert not [p for c in audit.chassis for p in c.health if p.kind == "bfd"]


def test_healthy_openstack_has_no_bfd_finding():
    """The healthy openstack fixture predates the BFD columns (liveness not read):
    not known to be down is no finding.  The control that can fail is the one above;
    integration/test_audit_bfd.py checks a live healthy openstack with BFD running."""
    snap = load("openstack")
    assert not any(i.liveness_read for ch in snap.chassis.values() for i in ch.interfaces)
    audit = audit_snapshot(snap)
    assert not [n for c in audit.chassis for n in c.notices]
    assert not [p for c in audit.chassis for p in c.health if p.kind == "bfd"]


def test_cut_off_chassis_with_vifs_is_broken(failover):
    """gateway-0 reaches no peer: a notice while it serves nothing, broken once a VIF is
    bound there (its traffic through the gateways is lost)."""
    snap = copy.deepcopy(failover)
    vif = next(pb for pb in snap.southbound.tables["Port_Binding"]
               if pb["type"] == "" and pb["chassis"])
    vif["chassis"] = chassis_uuid(snap, "gateway-0")
    chassis = by_chassis(audit_snapshot(snap))
    (problem,) = [p for p in chassis["gateway-0"].health if p.kind == "bfd"]
    assert "cut off" in problem.message and "VIFs are bound here" in problem.message
    assert len(chassis["gateway-0"].notices) == 3  # its sessions, one by one
