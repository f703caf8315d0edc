"""Conversations to send, read from a snapshot alone (NB, SB, OpenFlow ports).

Why: the packets that check ofrace must come from the network being checked, not from
one lab's values, so that on any cloud every gateway, VIP, NAT address and
controller-answered packet is exercised.  Each conversation names its packet
classes, where it enters (chassis, bridge, interface) and its steps (SYN, SYN-ACK,
ACK, data, FIN; echo request and reply).  A reply whose headers depend on what the
network did to the request (NAT, LB, gateways) carries no packet: whoever sends it
builds it from the request as it was delivered, at the port it left by.

What only the frame carries (TCP sequence numbers, ICMP echo id, payload length) is in
``Step.wire``, never in ``Step.packet``: those are no OpenFlow fields, the engine must not
see them, but real conntrack checks TCP windows and keys ICMP on the echo id, so the
sender needs them to build a conversation the wire accepts.
"""

from __future__ import annotations

import ipaddress
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from ofrace.ovn.southbound import chassis_view, port_addresses
from ofrace.snapshot import Snapshot

BROADCAST = 0xFFFFFFFFFFFF
UNKNOWN_MAC = 0x0A0000FEFEFE
UNKNOWN_IP4 = int(ipaddress.IPv4Address("203.0.113.77"))
UNKNOWN_IP6 = int(ipaddress.IPv6Address("2001:db8:ffff::77"))
SPOOFED_IP4 = int(ipaddress.IPv4Address("198.51.100.66"))
LOCAL_MAC_PREFIX = 0x020000000000
ALL_ROUTERS6 = int(ipaddress.IPv6Address("ff02::2"))
ALL_DHCP6 = int(ipaddress.IPv6Address("ff02::1:2"))
SPORT = 40000
DHCP_REQUEST = 3        # RFC 2132 option 53 message type
DHCPV6_REQUEST = 3      # RFC 8415 msg-type
CAP_PER_CLASS = 400
TCP_DATA_LEN = 16          # the data step's payload
UDP_PAYLOAD_LEN = 16
SEQ_MASK = 0xFFFFFFFF
# An oversized packet's payload is the gateway MTU plus this: past the MTU however OVN
# counts it (northd checks gateway_mtu plus an Ethernet header with a VLAN tag), so the
# router answers ICMP fragmentation needed through ovn-controller.
OVERSIZE = 100


class PacketClass(StrEnum):
    """What part of OVN a conversation exercises (docs/fidelity.md counts by these)."""

    L2 = "L2"
    NEIGHBOUR = "neighbour"
    ROUTED = "routed"
    ACL = "ACL"
    LB = "LB"
    HAIRPIN = "hairpin"
    NAT = "NAT"
    GATEWAY = "gateway"
    CONTROLLER = "controller-answered"
    IPV6 = "IPv6"
    SPOOF = "spoofed"
    UNKNOWN = "unknown-destination"
    LOCALNET = "localnet"


@dataclass(frozen=True)
class Entry:
    """Where a packet enters: the interface ``netdev-dummy/receive`` is given."""

    chassis: str
    bridge: str
    iface: str
    ofport: int


@dataclass
class Step:
    """One packet of a conversation; ``packet`` is None for a reply built from the wire.

    ``wire``: frame-only L4 details the sender writes into the real frame (``tcp_seq``,
    ``tcp_ack``, ``payload_len``; ``icmp_id``, ``icmp_seq``), also for a reply whose
    packet is built from the delivered request."""

    name: str
    reply: bool
    packet: dict | None
    ct: tuple[str, ...] = ()
    wire: dict = field(default_factory=dict)
    entry: Entry | None = None      # where it enters, when not the conversation's own


@dataclass
class Conversation:
    classes: tuple[PacketClass, ...]
    label: str
    entry: Entry
    steps: list[Step]
    reply_entry: Entry | None = None
    key: tuple = field(default=(), repr=False)
    kind: str = ""         # tcp, udp, icmp, icmp6 for a connection; "" for a lone packet

    @property
    def packet_class(self) -> PacketClass:
        return self.classes[0]


@dataclass
class Host:
    """A logical switch port with a MAC and addresses."""

    name: str
    switch: str
    mac: int
    ip4: list[int]
    ip6: list[int]
    row: dict


@dataclass
class RouterPort:
    name: str
    router: str
    switch: str | None
    mac: int
    ip4: list[int]
    ip6: list[int]
    row: dict


def _mac(text) -> int | None:
    try:
        return int(str(text).replace(":", ""), 16) if str(text).count(":") == 5 else None
    except ValueError:
        return None


def _ip(text):
    try:
        return ipaddress.ip_address(str(text).strip("[]"))
    except ValueError:
        return None


