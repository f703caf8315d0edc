"""Interconnect zones (ovn-kubernetes' interconnect mode) on a snapshot recorded from the
kind-ic lab: a zone per node, each with its own SB whose datapath and port keys
overlap the others'.  Traces cross zones through the transit switch's tunnel with each
hop read in its own zone; the audit checks each zone, and its remote ports against the
IC-SB."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from conftest import FIXTURES, recorded

from ofrace.annotate.annotated import Annotator
from ofrace.annotate.session import TraceRequest, run_trace
from ofrace.audit.cluster import audit_snapshot
from ofrace.collect.inventory import load_inventory
from ofrace.compare.packets import chassis_packets
from ofrace.errors import InputError
from ofrace.ovn.southbound import ChassisNames, SouthboundIndex, chassis_view
from ofrace.render.trace_json import trace_json
from ofrace.snapshot import Snapshot

NODES = ("ovn-control-plane", "ovn-worker", "ovn-worker2")
NGINX = "default_nginx-deployment-9456bbbf9-x6pc6"
NODEPORT = ('inport == "breth0_ovn-control-plane" && eth.src == 02:42:7a:79:82:ca && '
            "eth.dst == 02:42:ac:12:00:03 && ip4.src == 172.18.0.1 && ip4.dst == 172.18.0.3 "
            "&& ip.ttl == 64 && tcp.src == 12345 && tcp.dst == 30007 && tcp.flags == 2")


@pytest.fixture
def zones() -> Snapshot:
    return recorded("kind-ic")[0]


def _fresh() -> Snapshot:
    return copy.deepcopy(recorded("kind-ic")[0])


# ------------------------------------------------------------------ snapshot


def test_the_snapshot_has_a_zone_per_node_and_the_ic_sb(zones):
    assert zones.southbound is None and zones.northbound is None
    assert list(zones.zones) == list(NODES)
    for name, zone in zones.zones.items():
        assert zone.chassis == [name]
        assert zone.southbound.tables["Logical_Flow"] and not zone.southbound.error
        assert zone.northbound.tables["NB_Global"][0]["name"] == name
    assert {row["logical_port"] for row in zones.interconnect.tables["Port_Binding"]} == {
        f"tstor-{node}" for node in NODES}
    assert zones.complete, zones.all_problems()
    assert zones.zone_of("ovn-worker").name == "ovn-worker"
    assert zones.zone_of(zones.chassis["ovn-worker"].system_id).name == "ovn-worker"


def test_zones_survive_save_and_load(zones, tmp_path: Path):
    zones.save(tmp_path / "z.ofr")
    again = Snapshot.load(tmp_path / "z.ofr")
    assert list(again.zones) == list(zones.zones)
    assert again.interconnect.tables == zones.interconnect.tables


def test_an_older_snapshot_loads_without_zones():
    kind = recorded("kind")[0]
    assert kind.zones == {} and kind.interconnect is None
    assert kind.zone_of("ovn-worker") is None


def test_a_zone_stored_under_another_name_is_refused(zones, tmp_path: Path):
    doc = zones.to_dict()
    doc["zones"]["ovn-worker"]["name"] = "elsewhere"
    with pytest.raises(InputError, match="zone 'ovn-worker' is named 'elsewhere'"):
        Snapshot.from_dict(doc)


def test_zones_tunnel_keys_overlap_so_each_chassis_reads_its_own(zones):
    """Why the SBs are never merged: datapath key 1 is a different router in each zone
    (not in this lab: the same name), and key 3 is ovn-worker's node switch only there."""
    names = ChassisNames(zones)
    assert names("ovn-worker").zone == "ovn-worker"
    assert names("ovn-worker2").zone == "ovn-worker2"
    worker, worker2 = names("ovn-worker"), names("ovn-worker2")
    assert worker.datapath_name(worker.datapath_by_key(3)) == "ovn-worker"
    assert worker2.datapath_by_key(3) is None
    assert worker.datapath_by_key(1)["_uuid"] != worker2.datapath_by_key(1)["_uuid"]
    assert chassis_view(zones, "ovn-worker").southbound is zones.zones["ovn-worker"].southbound


def test_without_zones_every_chassis_reads_the_one_southbound():
    kind = recorded("kind")[0]
    names = ChassisNames(kind)
    assert names("ovn-worker") is names("ovn-worker2") is names.central
    assert names.central.zone is None
    assert chassis_view(kind, "ovn-worker") is kind


# --------------------------------------------------------------------- trace


