"""The conversation generator covers what each topology's Northbound makes possible.

What is possible is decided here from the NB rows (and which ports are bound on a
chassis), independently of the generator's own graph walk, so a topology cannot
silently skip gateways, VIPs, NAT or controller-answered packets.  Negative
controls: a VIP removed takes the LB conversations with it; a VIP added brings them.
"""

from __future__ import annotations

import copy
import ipaddress
import uuid
from collections import Counter

import pytest
from conftest import recorded

from ofrace.compare.generator import PacketClass, classes_generated, generate

TOPOLOGIES = ("basic", "kind", "acl", "openstack")


def _bound(snapshot) -> set[str]:
    return {i.iface_id for c in snapshot.chassis.values() for i in c.interfaces
            if i.iface_id and i.ofport not in (None, -1)}


def _addresses(lsp) -> list:
    found = []
    for text in lsp.get("addresses") or []:
        for part in text.split()[1:]:
            try:
                found.append(ipaddress.ip_address(part))
            except ValueError:
                pass
    return found


def possible(snapshot) -> set[PacketClass]:
    """The classes the NB makes possible, read straight from its rows."""
    nb = snapshot.northbound.tables
    rows = {r["_uuid"]: r for t in nb.values() for r in t if "_uuid" in r}
    bound = _bound(snapshot)
    hosts = {r["name"]: r for r in nb["Logical_Switch_Port"]
             if not r.get("type") and _addresses(r)}
    live = {n for n in hosts if n in bound}
    members = {ls["name"]: {rows[p]["name"] for p in ls.get("ports") or []}
               for ls in nb["Logical_Switch"]}
    routed_switches = {ls for ls, ports in members.items()
                       if any(rows_lsp.get("type") == "router" for rows_lsp in
                              (r for r in nb["Logical_Switch_Port"] if r["name"] in ports))}
    found = set()
    if live:
        found |= {PacketClass.SPOOF, PacketClass.UNKNOWN, PacketClass.NEIGHBOUR}
    if any(len(ports & hosts.keys()) >= 2 and ports & live for ports in members.values()):
        found.add(PacketClass.L2)
    if any(v.version == 6 for n in live for v in _addresses(hosts[n])):
        found.add(PacketClass.IPV6)
    for lr in nb["Logical_Router"]:
        ports = [rows[p] for p in lr.get("ports") or []]
        switches_with_hosts = [ls for ls, m in members.items() if m & hosts.keys() and any(
            (r.get("options") or {}).get("router-port") in {p["name"] for p in ports}
            for r in nb["Logical_Switch_Port"] if r["name"] in m)]
        if len(switches_with_hosts) >= 2:
            found.add(PacketClass.ROUTED)
        if (lr.get("options") or {}).get("chassis") or any(
                p.get("gateway_chassis") or p.get("ha_chassis_group") for p in ports):
            found |= {PacketClass.GATEWAY, PacketClass.CONTROLLER}
        if any(ipaddress.ip_interface(n).version == 6 for p in ports for n in p["networks"]):
            found.add(PacketClass.CONTROLLER)
    if nb["NAT"]:
        found.add(PacketClass.NAT)
    if any(r.get("dhcpv4_options") or r.get("dhcpv6_options") for r in hosts.values()):
        found.add(PacketClass.CONTROLLER)
    acl_members = {rows[p]["name"] for pg in nb.get("Port_Group", []) if pg.get("acls")
                   for p in pg.get("ports") or []}
    if nb["ACL"] and acl_members & live:
        found.add(PacketClass.ACL)
    live_ips = {ip for n in live for ip in _addresses(hosts[n])}
    for owner in nb["Logical_Switch"] + nb["Logical_Router"]:
        for ref in owner.get("load_balancer") or []:
            vips = rows[ref].get("vips") or {}
            if vips and (owner in nb["Logical_Router"] or members[owner["name"]] & live):
                found.add(PacketClass.LB)
            backends = {ipaddress.ip_address(b.rpartition(":")[0].strip("[]"))
                        for v in vips.values() for b in v.split(",")}
            if owner in nb["Logical_Switch"] and backends & live_ips:
                found.add(PacketClass.HAIRPIN)
    if any(r.get("type") == "localnet" for r in nb["Logical_Switch_Port"]
           if any(r["name"] in m for ls, m in members.items() if ls in routed_switches)):
        found.add(PacketClass.LOCALNET)
    return found


