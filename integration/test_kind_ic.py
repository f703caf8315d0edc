"""kind-ic: the seed's cluster in ovn-kubernetes' interconnect mode, a zone per node.

What ovn-ic must have done (ic/ovn-ic.c: gateway_run, port_binding_run) is read from
every zone's SB and from the IC-SB; then real packets (netdev-dummy/receive in, pcaps
out) cross zones through the transit switch, Geneve on the underlay in between.
"""

from __future__ import annotations

import json
import re

import pytest
from test_lab import canonical_flows

from ofrace.collect.inventory import load_inventory
from ofrace.lab import interconnect
from ofrace.lab.lab import Lab

pytestmark = pytest.mark.lab

NODES = ("ovn-control-plane", "ovn-worker", "ovn-worker2")
NGINX_VIF = "nginx-x6pc6"                 # 10.244.1.3 on ovn-worker
COREDNS_VIF = "coredns-rzjfr"             # 10.244.2.3 on ovn-control-plane
UNDERLAY = "br-phys_tunnel"               # br-phys' port to the tunnel network
GENEVE_PORT = "6081"
# The seed's docker bridge (172.18.0.1) to ovn-control-plane's NodePort: its gateway
# router's load balancer sends it to nginx, whose pod is in ovn-worker's zone.
NODEPORT_SYN = (
    "eth(src=02:42:7a:79:82:ca,dst=02:42:ac:12:00:03),eth_type(0x0800),"
    "ipv4(src=172.18.0.1,dst=172.18.0.3,proto=6,tos=0,ttl=64,frag=no),"
    "tcp(src={sport},dst=30007),tcp_flags(syn)"
)


def packet_fields(flow: str) -> dict[str, str]:
    """``ovs-ofctl parse-pcap`` output as a dict; the leading protocol word maps to ''."""
    return {key: value for key, _, value in (item.partition("=") for item in flow.split(","))}


@pytest.fixture(scope="module")
def lab(lab_slot) -> Lab:
    return lab_slot.ensure("kind-ic")


def zone(lab: Lab, name: str) -> dict:
    return next(z for z in lab.state["zones"] if z["name"] == name)


def sb_rows(lab: Lab, zone_name: str, table: str, *columns: str) -> list[dict]:
    return lab._sb_rows(table, *columns, remote=zone(lab, zone_name)["sb_remote"])


def system_id(lab: Lab, node: str) -> str:
    return lab.chassis(node)["system_id"]


def test_every_zone_has_its_own_databases_and_daemons(lab):
    """Per node: NB and SB ovsdb-server, ovn-northd, ovn-ic, ovn-controller, in its netns;
    NB_Global.name is the zone's; the IC databases run on central."""
    running = {(p["chassis"], p.get("name") or p["what"]): p for p in lab.status()["processes"]}
    for node in NODES:
        netns = lab.chassis(node)["netns"]
        for daemon in ("ovnnb_db", "ovnsb_db", "ovn-northd", "ovn-ic", "ovn-controller"):
            proc = running[(node, daemon)]
            assert proc["alive"] and proc["netns"] == netns, (node, daemon)
        name = lab.nbctl("get", "NB_Global", ".", "name", remote=zone(lab, node)["nb_remote"])
        assert name.strip().strip('"') == node
    assert running[("central", "ovn_ic_nb_db")]["alive"]
    assert running[("central", "ovn_ic_sb_db")]["alive"]
    assert not any(p["what"] == "ovn-northd" and p["chassis"] == "central"
                   for p in lab.state["processes"]), "no central northd in a lab of zones"


