"""Topologies of zones (kind-ic): each zone's NB is a topology of its own, checked as one."""

from __future__ import annotations

import copy
import tomllib

import pytest

from ofrace.errors import LabError
from ofrace.lab import catalog
from ofrace.lab.interconnect import initial_state, transit_port_argv
from ofrace.lab.layout import LabLayout
from ofrace.lab.northbound import gateway_chassis_commands, nbctl_commands
from ofrace.lab.topology import build, validate

NODES = ["ovn-control-plane", "ovn-worker", "ovn-worker2"]


@pytest.fixture(scope="module")
def kind_ic():
    return catalog.load("kind-ic")


@pytest.fixture(scope="module")
def raw():
    return tomllib.loads(catalog._shipped().joinpath("kind-ic.toml").read_text())


def test_a_zone_per_node_each_with_its_own_network(kind_ic):
    assert [z.name for z in kind_ic.zone] == NODES
    assert [z.chassis for z in kind_ic.zone] == [[n] for n in NODES]
    assert not kind_ic.switch and not kind_ic.router, "nothing outside the zones"
    for zone in kind_ic.zone:
        view = kind_ic.zone_view(zone)
        assert [c.name for c in view.chassis] == [zone.name]
        names = {r.name for r in view.router} | {s.name for s in view.switch}
        assert names == {"ovn_cluster_router", "join", zone.name, f"ext_{zone.name}",
                         f"GR_{zone.name}"}
        # every VIF of the zone is on the zone's own chassis
        assert {vif.chassis for s in view.switch for p in s.ports for vif in [p.vif] if vif} \
            == {zone.name}


def test_vifs_of_every_zone_are_plugged(kind_ic):
    """vifs_on sees the zones' switches (chassis_commands plugs VIFs from it)."""
    assert [p.name for p, _ in kind_ic.vifs_on("ovn-worker")] == [
        "k8s-ovn-worker", "default_nginx-deployment-9456bbbf9-x6pc6"]
    assert len(kind_ic.vifs_on("ovn-control-plane")) == 4


def test_transit_ports_and_remote_routes_as_ovn_kubernetes_writes_them(kind_ic):
    node_id = {"ovn-worker2": 2, "ovn-worker": 3, "ovn-control-plane": 4}
    subnet = {"ovn-worker2": 0, "ovn-worker": 1, "ovn-control-plane": 2}
    for zone in kind_ic.zone:
        (port,) = zone.transit_port
        assert (port.switch, port.name, port.router_port) == (
            "transit_switch", f"tstor-{zone.name}", f"rtots-{zone.name}")
        cluster = next(r for r in zone.router if r.name == "ovn_cluster_router")
        rtots = next(p for p in cluster.ports if p.name == port.router_port)
        k = node_id[zone.name]
        assert (rtots.mac, rtots.networks) == (f"0a:58:64:58:00:{k:02x}", [f"100.88.0.{k}/16"])
        assert rtots.gateway_chassis == [kind_ic.chassis_named(zone.name).system_id]
        routes = {(r.prefix, r.nexthop) for r in cluster.route if r.policy == "dst-ip"}
        for other in set(NODES) - {zone.name}:
            m = node_id[other]
            assert (f"10.244.{subnet[other]}.0/24", f"100.88.0.{m}") in routes
            assert (f"100.64.0.{m}/32", f"100.88.0.{m}") in routes
    assert kind_ic.interconnect.transit_switches == ["transit_switch"]
    for chassis in kind_ic.chassis:
        assert chassis.ovs_external_ids == {"ovn-is-interconn": "true"}


def test_a_zone_gives_the_same_commands_as_a_topology(kind_ic):
    """The writers need nothing new: a zone's view is an ordinary topology."""
    view = kind_ic.zone_view(kind_ic.zone[1])
    commands = nbctl_commands(view)
    assert ["lr-add", "ovn_cluster_router"] in commands
    assert gateway_chassis_commands(view) == [
        ["lrp-set-gateway-chassis", "rtots-ovn-worker", "4da007a6-ed1d-45ff-bcf4-62ae8914bbbc",
         "1"]]
    assert transit_port_argv(kind_ic.zone[1].transit_port[0]) == [
        "lsp-add", "transit_switch", "tstor-ovn-worker", "--", "lsp-set-type",
        "tstor-ovn-worker", "router", "--", "lsp-set-addresses", "tstor-ovn-worker", "router",
        "--", "lsp-set-options", "tstor-ovn-worker", "router-port=rtots-ovn-worker"]


def test_state_names_every_zones_databases_on_its_node(kind_ic, tmp_path):
    state = initial_state(LabLayout(tmp_path), kind_ic)
    assert state["sb_remote"] is None and state["nb_remote"] is None
    assert [z["name"] for z in state["zones"]] == NODES
    for zone in state["zones"]:
        assert zone["sb_remote"] == f"unix:{tmp_path / zone['host'] / 'ovnsb_db.sock'}"
        assert zone["nb_remote"] == f"unix:{tmp_path / zone['host'] / 'ovnnb_db.sock'}"
    assert state["ic_sb_remote"] == f"unix:{tmp_path / 'central' / 'ovn_ic_sb_db.sock'}"


def test_plain_topologies_have_no_zones():
    for name in ("kind", "basic", "acl"):
        topology = catalog.load(name)
        assert topology.zone == [] and topology.interconnect is None


def _broken(raw, change) -> str:
    data = copy.deepcopy(raw)
    change(data)
    with pytest.raises(LabError) as exc:
        validate(build(data, "t"), "t")
    return str(exc.value)


def test_zone_mistakes_are_refused(raw):
    assert "duplicate chassis in a zone 'ovn-worker'" in _broken(
        raw, lambda d: d["zone"][2].update(chassis=["ovn-worker"]))
    assert "chassis ovn-worker2 is in no zone" in _broken(
        raw, lambda d: d["zone"].pop())
    assert "not at the top level" in _broken(
        raw, lambda d: d.setdefault("switch", []).append({"name": "x", "tunnel_key": 99}))
    assert "not an [interconnect] transit switch" in _broken(
        raw, lambda d: d["zone"][0]["transit_port"][0].update(switch="nope"))
    assert "names unknown router port" in _broken(
        raw, lambda d: d["zone"][0]["transit_port"][0].update(router_port="nope"))
    assert "a zone names unknown chassis 'ghost'" in _broken(
        raw, lambda d: d["zone"][0]["chassis"].append("ghost"))
    # a zone is validated as a topology: a VIF on another zone's chassis is refused
    assert "unknown chassis 'ovn-worker'" in _broken(
        raw, lambda d: d["zone"][0]["switch"][1]["port"][1]["vif"].update(
            chassis="ovn-worker", iface="elsewhere", ofport=99))
    assert "only the repeatable way" in _broken(
        raw, lambda d: d.update(bringup={"repeatable": False}))
    assert "[interconnect] without any [[zone]]" in _broken(
        raw, lambda d: d.pop("zone"))