def possible_kinds(snapshot) -> set[str]:
    """Packet kinds beyond the classes, from the NB rows: a full TCP conversation wherever
    two live hosts share a switch; an oversized packet wherever a gateway router with hosts
    behind it has a port with options:gateway_mtu."""
    found = set()
    if PacketClass.L2 in possible(snapshot):
        found.add("tcp conversation")
    nb = snapshot.northbound.tables
    rows = {r["_uuid"]: r for t in nb.values() for r in t if "_uuid" in r}
    live = _bound(snapshot)
    for lr in nb["Logical_Router"]:
        ports = [rows[p] for p in lr.get("ports") or []]
        gateway = (lr.get("options") or {}).get("chassis") or any(
            p.get("gateway_chassis") or p.get("ha_chassis_group") for p in ports)
        if gateway and any((p.get("options") or {}).get("gateway_mtu") for p in ports) \
                and live:
            found.add("oversized")
    return found


def generated_kinds(conversations) -> set[str]:
    found = set()
    for conv in conversations:
        if conv.kind == "tcp" and [s.name for s in conv.steps] == TCP_STEPS:
            found.add("tcp conversation")
        if conv.classes[:2] == (PacketClass.GATEWAY, PacketClass.CONTROLLER) and \
                conv.steps[0].wire.get("payload_len", 0) > 1000:
            found.add("oversized")
    return found


def with_gateway_mtu(snapshot, mtu: int = 1400):
    """A copy whose gateway routers' ports all carry options:gateway_mtu (as ovn-kubernetes
    sets it on a gateway router's join port)."""
    snapshot = copy.deepcopy(snapshot)
    nb = snapshot.northbound.tables
    rows = {r["_uuid"]: r for t in nb.values() for r in t if "_uuid" in r}
    for lr in nb["Logical_Router"]:
        if (lr.get("options") or {}).get("chassis"):
            for ref in lr.get("ports") or []:
                rows[ref]["options"] = dict(rows[ref].get("options") or {},
                                            gateway_mtu=str(mtu))
    return snapshot


@pytest.mark.parametrize("topology", [*TOPOLOGIES, "kind with gateway_mtu"])
def test_every_possible_kind_has_a_conversation(topology):
    snapshot = recorded(topology.split()[0])[0]
    if topology.endswith("gateway_mtu"):
        snapshot = with_gateway_mtu(snapshot)
    assert possible_kinds(snapshot) == generated_kinds(generate(snapshot))
    assert ("oversized" in possible_kinds(snapshot)) == topology.endswith("gateway_mtu")


def test_an_oversized_packet_goes_out_where_a_gateway_mtu_is_set():
    """Past the MTU as OVN counts it (plus an Ethernet header with a VLAN tag), an ICMP
    echo to an outside address; the length only in Step.wire, not in the packet."""
    snapshot = with_gateway_mtu(recorded("kind")[0], 1400)
    oversized = [c for c in generate(snapshot) if "oversized" in c.label]
    assert oversized
    hosts = {c.label.split(" -> ")[0] for c in generate(snapshot) if
             c.label.endswith(" tcp") and " -> outside via " in c.label}
    assert {c.label.split(":")[0] for c in oversized} == hosts      # every host behind one
    for conv in oversized:
        [step] = conv.steps
        assert conv.classes[:2] == (PacketClass.GATEWAY, PacketClass.CONTROLLER)
        assert (step.packet["dl_type"], step.packet["nw_proto"], step.packet["tp_src"]) == \
            (0x0800, 1, 8)
        assert 14 + 20 + 8 + step.wire["payload_len"] > 1400 + 18
        assert "payload_len" not in step.packet and step.wire["icmp_seq"] == 1
    small = with_gateway_mtu(recorded("kind")[0], 9000)
    assert {c.steps[0].wire["payload_len"] for c in generate(small)
            if "oversized" in c.label} == {9100}


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_every_possible_class_has_a_conversation(topology):
    snapshot, _ = recorded(topology)
    conversations = generate(snapshot)
    counts = classes_generated(conversations)
    wanted = possible(snapshot)
    assert {c for c in wanted if counts[c] == 0} == set()
    assert set(counts) <= wanted, set(counts) - wanted     # nothing the NB does not allow