class Network:
    """The NB read as a graph: switches, hosts, routers and their ports, bound to entries."""

    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot
        self.nb = snapshot.northbound.tables if snapshot.northbound else {}
        self.sb = snapshot.southbound.tables if snapshot.southbound else {}
        by_uuid = {r["_uuid"]: r for rows in self.nb.values() for r in rows if "_uuid" in r}
        self.by_uuid = by_uuid
        self.switch_of: dict[str, str] = {}
        self.switches = {}
        for ls in self.nb.get("Logical_Switch", []):
            self.switches[ls["name"]] = ls
            for ref in ls.get("ports") or []:
                if ref in by_uuid:
                    self.switch_of[by_uuid[ref]["name"]] = ls["name"]
        self.lsps = {r["name"]: r for r in self.nb.get("Logical_Switch_Port", [])}
        self.hosts: list[Host] = []
        for name in sorted(self.lsps):
            row = self.lsps[name]
            if row.get("type") or name not in self.switch_of:
                continue
            mac, ip4, ip6 = port_addresses({"mac": row.get("addresses") or []})
            if mac is not None:
                self.hosts.append(Host(name, self.switch_of[name], mac,
                                       [int(a.ip) for a in ip4], [int(a.ip) for a in ip6], row))
        peer_switch = {(r.get("options") or {}).get("router-port"): self.switch_of.get(n)
                       for n, r in self.lsps.items() if r.get("type") == "router"}
        self.router_of = {}
        self.routers = {}
        for lr in self.nb.get("Logical_Router", []):
            self.routers[lr["name"]] = lr
            for ref in lr.get("ports") or []:
                if ref in by_uuid:
                    self.router_of[by_uuid[ref]["name"]] = lr["name"]
        self.router_ports: list[RouterPort] = []
        for lrp in sorted(self.nb.get("Logical_Router_Port", []), key=lambda r: r["name"]):
            nets = [ipaddress.ip_interface(n) for n in lrp.get("networks") or []]
            mac = _mac(lrp.get("mac"))
            if mac is None or lrp["name"] not in self.router_of:
                continue
            self.router_ports.append(RouterPort(
                lrp["name"], self.router_of[lrp["name"]], peer_switch.get(lrp["name"]), mac,
                [int(n.ip) for n in nets if n.version == 4],
                [int(n.ip) for n in nets if n.version == 6], lrp))
        self.entries = self._vif_entries()
        self.system_ids = {(c.system_id or c.external_ids.get("system-id")): c
                           for c in snapshot.chassis.values()}

    def _vif_entries(self) -> dict[str, Entry]:
        found = {}
        for chassis in sorted(self.snapshot.chassis.values(), key=lambda c: c.name):
            for iface in chassis.interfaces:
                if (iface.bridge == chassis.integration_bridge and iface.iface_id
                        and iface.ofport not in (None, -1) and iface.type in ("", "system")):
                    found.setdefault(iface.iface_id, Entry(chassis.name, iface.bridge,
                                                           iface.name, iface.ofport))
        return found

    def gateway_ports(self, switch: str) -> list[RouterPort]:
        return [p for p in self.router_ports if p.switch == switch]

    def lbs_for(self, switch: str) -> list[dict]:
        """Load balancers on the switch and on the routers it is attached to."""
        refs = list(self.switches[switch].get("load_balancer") or [])
        for port in self.gateway_ports(switch):
            refs += self.routers[port.router].get("load_balancer") or []
        rows = {ref: self.by_uuid[ref] for ref in refs if ref in self.by_uuid}
        return [rows[ref] for ref in sorted(rows, key=lambda r: rows[r].get("name", r))]

    def reachable_routers(self, switch: str) -> list[str]:
        """Routers reachable from ``switch`` across router-to-router switches (BFS)."""
        seen, todo, switches = [], [switch], {switch}
        while todo:
            current = todo.pop(0)
            for port in self.gateway_ports(current):
                if port.router in seen:
                    continue
                seen.append(port.router)
                for other in self.router_ports:
                    if other.router == port.router and other.switch \
                            and other.switch not in switches:
                        switches.add(other.switch)
                        if not any(h.switch == other.switch for h in self.hosts):
                            todo.append(other.switch)
        return seen

    def is_gateway_router(self, router: str) -> bool:
        row = self.routers[router]
        return bool((row.get("options") or {}).get("chassis")) or any(
            p.router == router and (p.row.get("gateway_chassis") or p.row.get("ha_chassis_group"))
            for p in self.router_ports)

    def gateway_mtus(self, router: str) -> list[int]:
        """The ``options:gateway_mtu`` of the router's ports (NB Logical_Router_Port)."""
        found = []
        for port in self.router_ports:
            mtu = str((port.row.get("options") or {}).get("gateway_mtu", ""))
            if port.router == router and mtu.isdigit() and int(mtu) > 0:
                found.append(int(mtu))
        return found

    def acl_ports(self) -> set[str]:
        """LSPs an ACL applies to: members of a port group with ACLs, ports of a switch with
        ACLs."""
        names = set()
        for pg in self.nb.get("Port_Group", []):
            if pg.get("acls"):
                names |= {self.by_uuid[r]["name"] for r in pg.get("ports") or []
                          if r in self.by_uuid}
        for ls in self.switches.values():
            if ls.get("acls"):
                names |= {self.by_uuid[r]["name"] for r in ls.get("ports") or []
                          if r in self.by_uuid}
        return names

    def resident_chassis(self, port: RouterPort):
        """The chassis a router port's outside traffic is delivered to (gateway router's
        chassis, the chassisredirect port's binding), from the SB Port_Binding."""
        names = {port.name, f"cr-{port.name}"}
        for pb in self.sb.get("Port_Binding", []):
            if pb.get("logical_port") in names and pb.get("type") in ("l3gateway",
                                                                       "chassisredirect"):
                chassis = pb.get("chassis")
                sb_row = next((c for c in self.sb.get("Chassis", [])
                               if c.get("_uuid") == chassis), None)
                if sb_row and sb_row.get("name") in self.system_ids:
                    return self.system_ids[sb_row["name"]]
        return None

    def bound_chassis(self, port: str):
        """The chassis the SB binds a logical switch port to, or None."""
        for pb in self.sb.get("Port_Binding", []):
            if pb.get("logical_port") == port:
                sb_row = next((c for c in self.sb.get("Chassis", [])
                               if c.get("_uuid") == pb.get("chassis")), None)
                return self.system_ids.get(sb_row.get("name")) if sb_row else None
        return None

    def localnet(self, switch: str) -> dict | None:
        """The switch's localnet port row, if it has one."""
        for name in sorted(self.lsps):
            row = self.lsps[name]
            if row.get("type") == "localnet" and self.switch_of.get(name) == switch:
                return row
        return None

    def uplink(self, chassis, network_name: str) -> Entry | None:
        """The provider network's port on ``chassis``: ovn-bridge-mappings names the bridge,
        its one non-patch, non-internal interface is where the network delivers."""
        mappings = dict(item.split(":", 1) for item in
                        chassis.external_ids.get("ovn-bridge-mappings", "").split(",")
                        if ":" in item)
        bridge = mappings.get(network_name)
        for iface in chassis.interfaces:
            if iface.bridge == bridge and iface.type in ("", "system") \
                    and iface.name != bridge and iface.ofport not in (None, -1):
                return Entry(chassis.name, bridge, iface.name, iface.ofport)
        return None

    def outside_host(self, router: str) -> tuple[int, int]:
        """(MAC, IPv4) of the router's default-route next hop, else an address no network has;
        its MAC the SB's MAC_Binding, else a locally administered MAC made from the IP."""
        hops = Counter()
        for ref in self.routers[router].get("static_routes") or []:
            route = self.by_uuid.get(ref) or {}
            hop = _ip(route.get("nexthop"))
            if route.get("ip_prefix") in ("0.0.0.0/0", "0.0.0.0") and hop and hop.version == 4:
                hops[int(hop)] += 1
        ip = min(hops, key=lambda h: (-hops[h], h)) if hops else UNKNOWN_IP4
        for row in self.sb.get("MAC_Binding", []):
            found = _ip(row.get("ip"))
            if found is not None and int(found) == ip and _mac(row.get("mac")) is not None:
                return _mac(row.get("mac")), ip
        return LOCAL_MAC_PREFIX | ip, ip