def test_every_zone_sees_the_other_zones_as_remote(lab):
    """Each zone's SB: the other zones' gateways as remote chassis, and their transit
    ports as remote port bindings bound to those chassis; its own transit port local."""
    for node in NODES:
        chassis = {row["_uuid"]: row for row in sb_rows(lab, node, "Chassis", "_uuid", "name",
                                                        "other_config")}
        by_name = {row["name"]: row for row in chassis.values()}
        assert set(by_name) == {system_id(lab, n) for n in NODES}
        for other in NODES:
            remote = by_name[system_id(lab, other)]["other_config"].get("is-remote") == "true"
            assert remote == (other != node), (node, other)
        assert by_name[system_id(lab, node)]["other_config"].get("is-interconn") == "true"
        bindings = {row["logical_port"]: row for row in sb_rows(
            lab, node, "Port_Binding", "logical_port", "type", "chassis", "datapath")}
        for other in NODES:
            binding = bindings[f"tstor-{other}"]
            if other == node:
                assert binding["type"] == "patch"
            else:
                assert binding["type"] == "remote"
                assert chassis[binding["chassis"]]["name"] == system_id(lab, other)
        transit = {bindings[f"tstor-{n}"]["datapath"] for n in NODES}
        assert len(transit) == 1, "all three ports on one transit switch datapath"


def test_ic_sb_lists_every_zones_transit_port(lab):
    rows = json.loads(interconnect.ic_sbctl(
        lab, "--format=json", "--columns=logical_port,transit_switch,gateway,address,"
        "tunnel_key", "list", "Port_Binding"))
    ports = {row[0]: row[1:] for row in rows["data"]}
    assert set(ports) == {f"tstor-{n}" for n in NODES}
    for node in NODES:
        switch, gateway, address, key = ports[f"tstor-{node}"]
        assert (switch, gateway) == ("transit_switch", system_id(lab, node))
        node_id = {"ovn-worker2": 2, "ovn-worker": 3, "ovn-control-plane": 4}[node]
        assert address == f"0a:58:64:58:00:{node_id:02x} 100.88.0.{node_id}/16"
    # ovn-ic allocates keys lowest first in registration order: the zones' order.
    assert [ports[f"tstor-{n}"][3] for n in NODES] == [1, 2, 3]
    zones = interconnect.ic_sbctl(lab, "--bare", "--columns=name", "list",
                                  "Availability_Zone").split()
    assert sorted(zones) == sorted(NODES)


def _send(lab: Lab, node: str, port: str, flow: str, out_node: str, out_port: str,
          count: int = 1) -> list[dict]:
    before = len(lab.pcap_packets(out_node, out_port))
    lab.inject(node, port, flow)
    return [packet_fields(p) for p in
            lab.wait_for_packets(out_node, out_port, before + count)[before:]]


def _geneve(lab: Lab, node: str, since: int) -> list[dict]:
    """Geneve packets ``node`` sent on the underlay since the ``since``-th packet."""
    return [f for f in map(packet_fields, lab.pcap_packets(node, UNDERLAY)[since:])
            if f.get("tp_dst") == GENEVE_PORT]


def test_pod_pings_a_pod_in_another_zone_and_the_reply_comes_back(lab):
    """nginx (ovn-worker) -> coredns (ovn-control-plane): two cluster routers, one per
    zone, with the transit switch between them; the echo reply takes the way back."""
    underlay_before = len(lab.pcap_packets("ovn-worker", UNDERLAY))
    request = ("eth(src=0a:58:0a:f4:01:03,dst=0a:58:0a:f4:01:01),eth_type(0x0800),"
               "ipv4(src=10.244.1.3,dst=10.244.2.3,proto=1,tos=0,ttl=64,frag=no),"
               "icmp(type=8,code=0)")
    reply_before = len(lab.pcap_packets("ovn-worker", NGINX_VIF))
    arrived = _send(lab, "ovn-worker", NGINX_VIF, request, "ovn-control-plane", COREDNS_VIF)
    assert len(arrived) == 1, arrived
    echo = arrived[0]
    assert (echo["nw_src"], echo["nw_dst"], echo["icmp_type"]) == ("10.244.1.3", "10.244.2.3",
                                                                  "8")
    assert (echo["dl_src"], echo["dl_dst"]) == ("0a:58:0a:f4:02:01", "0a:58:0a:f4:02:03")
    assert echo["nw_ttl"] == "62", "routed by ovn_cluster_router in both zones"
    tunnelled = _geneve(lab, "ovn-worker", underlay_before)
    assert any(p["nw_src"] == "192.168.100.4" and p["nw_dst"] == "192.168.100.3"
               for p in tunnelled), tunnelled
    # coredns answers: the reply crosses back into ovn-worker's zone.
    reply = ("eth(src=0a:58:0a:f4:02:03,dst=0a:58:0a:f4:02:01),eth_type(0x0800),"
             "ipv4(src=10.244.2.3,dst=10.244.1.3,proto=1,tos=0,ttl=64,frag=no),"
             "icmp(type=0,code=0)")
    lab.inject("ovn-control-plane", COREDNS_VIF, reply)
    back = [packet_fields(p) for p in
            lab.wait_for_packets("ovn-worker", NGINX_VIF, reply_before + 1)[reply_before:]]
    assert len(back) == 1, back
    assert (back[0]["nw_src"], back[0]["icmp_type"], back[0]["nw_ttl"]) == ("10.244.2.3", "0",
                                                                            "62")
    assert back[0]["dl_src"] == "0a:58:0a:f4:01:01"