TCP_STEPS = ["SYN", "SYN-ACK", "ACK", "data", "FIN", "FIN-ACK", "last ACK"]
# the flags each TCP step carries, also where the sender builds a reply from the wire
TCP_FLAGS = {"SYN": 0x002, "SYN-ACK": 0x012, "ACK": 0x010, "data": 0x018, "FIN": 0x011,
             "FIN-ACK": 0x011, "last ACK": 0x010}
# what only the frame carries (a DHCP message's type and asked-for address too)
WIRE_KEYS = {"tcp_seq", "tcp_ack", "payload_len", "icmp_id", "icmp_seq", "dhcp_msg",
             "dhcp_requested_ip"}


def check_tcp_sequence(steps) -> None:
    """Each side's seq is what it sent so far (SYN and FIN count one, data its length),
    its ack what the other side sent: what a window-checking conntrack accepts."""
    sent = {}                   # side -> next sequence number
    for step in steps:
        me, peer = ("server", "client") if step.reply else ("client", "server")
        flags = TCP_FLAGS[step.name]
        if step.packet is not None:
            assert step.packet["tcp_flags"] == flags, step.name
        seq, ack = step.wire["tcp_seq"], step.wire["tcp_ack"]
        if me in sent:
            assert seq == sent[me], step.name
        if flags & 0x010:
            assert ack == sent[peer], step.name
        sent[me] = (seq + step.wire["payload_len"] + bool(flags & 0x003)) & 0xFFFFFFFF


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_connections_are_conversations(topology):
    conversations = generate(recorded(topology)[0])
    tcp = [c for c in conversations if c.kind == "tcp"]
    assert tcp and all(c.label.endswith(" tcp") for c in tcp)
    for conv in tcp:
        assert [s.name for s in conv.steps] == TCP_STEPS
        assert [s.reply for s in conv.steps] == [False, True, False, False, False, True,
                                                 False]
        check_tcp_sequence(conv.steps)
        assert [s.wire["payload_len"] for s in conv.steps] == [0, 0, 0, 16, 0, 0, 0]
        assert [s.ct for s in conv.steps] == [("trk,new",), ("trk,est,rpl",)] + \
            [("trk,est",)] * 3 + [("trk,est,rpl",), ("trk,est",)]
    isns = {c.steps[0].wire["tcp_seq"] for c in tcp}
    assert len(isns) == len({c.label for c in tcp})     # from the label
    echo = [c for c in conversations if c.kind in ("icmp", "icmp6")]
    assert echo and all([s.name for s in c.steps] == ["echo request", "echo reply"]
                        for c in echo)
    for conv in echo:   # type 8 then 0, code 0 both ways (a code of 8 was sent once)
        request, reply = conv.steps[0].packet, conv.steps[1].packet
        assert (request["tp_src"], request.get("tp_dst", 0)) == ((8, 0) if conv.kind == "icmp"
                                                                 else (128, 0))
        assert reply is None or (reply["tp_src"], reply["tp_dst"]) in ((0, 0), (129, 0))
        assert conv.steps[0].wire == conv.steps[1].wire
        assert conv.steps[0].wire["icmp_seq"] == 1 and 0 <= conv.steps[0].wire["icmp_id"] \
            <= 0xFFFF
    assert len({c.steps[0].wire["icmp_id"] for c in echo}) > 1


