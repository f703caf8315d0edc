"""The openstack topologies hold together as Neutron writes them (no daemons: the files only).

The integration test (integration/test_openstack.py) checks the NB the lab writes; these
check what the TOML promises before any lab comes up, and the schema parts it needs.
"""

from __future__ import annotations

import ipaddress

import pytest

from ofrace.errors import LabError
from ofrace.lab import catalog
from ofrace.lab.northbound import nb_operations, nbctl_commands
from ofrace.lab.topology import build, validate


@pytest.fixture(scope="module")
def openstack():
    return catalog.load("openstack")


def _ports(topology):
    return {p.name: (s, p) for s in topology.switch for p in s.ports}


def _gateway_port(topology):
    ports = [p for r in topology.router for p in r.ports if p.gateway_chassis]
    assert len(ports) == 1
    return ports[0]


def test_ha_gateway_has_two_prioritised_gateway_chassis(openstack):
    port = _gateway_port(openstack)
    gateways = {c.system_id: c for c in openstack.chassis
                if c.ovs_external_ids.get("ovn-cms-options") == "enable-chassis-as-gw"}
    assert len(port.gateway_chassis) >= 2
    assert set(port.gateway_chassis) == set(gateways)
    computes = [c for c in openstack.chassis if c.system_id not in gateways]
    assert len(computes) >= 2


def test_failover_variant_cuts_the_highest_priority_gateway(openstack):
    failover = catalog.load("openstack-failover")
    top = _gateway_port(openstack).gateway_chassis[0]
    assert [failover.chassis_named(n).system_id for n in failover.faults.tunnel_down] == [top]
    assert failover.switch == openstack.switch and failover.router == openstack.router
    assert not openstack.faults.tunnel_down


def test_every_network_has_one_metadata_localport(openstack):
    for switch in openstack.switch:
        meta = [p for p in switch.ports
                if p.external_ids.get("neutron:device_owner") == "network:distributed"]
        assert len(meta) == 1, switch.name
        assert meta[0].type == "localport" and not meta[0].port_security
        assert meta[0].external_ids["neutron:device_id"] == "ovnmeta-" + switch.name[8:]
        # tapped exactly on the computes that host a VM of that network
        vm_chassis = {p.vif.chassis for p in switch.ports if p.vif}
        assert {t.chassis for t in meta[0].taps} == vm_chassis


def test_security_groups_as_neutron_writes_them(openstack):
    ports = _ports(openstack)
    groups = {g.name: g for g in openstack.port_group}
    drop = groups.pop("neutron_pg_drop")
    secured = {name for name, (_, p) in ports.items() if p.port_security}
    assert set(drop.ports) == secured
    assert {(a.direction, a.priority, a.action) for a in drop.acl} == {
        ("from-lport", 1001, "drop"), ("to-lport", 1001, "drop")}
    remote_group_rules = 0
    for name, group in groups.items():
        sg = group.external_ids["neutron:security_group_id"]
        assert name == "pg_" + sg.replace("-", "_")
        members = {p for p, (_, port) in ports.items()
                   if sg in port.external_ids.get("neutron:security_group_ids", "").split()}
        assert set(group.ports) == members
        for acl in group.acl:
            assert acl.priority == 1002 and acl.external_ids["neutron:security_group_rule_id"]
            remote_group_rules += f"${name}_ip" in acl.match
    assert remote_group_rules >= 2


def test_port_names_and_neutron_external_ids(openstack):
    for name, (switch, port) in _ports(openstack).items():
        if port.type == "localnet":
            assert name.startswith("provnet-")
            continue
        assert port.external_ids["neutron:network_name"] == switch.name, name
        cidrs = port.external_ids["neutron:cidrs"].split()
        addresses = port.addresses[0].split()[1:] if port.addresses != ["router"] else []
        assert [str(ipaddress.ip_interface(c).ip) for c in cidrs][:len(addresses)] == \
            addresses, name
    for router in openstack.router:
        assert router.name.startswith("neutron-")
        for port in router.ports:
            assert port.name.startswith("lrp-")
            assert port.name[4:] in _ports(openstack)


def test_fips_distributed_and_centralized(openstack):
    fips = [n for r in openstack.router for n in r.nat if n.type == "dnat_and_snat"]
    distributed = [n for n in fips if n.external_mac]
    assert len(distributed) >= 2 and all(n.logical_port for n in distributed)
    centralized = [n for n in fips if not n.external_mac]
    ports = _ports(openstack)
    assert [ports[n.external_ids["neutron:fip_port_id"]][1].type for n in centralized] == [
        "virtual"]


def test_the_writers_carry_the_new_columns(openstack):
    """Tag, NAT columns, health checks: in both the ovn-nbctl and the one-transaction writer."""
    argv = [a for command in nbctl_commands(openstack) for a in command]
    assert "tag=100" in argv
    assert any(a.startswith("external_mac=") for a in argv)
    assert "Load_Balancer_Health_Check" in argv
    assert any(a.startswith("ip_port_mappings:") for a in argv)
    tables = [op["table"] for op in nb_operations(openstack)]
    assert tables.count("Load_Balancer_Health_Check") == 1
    lsp = [op["row"] for op in nb_operations(openstack) if op["table"] == "Logical_Switch_Port"]
    assert [row["tag"] for row in lsp if "tag" in row] == [100]


def test_schema_refusals():
    """Negative controls: what the new keys must not accept."""
    base = {"name": "t", "chassis": [{"name": "a", "address": "198.18.0.2",
                                      "encap_ip": "192.168.100.2"}]}
    tapped = dict(base, switch=[{"name": "s", "tunnel_key": 1, "port": [
        {"name": "p", "tunnel_key": 1, "taps": [{"chassis": "a", "iface": "t", "ofport": 9}]}]}])
    with pytest.raises(LabError, match="not a localport"):
        validate(build(tapped, "t"), "t")
    tagged = dict(base, switch=[{"name": "s", "tunnel_key": 1, "port": [
        {"name": "p", "tunnel_key": 1, "type": "localnet", "tag": 5000}]}])
    with pytest.raises(LabError, match="not a VLAN id"):
        validate(build(tagged, "t"), "t")
    with pytest.raises(LabError, match="unknown chassis"):
        validate(build(dict(base, faults={"tunnel_down": ["b"]}), "t"), "t")
    with pytest.raises(LabError, match="not a shipped topology"):
        catalog._based_on("no-such", {}, "t")