def _hops(hop):
    yield hop
    for child in hop.children:
        yield from _hops(child)


def test_pod_to_pod_across_zones_each_hop_in_its_own_zone(zones):
    request = TraceRequest.from_options(None, "k8s-ovn-worker2", "10.244.1.3:80", "tcp",
                                        None, False)
    result = run_trace(zones, request)
    [verdict] = result.annotated.verdicts
    assert verdict.kind == "delivered" and verdict.logical_port == NGINX
    out = verdict.packet
    # as the wire shows it (integration/test_zones_trace.py): routed in both zones
    assert (out["nw_ttl"], out["dl_src"], out["dl_dst"]) == (62, 0x0a580af40101,
                                                             0x0a580af40103)
    hops = list(_hops(result.annotated.root))
    assert [(h.chassis, h.zone) for h in hops] == [("ovn-worker2", "ovn-worker2"),
                                                   ("ovn-worker", "ovn-worker")]
    first = {e.datapath for e in hops[0].events if e.datapath}
    second = {e.datapath for e in hops[1].events if e.datapath}
    assert first == {"ovn-worker2", "ovn_cluster_router", "transit_switch"}
    assert second == {"transit_switch", "ovn_cluster_router", "ovn-worker"}
    # the second hop's logical flows are ovn-worker's zone's rows
    rows = {r["_uuid"] for r in zones.zones["ovn-worker"].southbound.tables["Logical_Flow"]}
    stages = [e for e in hops[1].events if e.stage]
    assert stages and all(e.cookie and any(u.startswith(f"{e.cookie:08x}") for u in rows)
                          for e in stages)
    assert any(e.outport == NGINX for e in hops[1].events)
    doc = trace_json(result.annotated, result.request)
    assert doc["trace"]["zone"] == "ovn-worker2"
    assert doc["trace"]["next_hops"][0]["zone"] == "ovn-worker"


def test_one_zones_southbound_for_every_hop_names_the_other_zone_wrongly(zones):
    """Negative control: ovn-worker2's SB read on ovn-worker's hop finds no node switch
    for its key, so the per-chassis choice is what names the last hop."""
    request = TraceRequest.from_options(None, "k8s-ovn-worker2", "10.244.1.3:80", "tcp",
                                        None, False)
    result = run_trace(zones, request)
    wrong = SouthboundIndex(zones, "ovn-worker2")
    annotated = Annotator(wrong, zones, names_for=lambda chassis: wrong).trace(result.forward)
    second = list(_hops(annotated.root))[1]
    assert "ovn-worker" not in {e.datapath for e in second.events}
    assert not any(e.outport == NGINX for e in second.events)


def test_pod_to_cluster_ip_is_balanced_in_its_zone_and_delivered_in_another(zones):
    request = TraceRequest.from_options(None, "kube-system_coredns-64897985d-rzjfr",
                                        "10.96.91.159:80", "tcp", None, False)
    result = run_trace(zones, request)
    [verdict] = result.annotated.verdicts
    assert verdict.kind == "delivered" and verdict.logical_port == NGINX
    assert (verdict.packet["nw_dst"], verdict.packet["tp_dst"]) == (0x0af40103, 80)
    hops = list(_hops(result.annotated.root))
    assert [h.zone for h in hops] == ["ovn-control-plane", "ovn-worker"]
    lb = [e for e in hops[0].events if "ct_lb_mark" in (e.logical_actions or "")]
    assert lb and lb[0].datapath == "ovn-control-plane"
    assert any("Service_default/nginx-np_TCP_cluster" in nb for e in lb for nb in e.northbound)


def test_seed_nodeport_enters_one_zone_and_is_delivered_in_another(zones):
    result = run_trace(zones, TraceRequest.from_options(NODEPORT, None, None, "tcp", None,
                                                        True))
    # the cold gateway router holds the SYN for ARP (its request reaches the host stack);
    # ovn-controller releases it when the answer comes
    [verdict] = [v for v in result.annotated.verdicts if v.kind == "delivered"]
    assert verdict.kind == "delivered" and verdict.logical_port == NGINX
    out = verdict.packet
    # GR_ovn-control-plane DNATs to nginx and SNATs to its join IP; three routers
    assert (out["nw_src"], out["nw_dst"], out["tp_dst"], out["nw_ttl"]) == (
        0x64400004, 0x0af40103, 80, 61)
    zones_seen = {(h.chassis, h.zone) for h in _hops(result.annotated.root)}
    assert ("ovn-control-plane", "ovn-control-plane") in zones_seen
    assert ("ovn-worker", "ovn-worker") in zones_seen
    # the reply crosses back into ovn-control-plane's zone and its GR un-NATs it
    back = {(h.chassis, h.zone) for h in _hops(result.back.root)}
    assert ("ovn-worker", "ovn-worker") in back
    assert ("ovn-control-plane", "ovn-control-plane") in back
    gr = [e for h in _hops(result.back.root) if h.chassis == "ovn-control-plane"
          for e in h.events if e.datapath == "GR_ovn-control-plane"]
    assert gr