# -- packets -------------------------------------------------------------------------------

def _ip4(src_mac, dst_mac, src, dst, proto, ttl=64, **l4) -> dict:
    return {"dl_src": src_mac, "dl_dst": dst_mac, "dl_type": 0x0800, "nw_src": src,
            "nw_dst": dst, "nw_proto": proto, "nw_ttl": ttl, **l4}


def _ip6(src_mac, dst_mac, src, dst, proto, ttl=64, **l4) -> dict:
    return {"dl_src": src_mac, "dl_dst": dst_mac, "dl_type": 0x86DD, "ipv6_src": src,
            "ipv6_dst": dst, "nw_proto": proto, "nw_ttl": ttl, **l4}


def _arp(src_mac, spa, tpa) -> dict:
    return {"dl_src": src_mac, "dl_dst": BROADCAST, "dl_type": 0x0806, "nw_proto": 1,
            "nw_src": spa, "nw_dst": tpa, "arp_sha": src_mac, "arp_tha": 0}


def _ns(src_mac, src, target) -> dict:
    group = int(ipaddress.IPv6Address("ff02::1:ff00:0")) | (target & 0xFFFFFF)
    return _ip6(src_mac, 0x3333FF000000 | (target & 0xFFFFFF), src, group, 58, 255,
                tp_src=135, tp_dst=0, nd_target=target, arp_sha=src_mac)


def _swap(packet: dict, src_mac: int, dst_mac: int) -> dict:
    out = dict(packet, dl_src=src_mac, dl_dst=dst_mac)
    for a, b in (("nw_src", "nw_dst"), ("ipv6_src", "ipv6_dst"), ("tp_src", "tp_dst")):
        if a in packet:
            out[a], out[b] = packet[b], packet[a]
    return out


def initial_sequence(label: str, side: str) -> int:
    """A deterministic TCP initial sequence number for one side of a conversation."""
    return zlib.crc32(f"{label}|{side}".encode()) & SEQ_MASK


