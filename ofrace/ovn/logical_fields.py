"""The fields and predicates of OVN's logical match language, and where OpenFlow keeps them.

OVN's ``lib/logical-fields.c`` (fields) and ``lib/expr.c`` (predicates such as
``tcp`` or ``nd_ns``) in one table each; :mod:`ofrace.ovn.microflow` parses with them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ofrace.ovn import versions


@dataclass(frozen=True)
class LogicalField:
    """A field of OVN's logical match language and where OpenFlow keeps it."""

    name: str
    kind: str  # int | mac | ipv4 | ipv6 | port (a logical port name, kept as a string)
    width: int
    target: str = ""  # canonical OpenFlow field, or an xreg/xxreg composite
    lsb: int = 0  # where the logical field starts inside ``target``
    requires: str | None = None  # prerequisite: a predicate or a 1-bit field


@dataclass(frozen=True)
class Predicate:
    """A name standing for a condition: all of ``sets`` and ``also``, and one of ``any_of``."""

    name: str
    sets: tuple[tuple[str, int], ...] = ()  # logical field == value
    also: tuple[str, ...] = ()  # other predicates that must hold too
    any_of: tuple[str, ...] = ()  # alternatives, at least one of which holds


def _logical_fields() -> dict[str, LogicalField]:
    F = LogicalField
    table = [
        F("inport", "port", 0), F("outport", "port", 0),
        F("eth.src", "mac", 48, "dl_src"), F("eth.dst", "mac", 48, "dl_dst"),
        F("eth.type", "int", 16, "dl_type"),
        F("vlan.tci", "int", 16, "vlan_tci"),
        F("vlan.present", "int", 1, "vlan_tci", lsb=12),
        F("vlan.vid", "int", 12, "vlan_tci", requires="vlan.present"),
        F("vlan.pcp", "int", 3, "vlan_tci", lsb=13, requires="vlan.present"),
        F("ip.proto", "int", 8, "nw_proto", requires="ip"),
        # OpenFlow's nw_tos keeps DSCP in its upper six bits, as OVS prints it.
        F("ip.dscp", "int", 6, "nw_tos", lsb=2, requires="ip"),
        F("ip.ecn", "int", 2, "nw_ecn", requires="ip"),
        F("ip.ttl", "int", 8, "nw_ttl", requires="ip"),
        F("ip.frag", "int", 2, "nw_frag", requires="ip"),
        F("ip.is_frag", "int", 1, "nw_frag", lsb=0, requires="ip"),
        F("ip.later_frag", "int", 1, "nw_frag", lsb=1, requires="ip"),
        F("ip4.src", "ipv4", 32, "nw_src", requires="ip4"),
        F("ip4.dst", "ipv4", 32, "nw_dst", requires="ip4"),
        F("ip6.src", "ipv6", 128, "ipv6_src", requires="ip6"),
        F("ip6.dst", "ipv6", 128, "ipv6_dst", requires="ip6"),
        F("ip6.label", "int", 20, "ipv6_label", requires="ip6"),
        F("nd.target", "ipv6", 128, "nd_target", requires="nd"),
        F("nd.sll", "mac", 48, "arp_sha", requires="nd_ns"),
        F("nd.tll", "mac", 48, "arp_tha", requires="nd_na"),
        F("pkt.mark", "int", 32, "pkt_mark"),
    ]
    # Logical flags (MFF_LOG_FLAGS): the register and the bits every known release shares.
    facts = versions.facts_for(None)
    flags = facts.register("flags")
    table.append(F("flags", "int", 32, flags))
    table += [F(f"flags.{name}", "int", width, flags, lsb=lsb)
              for name, (lsb, width) in versions.common_flags().items()]
    for icmp in ("icmp4", "icmp6"):
        table += [F(f"{icmp}.type", "int", 8, "tp_src", requires=icmp),
                  F(f"{icmp}.code", "int", 8, "tp_dst", requires=icmp)]
    for l4 in ("tcp", "udp", "sctp"):
        table += [F(f"{l4}.src", "int", 16, "tp_src", requires=l4),
                  F(f"{l4}.dst", "int", 16, "tp_dst", requires=l4)]
    table.append(F("tcp.flags", "int", 12, "tcp_flags", requires="tcp"))
    # ARP and RARP share one layout; OVS keeps the opcode in the 8-bit nw_proto.
    for arp in ("arp", "rarp"):
        table += [F(f"{arp}.op", "int", 8, "nw_proto", requires=arp),
                  F(f"{arp}.spa", "ipv4", 32, "nw_src", requires=arp),
                  F(f"{arp}.tpa", "ipv4", 32, "nw_dst", requires=arp),
                  F(f"{arp}.sha", "mac", 48, "arp_sha", requires=arp),
                  F(f"{arp}.tha", "mac", 48, "arp_tha", requires=arp)]
    # Logical registers are the OpenFlow ones: reg0..reg9, xreg0..4, xxreg0..1.
    table += [F(f"reg{i}", "int", 32, f"reg{i}") for i in range(10)]
    table += [F(f"xreg{i}", "int", 64, f"xreg{i}") for i in range(5)]
    table += [F(f"xxreg{i}", "int", 128, f"xxreg{i}") for i in range(2)]
    return {f.name: f for f in table}


