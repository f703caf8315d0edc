"""Varied test packets for a chassis, built from what its snapshot says is there.

The generator of the recorded sweeps (tests/fixtures/*/traces.json.gz,
scripts/record_fixtures.py): tests/test_engine_agreement.py replays those, so this
stays as it was.  ``compare --all`` and ``lab verify`` use ``ofrace.compare.generator``
(conversations for every class the NB makes possible); ``tunnel_packets`` is shared.

Originally used by the agreement test against ofproto/trace: every VIF, tunnel and
uplink of the chassis sends every kind of packet OVN handles — ARP and ND,
TCP/UDP/SCTP/ICMP over IPv4 and IPv6, to known and unknown destinations,
broadcast and multicast, TTL 1, fragments, DHCP, spoofed sources — so the
comparison covers the pipelines rather than a hand-picked path.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field

from ofrace.openflow.bridge import parse_tlv_map
from ofrace.ovn.southbound import chassis_view, port_addresses
from ofrace.ovn.versions import facts_for
from ofrace.snapshot import Chassis, Snapshot

BROADCAST = 0xFFFFFFFFFFFF
UNKNOWN_MAC = 0x0A0000FEFEFE
UNKNOWN_IP4 = int(ipaddress.IPv4Address("203.0.113.77"))
UNKNOWN_IP6 = int(ipaddress.IPv6Address("2001:db8:ffff::77"))
MDNS_IP4, MDNS_MAC = int(ipaddress.IPv4Address("224.0.0.251")), 0x01005E0000FB
ALL_NODES6 = int(ipaddress.IPv6Address("ff02::1"))
LOCAL_MAC_PREFIX = 0x020000000000   # locally administered, unicast; the low 32 bits an IPv4


@dataclass
class Endpoint:
    """A logical port with its addresses, from Port_Binding.mac (and the NB router ports)."""

    name: str
    datapath: str
    mac: int | None
    ip4: list[int] = field(default_factory=list)
    ip6: list[int] = field(default_factory=list)
    tunnel_key: int = 0


@dataclass
class TestPacket:
    """A packet to trace: where it enters, its fields, and why it is in the set."""

    bridge: str
    packet: dict
    label: str


def endpoints(snapshot: Snapshot) -> list[Endpoint]:
    """Every logical port that has a MAC, with its IPs and keys."""
    sb = snapshot.southbound.tables if snapshot.southbound else {}
    found = []
    for pb in sb.get("Port_Binding", []):
        mac, ip4, ip6 = port_addresses(pb)
        if mac is not None:
            found.append(Endpoint(pb["logical_port"], pb["datapath"], mac,
                                  [int(a.ip) for a in ip4], [int(a.ip) for a in ip6],
                                  pb.get("tunnel_key", 0)))
    nb = snapshot.northbound.tables if snapshot.northbound else {}
    for lrp in nb.get("Logical_Router_Port", []):
        mac = int(lrp["mac"].replace(":", ""), 16)
        ip4, ip6 = [], []
        for net in lrp.get("networks", []):
            addr = ipaddress.ip_interface(net).ip
            (ip4 if addr.version == 4 else ip6).append(int(addr))
        found.append(Endpoint(lrp["name"], "", mac, ip4, ip6))
    return found


def _l4(proto: str) -> dict:
    return {"tcp": {"nw_proto": 6, "tp_src": 40001, "tp_dst": 80, "tcp_flags": 2},
            "udp": {"nw_proto": 17, "tp_src": 40002, "tp_dst": 53},
            "sctp": {"nw_proto": 132, "tp_src": 40003, "tp_dst": 9},
            "icmp": {"nw_proto": 1, "tp_src": 8, "tp_dst": 0},
            "icmp6": {"nw_proto": 58, "tp_src": 128, "tp_dst": 0}}[proto]


def _ip4(src_mac, dst_mac, src, dst, proto, ttl=64, **extra) -> dict:
    return {"dl_src": src_mac, "dl_dst": dst_mac, "dl_type": 0x0800, "nw_src": src,
            "nw_dst": dst, "nw_ttl": ttl, **_l4(proto), **extra}


def _ip6(src_mac, dst_mac, src, dst, proto, ttl=64, **extra) -> dict:
    return {"dl_src": src_mac, "dl_dst": dst_mac, "dl_type": 0x86DD, "ipv6_src": src,
            "ipv6_dst": dst, "nw_ttl": ttl, **_l4(proto), **extra}


def _arp(src_mac, spa, tpa, op=1, dst_mac=BROADCAST, tha=0) -> dict:
    return {"dl_src": src_mac, "dl_dst": dst_mac, "dl_type": 0x0806, "nw_proto": op,
            "nw_src": spa, "nw_dst": tpa, "arp_sha": src_mac, "arp_tha": tha}


def _solicited_node(ip6: int) -> tuple[int, int]:
    low = ip6 & 0xFFFFFF
    group = int(ipaddress.IPv6Address("ff02::1:ff00:0")) | low
    return group, 0x3333FF000000 | low


def vif_packets(src: Endpoint, same_dp: list[Endpoint], routers: list[Endpoint],
                elsewhere: list[Endpoint] = ()) -> list:
    """(label, packet) pairs a VIF could send; ``elsewhere``: ports on other switches."""
    out = []
    s4 = src.ip4[0] if src.ip4 else None
    s6 = src.ip6[0] if src.ip6 else None
    gw = routers[0] if routers else None
    for dst in same_dp + routers:
        if dst.name == src.name or dst.mac is None:
            continue
        for d4 in dst.ip4[:1]:
            if s4 is not None:
                out.append((f"arp who-has {dst.name}", _arp(src.mac, s4, d4)))
                for proto in ("tcp", "udp", "icmp"):
                    out.append((f"{proto} to {dst.name}",
                                _ip4(src.mac, dst.mac, s4, d4, proto)))
        for d6 in dst.ip6[:1]:
            if s6 is not None:
                group, gmac = _solicited_node(d6)
                out.append((f"nd ns for {dst.name}",
                            _ip6(src.mac, gmac, s6, group, "icmp6", 255, tp_src=135,
                                 nd_target=d6, arp_sha=src.mac)))
                out.append((f"icmp6 echo to {dst.name}", _ip6(src.mac, dst.mac, s6, d6,
                                                              "icmp6")))
                out.append((f"tcp6 to {dst.name}", _ip6(src.mac, dst.mac, s6, d6, "tcp")))
    if s4 is not None:
        out += [
            ("arp for an unknown address", _arp(src.mac, s4, UNKNOWN_IP4)),
            ("gratuitous arp", _arp(src.mac, s4, s4)),
            ("udp broadcast", _ip4(src.mac, BROADCAST, s4, 0xFFFFFFFF, "udp")),
            ("mdns multicast", _ip4(src.mac, MDNS_MAC, s4, MDNS_IP4, "udp", 255,
                                    tp_src=5353, tp_dst=5353)),
            ("dhcp discover", _ip4(src.mac, BROADCAST, 0, 0xFFFFFFFF, "udp", tp_src=68,
                                   tp_dst=67)),
            ("unknown unicast mac", _ip4(src.mac, UNKNOWN_MAC, s4, UNKNOWN_IP4, "tcp")),
            ("spoofed source mac", _ip4(UNKNOWN_MAC, BROADCAST, s4, 0xFFFFFFFF, "udp")),
            ("spoofed source ip", _ip4(src.mac, gw.mac if gw else BROADCAST, UNKNOWN_IP4,
                                       UNKNOWN_IP4 + 1, "tcp")),
            ("sctp", _ip4(src.mac, gw.mac if gw else UNKNOWN_MAC, s4, UNKNOWN_IP4, "sctp")),
        ]
        if gw is not None:
            far = [p for p in elsewhere if p.ip4 and p.mac is not None][:6]
            out += [(f"routed tcp to {p.name}", _ip4(src.mac, gw.mac, s4, p.ip4[0], "tcp"))
                    for p in far]
            out += [
                ("routed tcp to an outside address", _ip4(src.mac, gw.mac, s4, UNKNOWN_IP4,
                                                          "tcp")),
                ("routed icmp, ttl 1", _ip4(src.mac, gw.mac, s4, UNKNOWN_IP4, "icmp", 1)),
                ("routed udp, ttl 2", _ip4(src.mac, gw.mac, s4, UNKNOWN_IP4, "udp", 2)),
                ("first fragment", _ip4(src.mac, gw.mac, s4, UNKNOWN_IP4, "udp", nw_frag=1)),
                # a later fragment carries no L4 header
                ("later fragment", _ip4(src.mac, gw.mac, s4, UNKNOWN_IP4, "udp", nw_frag=3,
                                        tp_src=0, tp_dst=0)),
                ("ping the gateway", _ip4(src.mac, gw.mac, s4, gw.ip4[0] if gw.ip4
                                          else UNKNOWN_IP4, "icmp")),
            ]
    if s6 is not None:
        out += [
            ("icmp6 to all-nodes", _ip6(src.mac, 0x333300000001, s6, ALL_NODES6, "icmp6",
                                        255)),
            ("tcp6 to an unknown address", _ip6(src.mac, gw.mac if gw else UNKNOWN_MAC, s6,
                                                UNKNOWN_IP6, "tcp")),
        ]
    return out


def chassis_packets(snapshot: Snapshot, chassis: Chassis) -> list[TestPacket]:
    """Packets entering every VIF, tunnel and uplink of ``chassis`` (addressed as its
    zone's SB and NB say, in a cluster of zones)."""
    snapshot = chassis_view(snapshot, chassis.name)
    points = endpoints(snapshot)
    by_name = {p.name: p for p in points}
    sb = snapshot.southbound.tables
    router_macs = {p.name for p in points if p.datapath == ""}
    packets: list[TestPacket] = []
    br_int = chassis.integration_bridge
    # LSP of type router carry "router" or the peer's MAC; their peers are router ports.
    peers = {pb["logical_port"]: (pb.get("options") or {}).get("peer")
             for pb in sb.get("Port_Binding", []) if pb.get("type") in ("patch", "l3gateway")}
    lsp_dp = {pb["logical_port"]: pb["datapath"] for pb in sb.get("Port_Binding", [])}
    vifs = {pb["logical_port"] for pb in sb.get("Port_Binding", []) if not pb.get("type")}
    for iface in chassis.interfaces:
        if iface.bridge != br_int or not iface.iface_id or iface.ofport in (None, -1):
            continue
        src = by_name.get(iface.iface_id)
        if src is None:
            continue
        same_dp = [p for p in points if p.datapath == src.datapath and p.name != src.name]
        routers = [by_name[rp] for lsp, rp in peers.items()
                   if rp in router_macs and lsp_dp.get(lsp) == src.datapath]
        elsewhere = [p for p in points if p.datapath not in ("", src.datapath)
                     and p.name in vifs]
        for label, packet in vif_packets(src, same_dp, routers, elsewhere):
            packets.append(TestPacket(br_int, {"in_port": iface.ofport, **packet},
                                      f"{iface.iface_id}: {label}"))
    packets += tunnel_packets(snapshot, chassis, points)
    packets += transit_packets(snapshot, chassis, points)
    packets += uplink_packets(snapshot, chassis, points)
    return packets


def tunnel_packets(snapshot: Snapshot, chassis: Chassis, points: list[Endpoint]) -> list:
    """Packets arriving from other chassis over each Geneve tunnel, for each local port."""
    sb = snapshot.southbound.tables
    dp_key = {row["_uuid"]: row["tunnel_key"] for row in sb.get("Datapath_Binding", [])}
    local = {i.iface_id for i in chassis.interfaces if i.iface_id}
    option = _ovn_option_field(chassis)
    out = []
    tunnels = [i for i in chassis.interfaces
               if i.bridge == chassis.integration_bridge and i.type == "geneve"]
    pbs = {pb["logical_port"]: pb for pb in sb.get("Port_Binding", [])}
    # a flow-based tunnel (remote_ip=flow, OVN 26.03) carries every peer: the source
    # address is the one of the chassis the sending port is bound to
    encap_ip = {row["chassis_name"]: row["ip"] for row in sb.get("Encap", [])
                if row.get("type") == "geneve"}
    chassis_name = {row["_uuid"]: row["name"] for row in sb.get("Chassis", [])}
    for tunnel in tunnels:
        for dst in points:
            pb = pbs.get(dst.name)
            if pb is None or dst.name not in local or not dst.ip4:
                continue
            remote = [p for p in points if p.datapath == dst.datapath and p.name != dst.name
                      and p.name not in local and p.ip4]
            peer = tunnel.options.get("remote_ip")
            if peer == "flow":
                remote = [p for p in remote
                          if encap_ip.get(chassis_name.get(_bound_to(pbs.get(p.name)), ""))]
            for src in remote[:2]:
                inner = _ip4(src.mac, dst.mac, src.ip4[0], dst.ip4[0], "tcp")
                src_ip = (peer if peer != "flow" else
                          encap_ip[chassis_name[_bound_to(pbs[src.name])]])
                out.append(TestPacket(chassis.integration_bridge, {
                    "in_port": tunnel.ofport, "tun_id": dp_key[dst.datapath],
                    "tun_src": int(ipaddress.IPv4Address(src_ip)),
                    "tun_dst": int(ipaddress.IPv4Address(chassis.encap_ips[0])),
                    option: (src.tunnel_key << 16) | pb["tunnel_key"], **inner},
                    f"tunnel {tunnel.name}: {src.name} -> {dst.name}"))
            # and a flooded (broadcast) packet from a remote port
            if remote:
                src = remote[0]
                src_ip = (peer if peer != "flow" else
                          encap_ip[chassis_name[_bound_to(pbs[src.name])]])
                out.append(TestPacket(chassis.integration_bridge, {
                    "in_port": tunnel.ofport, "tun_id": dp_key[dst.datapath],
                    "tun_src": int(ipaddress.IPv4Address(src_ip)),
                    "tun_dst": int(ipaddress.IPv4Address(chassis.encap_ips[0])),
                    option: (src.tunnel_key << 16) | 0xFFFF,
                    **_arp(src.mac, src.ip4[0], dst.ip4[0])},
                    f"tunnel {tunnel.name}: broadcast from {src.name}"))
    return out


def transit_packets(snapshot: Snapshot, chassis: Chassis, points: list[Endpoint]) -> list:
    """Interconnect: packets another zone sends over the transit switch to each local VIF
    (ovn-ic's ``remote`` ports, bound to the other zone's gateway chassis, to the port
    of the transit switch whose router port this zone binds here): the tunnel key is the
    transit switch's, the Geneve option (remote port << 16 | local transit port)."""
    sb = snapshot.southbound.tables if snapshot.southbound else {}
    transit = {row["_uuid"]: row["tunnel_key"] for row in sb.get("Datapath_Binding", [])
               if (row.get("external_ids") or {}).get("interconn-ts")}
    if not transit:
        return []
    pbs = {pb["logical_port"]: pb for pb in sb.get("Port_Binding", [])}
    encap_ip = {row["chassis_name"]: row["ip"] for row in sb.get("Encap", [])
                if row.get("type") == "geneve"}
    chassis_name = {row["_uuid"]: row["name"] for row in sb.get("Chassis", [])}
    local = [p for p in points if p.ip4 and (pbs.get(p.name) or {}).get("type") == ""
             and p.name in {i.iface_id for i in chassis.interfaces if i.iface_id}]
    option = _ovn_option_field(chassis)
    out = []
    for pb in sb.get("Port_Binding", []):
        if pb["datapath"] not in transit or pb.get("type") == "remote":
            continue
        router_port = (pb.get("options") or {}).get("peer")
        gateway = next((p for p in points if p.name == router_port), None)
        if gateway is None:
            continue
        for remote in sb.get("Port_Binding", []):
            if remote["datapath"] != pb["datapath"] or remote.get("type") != "remote":
                continue
            src = next((p for p in points if p.name == remote["logical_port"]), None)
            peer_ip = encap_ip.get(chassis_name.get(_bound_to(remote), ""))
            tunnel = next((i for i in chassis.interfaces
                           if i.bridge == chassis.integration_bridge and i.type == "geneve"
                           and i.options.get("remote_ip") in (peer_ip, "flow")), None)
            if src is None or not src.ip4 or peer_ip is None or tunnel is None:
                continue
            for dst in local[:2]:
                out.append(TestPacket(chassis.integration_bridge, {
                    "in_port": tunnel.ofport, "tun_id": transit[pb["datapath"]],
                    "tun_src": int(ipaddress.IPv4Address(peer_ip)),
                    "tun_dst": int(ipaddress.IPv4Address(chassis.encap_ips[0])),
                    option: (remote["tunnel_key"] << 16) | pb["tunnel_key"],
                    **_ip4(src.mac, gateway.mac, src.ip4[0], dst.ip4[0], "tcp")},
                    f"tunnel {tunnel.name}: {src.name} (another zone) -> {dst.name}"))
    return out


def _bound_to(pb: dict | None) -> str:
    """The Chassis row uuid a Port_Binding is bound to ('' when unbound)."""
    chassis = (pb or {}).get("chassis")
    return chassis if isinstance(chassis, str) else ""


def _ovn_option_field(chassis: Chassis) -> str:
    """The tun_metadataN that carries OVN's Geneve option on this chassis' br-int, from
    its TLV map; tun_metadata0 (the first free field ovn-controller takes) without one."""
    geneve = facts_for(chassis.ovn_version).geneve
    bridge = chassis.bridges.get(chassis.integration_bridge)
    for option in parse_tlv_map(bridge.tlv_map if bridge else ""):
        if (option.opt_class, option.opt_type) == (geneve.opt_class, geneve.opt_type):
            return f"tun_metadata{option.index}"
    return "tun_metadata0"


def outside_host(snapshot: Snapshot) -> tuple[int, int]:
    """The host beyond the uplinks, as the snapshot names it: (MAC, IPv4).

    Its IP is the gateway routers' default-route next hop (NB static routes; the most
    common one, else an address no network has); its MAC the one the SB learned for
    that IP (MAC_Binding), else a locally administered MAC made from the IP.
    """
    nb = snapshot.northbound.tables if snapshot.northbound else {}
    sb = snapshot.southbound.tables if snapshot.southbound else {}
    hops = Counter(route.get("nexthop") for route in nb.get("Logical_Router_Static_Route", [])
                   if route.get("ip_prefix") in ("0.0.0.0/0", "0.0.0.0")
                   and _ip4_or_none(route.get("nexthop")) is not None)
    ip = _ip4_or_none(min(hops, key=lambda hop: (-hops[hop], hop))) if hops else UNKNOWN_IP4
    for row in sb.get("MAC_Binding", []):
        if _ip4_or_none(row.get("ip")) == ip:
            try:
                return int(str(row.get("mac")).replace(":", ""), 16), ip
            except ValueError:
                break
    return LOCAL_MAC_PREFIX | ip, ip


def node_ports(snapshot: Snapshot, gateways: list[Endpoint]) -> list[tuple[str, int]]:
    """(protocol, port) of the load-balancer VIPs on a gateway router port's own IP
    (NodePort-style services), from the NB and SB Load_Balancer rows."""
    on_gateway = {ip for gw in gateways for ip in gw.ip4}
    found = set()
    for db in (snapshot.northbound, snapshot.southbound):
        for lb in (db.tables.get("Load_Balancer", []) if db else []):
            protocol = lb.get("protocol") or "tcp"
            for vip in (lb.get("vips") or {}):
                host, sep, port = str(vip).rpartition(":")
                if sep and port.isdigit() and _ip4_or_none(host) in on_gateway \
                        and protocol in ("tcp", "udp", "sctp"):
                    found.add((protocol, int(port)))
    return sorted(found, key=lambda item: (item[1], item[0]))


def _ip4_or_none(text) -> int | None:
    try:
        return int(ipaddress.IPv4Address(str(text)))
    except ValueError:
        return None


def uplink_packets(snapshot: Snapshot, chassis: Chassis, points: list[Endpoint]) -> list:
    """Packets from the provider network into each bridge patched to br-int."""
    out = []
    outside_mac, outside_ip = outside_host(snapshot)
    gateways = [p for p in points if p.datapath == "" and p.ip4]
    services = node_ports(snapshot, gateways)
    for iface in chassis.interfaces:
        if (iface.bridge == chassis.integration_bridge or iface.bridge not in chassis.bridges
                or iface.type not in ("", "system")):
            continue
        if iface.ofport in (None, -1) or iface.name == iface.bridge:
            continue
        for gw in gateways:
            for proto in ("tcp", "udp", "icmp"):
                out.append(TestPacket(iface.bridge, {"in_port": iface.ofport, **_ip4(
                    outside_mac, gw.mac, outside_ip, gw.ip4[0], proto)},
                    f"{iface.bridge}/{iface.name}: {proto} to {gw.name}"))
            for proto, port in services:
                out.append(TestPacket(iface.bridge, {"in_port": iface.ofport, **_ip4(
                    outside_mac, gw.mac, outside_ip, gw.ip4[0], proto, tp_dst=port)},
                    f"{iface.bridge}/{iface.name}: NodePort {port} on {gw.name}"
                    + ("" if proto == "tcp" else f" ({proto})")))
            out.append(TestPacket(iface.bridge, {"in_port": iface.ofport, **_arp(
                outside_mac, outside_ip, gw.ip4[0])},
                f"{iface.bridge}/{iface.name}: arp who-has {gw.name}"))
    return out