def echo_id(label: str) -> int:
    """A deterministic ICMP echo id for a conversation (real conntrack keys on it)."""
    return zlib.crc32(label.encode()) & 0xFFFF


def _tcp_wire(seq: int, ack: int, payload: int = 0) -> dict:
    return {"tcp_seq": seq & SEQ_MASK, "tcp_ack": ack & SEQ_MASK, "payload_len": payload}


def conversation_steps(kind: str, request: dict, reply_macs: tuple[int, int] | None,
                       label: str = "") -> list[Step]:
    """The packets of one connection; replies only where their headers are known here.

    TCP: the three-way handshake, 16 bytes of data, and the close (FIN from the client,
    FIN-ACK from the server, the last ACK), with sequence numbers that follow (each SYN
    and FIN counts one), so a conntrack that checks windows (lib/conntrack-tcp.c,
    tcp_conn_update) keeps every step in window."""
    def reply(packet, **fields):
        return dict(_swap(packet, *reply_macs), **fields) if reply_macs else None

    if kind == "tcp":
        c, s = initial_sequence(label, "client"), initial_sequence(label, "server")
        syn = dict(request, tcp_flags=0x002)
        client = [("ACK", 0x010, _tcp_wire(c + 1, s + 1)),
                  ("data", 0x018, _tcp_wire(c + 1, s + 1, TCP_DATA_LEN)),
                  ("FIN", 0x011, _tcp_wire(c + 1 + TCP_DATA_LEN, s + 1))]
        fin_seq = c + 2 + TCP_DATA_LEN
        return [Step("SYN", False, syn, ("trk,new",), _tcp_wire(c, 0)),
                Step("SYN-ACK", True, reply(syn, tcp_flags=0x012), ("trk,est,rpl",),
                     _tcp_wire(s, c + 1)),
                *(Step(name, False, dict(request, tcp_flags=flags), ("trk,est",), wire)
                  for name, flags, wire in client),
                Step("FIN-ACK", True, reply(syn, tcp_flags=0x011), ("trk,est,rpl",),
                     _tcp_wire(s + 1, fin_seq)),
                Step("last ACK", False, dict(request, tcp_flags=0x010), ("trk,est",),
                     _tcp_wire(fin_seq, s + 2))]
    if kind in ("icmp", "icmp6"):
        echo = dict(request, tp_src=8 if kind == "icmp" else 128, tp_dst=0)
        # an echo reply: type 0 (129), code 0; ICMP has no ports to swap
        back = reply(echo, tp_src=0 if kind == "icmp" else 129, tp_dst=0)
        wire = {"icmp_id": echo_id(label), "icmp_seq": 1}
        return [Step("echo request", False, echo, ("trk,new",), dict(wire)),
                Step("echo reply", True, back, ("trk,est,rpl",), dict(wire))]
    if kind == "udp":
        wire = {"payload_len": UDP_PAYLOAD_LEN}
        return [Step("request", False, request, ("trk,new",), dict(wire)),
                Step("reply", True, reply(request), ("trk,est,rpl",), dict(wire))]
    return [Step(kind, False, request)]


_L4 = {"tcp": (6, {"tp_src": SPORT, "tp_dst": 80}), "udp": (17, {"tp_src": SPORT + 1,
                                                               "tp_dst": 53}),
       "icmp": (1, {}), "icmp6": (58, {})}


class _Collector:
    """Deduplicated, capped per class, in generation order (which is deterministic)."""

    def __init__(self, cap: int):
        self.cap, self.items, self.keys, self.counts = cap, [], set(), Counter()

    def add(self, classes, label, entry, steps, reply_entry=None, kind="", round_no=1
            ) -> bool:
        first = steps[0].packet
        # a DHCP message's type is in the frame only (a REQUEST's headers are a DISCOVER's)
        key = (entry, tuple(sorted(first.items())), tuple(classes), round_no,
               steps[0].wire.get("dhcp_msg"))
        if key in self.keys or self.counts[classes[0]] >= self.cap:
            return False
        self.keys.add(key)
        self.counts[classes[0]] += 1
        self.items.append(Conversation(tuple(classes), label, entry, steps, reply_entry, key,
                                       kind))
        return True


def _flows(out: _Collector, classes, label, entry, src_mac, dst_mac, src, dst, v6=False,
           reply_macs=None, reply_entry=None, kinds=("icmp", "tcp", "udp"), ports=None):
    for kind in kinds:
        if v6:
            kind = {"icmp": "icmp6"}.get(kind, kind)
        proto, l4 = _L4[kind]
        if ports and kind in ("tcp", "udp"):
            l4 = dict(l4, tp_dst=ports)
        build = _ip6 if v6 else _ip4
        request = build(src_mac, dst_mac, src, dst, proto, **l4)
        cls = list(classes) + ([PacketClass.IPV6] if v6 else [])
        name = f"{label} {kind}"
        out.add(cls, name, entry, conversation_steps(kind, request, reply_macs, name),
                reply_entry, kind)


