"""The openstack lab: its NB is what the TOML says, its gateways are bound and fail over.

One lab up for the module.  The last test cuts the highest-priority gateway's tunnel
link (what openstack-failover.toml does at bring-up) and takes the lab down after, so
no later test meets a broken lab.
"""

from __future__ import annotations

import json
import time

import pytest

from ofrace.lab.catalog import load
from ofrace.lab.lab import Lab
from ofrace.lab.traffic import announce_virtual_ports

pytestmark = pytest.mark.lab

TOPOLOGY = "openstack"
FAILOVER_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def topology():
    return load(TOPOLOGY)


@pytest.fixture(scope="module")
def openstack_lab(lab_slot):
    lab = lab_slot.ensure(TOPOLOGY)
    yield lab
    if lab.state.get("faults"):
        lab.down()   # broken on purpose: the next ensure() brings a fresh one up


def rows(output: str) -> list[dict]:
    """``--format=json`` rows with OVSDB's tagged values made plain (sets always lists)."""
    table = json.loads(output)

    def plain(value):
        if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
            tag, body = value
            if tag == "map":
                return {k: plain(v) for k, v in body}
            if tag == "set":
                return [plain(v) for v in body]
            return body
        return value

    return [dict(zip(table["headings"], map(plain, row), strict=True))
            for row in table["data"]]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def nb(lab: Lab, table: str) -> list[dict]:
    return rows(lab.nbctl("--format=json", "list", table))


def sb(lab: Lab, table: str) -> list[dict]:
    return rows(lab.sbctl("--format=json", "list", table))


def chassis_names(lab: Lab) -> dict[str, str]:
    """SB Chassis row uuid -> the lab's chassis name."""
    by_system_id = {c["system_id"]: c["name"] for c in lab.state["chassis"]}
    return {row["_uuid"]: by_system_id[row["name"]] for row in sb(lab, "Chassis")}


def tunnels(lab: Lab, chassis: str) -> dict[str, dict]:
    """Geneve interfaces of a chassis by remote chassis name: bfd and bfd_status."""
    by_ip = {c["encap_ip"]: c["name"] for c in lab.state["chassis"]}
    out = lab.run_on(chassis, ["ovs-vsctl", "--format=json",
                               "--columns=options,bfd,bfd_status", "find", "Interface",
                               "type=geneve"]).stdout
    return {by_ip[row["options"]["remote_ip"]]: row for row in rows(out)}


def cr_port_chassis(lab: Lab) -> dict[str, str | None]:
    names = chassis_names(lab)
    return {row["logical_port"]: names.get(row["chassis"]) if isinstance(row["chassis"], str)
            else None
            for row in sb(lab, "Port_Binding") if row["type"] == "chassisredirect"}


def gateway_order(topology) -> tuple[str, list[str]]:
    """The HA gateway port and its chassis (lab names), highest priority first."""
    port = next(p for r in topology.router for p in r.ports if p.gateway_chassis)
    by_id = {c.system_id: c.name for c in topology.chassis}
    return port.name, [by_id[s] for s in port.gateway_chassis]


def test_switch_ports_are_written_as_the_topology_says(openstack_lab, topology):
    written = {row["name"]: row for row in nb(openstack_lab, "Logical_Switch_Port")}
    wanted = {p.name: p for s in topology.switch for p in s.ports}
    assert set(written) == set(wanted)
    for name, port in wanted.items():
        row = written[name]
        assert row["type"] == port.type, name
        assert as_list(row["addresses"]) == port.addresses, name
        assert as_list(row["port_security"]) == port.port_security, name
        assert {k: v for k, v in row["external_ids"].items()} == port.external_ids, name
        assert (row["tag"] if isinstance(row["tag"], int) else 0) == port.tag, name
    switches = {row["name"]: row for row in nb(openstack_lab, "Logical_Switch")}
    for switch in topology.switch:
        assert switches[switch.name]["external_ids"] == switch.external_ids


def test_localports_are_bound_nowhere_and_tapped_where_the_topology_says(openstack_lab,
                                                                          topology):
    bindings = {row["logical_port"]: row for row in sb(openstack_lab, "Port_Binding")}
    localports = [p for s in topology.switch for p in s.ports if p.type == "localport"]
    assert len(localports) >= len(topology.switch)
    for port in localports:
        assert bindings[port.name]["type"] == "localport"
        assert bindings[port.name]["chassis"] == []
        for tap in port.taps:
            out = openstack_lab.run_on(tap.chassis, [
                "ovs-vsctl", "get", "Interface", tap.iface, "external_ids:iface-id",
                "ofport"]).stdout.split()
            assert out == [f'"{port.name}"', str(tap.ofport)]


