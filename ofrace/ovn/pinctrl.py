"""The packets ovn-controller (pinctrl) builds from a packet-in, and how it sends them back.

For a nested action (``arp { … }``, ``nd_ns``, ``nd_na``, ``nd_na_router``, ``icmp4``/
``icmp6``, ``icmp4_error``/``icmp6_error``, ``tcp_reset``, ``sctp_abort``, ``reject``)
pinctrl composes a new packet from the packet-in's headers and sends it in a packet-out
whose actions reload the packet-in's registers and metadata, then run the nested actions
(controller/pinctrl.c ``set_actions_and_enqueue_msg`` / ``reload_metadata``; in_port
CONTROLLER).  ``arp`` and ``nd_ns`` also hold the packet, keyed by (datapath, logical
outport, next-hop address) until a MAC binding for that key is learned
(``pinctrl_handle_buffered_packets``); then it is re-injected with its Ethernet
destination set, as ``facts.held_release`` says for the release.

Packets are ofrace field dicts (``ofrace.openflow.fields``); what only a frame carries
(TCP seq/ack) uses ``ofrace.openflow.frames.WIRE_KEYS``.  Each builder cites the
pinctrl function it follows (OVN 22.03 … 26.03 build these packets alike but for the
facts in ``ofrace.ovn.versions``: docs/ovs-xlate-semantics.md §8).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ofrace.openflow.actions import FieldRef, Resubmit, SetField
from ofrace.openflow.fields import SPECIAL_PORTS, TCP_FLAG_BITS, format_mac
from ofrace.openflow.ofpact_binary import nested_actions
from ofrace.ovn.versions import OvnFacts

CONTROLLER_PORT = SPECIAL_PORTS["CONTROLLER"]
BROADCAST = 0xFFFFFFFFFFFF
ETH_IP, ETH_IPV6, ETH_ARP = 0x0800, 0x86DD, 0x0806
# ND: the 16-byte target and one 8-byte link-layer address option past the ICMPv6 header
ND_BODY = 24
ND_RSO_ROUTER, ND_RSO_SOLICITED, ND_RSO_OVERRIDE = 0x80000000, 0x40000000, 0x20000000
L4_HEADER = {6: 20, 17: 8, 1: 8, 58: 8, 132: 12}
ICMP4_ROOM = 576 - (14 + 20 + 8)        # pinctrl_handle_icmp: RFC 1122, at most 576 bytes
ICMP6_ROOM = 1280 - (14 + 40 + 8)       # RFC 4443: the minimum IPv6 MTU
# Actions whose packet pinctrl composes and sends in a packet-out (opcode names).
BUILDS = ("arp", "nd_ns", "nd_na", "nd_na_router", "icmp", "icmp4_error", "icmp6_error",
          "tcp_reset", "sctp_abort", "reject")
HOLDS = ("arp", "nd_ns")
LEARNS = ("put_arp", "put_nd")
REGISTERS = tuple(f"reg{i}" for i in range(16)) + ("metadata",)


@dataclass
class Built:
    """A packet pinctrl composed: its headers, what it is in words, the bytes it carries
    past the headers ``ofrace.simulate`` counts, and the packet-out's actions."""

    packet: dict
    what: str
    payload_length: int
    actions: list


def _copy(packet: dict, names) -> dict:
    return {k: packet.get(k, 0) for k in names}


def _ip_length(packet: dict, payload_length: int) -> int:
    """The original IP packet's length (header, transport header, payload)."""
    ip = 20 if packet.get("dl_type") == ETH_IP else 40
    return ip + L4_HEADER.get(packet.get("nw_proto", 0), 0) + payload_length


def _vlan(packet: dict) -> dict:
    """pinctrl keeps an 802.1Q tag the packet-in had (``eth_push_vlan`` when CFI is set)."""
    tci = packet.get("vlan_tci", 0)
    return {"vlan_tci": tci} if tci & 0x1000 else {}


def _ip_header(packet: dict, src: str, dst: str, proto: int, ttl: int,
               loopback: bool) -> dict:
    """``pinctrl_compose_ipv4`` / ``pinctrl_compose_ipv6``: Ethernet and IP from the
    packet-in, swapped for a ``loopback`` answer (reject)."""
    a, b = ("dl_dst", "dl_src") if loopback else ("dl_src", "dl_dst")
    s, d = (dst, src) if loopback else (src, dst)
    return {"dl_src": packet.get(a, 0), "dl_dst": packet.get(b, 0),
            "dl_type": packet.get("dl_type", 0), src: packet.get(s, 0),
            dst: packet.get(d, 0), "nw_proto": proto, "nw_ttl": ttl, "nw_tos": 0}


def _addresses(packet: dict) -> tuple[str, str]:
    return ("nw_src", "nw_dst") if packet.get("dl_type") == ETH_IP else ("ipv6_src", "ipv6_dst")