def test_pod_tcp_syn_to_a_pod_in_another_zone(lab):
    """coredns (ovn-control-plane) -> nginx:80 (ovn-worker), a TCP SYN."""
    syn = ("eth(src=0a:58:0a:f4:02:03,dst=0a:58:0a:f4:02:01),eth_type(0x0800),"
           "ipv4(src=10.244.2.3,dst=10.244.1.3,proto=6,tos=0,ttl=64,frag=no),"
           "tcp(src=41000,dst=80),tcp_flags(syn)")
    arrived = _send(lab, "ovn-control-plane", COREDNS_VIF, syn, "ovn-worker", NGINX_VIF)
    assert len(arrived) == 1, arrived
    got = arrived[0]
    assert (got["nw_src"], got["tp_src"], got["nw_dst"], got["tp_dst"]) == (
        "10.244.2.3", "41000", "10.244.1.3", "80")
    assert got["nw_ttl"] == "62" and got["tcp_flags"] == "syn"


def test_pod_to_cluster_ip_with_its_backend_in_another_zone(lab):
    """coredns -> nginx-np's ClusterIP 10.96.91.159:80: the load balancer on
    ovn-control-plane's node switch DNATs to 10.244.1.3:80, across the transit switch."""
    syn = ("eth(src=0a:58:0a:f4:02:03,dst=0a:58:0a:f4:02:01),eth_type(0x0800),"
           "ipv4(src=10.244.2.3,dst=10.96.91.159,proto=6,tos=0,ttl=64,frag=no),"
           "tcp(src=41100,dst=80),tcp_flags(syn)")
    arrived = _send(lab, "ovn-control-plane", COREDNS_VIF, syn, "ovn-worker", NGINX_VIF)
    assert len(arrived) == 1, arrived
    got = arrived[0]
    assert (got["nw_src"], got["tp_src"], got["nw_dst"], got["tp_dst"]) == (
        "10.244.2.3", "41100", "10.244.1.3", "80")
    assert got["nw_ttl"] == "62" and got["tcp_flags"] == "syn"