def test_security_group_port_groups(openstack_lab, topology):
    lsp_names = {row["_uuid"]: row["name"] for row in nb(openstack_lab, "Logical_Switch_Port")}
    acls = {row["_uuid"]: row for row in nb(openstack_lab, "ACL")}
    written = {row["name"]: row for row in nb(openstack_lab, "Port_Group")}
    assert set(written) == {g.name for g in topology.port_group}
    assert "neutron_pg_drop" in written
    for group in topology.port_group:
        row = written[group.name]
        assert sorted(lsp_names[u] for u in as_list(row["ports"])) == sorted(group.ports)
        assert row["external_ids"] == group.external_ids
        assert sorted((acls[u]["direction"], acls[u]["priority"], acls[u]["match"],
                       acls[u]["action"]) for u in as_list(row["acls"])) == \
            sorted((a.direction, a.priority, a.match, a.action) for a in group.acl)
    # northd derives the remote-group address sets from the port groups
    derived = {row["name"]: sorted(as_list(row["addresses"]))
               for row in sb(openstack_lab, "Address_Set")}
    for group in topology.port_group:
        assert f"{group.name}_ip4" in derived


def test_ha_chassis_priorities(openstack_lab, topology):
    port_name, order = gateway_order(topology)
    by_id = {c["system_id"]: c["name"] for c in openstack_lab.state["chassis"]}
    lrp = next(r for r in nb(openstack_lab, "Logical_Router_Port") if r["name"] == port_name)
    gateway_chassis = {r["_uuid"]: r for r in nb(openstack_lab, "Gateway_Chassis")}
    priorities = {by_id[gateway_chassis[u]["chassis_name"]]: gateway_chassis[u]["priority"]
                  for u in as_list(lrp["gateway_chassis"])}
    assert priorities == {name: len(order) - rank for rank, name in enumerate(order)}
    names = chassis_names(openstack_lab)
    ha = {r["_uuid"]: r for r in sb(openstack_lab, "HA_Chassis")}
    group = next(g for g in sb(openstack_lab, "HA_Chassis_Group") if g["name"] == port_name)
    assert {names[ha[u]["chassis"]]: ha[u]["priority"]
            for u in as_list(group["ha_chassis"])} == priorities


def test_gateway_bound_to_the_highest_priority_and_bfd_up(openstack_lab, topology):
    port_name, order = gateway_order(topology)
    assert cr_port_chassis(openstack_lab) == {f"cr-{port_name}": order[0]}
    for chassis in openstack_lab.state["chassis"]:
        sessions = tunnels(openstack_lab, chassis["name"])
        with_bfd = {peer for peer, row in sessions.items() if row["bfd"].get("enable") == "true"}
        # every chassis runs BFD to each gateway; gateways also to the computes
        assert set(order) - {chassis["name"]} <= with_bfd, chassis["name"]
        for peer in with_bfd:
            assert sessions[peer]["bfd_status"]["state"] == "up", (chassis["name"], peer)


def test_vrrp_master_announcement_binds_the_virtual_port(openstack_lab, topology):
    vport = next(p for s in topology.switch for p in s.ports if p.type == "virtual")
    parent = vport.options["virtual-parents"].split(",")[0]
    parent_chassis = next(p.vif.chassis for s in topology.switch for p in s.ports
                          if p.name == parent)
    binding = next(r for r in sb(openstack_lab, "Port_Binding")
                   if r["logical_port"] == vport.name)
    assert binding["chassis"] == []          # nobody has announced the VIP yet
    assert announce_virtual_ports(openstack_lab) == [vport.name]
    binding = next(r for r in sb(openstack_lab, "Port_Binding")
                   if r["logical_port"] == vport.name)
    assert chassis_names(openstack_lab)[binding["chassis"]] == parent_chassis
    assert binding["virtual_parent"] == parent


def test_failover_binds_the_next_priority(openstack_lab, topology):
    """Last: breaks the lab (the fixture takes it down)."""
    port_name, order = gateway_order(topology)
    openstack_lab.cut_tunnel(order[0])
    deadline = time.monotonic() + FAILOVER_TIMEOUT
    while cr_port_chassis(openstack_lab)[f"cr-{port_name}"] != order[1]:
        assert time.monotonic() < deadline, cr_port_chassis(openstack_lab)
        time.sleep(0.2)
    for chassis in openstack_lab.state["chassis"]:
        if chassis["name"] == order[0]:
            continue
        sessions = tunnels(openstack_lab, chassis["name"])
        deadline = time.monotonic() + FAILOVER_TIMEOUT
        while sessions[order[0]]["bfd_status"].get("state") != "down":
            assert time.monotonic() < deadline, (chassis["name"], sessions[order[0]])
            time.sleep(0.2)
            sessions = tunnels(openstack_lab, chassis["name"])
    # the cut chassis, alone, has every session down and claims nothing
    assert all(row["bfd_status"].get("state") != "up"
               for row in tunnels(openstack_lab, order[0]).values())