def test_the_sequence_check_catches_a_wrong_number():
    """Negative control for check_tcp_sequence: one ack off by one fails it."""
    conv = next(c for c in generate(recorded("basic")[0]) if c.kind == "tcp")
    check_tcp_sequence(conv.steps)
    broken = copy.deepcopy(conv.steps)
    broken[4].wire["tcp_ack"] += 1                       # the FIN acks one byte too many
    with pytest.raises(AssertionError):
        check_tcp_sequence(broken)


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_frame_details_stay_out_of_the_openflow_packet(topology):
    """Sequence numbers, echo ids and payload lengths are for the sender only: the engine
    must never see them as fields."""
    conversations = generate(recorded(topology)[0])
    with_wire = 0
    for conv in conversations:
        for step in conv.steps:
            assert set(step.wire) <= WIRE_KEYS, step.wire
            assert not set(step.packet or {}) & WIRE_KEYS
            with_wire += bool(step.wire)
            if conv.kind in ("tcp", "udp"):
                assert "payload_len" in step.wire, (conv.label, step.name)
    assert with_wire > len(conversations)
    again = generate(recorded(topology)[0])
    assert [[s.wire for s in c.steps] for c in again] == \
        [[s.wire for s in c.steps] for c in conversations]


def test_replies_known_here_carry_their_headers():
    """An L2 reply swaps the request; a routed one comes from the far router port's MAC;
    an LB reply is left to the wire (its headers depend on the DNAT)."""
    conversations = generate(recorded("acl")[0])
    l2 = next(c for c in conversations if c.classes[0] == PacketClass.L2
              and c.label.endswith(" tcp"))
    syn, synack = l2.steps[0].packet, l2.steps[1].packet
    assert (synack["dl_src"], synack["nw_src"], synack["tp_src"]) == \
        (syn["dl_dst"], syn["nw_dst"], syn["tp_dst"])
    assert l2.reply_entry is not None and l2.reply_entry != l2.entry
    routed = next(c for c in conversations if c.classes[0] == PacketClass.ROUTED
                  and c.label.endswith("(routed) tcp"))
    syn, synack = routed.steps[0].packet, routed.steps[1].packet
    assert synack["dl_dst"] not in (syn["dl_src"], syn["dl_dst"])   # the far router port
    assert (synack["nw_src"], synack["nw_dst"]) == (syn["nw_dst"], syn["nw_src"])
    lb = next(c for c in conversations if PacketClass.LB in c.classes)
    assert all(s.packet is None for s in lb.steps if s.reply)


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_entries_are_real_ports_and_output_is_bounded(topology):
    snapshot, _ = recorded(topology)
    conversations = generate(snapshot)
    for conv in conversations:
        chassis = snapshot.chassis[conv.entry.chassis]
        iface = next(i for i in chassis.interfaces if i.name == conv.entry.iface)
        assert (iface.bridge, iface.ofport) == (conv.entry.bridge, conv.entry.ofport)
    assert [c.label for c in generate(snapshot)] == [c.label for c in conversations]
    assert len({c.key for c in conversations}) == len(conversations)
    capped = generate(snapshot, cap=3)
    assert max(sum(c.classes[0] == k for c in capped) for k in PacketClass) <= 3


def test_outside_enters_where_the_provider_network_delivers():
    """kind: each gateway router's external address is reached on its own chassis' uplink."""
    snapshot, _ = recorded("kind")
    outside = [c for c in generate(snapshot) if PacketClass.LOCALNET in c.classes]
    assert {c.entry.chassis for c in outside} == set(snapshot.chassis)
    for conv in outside:
        assert conv.entry.bridge != snapshot.chassis[conv.entry.chassis].integration_bridge