def generate(snapshot: Snapshot, cap: int = CAP_PER_CLASS, min_steps: int = 0
             ) -> list[Conversation]:
    """Every conversation the snapshot's network makes possible, bounded by ``cap`` per
    class; then, until there are ``min_steps`` steps, rounds that repeat each TCP, UDP and
    ICMP conversation as a new connection (another source port, another echo id), so a
    small network still sends enough packets and a VIP sees many source ports.

    A cluster of zones: each zone's, from its own SB and NB (zone order), each bounded
    on its own."""
    if snapshot.zones:
        return [conv for zone in snapshot.zones.values() if zone.chassis
                for conv in generate(chassis_view(snapshot, zone.chassis[0]), cap, min_steps)]
    net = Network(snapshot)
    out = _Collector(cap)
    acl = net.acl_ports()
    for src in net.hosts:
        entry = net.entries.get(src.name)
        if entry is None:
            continue
        _from_host(net, out, src, entry, acl)
    _from_outside(net, out)
    _to_distributed_fips(net, out)
    _provider_hosts(net, out)
    _rejected(net, out)
    connections = [c for c in out.items if c.kind]
    steps = sum(len(c.steps) for c in out.items)
    round_no = 1
    while steps < min_steps and connections:
        round_no += 1
        added = [again for again in (_repeated(c, round_no) for c in connections)
                 if again and out.add(again.classes, again.label, again.entry, again.steps,
                                      again.reply_entry, again.kind, round_no)]
        if not added:       # capped, or out of source ports: more rounds add nothing
            break
        steps += sum(len(c.steps) for c in added)
    return out.items


def _repeated(conv: Conversation, round_no: int) -> Conversation | None:
    """``conv`` as a new connection for round ``round_no``: TCP and UDP from another source
    port (two apart, so TCP's and UDP's never meet), ICMP with another echo id (from the
    label, which names the round)."""
    request = {k: v for k, v in conv.steps[0].packet.items() if k != "tcp_flags"}
    if conv.kind in ("tcp", "udp"):
        request["tp_src"] += 2 * (round_no - 1)
        if request["tp_src"] > 0xFFFF:
            return None
    known = conv.steps[1].packet if len(conv.steps) > 1 else None
    macs = (known["dl_src"], known["dl_dst"]) if known else None
    label = f"{conv.label} #{round_no}"
    return Conversation(conv.classes, label, conv.entry,
                        conversation_steps(conv.kind, request, macs, label),
                        conv.reply_entry, kind=conv.kind)