def test_a_port_only_as_a_remote_copy_is_resolved_in_its_own_zone(zones):
    names = ChassisNames(zones)
    found = names.where_bound("tstor-ovn-worker")
    assert found.zone == "ovn-worker"
    assert (found.ports_by_name["tstor-ovn-worker"].get("type") or "") != "remote"
    assert names.where_bound("no-such-port") is None


# --------------------------------------------------------------------- audit


def test_each_zone_audits_clean_with_the_ic_sb_checked(zones):
    audit = audit_snapshot(zones)
    assert audit.clean
    assert [c.chassis for c in audit.chassis] == list(NODES)
    assert not any(n.kind == "interconnect" for c in audit.chassis for n in c.notices)


def _interconnect_found(snapshot) -> list[str]:
    return [p.message for c in audit_snapshot(snapshot).chassis for p in c.health
            if p.kind == "interconnect"]


def test_a_remote_port_deleted_from_the_ic_sb_is_found():
    snapshot = _fresh()
    rows = snapshot.interconnect.tables["Port_Binding"]
    snapshot.interconnect.tables["Port_Binding"] = [r for r in rows
                                                    if r["logical_port"] != "tstor-ovn-worker"]
    found = _interconnect_found(snapshot)
    assert any(m.startswith("zone ovn-control-plane: remote port tstor-ovn-worker") and
               "stale transit port" in m for m in found), found
    assert any(m.startswith("zone ovn-worker2: remote port tstor-ovn-worker") for m in found)
    assert any(m.startswith("zone ovn-worker: transit port tstor-ovn-worker") for m in found)


def test_a_remote_port_with_another_key_or_gateway_in_the_ic_sb_is_found():
    snapshot = _fresh()
    rows = {r["logical_port"]: r for r in snapshot.interconnect.tables["Port_Binding"]}
    rows["tstor-ovn-worker"]["tunnel_key"] = 9
    rows["tstor-ovn-worker2"]["gateway"] = rows["tstor-ovn-control-plane"]["gateway"]
    found = _interconnect_found(snapshot)
    assert any("tstor-ovn-worker of transit_switch has tunnel key 2 here, 9 in the IC-SB"
               in m for m in found), found
    assert any(m.startswith("zone ovn-worker: remote port tstor-ovn-worker2") and
               "IC-SB names gateway" in m for m in found), found


def test_a_stale_remote_port_in_one_zone_is_found_there_only():
    """A transit port left in one zone's SB after its zone is gone from the IC-SB."""
    snapshot = _fresh()
    sb = snapshot.zones["ovn-worker"].southbound.tables
    stale = copy.deepcopy(next(pb for pb in sb["Port_Binding"]
                               if pb["logical_port"] == "tstor-ovn-worker2"))
    stale.update(_uuid="0badc0de-0000-4000-8000-000000000001", logical_port="tstor-gone",
                 tunnel_key=7)
    sb["Port_Binding"].append(stale)
    found = _interconnect_found(snapshot)
    assert found == ["zone ovn-worker: remote port tstor-gone of transit_switch has no "
                     "IC-SB Port_Binding: a stale transit port, no zone owns it"]


def test_a_chassisredirect_port_northd_derives_on_the_transit_switch_is_not_an_ic_port():
    """OVN 26.03 gives the zone's own transit router port a cr- port; ovn-ic never
    registers it.  The same row as an ordinary port is a finding (the control)."""
    for port_type, expected in (("chassisredirect", []), ("", ["no IC-SB Port_Binding"])):
        snapshot = _fresh()
        sb = snapshot.zones["ovn-worker"].southbound.tables
        derived = copy.deepcopy(next(pb for pb in sb["Port_Binding"]
                                     if pb["logical_port"] == "tstor-ovn-worker"))
        derived.update(_uuid="0badc0de-0000-4000-8000-000000000002",
                       logical_port="cr-tstor-ovn-worker", tunnel_key=8, type=port_type)
        sb["Port_Binding"].append(derived)
        found = _interconnect_found(snapshot)
        assert [m for m in expected if not any(m in f for f in found)] == [] and \
            len(found) == len(expected), found