def test_a_removed_vip_takes_its_conversations_with_it():
    snapshot = copy.deepcopy(recorded("kind")[0])
    assert classes_generated(generate(snapshot))[PacketClass.LB] > 0
    for lb in snapshot.northbound.tables["Load_Balancer"]:
        lb["vips"] = {}
    counts = classes_generated(generate(snapshot))
    assert counts[PacketClass.LB] == counts[PacketClass.HAIRPIN] == 0
    assert PacketClass.LB not in possible(snapshot)


def test_an_added_vip_brings_lb_and_hairpin():
    snapshot = copy.deepcopy(recorded("basic")[0])
    assert classes_generated(generate(snapshot))[PacketClass.LB] == 0
    nb = snapshot.northbound.tables
    port2 = next(r for r in nb["Logical_Switch_Port"] if r["name"] == "sw0-port2")
    backend = port2["addresses"][0].split()[1]
    lb = {"_uuid": str(uuid.uuid4()), "name": "lb-test", "protocol": "tcp",
          "vips": {"192.0.2.10:8080": f"{backend}:80"}}
    nb["Load_Balancer"] = [lb]
    nb["Logical_Switch"][0]["load_balancer"] = [lb["_uuid"]]
    conversations = generate(snapshot)
    counts = classes_generated(conversations)
    assert counts[PacketClass.LB] == 2 and counts[PacketClass.HAIRPIN] == 1
    assert {PacketClass.LB, PacketClass.HAIRPIN} <= possible(snapshot)
    hairpin = next(c for c in conversations if c.classes[0] == PacketClass.HAIRPIN)
    assert hairpin.label.startswith("sw0-port2") and hairpin.steps[0].packet["tp_dst"] == 8080


def test_rounds_repeat_connections_until_enough_steps():
    """basic has 26 steps in its base set; issue 12 wants >= 1,000 real packets."""
    snapshot = recorded("basic")[0]
    base = generate(snapshot)
    assert sum(len(c.steps) for c in base) < 1000
    assert [c.label for c in generate(snapshot, min_steps=0)] == [c.label for c in base]
    assert [c.label for c in generate(snapshot, min_steps=10)] == [c.label for c in base]
    more = generate(snapshot, min_steps=1000)
    assert sum(len(c.steps) for c in more) >= 1000
    assert [(c.label, [s.wire for s in c.steps]) for c in more[:len(base)]] == \
        [(c.label, [s.wire for s in c.steps]) for c in base]           # base set unchanged
    assert [c.label for c in generate(snapshot, min_steps=1000)] == [c.label for c in more]
    rounds = more[len(base):]
    assert rounds and all(c.kind and " #" in c.label for c in rounds)
    assert {c.label.rpartition(" #")[0] for c in rounds} == {c.label for c in base if c.kind}
    # each repeat is a new connection: a new source port, or a new echo id
    seen = Counter()
    for conv in (c for c in more if c.kind):
        first = conv.steps[0]
        mark = first.wire["icmp_id"] if conv.kind.startswith("icmp") else \
            first.packet["tp_src"]
        seen[(conv.entry, conv.label.rpartition(" #")[0] if " #" in conv.label
              else conv.label, first.packet["dl_type"], conv.kind, mark)] += 1
    assert max(seen.values()) == 1
    for conv in rounds:
        if conv.kind == "tcp":
            check_tcp_sequence(conv.steps)
            assert [s.name for s in conv.steps] == TCP_STEPS
            known = [s.packet for s in conv.steps if s.reply and s.packet]
            assert all(p["tp_dst"] == conv.steps[0].packet["tp_src"] for p in known)