def _show_ip(value: int, v6: bool) -> str:
    return str(ipaddress.IPv6Address(value) if v6 else ipaddress.IPv4Address(value))


def held_address(name: str, packet: dict) -> int:
    """The next hop a held packet waits for: reg0 (``arp``) or xxreg0 (``nd_ns``), as
    ``pinctrl_handle_buffered_packets`` reads them from the packet-in's metadata."""
    if name == "arp":
        return packet.get("reg0", 0)
    value = 0
    for reg in ("reg0", "reg1", "reg2", "reg3"):
        value = (value << 32) | packet.get(reg, 0)
    return value


def show_held(name: str, address: int) -> str:
    return _show_ip(address, name in ("nd_ns", "put_nd"))


def arp_request(packet: dict, facts: OvnFacts) -> dict | None:
    """``pinctrl_handle_arp``: an ARP request from the IP packet's Ethernet source and
    destination and IPv4 addresses (the nested actions set the broadcast destination and
    the addresses OVN asks for); VLAN kept.  From 25.03 an IPv6 packet gets addresses 0."""
    if packet.get("dl_type") != ETH_IP and not (
            facts.arp_ns_any_family and packet.get("dl_type") == ETH_IPV6):
        return None
    v4 = packet.get("dl_type") == ETH_IP
    return {"dl_src": packet.get("dl_src", 0), "dl_dst": packet.get("dl_dst", 0),
            "dl_type": ETH_ARP, "nw_proto": 1, "arp_sha": packet.get("dl_src", 0),
            "arp_tha": 0, "nw_src": packet.get("nw_src", 0) if v4 else 0,
            "nw_dst": packet.get("nw_dst", 0) if v4 else 0, **_vlan(packet)}


def _link_local(mac: int) -> int:
    """``in6_generate_lla``: fe80::/64 with the EUI-64 of ``mac`` (U/L bit flipped)."""
    eui = ((mac >> 24) << 40) | (0xFFFE << 24) | (mac & 0xFFFFFF)
    return (0xFE80 << 112) | (eui ^ (0x02 << 56))


def _solicited_node(address: int) -> int:
    return (0xFF020000000000000000000000000000 | (0x01FF << 24) | (address & 0xFFFFFF))


def nd_ns(packet: dict, facts: OvnFacts) -> dict | None:
    """``pinctrl_handle_nd_ns`` → OVS ``compose_nd_ns``: from the packet's Ethernet source
    and its link-local address, to the solicited-node group of the packet's destination
    (the nested actions set the target), hop limit 255, a source link-layer option."""
    v6 = packet.get("dl_type") == ETH_IPV6
    if not v6 and not facts.arp_ns_any_family:
        return None
    target = packet.get("ipv6_dst", 0) if v6 else 0
    group = _solicited_node(target)
    return {"dl_src": packet.get("dl_src", 0), "dl_dst": (0x3333 << 32) | (group & 0xFFFFFFFF),
            "dl_type": ETH_IPV6, "ipv6_src": _link_local(packet.get("dl_src", 0)),
            "ipv6_dst": group, "nw_proto": 58, "nw_ttl": 255, "tp_src": 135, "tp_dst": 0,
            "nd_target": target, "arp_sha": packet.get("dl_src", 0), "arp_tha": 0}


def nd_na(packet: dict, router: bool) -> dict | None:
    """``pinctrl_handle_nd_na`` → OVS ``compose_nd_na``: from the NS's destination MAC to
    its source, from the target address to the NS's source address, solicited+override
    (+router for ``nd_na_router``), the target link-layer option from the NS's dl_dst."""
    if packet.get("dl_type") != ETH_IPV6 or packet.get("nw_proto") != 58 \
            or packet.get("tp_src") not in (135, 136):
        return None
    flags = ND_RSO_SOLICITED | ND_RSO_OVERRIDE | (ND_RSO_ROUTER if router else 0)
    return {"dl_src": packet.get("dl_dst", 0), "dl_dst": packet.get("dl_src", 0),
            "dl_type": ETH_IPV6, "ipv6_src": packet.get("nd_target", 0),
            "ipv6_dst": packet.get("ipv6_src", 0), "nw_proto": 58, "nw_ttl": 255,
            "tp_src": 136, "tp_dst": 0, "nd_target": packet.get("nd_target", 0),
            "nd_reserved": flags, "arp_sha": 0, "arp_tha": packet.get("dl_dst", 0)}