def test_without_the_ic_sb_the_audit_says_what_it_did_not_check():
    snapshot = _fresh()
    snapshot.interconnect = None
    audit = audit_snapshot(snapshot)
    assert audit.clean
    notices = [n.message for c in audit.chassis for n in c.notices if n.kind == "interconnect"]
    assert len(notices) == 3 and "remote ports not checked" in notices[0]


def test_a_zone_whose_southbound_was_not_read_is_not_audited():
    snapshot = _fresh()
    snapshot.zones["ovn-worker"].southbound.error = "connection refused"
    snapshot.zones["ovn-worker"].southbound.tables = {}
    audit = audit_snapshot(snapshot)
    worker = next(c for c in audit.chassis if c.chassis == "ovn-worker")
    assert worker.unreadable and "zone ovn-worker's Southbound" in worker.unreadable
    assert not audit.complete


# ------------------------------------------------------------------- compare


def test_generated_packets_come_from_each_chassis_zone(zones):
    for node in NODES:
        packets = chassis_packets(zones, zones.chassis[node])
        transit = [p for p in packets if "(another zone)" in p.label]
        assert transit, node
        # the transit switch's key and the remote port << 16 | this zone's transit port
        assert all(p.packet["tun_id"] == 16711682 for p in transit)


def test_recorded_traces_cover_the_transit_tunnels():
    _, traces = recorded("kind-ic")
    assert sum("(another zone)" in t["label"] for t in traces) == 10


# ----------------------------------------------------------------- inventory


def test_the_inventory_names_the_ic_sb(tmp_path: Path):
    path = tmp_path / "inv.toml"
    path.write_text('[[node]]\nname = "a"\ntransport = "local"\n'
                    'southbound = "unix:/run/a/sb.sock"\n'
                    '[interconnect]\nsouthbound = "tcp:192.0.2.1:6646"\n')
    inventory = load_inventory(path)
    assert inventory.interconnect.remote == "tcp:192.0.2.1:6646"
    assert inventory.nodes[0].southbound == "unix:/run/a/sb.sock"
    path.write_text('[interconnect]\nremote = "tcp:192.0.2.1:6646"\n')
    with pytest.raises(InputError, match="IC-SB as southbound"):
        load_inventory(path)


def test_fixture_is_where_it_is_said_to_be():
    assert (FIXTURES / "kind-ic" / "snapshot.ofr").is_file()


# ------------------------------------------------------------------- collect


def test_collect_reads_each_nodes_zone_through_the_node(monkeypatch, zones):
    """The zone DBs are read via their node (after it), named by NB_Global.name; nodes
    naming the same zone share it; an unreachable node's zone says why it is missing."""
    from ofrace.collect import cluster
    from ofrace.collect.inventory import Inventory, NodeSpec
    from ofrace.snapshot import Chassis, Problem

    reads = []

    def node(spec, transport, limits=None):
        if spec.name == "down":
            return Chassis(name="down", transport="local", reachable=False,
                           problems=[Problem("down", "collect", "no route")])
        found = copy.deepcopy(zones.chassis.get(spec.name) or zones.chassis["ovn-worker"])
        found.name = spec.name
        return found

    def database(name, tables, spec, transports, snapshot, limits=None, local=None):
        reads.append((spec.via, name, spec.remote))
        assert spec.via in snapshot.chassis   # the node was read first
        zone = "ovn-worker" if spec.via == "twin" else spec.via
        return copy.deepcopy(getattr(zones.zones[zone], name))

    monkeypatch.setattr(cluster, "collect_node", node)
    monkeypatch.setattr(cluster, "collect_database", database)
    nodes = [NodeSpec(name=n, transport="local", southbound=f"unix:/{n}/sb.sock",
                      northbound=f"unix:/{n}/nb.sock") for n in ("ovn-worker", "twin", "down")]
    snapshot = cluster.collect_cluster(Inventory(nodes=nodes))
    assert list(snapshot.zones) == ["down", "ovn-worker"]
    assert snapshot.zones["ovn-worker"].chassis == ["ovn-worker", "twin"]
    assert snapshot.zones["down"].southbound.error == "via node down is unreachable"
    assert {(via, name) for via, name, _ in reads} == {
        ("ovn-worker", "southbound"), ("ovn-worker", "northbound"),
        ("twin", "southbound"), ("twin", "northbound")}
    assert any(p.where == "zone down southbound" for p in snapshot.all_problems())