def test_a_vip_sees_many_source_ports():
    """issue 13: >= 16 source ports to a load balancer's VIP."""
    snapshot = recorded("kind")[0]
    base = sum(len(c.steps) for c in generate(snapshot))
    ports = Counter()
    for conv in generate(snapshot, cap=10_000, min_steps=16 * base):
        if PacketClass.LB in conv.classes and conv.kind == "tcp":
            ports[(conv.steps[0].packet["nw_dst"], conv.steps[0].packet["tp_dst"])] += 1
    assert ports and min(ports.values()) >= 16


def test_rounds_stop_without_connections():
    """Nothing to repeat (no host with an address): no endless loop, nothing made up."""
    snapshot = copy.deepcopy(recorded("basic")[0])
    for lsp in snapshot.northbound.tables["Logical_Switch_Port"]:
        lsp["addresses"] = []
    assert generate(snapshot, min_steps=1000) == []
    capped = generate(recorded("basic")[0], cap=3, min_steps=100_000)   # capped: stops too
    assert max(Counter(c.classes[0] for c in capped).values()) <= 3


# -- openstack: distributed FIPs, VLAN provider networks, reject ACLs -----------------------

def _openstack():
    from conftest import FIXTURES

    from ofrace.snapshot import Snapshot
    return Snapshot.load(FIXTURES / "openstack" / "snapshot.ofr")


def _bound_chassis(snapshot, port: str) -> str:
    sb = snapshot.southbound.tables
    (pb,) = [p for p in sb["Port_Binding"] if p["logical_port"] == port]
    (row,) = [c for c in sb["Chassis"] if c["_uuid"] == pb["chassis"]]
    return next(c.name for c in snapshot.chassis.values()
                if (c.system_id or c.external_ids.get("system-id")) == row["name"])


def test_each_distributed_fip_is_entered_on_its_vms_chassis_uplink():
    """What the NB says (dnat_and_snat rows with logical_port and external_mac) and the SB
    binds, read here apart from the generator: one ICMP and one TCP conversation per
    distributed FIP, entering the uplink of the VM's chassis addressed to external_mac."""
    snapshot = _openstack()
    rows = [n for n in snapshot.northbound.tables["NAT"] if n["type"] == "dnat_and_snat"
            and n.get("external_mac") and n.get("logical_port")]
    assert len(rows) >= 2
    generated = [c for c in generate(snapshot) if "distributed dnat_and_snat" in c.label]
    assert len(generated) == 2 * len(rows)
    for nat in rows:
        mine = [c for c in generated if c.steps[0].packet["nw_dst"]
                == int(ipaddress.ip_address(nat["external_ip"]))]
        assert sorted(c.kind for c in mine) == ["icmp", "tcp"]
        for conv in mine:
            assert conv.entry.chassis == _bound_chassis(snapshot, nat["logical_port"])
            assert conv.entry.bridge != snapshot.chassis[conv.entry.chassis].integration_bridge
            assert conv.steps[0].packet["dl_dst"] == int(nat["external_mac"].replace(":", ""),
                                                         16)
            assert PacketClass.LOCALNET in conv.classes


def test_a_fip_without_external_mac_is_not_entered_on_a_compute():
    """Negative control: the centralized FIP (no external_mac) has no such conversation,
    and taking external_mac off a distributed one takes its conversations away."""
    snapshot = copy.deepcopy(_openstack())
    before = [c for c in generate(snapshot) if "distributed dnat_and_snat" in c.label]
    nat = next(n for n in snapshot.northbound.tables["NAT"] if n.get("external_mac"))
    nat["external_mac"] = []
    after = [c for c in generate(snapshot) if "distributed dnat_and_snat" in c.label]
    assert len(after) == len(before) - 2
    assert not [c for c in after if nat["external_ip"] in c.label]


