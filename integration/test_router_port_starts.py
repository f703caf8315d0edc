"""A trace starts from every router port, chassisredirect port and localnet port of every
topology (issue 14's check), the ports read from each live lab's SB, not picked by hand.

"Starts": ``run_trace`` gives no input error (exit 2) and its first hop ran at least one
OpenFlow flow.  A localnet port is started on every chassis whose ovn-bridge-mappings
carry its network (where the physical network can hand it a frame); the others where
ofrace's own lookup puts them.  Each topology's snapshot is read once, its lab up only
while it is read.
"""

from __future__ import annotations

import pytest

from ofrace.annotate.session import TraceRequest, run_trace
from ofrace.collect.cluster import collect_cluster
from ofrace.errors import Exit, InputError
from ofrace.lab.verify import lab_inventory

pytestmark = pytest.mark.lab

TOPOLOGIES = ("basic", "kind", "acl", "openstack")
STARTS = ("patch", "l3gateway", "chassisredirect", "localnet")
LOCAL_MAC = "0a:00:00:00:00:01"       # a sender on the provider network no table knows


@pytest.fixture(scope="module")
def snapshots(lab_slot):
    out = {}
    for topology in TOPOLOGIES:
        out[topology] = collect_cluster(lab_inventory(lab_slot.ensure(topology)))
    return out


def start_ports(snapshot) -> list[dict]:
    return sorted((pb for pb in snapshot.southbound.tables["Port_Binding"]
                   if pb.get("type") in STARTS), key=lambda pb: pb["logical_port"])


def mapped_chassis(snapshot, pb: dict) -> list[str]:
    """Chassis whose ovn-bridge-mappings name the localnet port's network."""
    network = (pb.get("options") or {}).get("network_name")
    out = []
    for chassis in snapshot.chassis.values():
        mappings = chassis.external_ids.get("ovn-bridge-mappings", "")
        if any(item.split(":", 1)[0] == network for item in mappings.split(",")):
            out.append(chassis.name)
    return sorted(out)


def source_mac(pb: dict) -> str:
    macs = pb.get("mac") or []
    first = (macs[0] if isinstance(macs, list) and macs else str(macs)).split()
    return first[0] if first and first[0] not in ("router", "unknown") else LOCAL_MAC


def expression(pb: dict) -> str:
    return (f'inport == "{pb["logical_port"]}" && eth.src == {source_mac(pb)} && '
            "eth.dst == ff:ff:ff:ff:ff:ff && ip4.src == 192.0.2.9 && "
            "ip4.dst == 192.0.2.1 && ip.ttl == 64 && udp.src == 1000 && udp.dst == 2000")


def failures(snapshot) -> tuple[int, list[str]]:
    """(traces run, each one that did not start and why)."""
    runs, failed = 0, []
    for pb in start_ports(snapshot):
        where = mapped_chassis(snapshot, pb) if pb["type"] == "localnet" else [None]
        if not where:
            failed.append(f"{pb['logical_port']}: no chassis maps its network")
        for chassis in where:
            runs += 1
            name = f"{pb['type']} {pb['logical_port']}" + (f" on {chassis}" if chassis else "")
            try:
                result = run_trace(snapshot, TraceRequest(expression=expression(pb),
                                                          chassis=chassis))
            except InputError as e:
                failed.append(f"{name}: {e}")
                continue
            hops = result.forward.hops
            flows = [s for s in hops[0].root.walk() if s.kind == "flow"] if hops else []
            if result.exit_code == Exit.INPUT or not flows:
                failed.append(f"{name}: exit {int(result.exit_code)}, "
                              f"{len(flows)} flows in its first hop")
    return runs, failed


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_every_router_cr_and_localnet_port_starts_a_trace(snapshots, topology, capsys):
    runs, failed = failures(snapshots[topology])
    with capsys.disabled():
        print(f"\n[starts] {topology}: {runs} traces from "
              f"{len(start_ports(snapshots[topology]))} ports, {len(failed)} did not start")
    assert failed == [], "\n".join(failed)
    assert runs == sum(len(mapped_chassis(snapshots[topology], pb))
                       if pb["type"] == "localnet" else 1
                       for pb in start_ports(snapshots[topology]))


def test_the_topologies_have_every_kind_of_start(snapshots):
    """Not vacuous: across the topologies every kind of port is there, and openstack has
    a chassisredirect port and a localnet port on each of its networks' chassis."""
    kinds = {pb["type"] for s in snapshots.values() for pb in start_ports(s)}
    assert kinds == set(STARTS)
    openstack = snapshots["openstack"]
    assert {pb["type"] for pb in start_ports(openstack)} >= {"patch", "chassisredirect",
                                                               "localnet"}
    assert all(len(mapped_chassis(openstack, pb)) == len(openstack.chassis)
               for pb in start_ports(openstack) if pb["type"] == "localnet")


def test_an_unknown_port_is_bad_input(snapshots):
    """Negative control: the check can fail -- a port no SB row has does not start."""
    pb = {"logical_port": "no-such-router-port", "type": "patch", "mac": []}
    with pytest.raises(InputError):
        run_trace(snapshots["openstack"], TraceRequest(expression=expression(pb)))