def _from_host(net: Network, out: _Collector, src: Host, entry: Entry, acl: set[str]):
    gws = net.gateway_ports(src.switch)
    tag = [PacketClass.ACL] if src.name in acl else []
    s4, s6 = src.ip4[:1], src.ip6[:1]
    for dst in net.hosts:
        if dst.name == src.name or dst.switch != src.switch:
            continue
        extra = tag + ([PacketClass.ACL] if dst.name in acl and not tag else [])
        back = net.entries.get(dst.name)
        for a, b in zip(s4, dst.ip4[:1], strict=False):
            out.add([PacketClass.NEIGHBOUR], f"{src.name}: arp who-has {dst.name}", entry,
                    [Step("ARP request", False, _arp(src.mac, a, b))])
            _flows(out, [PacketClass.L2, *extra], f"{src.name} -> {dst.name}", entry, src.mac,
                   dst.mac, a, b, reply_macs=(dst.mac, src.mac), reply_entry=back)
        for a, b in zip(s6, dst.ip6[:1], strict=False):
            out.add([PacketClass.NEIGHBOUR, PacketClass.IPV6],
                    f"{src.name}: nd ns for {dst.name}", entry,
                    [Step("NS", False, _ns(src.mac, a, b))])
            _flows(out, [PacketClass.L2, *extra], f"{src.name} -> {dst.name}", entry, src.mac,
                   dst.mac, a, b, v6=True, reply_macs=(dst.mac, src.mac), reply_entry=back)
    for gw in gws:
        for a, b in zip(s4, gw.ip4[:1], strict=False):
            out.add([PacketClass.NEIGHBOUR], f"{src.name}: arp who-has {gw.name}", entry,
                    [Step("ARP request", False, _arp(src.mac, a, b))])
            _flows(out, [PacketClass.ROUTED, *tag], f"{src.name} -> router {gw.name}", entry,
                   src.mac, gw.mac, a, b, kinds=("icmp",))
        for a, b in zip(s6, gw.ip6[:1], strict=False):
            # ND for a router address is answered by ovn-controller (nd_na_router).
            out.add([PacketClass.CONTROLLER, PacketClass.NEIGHBOUR, PacketClass.IPV6],
                    f"{src.name}: nd ns for {gw.name}", entry,
                    [Step("NS", False, _ns(src.mac, a, b))])
        if gw.ip6 and s6:
            rs = _ip6(src.mac, 0x333300000002, s6[0], ALL_ROUTERS6, 58, 255, tp_src=133,
                      tp_dst=0)
            out.add([PacketClass.CONTROLLER, PacketClass.IPV6],
                    f"{src.name}: router solicitation", entry, [Step("RS", False, rs)])
    if src.row.get("dhcpv4_options"):
        discover = _ip4(src.mac, BROADCAST, 0, 0xFFFFFFFF, 17, tp_src=68, tp_dst=67)
        out.add([PacketClass.CONTROLLER], f"{src.name}: dhcp discover", entry,
                [Step("DHCPDISCOVER", False, discover)])
        if s4:      # the client asks for the address it was offered: DHCPACK
            out.add([PacketClass.CONTROLLER], f"{src.name}: dhcp request", entry,
                    [Step("DHCPREQUEST", False, dict(discover),
                          wire={"dhcp_msg": DHCP_REQUEST, "dhcp_requested_ip": s4[0]})])
    if src.row.get("dhcpv6_options") and s6:
        solicit = _ip6(src.mac, 0x333300010002, s6[0], ALL_DHCP6, 17, 1, tp_src=546,
                       tp_dst=547)
        out.add([PacketClass.CONTROLLER, PacketClass.IPV6], f"{src.name}: dhcpv6 solicit",
                entry, [Step("SOLICIT", False, solicit)])
        out.add([PacketClass.CONTROLLER, PacketClass.IPV6], f"{src.name}: dhcpv6 request",
                entry, [Step("REQUEST", False, dict(solicit),
                             wire={"dhcp_msg": DHCPV6_REQUEST})])
    # routed: hosts on other switches behind a router this switch is attached to
    for gw in gws:
        for dst in net.hosts:
            if dst.switch == src.switch:
                continue
            far = [p for p in net.gateway_ports(dst.switch) if p.router == gw.router]
            if not far:
                continue
            back = net.entries.get(dst.name)
            cls = [PacketClass.ROUTED, *tag, *([PacketClass.ACL] if dst.name in net.acl_ports()
                                              and not tag else [])]
            for a, b in zip(s4, dst.ip4[:1], strict=False):
                _flows(out, cls, f"{src.name} -> {dst.name} (routed)", entry, src.mac, gw.mac,
                       a, b, reply_macs=(dst.mac, far[0].mac), reply_entry=back)
            for a, b in zip(s6, dst.ip6[:1], strict=False):
                _flows(out, cls, f"{src.name} -> {dst.name} (routed)", entry, src.mac, gw.mac,
                       a, b, v6=True, reply_macs=(dst.mac, far[0].mac), reply_entry=back)
    first_hop = gws[0].mac if gws else BROADCAST
    for lb in net.lbs_for(src.switch):
        proto = lb.get("protocol") or "tcp"
        if proto not in ("tcp", "udp"):
            continue
        for vip, backends in sorted((lb.get("vips") or {}).items()):
            host, _, port = vip.rpartition(":")
            ip = _ip(host)
            if ip is None or not port.isdigit():
                continue
            backend_ips = {int(i) for i in (_ip(b.rpartition(":")[0]) for b in
                                            str(backends).split(",")) if i is not None}
            mine = src.ip4[:1] if ip.version == 4 else src.ip6[:1]
            for a in mine:
                cls = [PacketClass.LB, *tag] + ([PacketClass.HAIRPIN] if a in backend_ips
                                                else [])
                if a in backend_ips:
                    cls = [PacketClass.HAIRPIN, PacketClass.LB, *tag]
                _flows(out, cls, f"{src.name} -> VIP {lb.get('name', '')} :{port}", entry,
                       src.mac, first_hop, a, int(ip), v6=ip.version == 6, kinds=(proto,),
                       ports=int(port))
    # through every gateway to the outside, and to every NAT address from inside
    for router in net.reachable_routers(src.switch):
        if not net.is_gateway_router(router) or not gws or not s4:
            continue
        _flows(out, [PacketClass.GATEWAY, *tag], f"{src.name} -> outside via {router}", entry,
               src.mac, gws[0].mac, s4[0], UNKNOWN_IP4)
        ttl1 = _ip4(src.mac, gws[0].mac, s4[0], UNKNOWN_IP4, 1, 1, tp_src=8, tp_dst=0)
        name = f"{src.name}: ttl 1 towards {router} (icmp time exceeded)"
        out.add([PacketClass.CONTROLLER, PacketClass.GATEWAY], name, entry,
                [Step("echo request, ttl 1", False, ttl1,
                      wire={"icmp_id": echo_id(name), "icmp_seq": 1})])
        mtus = net.gateway_mtus(router)
        if mtus:
            name = f"{src.name}: oversized towards {router} (gateway mtu {max(mtus)})"
            big = _ip4(src.mac, gws[0].mac, s4[0], UNKNOWN_IP4, 1, tp_src=8, tp_dst=0)
            out.add([PacketClass.GATEWAY, PacketClass.CONTROLLER, *tag], name, entry,
                    [Step("oversized echo request", False, big, ("trk,new",),
                          {"icmp_id": echo_id(name), "icmp_seq": 1,
                           "payload_len": max(mtus) + OVERSIZE})])
        for ref in net.routers[router].get("nat") or []:
            nat = net.by_uuid.get(ref) or {}
            ext = _ip(nat.get("external_ip"))
            if ext is not None and ext.version == 4:
                _flows(out, [PacketClass.NAT, *tag],
                       f"{src.name} -> {nat.get('type')} {router} external address", entry,
                       src.mac, gws[0].mac, s4[0], int(ext), kinds=("icmp", "tcp"))
    if s4:
        spoof = _ip4(src.mac, first_hop, SPOOFED_IP4, UNKNOWN_IP4, 17, tp_src=SPORT,
                     tp_dst=53)
        out.add([PacketClass.SPOOF], f"{src.name}: spoofed source ip", entry,
                [Step("UDP", False, spoof, wire={"payload_len": UDP_PAYLOAD_LEN})])
        spoof_mac = _ip4(UNKNOWN_MAC, first_hop, s4[0], UNKNOWN_IP4, 17, tp_src=SPORT,
                         tp_dst=53)
        out.add([PacketClass.SPOOF], f"{src.name}: spoofed source mac", entry,
                [Step("UDP", False, spoof_mac, wire={"payload_len": UDP_PAYLOAD_LEN})])
        unknown = _ip4(src.mac, UNKNOWN_MAC, s4[0], UNKNOWN_IP4, 6, tp_src=SPORT, tp_dst=80,
                       tcp_flags=0x002)
        name = f"{src.name}: unknown destination mac"
        out.add([PacketClass.UNKNOWN], name, entry,
                [Step("SYN", False, unknown, ("trk,new",),
                      _tcp_wire(initial_sequence(name, "client"), 0))])


