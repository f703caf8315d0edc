"""What ovn-controller does with a packet an OpenFlow ``controller()`` action sends it.

OVN puts its action opcode in the first 4 bytes of the controller userdata
(big-endian, then 4 bytes of padding); pinctrl dispatches on it.  Numbers
from OVN 23.03 ``include/ovn/actions.h`` (see docs/ovs-xlate-semantics.md §8).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class ControllerAction:
    opcode: int
    name: str
    effect: str      # what happens to the packet, in words a user acts on
    holds: bool      # the packet waits in ovn-controller (or is consumed) instead of going on


OPCODES = {a.opcode: a for a in (
    ControllerAction(0, "arp", "ovn-controller sends an ARP request to resolve the next hop; "
                     "the packet is held until the reply arrives, then re-injected "
                     "(without its conntrack state)", True),
    ControllerAction(1, "put_arp", "ovn-controller learns a MAC binding from this ARP", True),
    ControllerAction(2, "put_dhcp_opts", "ovn-controller answers DHCP (offer/ack) and resumes "
                     "the packet", True),
    ControllerAction(3, "nd_na", "ovn-controller answers the Neighbor Solicitation", True),
    ControllerAction(4, "put_nd", "ovn-controller learns a MAC binding from this ND packet",
                     True),
    ControllerAction(5, "put_dhcpv6_opts", "ovn-controller answers DHCPv6", True),
    ControllerAction(6, "dns_lookup", "ovn-controller answers the DNS query", True),
    ControllerAction(7, "log", "ovn-controller logs the packet (ACL log)", False),
    ControllerAction(8, "put_nd_ra_opts", "ovn-controller answers with a Router Advertisement",
                     True),
    ControllerAction(9, "nd_ns", "ovn-controller sends a Neighbor Solicitation to resolve the "
                     "next hop; the packet is held until the answer arrives", True),
    ControllerAction(10, "icmp", "ovn-controller answers with an ICMP error (e.g. TTL exceeded "
                     "or unreachable) generated from this packet", True),
    ControllerAction(11, "tcp_reset", "ovn-controller answers with a TCP RST (reject ACL)",
                     True),
    ControllerAction(12, "nd_na_router", "ovn-controller answers the NS as a router", True),
    ControllerAction(13, "put_icmp4_frag_mtu", "ovn-controller sends ICMP fragmentation needed",
                     True),
    ControllerAction(14, "icmp4_error", "ovn-controller sends an ICMPv4 error", True),
    ControllerAction(15, "trigger_event", "ovn-controller reports a controller event (e.g. "
                     "empty load balancer backends)", True),
    ControllerAction(16, "igmp", "ovn-controller processes IGMP (multicast snooping)", True),
    ControllerAction(17, "bind_vport", "ovn-controller binds a virtual port", True),
    ControllerAction(18, "handle_svc_check", "ovn-controller handles a service monitor reply",
                     True),
    ControllerAction(19, "handle_dhcpv6_reply", "ovn-controller relays a DHCPv6 reply", True),
    ControllerAction(20, "icmp6_error", "ovn-controller sends an ICMPv6 error", True),
    ControllerAction(21, "put_icmp6_frag_mtu", "ovn-controller sends ICMPv6 packet too big",
                     True),
    ControllerAction(22, "reject", "ovn-controller answers with a reject (RST or ICMP "
                     "unreachable)", True),
    ControllerAction(23, "bfd_msg", "ovn-controller processes a BFD message", True),
    ControllerAction(24, "sctp_abort", "ovn-controller answers with an SCTP ABORT", True),
    ControllerAction(25, "put_fdb", "ovn-controller learns an FDB entry", True),
    ControllerAction(26, "activation_strategy_rarp", "ovn-controller activates a migrated port",
                     True),
)}


def decode_userdata(userdata_hex: str) -> ControllerAction | None:
    data = bytes.fromhex(userdata_hex or "")
    if len(data) < 8:
        return None
    return OPCODES.get(int.from_bytes(data[:4], "big"))


def describe(userdata_hex: str, packet: dict) -> str:
    action = decode_userdata(userdata_hex)
    if action is None:
        return "sent to the controller (not an OVN action opcode)"
    text = f"{action.name}: {action.effect}"
    if action.name == "arp" and packet.get("reg0"):
        text += f"; resolving {ipaddress.IPv4Address(packet['reg0'])}"
    return text