def test_provider_network_replies_come_back_tagged():
    """A host on a VLAN provider network: out to the network, the answer entering its
    chassis' uplink carrying the localnet port's tag (0x1000 | tag, OVS's vlan_tci)."""
    snapshot = _openstack()
    nb = snapshot.northbound.tables
    (localnet,) = [p for p in nb["Logical_Switch_Port"] if p.get("type") == "localnet"
                   and isinstance(p.get("tag"), int)]
    convs = [c for c in generate(snapshot) if "on provider network" in c.label]
    assert sorted(c.kind for c in convs) == ["icmp", "tcp"]
    for conv in convs:
        assert conv.classes[0] == PacketClass.LOCALNET
        assert conv.reply_entry.bridge != \
            snapshot.chassis[conv.reply_entry.chassis].integration_bridge
        replies = [s for s in conv.steps if s.reply]
        assert replies and all(s.packet["vlan_tci"] == 0x1000 | localnet["tag"]
                               for s in replies)
        assert all("vlan_tci" not in s.packet for s in conv.steps if not s.reply)
    # negative control: untagged, the replies carry no tag
    untagged = copy.deepcopy(snapshot)
    next(p for p in untagged.northbound.tables["Logical_Switch_Port"]
         if p["name"] == localnet["name"])["tag"] = []
    convs = [c for c in generate(untagged) if "on provider network" in c.label]
    assert convs and all("vlan_tci" not in (s.packet or {}) for c in convs for s in c.steps)


def test_a_reject_acl_brings_a_packet_it_answers():
    """Neutron writes no reject; one added on a port group (to-lport, tcp.dst == 8081)
    brings a SYN to each member from a host on its switch, classed controller-answered."""
    snapshot = copy.deepcopy(_openstack())
    assert not [c for c in generate(snapshot) if "reject ACL" in c.label]
    nb = snapshot.northbound.tables
    pg = next(g for g in nb["Port_Group"] if len(g.get("ports") or []) == 2)
    acl = {"_uuid": str(uuid.uuid4()), "direction": "to-lport", "priority": 1003,
           "action": "reject", "match": f"outport == @{pg['name']} && tcp.dst == 8081"}
    nb["ACL"].append(acl)
    pg["acls"] = list(pg.get("acls") or []) + [acl["_uuid"]]
    rows = {r["_uuid"]: r for r in nb["Logical_Switch_Port"]}
    members = {rows[r]["name"] for r in pg["ports"]}
    convs = [c for c in generate(snapshot) if "reject ACL" in c.label]
    assert {c.label.split(" -> ")[1].split(" ")[0] for c in convs} == members
    for conv in convs:
        (step,) = conv.steps
        assert step.packet["tp_dst"] == 8081 and step.packet["tcp_flags"] == 0x002
        assert conv.classes[:2] == (PacketClass.CONTROLLER, PacketClass.ACL)


def test_each_dhcp_client_also_requests():
    """Every port with dhcpv4_options (dhcpv6_options) has a DISCOVER and a REQUEST (a
    SOLICIT and a REQUEST) -- the REQUEST's type and asked-for address in the frame only,
    as frames.encode writes them -- read from the NB rows here."""
    snapshot = _openstack()
    live = _bound(snapshot)
    nb = snapshot.northbound.tables
    v4 = {r["name"] for r in nb["Logical_Switch_Port"] if r.get("dhcpv4_options")
          and r["name"] in live}
    v6 = {r["name"] for r in nb["Logical_Switch_Port"] if r.get("dhcpv6_options")
          and r["name"] in live}
    assert v4 and v6
    convs = generate(snapshot)
    requests = {c.label.split(":")[0]: c for c in convs if c.label.endswith(": dhcp request")}
    assert set(requests) == v4
    for name, conv in requests.items():
        (step,) = conv.steps
        port = next(r for r in nb["Logical_Switch_Port"] if r["name"] == name)
        asked = ipaddress.ip_address(port["addresses"][0].split()[1])
        assert step.wire == {"dhcp_msg": 3, "dhcp_requested_ip": int(asked)}
        assert "dhcp_msg" not in step.packet and step.packet["tp_dst"] == 67
    assert {c.label.split(":")[0] for c in convs if c.label.endswith(": dhcpv6 request")} == v6