def _from_outside(net: Network, out: _Collector) -> None:
    """The provider network's side: each router port on a switch with a localnet port,
    entered on the uplink of the chassis the port is resident on."""
    for name in sorted(net.lsps):
        row = net.lsps[name]
        if row.get("type") != "localnet" or name not in net.switch_of:
            continue
        network = (row.get("options") or {}).get("network_name", "")
        for port in net.gateway_ports(net.switch_of[name]):
            chassis = net.resident_chassis(port)
            entry = net.uplink(chassis, network) if chassis else None
            if entry is None or not port.ip4:
                continue
            mac, ip = net.outside_host(port.router)
            base = [PacketClass.LOCALNET]
            out.add([PacketClass.NEIGHBOUR, *base], f"outside: arp who-has {port.name}",
                    entry, [Step("ARP request", False, _arp(mac, ip, port.ip4[0]))])
            _flows(out, [PacketClass.GATEWAY, *base], f"outside -> {port.name}", entry, mac,
                   port.mac, ip, port.ip4[0], kinds=("icmp",))
            router = net.routers[port.router]
            for ref in router.get("load_balancer") or []:
                lb = net.by_uuid.get(ref) or {}
                proto = lb.get("protocol") or "tcp"
                for vip in sorted(lb.get("vips") or {}):
                    host, _, vport = vip.rpartition(":")
                    vip_ip = _ip(host)
                    if vip_ip is None or vip_ip.version != 4 or not vport.isdigit() \
                            or proto not in ("tcp", "udp"):
                        continue
                    _flows(out, [PacketClass.LB, PacketClass.GATEWAY, *base],
                           f"outside -> VIP {lb.get('name', '')} :{vport}", entry, mac,
                           port.mac, ip, int(vip_ip), kinds=(proto,), ports=int(vport))
            for ref in router.get("nat") or []:
                nat = net.by_uuid.get(ref) or {}
                ext = _ip(nat.get("external_ip"))
                if ext is not None and ext.version == 4:
                    _flows(out, [PacketClass.NAT, *base],
                           f"outside -> {nat.get('type')} external address of {port.router}",
                           entry, mac, port.mac, ip, int(ext), kinds=("icmp", "tcp"))


def _to_distributed_fips(net: Network, out: _Collector) -> None:
    """The outside to each distributed floating IP (a dnat_and_snat row with logical_port
    and external_mac): the physical network delivers the external_mac to the chassis the
    logical port is bound to, which answers and NATs it there (northd's distributed NAT
    flows are is_chassis_resident(logical_port)), so it enters on that chassis' uplink."""
    for router in sorted(net.routers):
        gws = [p for p in net.router_ports if p.router == router and p.switch
               and net.localnet(p.switch)]
        if not gws:
            continue
        network = (net.localnet(gws[0].switch).get("options") or {}).get("network_name", "")
        for ref in net.routers[router].get("nat") or []:
            nat = net.by_uuid.get(ref) or {}
            ext, ext_mac = _ip(nat.get("external_ip")), _mac(nat.get("external_mac"))
            if nat.get("type") != "dnat_and_snat" or ext is None or ext.version != 4 \
                    or ext_mac is None or not nat.get("logical_port"):
                continue
            chassis = net.bound_chassis(nat["logical_port"])
            entry = net.uplink(chassis, network) if chassis else None
            if entry is None:
                continue
            mac, ip = net.outside_host(router)
            _flows(out, [PacketClass.NAT, PacketClass.LOCALNET],
                   f"outside -> distributed dnat_and_snat {ext} on {entry.chassis}", entry,
                   mac, ext_mac, ip, int(ext), kinds=("icmp", "tcp"))