LOGICAL_FIELDS: dict[str, LogicalField] = _logical_fields()

# IP protocol numbers by the predicate OVN's expressions name them with (tcp.dst, icmp4.type).
OVN_L4_NAMES = {6: "tcp", 17: "udp", 132: "sctp", 1: "icmp4", 58: "icmp6"}

PREDICATES: dict[str, Predicate] = {p.name: p for p in (
    Predicate("ip4", sets=(("eth.type", 0x0800),)),
    Predicate("ip6", sets=(("eth.type", 0x86DD),)),
    Predicate("ip", any_of=("ip4", "ip6")),
    Predicate("arp", sets=(("eth.type", 0x0806),)),
    Predicate("rarp", sets=(("eth.type", 0x8035),)),
    Predicate("tcp", sets=(("ip.proto", 6),)),
    Predicate("udp", sets=(("ip.proto", 17),)),
    Predicate("sctp", sets=(("ip.proto", 132),)),
    Predicate("icmp4", sets=(("ip.proto", 1),), also=("ip4",)),
    Predicate("icmp6", sets=(("ip.proto", 58),), also=("ip6",)),
    Predicate("icmp", any_of=("icmp4", "icmp6")),
    Predicate("nd_rs", sets=(("icmp6.type", 133), ("icmp6.code", 0), ("ip.ttl", 255))),
    Predicate("nd_ra", sets=(("icmp6.type", 134), ("icmp6.code", 0), ("ip.ttl", 255))),
    Predicate("nd_ns", sets=(("icmp6.type", 135), ("icmp6.code", 0), ("ip.ttl", 255))),
    Predicate("nd_na", sets=(("icmp6.type", 136), ("icmp6.code", 0), ("ip.ttl", 255))),
    Predicate("nd", any_of=("nd_ns", "nd_na")),
    Predicate("eth.bcast", sets=(("eth.dst", 0xFFFF_FFFF_FFFF),)),
    Predicate("ip.first_frag", sets=(("ip.is_frag", 1), ("ip.later_frag", 0))),
)}

_CONNTRACK = ("is connection-tracking state, not a packet field: give it separately, "
              "as ovn-trace's --ct option does")
_NOT_EXACT = "stands for many addresses; give the exact {} instead"
# Names OVN knows that have no place in a microflow, and why (fnmatch patterns).
NOT_IN_MICROFLOW: tuple[tuple[str, str], ...] = (
    ("ct.*", _CONNTRACK), ("ct_state", _CONNTRACK), ("ct_mark*", _CONNTRACK),
    ("ct_label*", _CONNTRACK), ("ct_proto", _CONNTRACK),
    ("eth.mcast*", _NOT_EXACT.format("eth.dst")),
    ("ip4.mcast", _NOT_EXACT.format("ip4.dst")), ("ip4.src_mcast", _NOT_EXACT.format("ip4.src")),
    ("ip6.mcast*", _NOT_EXACT.format("ip6.dst")), ("nd_ns_mcast", _NOT_EXACT.format("ip6.dst")),
    ("igmp", _NOT_EXACT.format("ip4.dst and ip.proto")),
    ("mldv[12]", _NOT_EXACT.format("ip6.dst and icmp6.type")),
    ("*.frag_mtu", "is only meaningful in actions"),
    ("icmp4.inner_ip4.src", "is only meaningful in actions"),
    ("is_chassis_resident", "is a condition on where a flow runs, not on the packet"),
    ("remote_outport", "is internal to ovn-northd's flows"),
    ("__*", "is internal to ovn-northd's flows"),
    ("*_evpn_vtep", "is internal to ovn-northd's flows"),
    ("flags.*", "is not a flag ofrace knows (it takes the flags every OVN release since "
                "22.03 has, at the same bits)"),
)

KIND_TAKES = {"int": "an integer", "mac": "a MAC address", "ipv4": "an IPv4 address",
               "ipv6": "an IPv6 address", "port": 'a quoted port name, e.g. "lp1"'}
# Address kinds: a field of one takes its own address form or a plain integer.
ADDRESS_KINDS = frozenset({"mac", "ipv4", "ipv6"})
