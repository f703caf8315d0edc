"""What ovn-controller does with a packet an OpenFlow ``controller()`` action sends it.

OVN puts its action opcode in the first 4 bytes of the controller userdata
(big-endian, then 4 bytes of padding); pinctrl dispatches on it.  Which number
is which action depends on the release (``ofrace.ovn.versions``); what each
action does to the packet is said here, by name (docs/ovs-xlate-semantics.md §8).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ofrace.ovn.versions import OvnFacts


@dataclass(frozen=True)
class ControllerAction:
    opcode: int
    name: str
    effect: str      # what happens to the packet, in words a user acts on
    holds: bool      # the packet waits in ovn-controller (or is consumed) instead of going on


# name -> (effect, holds), for every name ofrace.ovn.versions gives an opcode.
EFFECTS: dict[str, tuple[str, bool]] = {
    "arp": ("ovn-controller sends an ARP request to resolve the next hop; the packet is held "
            "until the reply arrives, then re-injected (without its conntrack state)", True),
    "put_arp": ("ovn-controller learns a MAC binding from this ARP", True),
    "put_dhcp_opts": ("ovn-controller answers DHCP (offer/ack) and resumes the packet", True),
    "nd_na": ("ovn-controller answers the Neighbor Solicitation", True),
    "put_nd": ("ovn-controller learns a MAC binding from this ND packet", True),
    "put_dhcpv6_opts": ("ovn-controller answers DHCPv6", True),
    "dns_lookup": ("ovn-controller answers the DNS query", True),
    "log": ("ovn-controller logs the packet (ACL log)", False),
    "put_nd_ra_opts": ("ovn-controller answers with a Router Advertisement", True),
    "nd_ns": ("ovn-controller sends a Neighbor Solicitation to resolve the next hop; the "
              "packet is held until the answer arrives", True),
    "icmp": ("ovn-controller answers with an ICMP error (e.g. TTL exceeded or unreachable) "
             "generated from this packet", True),
    "tcp_reset": ("ovn-controller answers with a TCP RST (reject ACL)", True),
    "nd_na_router": ("ovn-controller answers the NS as a router", True),
    "put_icmp4_frag_mtu": ("ovn-controller sends ICMP fragmentation needed", True),
    "icmp4_error": ("ovn-controller sends an ICMPv4 error", True),
    "trigger_event": ("ovn-controller reports a controller event (e.g. empty load balancer "
                      "backends)", True),
    "igmp": ("ovn-controller processes IGMP (multicast snooping)", True),
    "bind_vport": ("ovn-controller binds a virtual port", True),
    "handle_svc_check": ("ovn-controller handles a service monitor reply", True),
    "handle_dhcpv6_reply": ("ovn-controller relays a DHCPv6 reply", True),
    "icmp6_error": ("ovn-controller sends an ICMPv6 error", True),
    "put_icmp6_frag_mtu": ("ovn-controller sends ICMPv6 packet too big", True),
    "reject": ("ovn-controller answers with a reject (RST or ICMP unreachable)", True),
    "bfd_msg": ("ovn-controller processes a BFD message", True),
    "sctp_abort": ("ovn-controller answers with an SCTP ABORT", True),
    "put_fdb": ("ovn-controller learns an FDB entry", True),
    "activation_strategy_rarp": ("ovn-controller activates a migrated port", True),
    "activation_strategy": ("ovn-controller activates a migrated port", True),
    "mg_split_buf": ("ovn-controller sends the packet on to the rest of a large multicast "
                     "group, in parts", True),
    "split_buf_action": ("ovn-controller sends the packet on to the rest of a large "
                         "multicast group, in parts", True),
    "dhcp_relay_req_chk": ("ovn-controller checks and relays a DHCP request to the server",
                           True),
    "dhcp_relay_resp_chk": ("ovn-controller checks and relays a DHCP reply to the client",
                            True),
}


def decode_userdata(userdata_hex: str, facts: OvnFacts) -> ControllerAction | None:
    """The OVN action in a ``controller()`` action's userdata, in ``facts``' numbering."""
    data = bytes.fromhex(userdata_hex or "")
    if len(data) < 8:
        return None
    opcode = int.from_bytes(data[:4], "big")
    name = facts.opcodes.get(opcode)
    if name is None:
        return None
    effect, holds = EFFECTS[name]
    return ControllerAction(opcode, name, effect, holds)


def describe(userdata_hex: str, packet: dict, facts: OvnFacts) -> str:
    action = decode_userdata(userdata_hex, facts)
    if action is None:
        return "sent to the controller (not an OVN action opcode)"
    text = f"{action.name}: {action.effect}"
    next_hop = packet.get(facts.register("next_hop_ipv4"))
    if action.name == "arp" and next_hop:
        text += f"; resolving {ipaddress.IPv4Address(next_hop)}"
    return text