def test_seed_nodeport_through_another_zones_gateway_reaches_the_pod(lab):
    """External -> ovn-control-plane's 172.18.0.3:30007 -> nginx on ovn-worker.

    GR_ovn-control-plane DNATs to 10.244.1.3:80 and SNATs to its join IP 100.64.0.4
    (lb_force_snat_ip=router_ip); its zone's ovn_cluster_router sends it over the transit
    switch to ovn-worker's.  Three routers: TTL 61.  A first SYN through the cold gateway
    router is held for ARP and re-injected (see test_lab's seed test), so a warm-up SYN
    goes first and may arrive from its port + 1; the seed's SYN then arrives as sent.
    """
    underlay_before = len(lab.pcap_packets("ovn-control-plane", UNDERLAY))
    warm = _send(lab, "ovn-control-plane", "eth0", NODEPORT_SYN.format(sport=40100),
                 "ovn-worker", NGINX_VIF)
    assert len(warm) == 1, warm
    assert warm[0]["tp_src"] in ("40100", "40101")
    arrived = _send(lab, "ovn-control-plane", "eth0", NODEPORT_SYN.format(sport=12345),
                    "ovn-worker", NGINX_VIF)
    assert len(arrived) == 1, arrived
    syn = arrived[0]
    assert (syn["nw_src"], syn["tp_src"]) == ("100.64.0.4", "12345")
    assert (syn["nw_dst"], syn["tp_dst"]) == ("10.244.1.3", "80")
    assert (syn["dl_src"], syn["dl_dst"]) == ("0a:58:0a:f4:01:01", "0a:58:0a:f4:01:03")
    assert syn["nw_ttl"] == "61" and syn["tcp_flags"] == "syn"
    tunnelled = _geneve(lab, "ovn-control-plane", underlay_before)
    assert any(p["nw_src"] == "192.168.100.3" and p["nw_dst"] == "192.168.100.4"
               for p in tunnelled), tunnelled


def test_inventory_names_each_nodes_zone_databases(lab):
    inventory = load_inventory(lab.layout.inventory_file)
    assert inventory.southbound is None and inventory.northbound is None
    for node in inventory.nodes:
        own = zone(lab, node.name)
        assert (node.northbound, node.southbound) == (own["nb_remote"], own["sb_remote"])
        assert node.southbound == f"unix:{lab.layout.zone_sb_socket(node.name)}"


def canonical_zone_flows(dump: str) -> list[str]:
    """test_lab's canonical flows, and the transit switch's flood flows made order-free.

    A flood flow on the transit switch sends to each remote port in turn ("load:<port
    key>->NXM_NX_REG15[]", its tunnel, "output:<tunnel>"), in the order of the
    Multicast_Group's Port_Binding references -- by random SB row UUID, as test_lab's
    canonical_flows says of local ports -- so those blocks are sorted too.
    """
    lines = []
    for line in canonical_flows(dump):
        match, _, actions = line.partition(" actions=")
        if re.search(r"reg15=0x[89a-f][0-9a-f]{3}\b", match) and "tun_metadata0" in actions:
            blocks = re.split(r",(?=load:0x[0-9a-f]+->NXM_NX_REG15\[\])", actions)
            line = f"{match} actions={','.join(sorted(blocks))}"
        lines.append(line)
    return sorted(lines)


def zone_flow_state(lab: Lab) -> dict[str, list[str]]:
    state = {}
    for chassis in lab.state["chassis"]:
        name = chassis["name"]
        for bridge in chassis["bridges"]:
            dump = lab.run_on(name, ["ovs-ofctl", "dump-flows", bridge, "--no-stats"]).stdout
            state[f"{name} {bridge} flows"] = canonical_zone_flows(dump)
        groups = lab.run_on(name, ["ovs-ofctl", "dump-groups", "br-int"]).stdout
        state[f"{name} groups"] = sorted(groups.splitlines()[1:])
        ports = lab.run_on(name, ["ovs-vsctl", "--format=csv", "--no-headings",
                                  "--columns=name,ofport", "list", "Interface"]).stdout
        state[f"{name} ofports"] = sorted(ports.splitlines())
    return state


def test_two_ups_give_the_same_flows(lab_slot):
    """Bring-up is ordered zone by zone, so tunnel keys (ovn-ic's transit port keys
    too), ofports, conntrack zones (in the flows) and groups come out the same every time.  Last in
    this file: it brings the lab up afresh twice."""
    first = zone_flow_state(lab_slot.up("kind-ic"))
    second = zone_flow_state(lab_slot.up("kind-ic"))
    assert first.keys() == second.keys()
    for key in first:
        assert first[key] == second[key], key
    assert any("metadata=0xff" in line for line in first["ovn-worker br-int flows"]), \
        "the transit switch's flows are among those compared"