def _provider_hosts(net: Network, out: _Collector) -> None:
    """A host on a provider network (a switch with a localnet port) to an address out on
    that network, and the answer back in through its chassis' uplink -- tagged as the
    physical network carries it when the localnet port has a VLAN tag."""
    acl = net.acl_ports()
    for src in net.hosts:
        localnet = net.localnet(src.switch)
        entry = net.entries.get(src.name)
        if localnet is None or entry is None or not src.ip4:
            continue
        network = (localnet.get("options") or {}).get("network_name", "")
        uplink = net.uplink(net.snapshot.chassis.get(entry.chassis), network)
        if uplink is None:
            continue
        tag = localnet.get("tag")
        tci = {"vlan_tci": 0x1000 | tag} if isinstance(tag, int) and tag else {}
        tagged = [PacketClass.ACL] if src.name in acl else []
        for kind in ("icmp", "tcp"):
            proto, l4 = _L4[kind]
            request = _ip4(src.mac, UNKNOWN_MAC, src.ip4[0], UNKNOWN_IP4, proto, **l4)
            name = f"{src.name} -> outside on provider network {network} {kind}"
            steps = conversation_steps(kind, request, (UNKNOWN_MAC, src.mac), name)
            for step in steps:
                if step.reply and step.packet is not None:
                    step.packet.update(tci)
            out.add([PacketClass.LOCALNET, *tagged], name, entry, steps, uplink, kind)


_REJECT_PORT = re.compile(r"\b(tcp|udp)\.dst\s*==\s*(\d+)")
_REJECT_TARGET = re.compile(r'\b(inport|outport)\s*==\s*(@\w+|"[^"]+")')


def _rejected(net: Network, out: _Collector) -> None:
    """A packet each reject ACL answers (ovn-controller's tcp_reset / icmp unreachable):
    for a to-lport ACL, from a host on the same switch to each port it covers; for a
    from-lport one, from each covered port to another host on its switch; on the port
    its match names (tcp.dst/udp.dst == N), else TCP 80."""
    groups = {pg["name"]: pg for pg in net.nb.get("Port_Group", [])}
    owners = [(pg, [net.by_uuid[r]["name"] for r in pg.get("ports") or []
                    if r in net.by_uuid]) for pg in net.nb.get("Port_Group", [])]
    owners += [(ls, [net.by_uuid[r]["name"] for r in ls.get("ports") or []
                     if r in net.by_uuid]) for ls in net.switches.values()]
    hosts = {h.name: h for h in net.hosts}
    for owner, members in owners:
        for ref in owner.get("acls") or []:
            acl = net.by_uuid.get(ref) or {}
            if acl.get("action") != "reject":
                continue
            match = str(acl.get("match", ""))
            found = _REJECT_TARGET.search(match)
            covered = members
            if found and found.group(2).startswith("@") and found.group(2)[1:] in groups:
                pg = groups[found.group(2)[1:]]
                covered = [net.by_uuid[r]["name"] for r in pg.get("ports") or []
                           if r in net.by_uuid]
            elif found:
                covered = [found.group(2).strip('"')]
            port = _REJECT_PORT.search(match)
            kind, dport = (port.group(1), int(port.group(2))) if port else ("tcp", 80)
            for name in sorted(covered):
                target = hosts.get(name)
                if target is None or not target.ip4:
                    continue
                peers = [h for h in net.hosts if h.switch == target.switch
                         and h.name != name and h.ip4 and h.name in net.entries]
                for peer in peers[:1]:
                    src, dst = (peer, target) if acl.get("direction") == "to-lport" \
                        else (target, peer)
                    entry = net.entries.get(src.name)
                    if entry is None:
                        continue
                    proto, l4 = _L4[kind]
                    request = _ip4(src.mac, dst.mac, src.ip4[0], dst.ip4[0], proto,
                                   **dict(l4, tp_dst=dport))
                    label = f"{src.name} -> {dst.name} :{dport} {kind} (reject ACL)"
                    if kind == "tcp":
                        step = Step("SYN", False, dict(request, tcp_flags=0x002),
                                    ("trk,new",),
                                    _tcp_wire(initial_sequence(label, "client"), 0))
                    else:
                        step = Step("request", False, request, ("trk,new",),
                                    {"payload_len": UDP_PAYLOAD_LEN})
                    out.add([PacketClass.CONTROLLER, PacketClass.ACL], label, entry, [step])


def classes_generated(conversations: list[Conversation]) -> Counter:
    """How many conversations exercise each class (a conversation counts for each)."""
    return Counter(c for conv in conversations for c in conv.classes)
