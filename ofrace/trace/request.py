"""Turn what a user asks into a trace start: a microflow, the short form, or a reply.

The short form (``--from PORT --to IP[:PORT] --tcp``) fills in what people
get wrong by hand (FIELD-NOTES §6.6): the source MAC and IP from the port's
binding, the destination MAC (the neighbour's, or the router port's when the
destination is off-subnet), TTL 64, a SYN for TCP.
"""

from __future__ import annotations

import ipaddress

from ofrace.errors import InputError
from ofrace.openflow.fields import IP_PROTOCOL_NAMES, format_mac
from ofrace.ovn.logical_fields import OVN_L4_NAMES
from ofrace.ovn.microflow import dhcp_request_fields, dns_question, parse_microflow
from ofrace.ovn.southbound import SouthboundIndex, port_addresses
from ofrace.simulate.packet import Packet
from ofrace.trace.cluster import ClusterTracer, TraceStart, Verdict
from ofrace.trace.verdicts import VerdictKind

# The protocols a short form (--tcp, --udp, --icmp, --sctp) may name.
PROTOCOLS = {name: number for number, name in IP_PROTOCOL_NAMES.items() if name != "icmp6"}
DEFAULT_SPORT = 40000


def start_from_expression(tracer: ClusterTracer, expression: str,
                          chassis: str | None = None) -> TraceStart:
    flow = parse_microflow(expression)
    if not flow.inport:
        raise InputError('the microflow needs an inport (inport == "PORT")')
    fields = dict(flow.fields)
    start = tracer.locate(flow.inport, chassis, fields)
    fields.pop("in_port", None)
    start.packet.update(fields)
    return start


def with_dhcp_body(tracer: ClusterTracer, start: TraceStart, kind: str,
                   version: int) -> TraceStart:
    """``start`` as a DHCP (``version`` 4) or DHCPv6 request of type ``kind`` from its
    port (``--dhcp``/``--dhcpv6``): the fields a microflow gave kept, the rest as a
    client sends them; a DHCPREQUEST asks for the port's address (option 50)."""
    pb = tracer.names.ports_by_name.get(start.logical_port or "")
    mac, v4, _ = port_addresses(pb) if pb else (None, [], [])
    given = {k: v for k, v in start.packet.items() if k != "in_port"}
    mac = given.get("dl_src", mac)
    if mac is None:
        raise InputError(f"{start.logical_port} has no MAC in its binding: give eth.src")
    fields = dhcp_request_fields(kind, version, mac, given)
    if version == 4 and kind.lower() == "request":
        if not v4:
            raise InputError(f"--dhcp request: {start.logical_port} has no IPv4 address in "
                             "its binding to ask for")
        fields["dhcp_requested_ip"] = int(v4[0].ip)
    start.packet.update(fields)
    return start


def with_dns_query(start: TraceStart, text: str) -> TraceStart:
    """``start``'s UDP packet to port 53 carrying a DNS query (``--dns NAME[:TYPE]``)."""
    packet = start.packet
    if packet.get("nw_proto") != 17 or packet.get("tp_dst") != 53:
        raise InputError("--dns needs a UDP packet to port 53 (--udp --to IP[:53], or "
                         "udp.dst == 53 in the microflow)")
    packet["dns_query"] = dns_question(text)
    return start


def _router_mac_for(names: SouthboundIndex, pb: dict, dst) -> int | None:
    """The MAC of the router port on ``pb``'s switch (the default gateway)."""
    for other in names.ports_on(pb["datapath"]):
        if other.get("type") not in ("patch", "l3gateway"):
            continue
        peer = names.ports_by_name.get((other.get("options") or {}).get("peer", ""))
        if peer is None:
            continue
        mac, v4, v6 = port_addresses(peer)
        if mac is not None and (v4 if dst.version == 4 else v6):
            return mac
    return None


def _address_of_port(names: SouthboundIndex, host: str, destination: str, source_pb: dict):
    """``--to PORT[:N]``: the address of a logical port (OVN or CMS name), in the family
    the sender has (IPv4 first)."""
    try:
        pb = names.ports_by_name[names.resolve_port(host)]
    except InputError as exc:
        raise InputError(f"--to {destination!r}: not an IP address[:port], and {exc}") from None
    _, v4, v6 = port_addresses(pb)
    _, own4, own6 = port_addresses(source_pb)
    for own, theirs in ((own4, v4), (own6, v6)):
        if own and theirs:
            return theirs[0].ip
    raise InputError(f"--to {destination!r}: {pb['logical_port']} has no address of a "
                     "family the sender has in its binding")