def icmp_error(packet: dict, payload_length: int, set_code: bool,
               loopback: bool) -> tuple[dict, int] | None:
    """``pinctrl_handle_icmp``: destination unreachable (code 1; port unreachable for UDP
    when ``set_code``, the ``icmp4``/``icmp6`` actions) quoting as much of the IP packet as
    fits in 576 bytes (IPv4) or 1280 (IPv6), TTL 255; the nested actions usually change
    type and code (TTL exceeded) and the addresses.  Returns the packet and its quoted
    length."""
    if packet.get("dl_type") not in (ETH_IP, ETH_IPV6):
        return None
    v4 = packet.get("dl_type") == ETH_IP
    src, dst = _addresses(packet)
    out = _ip_header(packet, src, dst, 1 if v4 else 58, 255, loopback)
    udp = packet.get("nw_proto") == 17
    out["tp_src"] = 3 if v4 else 1
    out["tp_dst"] = (3 if v4 else 4) if set_code and udp else 1
    quoted = min(_ip_length(packet, payload_length), ICMP4_ROOM if v4 else ICMP6_ROOM)
    # the quoted header, which conntrack relates the error by (ofrace.simulate.conntrack)
    out["icmp_inner"] = {k: packet[k] for k in (src, dst, "nw_proto", "nw_ttl", "tp_src",
                                                "tp_dst", "icmp_id") if k in packet}
    return {**out, **_vlan(packet)}, quoted


def tcp_reset(packet: dict, loopback: bool) -> dict | None:
    """``pinctrl_handle_tcp_reset``: RST+ACK with the ports swapped, seq 0, ack the
    packet's seq + 1, TTL 63 (addresses swapped too for a ``reject``)."""
    if packet.get("nw_proto") != 6:
        return None
    src, dst = _addresses(packet)
    out = _ip_header(packet, src, dst, 6, 63, loopback)
    out.update(tp_src=packet.get("tp_dst", 0), tp_dst=packet.get("tp_src", 0),
               tcp_flags=TCP_FLAG_BITS["rst"] | TCP_FLAG_BITS["ack"], tcp_seq=0,
               tcp_ack=(packet.get("tcp_seq", 0) + 1) & 0xFFFFFFFF)
    return out


def sctp_abort(packet: dict, loopback: bool) -> dict | None:
    """``pinctrl_handle_sctp_abort``: an ABORT chunk back, ports swapped, TTL 63."""
    if packet.get("nw_proto") != 132:
        return None
    src, dst = _addresses(packet)
    out = _ip_header(packet, src, dst, 132, 63, loopback)
    out.update(tp_src=packet.get("tp_dst", 0), tp_dst=packet.get("tp_src", 0))
    return out


def _rejects_nothing(packet: dict) -> bool:
    """``pinctrl_handle_reject_ignore_pkt``: no answer to a RST or an unreachable."""
    proto = packet.get("nw_proto")
    if proto == 6:
        return bool(packet.get("tcp_flags", 0) & TCP_FLAG_BITS["rst"])
    if proto == 1 and packet.get("dl_type") == ETH_IP:
        return packet.get("tp_src") == 3
    if proto == 58 and packet.get("dl_type") == ETH_IPV6:
        return packet.get("tp_src") == 1
    return False


def packet_out_actions(packet_in: dict, nested: list) -> list:
    """``reload_metadata`` (each register and the logical datapath of the packet-in, as
    set_field actions), then the nested actions."""
    reload = [SetField(FieldRef(name, 0, 63 if name == "metadata" else 31),
                       packet_in[name], (1 << 64) - 1 if name == "metadata" else 0xFFFFFFFF)
              for name in REGISTERS if packet_in.get(name)]
    return reload + list(nested)


def build(name: str, userdata: bytes, packet: dict, payload_length: int,
          facts: OvnFacts) -> Built | None:
    """The packet pinctrl sends for opcode ``name`` given the packet-in ``packet`` (its
    headers and registers as the controller action saw them); None when pinctrl sends
    nothing (a packet of the wrong kind, a reject of a RST)."""
    payload = 0
    if name == "arp":
        out = arp_request(packet, facts)
        what = f"ARP request for {show_held(name, held_address(name, packet))}"
    elif name == "nd_ns":
        out, payload = nd_ns(packet, facts), ND_BODY
        what = f"Neighbor Solicitation for {show_held(name, held_address(name, packet))}"
    elif name in ("nd_na", "nd_na_router"):
        out, payload = nd_na(packet, name == "nd_na_router"), ND_BODY
        what = (f"Neighbor Advertisement for "
                f"{_show_ip(packet.get('nd_target', 0), True)}"
                + (" (router)" if name == "nd_na_router" else ""))
    elif name in ("icmp", "icmp4_error", "icmp6_error"):
        made = icmp_error(packet, payload_length, name == "icmp", False)
        out, payload = made if made else (None, 0)
        what = "ICMP error"
    elif name == "tcp_reset":
        out, what = tcp_reset(packet, False), "TCP RST"
    elif name == "sctp_abort":
        out, what = sctp_abort(packet, False), "SCTP ABORT"
    elif name == "reject":
        if _rejects_nothing(packet):
            return None
        proto = packet.get("nw_proto")
        if proto == 6:
            out, what = tcp_reset(packet, True), "TCP RST (reject)"
        elif proto == 132:
            out, what = sctp_abort(packet, True), "SCTP ABORT (reject)"
        else:
            made = icmp_error(packet, payload_length, True, True)
            out, payload = made if made else (None, 0)
            what = "ICMP unreachable (reject)"
    else:
        return None
    if out is None:
        return None
    return Built({**out, "in_port": CONTROLLER_PORT}, what, payload,
                 packet_out_actions(packet, nested_actions(userdata)))


