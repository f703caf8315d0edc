"""`ofrace audit` on a live openstack lab: a dead gateway that traffic is still sent to.

The fault (issue 14 item 6): gateway-0, the highest-priority member of the
router's HA chassis group and the chassis its cr-lrp port is bound to, dies
while the standby cannot take over.  Injected with ordinary commands: the
standby gateway-1's ovn-controller is stopped (``exit --restart``: its
Chassis row and bindings stay, as after a crash), then gateway-0's, and then
gateway-0 is cut off the tunnel network (Lab.cut_tunnel: what a failed NIC or
top-of-rack port does).  Every BFD session to gateway-0 goes down, yet the SB
still binds cr-lrp to gateway-0 -- nobody is left to claim it -- so the
computes' traffic for the router's gateway port goes to a chassis they cannot
reach.  The audit must call that broken (exit 1) on every chassis that sees
it, and say nothing about BFD on the same lab while it was healthy.
"""

from __future__ import annotations

import time

from lab_inventory import local_inventory

from ofrace.audit.bfd import session_down
from ofrace.audit.cluster import audit_snapshot
from ofrace.collect.cluster import collect_cluster
from ofrace.errors import Exit

DEAD, STANDBY = "gateway-0", "gateway-1"
COMPUTES = ("compute-0", "compute-1")


def snapshot_of(lab):
    return collect_cluster(local_inventory(lab))


def bfd_findings(audit) -> dict:
    return {c.chassis: ([p.message for p in c.health if p.kind == "bfd"],
                        [n.message for n in c.notices]) for c in audit.chassis
            if c.notices or any(p.kind == "bfd" for p in c.health)}


def cr_port_holder(snapshot) -> str | None:
    sb = snapshot.southbound.tables
    cr = next(pb for pb in sb["Port_Binding"] if pb["type"] == "chassisredirect")
    return next((c["hostname"] for c in sb["Chassis"] if c["_uuid"] == cr["chassis"]), None)


def sessions_to_dead_down(lab) -> bool:
    """Each chassis that runs BFD to gateway-0 has seen its session go down."""
    for name in (*COMPUTES, STANDBY):
        out = lab.run_on(name, ["ovs-vsctl", "--bare", "--columns=bfd_status", "list",
                                "Interface"]).stdout
        if "state=down" not in out:
            return False
    return True


def test_dead_gateway_still_bound_is_broken(lab_slot):
    lab = lab_slot.up("openstack")
    healthy = snapshot_of(lab)
    assert cr_port_holder(healthy) == DEAD
    running = [i for ch in healthy.chassis.values() for i in ch.interfaces
               if (i.bfd or {}).get("enable") == "true"]
    assert running and not [i.name for i in running if session_down(i)]
    audit = audit_snapshot(healthy)
    assert bfd_findings(audit) == {}  # the negative control: BFD runs, all up, nothing said

    for name in (STANDBY, DEAD):
        lab.run_on(name, ["ovn-appctl", "-t", "ovn-controller", "exit", "--restart"])
    lab.cut_tunnel(DEAD)
    deadline = time.monotonic() + 60
    while not sessions_to_dead_down(lab):
        assert time.monotonic() < deadline, "BFD to the cut gateway never went down"
        time.sleep(1.0)

    snap = snapshot_of(lab)
    assert cr_port_holder(snap) == DEAD  # the binding was left on the dead gateway
    audit = audit_snapshot(snap)
    assert audit.exit_code == Exit.FOUND
    found = bfd_findings(audit)
    for name in (*COMPUTES, STANDBY):
        broken, notices = found[name]
        assert len(broken) == 1 and not notices, found[name]
        assert f"to {DEAD} is down" in broken[0]
        assert f"still bound to {DEAD}" in broken[0]
    broken, _ = found[DEAD]
    assert any("still holds" in m for m in broken), found[DEAD]
    # Nothing else is called broken but what the stopped controllers explain.
    for ch in audit.chassis:
        assert {p.kind for p in ch.health} <= {"bfd", "sync"}, (ch.chassis, ch.health)