def start_from_short_form(tracer: ClusterTracer, source: str, destination: str,
                          protocol: str, chassis: str | None = None,
                          ttl: int = 64) -> TraceStart:
    start = tracer.locate(source, chassis)  # raises with suggestions for unknown ports
    names = tracer.names                     # the source's zone's, when there are zones
    source = start.logical_port or source    # OVN's name, when a CMS name was given
    pb = names.ports_by_name.get(source)
    mac, v4, v6 = port_addresses(pb)
    host, _, port_text = destination.rpartition(":") if destination.count(":") == 1 or (
        destination.startswith("[") and "]:" in destination) else (destination, "", "")
    host = host.strip("[]") or destination
    try:
        dst = ipaddress.ip_address(host)
    except ValueError:
        dst = _address_of_port(names, host, destination, pb)
    if port_text and not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5
                          and 0 <= int(port_text) <= 65535):
        raise InputError(f"--to {destination!r}: bad port {port_text!r} (0-65535)")
    dport = int(port_text) if port_text else (80 if protocol == "tcp" else 53)
    own = v4 if dst.version == 4 else v6
    if mac is None or not own:
        raise InputError(f"{source} has no IPv{dst.version} address in its binding "
                         f"({pb.get('mac')}); use a microflow expression instead")
    src = own[0]
    dst_mac = None
    # A port on the same switch with that address is reached directly (bindings
    # rarely carry a prefix length, so the subnet is not a reliable test).
    for other in names.ports_on(pb["datapath"]):
        if other["logical_port"] == source:
            continue
        omac, ov4, ov6 = port_addresses(other)
        if omac is not None and (other.get("type") or "") == "" and any(
                a.ip == dst for a in (ov4 + ov6)):
            dst_mac = omac
            break
    if dst_mac is None:
        dst_mac = _router_mac_for(names, pb, dst)
    if dst_mac is None:
        raise InputError(f"cannot tell the destination MAC for {dst} from {source}'s switch")
    packet: Packet = {"dl_src": mac, "dl_dst": dst_mac, "nw_ttl": ttl}
    if dst.version == 4:
        packet.update(dl_type=0x0800, nw_src=int(src.ip), nw_dst=int(dst))
    else:
        packet.update(dl_type=0x86DD, ipv6_src=int(src.ip), ipv6_dst=int(dst))
    proto = PROTOCOLS[protocol]
    if protocol == "icmp" and dst.version == 6:
        proto = 58
    packet["nw_proto"] = proto
    if proto in (6, 17, 132):
        packet.update(tp_src=DEFAULT_SPORT, tp_dst=dport)
        if proto == 6:
            packet["tcp_flags"] = 0x002
    else:
        packet.update(tp_src=8 if proto == 1 else 128, tp_dst=0)
    start.packet.update(packet)
    return start


def reply_start(tracer: ClusterTracer, verdict: Verdict) -> TraceStart:
    """The answer to a delivered packet: from where it arrived, addresses and ports swapped."""
    final = verdict.packet
    if verdict.kind == VerdictKind.DELIVERED:
        start = tracer.locate(verdict.logical_port, verdict.chassis)
    elif verdict.kind == VerdictKind.LEFT and verdict.exit is not None:
        start = TraceStart(verdict.chassis, verdict.exit.bridge,
                           {"in_port": verdict.exit.port},
                           f"uplink {verdict.port} of {verdict.exit.bridge} (reply from outside)")
    else:
        raise InputError(f"cannot reply to a packet that was {verdict.kind}")
    packet = {k: final[k] for k in ("dl_type", "nw_proto", "vlan_tci") if k in final}
    packet.update(dl_src=final.get("dl_dst", 0), dl_dst=final.get("dl_src", 0), nw_ttl=64)
    if final.get("dl_type") == 0x0800:
        packet.update(nw_src=final.get("nw_dst", 0), nw_dst=final.get("nw_src", 0))
    elif final.get("dl_type") == 0x86DD:
        packet.update(ipv6_src=final.get("ipv6_dst", 0), ipv6_dst=final.get("ipv6_src", 0))
    else:
        raise InputError("--reply needs an IP packet")
    proto = final.get("nw_proto")
    if proto in (6, 17, 132):
        packet.update(tp_src=final.get("tp_dst", 0), tp_dst=final.get("tp_src", 0))
        if proto == 6:
            packet["tcp_flags"] = 0x012 if final.get("tcp_flags", 0) & 0x002 else 0x010
    elif proto == 1:
        packet.update(tp_src=0 if final.get("tp_src") == 8 else final.get("tp_src", 0),
                      tp_dst=final.get("tp_dst", 0))
    elif proto == 58:
        packet.update(tp_src=129 if final.get("tp_src") == 128 else final.get("tp_src", 0),
                      tp_dst=final.get("tp_dst", 0))
    start.packet.update(packet)
    start.entry += " — reply"
    return start


def to_expression(packet: Packet, inport: str) -> str:
    """The ovn-trace microflow for a packet ofrace built (e.g. from the short form)."""
    terms = [f'inport == "{inport}"', f"eth.src == {format_mac(packet.get('dl_src', 0))}",
             f"eth.dst == {format_mac(packet.get('dl_dst', 0))}"]
    if packet.get("dl_type") == 0x0800:
        terms += [f"ip4.src == {ipaddress.IPv4Address(packet.get('nw_src', 0))}",
                  f"ip4.dst == {ipaddress.IPv4Address(packet.get('nw_dst', 0))}"]
    elif packet.get("dl_type") == 0x86DD:
        terms += [f"ip6.src == {ipaddress.IPv6Address(packet.get('ipv6_src', 0))}",
                  f"ip6.dst == {ipaddress.IPv6Address(packet.get('ipv6_dst', 0))}"]
    if packet.get("dl_type") in (0x0800, 0x86DD):
        terms.append(f"ip.ttl == {packet.get('nw_ttl', 64)}")
        proto = OVN_L4_NAMES.get(packet.get("nw_proto", 0))
        if proto in ("tcp", "udp", "sctp"):
            terms += [f"{proto}.src == {packet.get('tp_src', 0)}",
                      f"{proto}.dst == {packet.get('tp_dst', 0)}"]
        elif proto in ("icmp4", "icmp6"):
            terms += [f"{proto}.type == {packet.get('tp_src', 0)}",
                      f"{proto}.code == {packet.get('tp_dst', 0)}"]
    return " && ".join(terms)