def describe_built(built: Built) -> str:
    """Words for an ICMP answer once its nested actions are known: type and code are
    those the actions set (TTL exceeded is type 11 / ICMPv6 3)."""
    if not built.what.startswith("ICMP"):
        return built.what
    kind, code = built.packet.get("tp_src"), built.packet.get("tp_dst")
    for action in built.actions:
        if isinstance(action, SetField) and action.target.name == "tp_src":
            kind = action.value
        elif isinstance(action, SetField) and action.target.name == "tp_dst":
            code = action.value
    names = {(1, 11): "time exceeded", (1, 3): "destination unreachable",
             (58, 3): "time exceeded", (58, 1): "destination unreachable",
             (58, 2): "packet too big"}
    label = names.get((built.packet.get("nw_proto"), kind), f"type {kind}")
    family = "ICMPv6" if built.packet.get("nw_proto") == 58 else "ICMP"
    return f"{family} {label} (code {code})" + (
        " (reject)" if "reject" in built.what else "")


# -------------------------------------------------------------- held packets

@dataclass(frozen=True)
class BindingKey:
    """What a MAC binding and a held packet are matched on: logical datapath, logical
    port, address (``pinctrl_find_buffered_packets``)."""

    datapath: int
    port: int
    address: int
    v6: bool


def held_key(name: str, packet: dict, facts: OvnFacts) -> BindingKey:
    """A held packet waits on its logical outport (``MFF_LOG_OUTPORT``)."""
    return BindingKey(packet.get(facts.register("datapath"), 0),
                      packet.get(facts.register("outport"), 0),
                      held_address(name, packet), name == "nd_ns")


def learned(name: str, packet: dict, facts: OvnFacts) -> tuple[BindingKey, int]:
    """``pinctrl_handle_put_mac_binding``: the binding a put_arp/put_nd learns, on the
    logical inport, for the address in reg0 / xxreg0, to the packet's Ethernet source."""
    key = BindingKey(packet.get(facts.register("datapath"), 0),
                     packet.get(facts.register("inport"), 0),
                     held_address("arp" if name == "put_arp" else "nd_ns", packet),
                     name == "put_nd")
    return key, packet.get("dl_src", 0)


def release(held_packet: dict, mac: int, facts: OvnFacts,
            paused: bool | None = None) -> tuple[dict, list, str]:
    """A held packet re-injected once its next hop's MAC is known: the Ethernet
    destination set, the packet-in's registers, metadata and pkt_mark reloaded, and a
    resubmit from CONTROLLER to the output table (``buffered_push_packet``, a packet-out;
    or, where ``arp``/``nd_ns`` encode a paused controller action, the paused translation
    resumes, which goes on to that same table).  ``paused`` is what the flow that held
    the packet said; the release's facts only when no flow says.  The pause came with
    ovn-org/ovn c141d8b19 ("Use paused controller action for packet buffering", 24.09.0),
    backported as 1e89d06e6 (24.03.2) and e5c3331cb (23.09.4): a patch release, which
    the facts per release cannot tell apart."""
    how, table = facts.held_release
    if paused is not None:
        how = "continuation" if paused else "packet-out"
    # a packet-out starts untracked; a resumed continuation keeps its conntrack state
    packet = {k: v for k, v in held_packet.items()
              if not (k.startswith(("reg", "tun", "_")) or k in ("metadata", "pkt_mark",
                                                                  "in_port"))
              and not (how == "packet-out" and k.startswith("ct_"))}
    packet.update(dl_dst=mac, in_port=CONTROLLER_PORT)
    actions = packet_out_actions(held_packet, [])
    if held_packet.get("pkt_mark"):
        actions.append(SetField(FieldRef("pkt_mark", 0, 31), held_packet["pkt_mark"],
                                0xFFFFFFFF))
    actions.append(Resubmit(CONTROLLER_PORT, table))
    words = (f"packet-out to table {table}" if how == "packet-out"
             else f"its paused translation resumed (modelled as going on in table {table})")
    return packet, actions, f"now to {format_mac(mac)}, {words}"
