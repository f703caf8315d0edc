"""OpenFlow fields as data: names, widths, value syntax and aliases.

Every field a flow may match or an action may write is stored under one
canonical name with an integer value, laid out as ``struct flow`` in OVS
lays it out: ARP's SPA/TPA share ``nw_src``/``nw_dst``, ARP's opcode shares
``nw_proto``, ICMP type/code share ``tp_src``/``tp_dst``, ND's SLL/TLL
share ``arp_sha``/``arp_tha``.  Wide registers (``xreg``, ``xxreg``) are
views over the 32-bit ``regN``; ``tun_metadataN`` is one wide integer.
The tables below are the only place these facts live: parsing and
execution look them up instead of branching on names.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    """A canonical field: where a value lives in the simulated packet."""

    name: str
    bits: int
    kind: str = "int"  # int | mac | ipv4 | ipv6 | ct_state | tcp_flags | frag | port

    @property
    def full(self) -> int:
        return (1 << self.bits) - 1


def _fields() -> dict[str, Field]:
    table = [
        Field("in_port", 32, "port"), Field("dl_src", 48, "mac"), Field("dl_dst", 48, "mac"),
        Field("dl_type", 16), Field("vlan_tci", 16), Field("nw_src", 32, "ipv4"),
        Field("nw_dst", 32, "ipv4"), Field("ipv6_src", 128, "ipv6"),
        Field("ipv6_dst", 128, "ipv6"), Field("ipv6_label", 20), Field("nw_proto", 8),
        Field("nw_tos", 8), Field("nw_ecn", 2), Field("nw_ttl", 8), Field("nw_frag", 2, "frag"),
        Field("tp_src", 16), Field("tp_dst", 16), Field("tcp_flags", 12, "tcp_flags"),
        Field("arp_sha", 48, "mac"), Field("arp_tha", 48, "mac"),
        Field("nd_target", 128, "ipv6"), Field("nd_reserved", 32), Field("nd_options_type", 8),
        Field("metadata", 64), Field("tun_id", 64), Field("tun_src", 32, "ipv4"),
        Field("tun_dst", 32, "ipv4"), Field("tun_ipv6_src", 128, "ipv6"),
        Field("tun_ipv6_dst", 128, "ipv6"), Field("tun_flags", 16), Field("tun_tos", 8),
        Field("tun_ttl", 8), Field("tun_gbp_id", 16), Field("tun_gbp_flags", 8),
        Field("ct_state", 32, "ct_state"), Field("ct_zone", 16), Field("ct_mark", 32),
        Field("ct_label", 128), Field("ct_nw_src", 32, "ipv4"), Field("ct_nw_dst", 32, "ipv4"),
        Field("ct_ipv6_src", 128, "ipv6"), Field("ct_ipv6_dst", 128, "ipv6"),
        Field("ct_nw_proto", 8), Field("ct_tp_src", 16), Field("ct_tp_dst", 16),
        Field("pkt_mark", 32), Field("skb_priority", 32), Field("recirc_id", 32),
        Field("dp_hash", 32), Field("conj_id", 32), Field("actset_output", 32, "port"),
        Field("packet_type", 32), Field("mpls_label", 20), Field("mpls_tc", 3),
        Field("mpls_bos", 1), Field("mpls_ttl", 8),
    ]
    table += [Field(f"reg{i}", 32) for i in range(16)]
    table += [Field(f"tun_metadata{i}", 992) for i in range(64)]
    return {f.name: f for f in table}


FIELDS: dict[str, Field] = _fields()

# Other spellings of a canonical field: ovs-ofctl names, OXM/NXM names, and the
# protocol-specific names that share storage.
ALIASES: dict[str, str] = {
    "eth_src": "dl_src", "eth_dst": "dl_dst", "eth_type": "dl_type",
    "ip_src": "nw_src", "ip_dst": "nw_dst", "ipv4_src": "nw_src", "ipv4_dst": "nw_dst",
    "arp_spa": "nw_src", "arp_tpa": "nw_dst", "arp_op": "nw_proto", "ip_proto": "nw_proto",
    "ip_ttl": "nw_ttl", "ip_ecn": "nw_ecn", "ip_frag": "nw_frag",
    "tcp_src": "tp_src", "tcp_dst": "tp_dst", "udp_src": "tp_src", "udp_dst": "tp_dst",
    "sctp_src": "tp_src", "sctp_dst": "tp_dst",
    "icmp_type": "tp_src", "icmp_code": "tp_dst", "icmpv4_type": "tp_src",
    "icmpv4_code": "tp_dst", "icmpv6_type": "tp_src", "icmpv6_code": "tp_dst",
    "nd_sll": "arp_sha", "nd_tll": "arp_tha", "ipv6_nd_target": "nd_target",
    "ipv6_nd_sll": "arp_sha", "ipv6_nd_tll": "arp_tha", "ipv6_flabel": "ipv6_label",
    "tunnel_id": "tun_id", "tun_ipv4_src": "tun_src", "tun_ipv4_dst": "tun_dst",
    "ct_nw_proto": "ct_nw_proto", "pkt_mark": "pkt_mark", "skb_mark": "pkt_mark",
    "NXM_OF_IN_PORT": "in_port", "OXM_OF_IN_PORT": "in_port",
    "NXM_OF_ETH_SRC": "dl_src", "NXM_OF_ETH_DST": "dl_dst", "NXM_OF_ETH_TYPE": "dl_type",
    "OXM_OF_ETH_SRC": "dl_src", "OXM_OF_ETH_DST": "dl_dst", "OXM_OF_ETH_TYPE": "dl_type",
    "NXM_OF_VLAN_TCI": "vlan_tci", "NXM_OF_IP_TOS": "nw_tos", "NXM_OF_IP_PROTO": "nw_proto",
    "NXM_OF_IP_SRC": "nw_src", "NXM_OF_IP_DST": "nw_dst", "OXM_OF_IPV4_SRC": "nw_src",
    "OXM_OF_IPV4_DST": "nw_dst", "NXM_NX_IP_TTL": "nw_ttl", "NXM_NX_IP_ECN": "nw_ecn",
    "NXM_NX_IP_FRAG": "nw_frag", "OXM_OF_IP_PROTO": "nw_proto",
    "NXM_OF_TCP_SRC": "tp_src", "NXM_OF_TCP_DST": "tp_dst", "NXM_OF_UDP_SRC": "tp_src",
    "NXM_OF_UDP_DST": "tp_dst", "OXM_OF_TCP_SRC": "tp_src", "OXM_OF_TCP_DST": "tp_dst",
    "OXM_OF_UDP_SRC": "tp_src", "OXM_OF_UDP_DST": "tp_dst", "OXM_OF_SCTP_SRC": "tp_src",
    "OXM_OF_SCTP_DST": "tp_dst", "NXM_NX_TCP_FLAGS": "tcp_flags",
    "NXM_OF_ICMP_TYPE": "tp_src", "NXM_OF_ICMP_CODE": "tp_dst",
    "NXM_NX_ICMPV6_TYPE": "tp_src", "NXM_NX_ICMPV6_CODE": "tp_dst",
    "NXM_OF_ARP_OP": "nw_proto", "NXM_OF_ARP_SPA": "nw_src", "NXM_OF_ARP_TPA": "nw_dst",
    "NXM_NX_ARP_SHA": "arp_sha", "NXM_NX_ARP_THA": "arp_tha",
    "NXM_NX_IPV6_SRC": "ipv6_src", "NXM_NX_IPV6_DST": "ipv6_dst",
    "NXM_NX_IPV6_LABEL": "ipv6_label", "NXM_NX_ND_TARGET": "nd_target",
    "NXM_NX_ND_SLL": "arp_sha", "NXM_NX_ND_TLL": "arp_tha",
    "OXM_OF_METADATA": "metadata", "NXM_NX_TUN_ID": "tun_id",
    "NXM_NX_TUN_IPV4_SRC": "tun_src", "NXM_NX_TUN_IPV4_DST": "tun_dst",
    "NXM_NX_TUN_FLAGS": "tun_flags", "NXM_NX_PKT_MARK": "pkt_mark",
    "NXM_NX_CT_STATE": "ct_state", "NXM_NX_CT_ZONE": "ct_zone", "NXM_NX_CT_MARK": "ct_mark",
    "NXM_NX_CT_LABEL": "ct_label", "NXM_NX_CT_NW_SRC": "ct_nw_src",
    "NXM_NX_CT_NW_DST": "ct_nw_dst", "NXM_NX_CT_NW_PROTO": "ct_nw_proto",
    "NXM_NX_CT_TP_SRC": "ct_tp_src", "NXM_NX_CT_TP_DST": "ct_tp_dst",
    "NXM_NX_CT_IPV6_SRC": "ct_ipv6_src", "NXM_NX_CT_IPV6_DST": "ct_ipv6_dst",
    "NXM_NX_DP_HASH": "dp_hash", "NXM_NX_RECIRC_ID": "recirc_id", "NXM_NX_CONJ_ID": "conj_id",
    "OXM_OF_PKT_REG0": "xreg0", "OXM_OF_PKT_REG1": "xreg1", "OXM_OF_PKT_REG2": "xreg2",
    "OXM_OF_PKT_REG3": "xreg3", "OXM_OF_PKT_REG4": "xreg4", "OXM_OF_PKT_REG5": "xreg5",
    "OXM_OF_PKT_REG6": "xreg6", "OXM_OF_PKT_REG7": "xreg7",
}
for _i in range(16):
    ALIASES[f"NXM_NX_REG{_i}"] = f"reg{_i}"
for _i in range(8):
    ALIASES[f"NXM_NX_XREG{_i}"] = f"xreg{_i}"
for _i in range(4):
    ALIASES[f"NXM_NX_XXREG{_i}"] = f"xxreg{_i}"
for _i in range(64):
    ALIASES[f"NXM_NX_TUN_METADATA{_i}"] = f"tun_metadata{_i}"

# Wide registers as views over 32-bit registers, most significant first.
COMPOSITES: dict[str, tuple[str, ...]] = {}
for _i in range(8):
    COMPOSITES[f"xreg{_i}"] = (f"reg{2 * _i}", f"reg{2 * _i + 1}")
for _i in range(4):
    COMPOSITES[f"xxreg{_i}"] = tuple(f"reg{4 * _i + j}" for j in range(4))

# Protocol shorthands and what they stand for.
PROTOCOLS: dict[str, tuple[tuple[str, int], ...]] = {
    "ip": (("dl_type", 0x0800),), "ipv4": (("dl_type", 0x0800),),
    "ipv6": (("dl_type", 0x86DD),), "arp": (("dl_type", 0x0806),),
    "rarp": (("dl_type", 0x8035),), "mpls": (("dl_type", 0x8847),),
    "mplsm": (("dl_type", 0x8848),),
    "tcp": (("dl_type", 0x0800), ("nw_proto", 6)), "tcp6": (("dl_type", 0x86DD), ("nw_proto", 6)),
    "udp": (("dl_type", 0x0800), ("nw_proto", 17)),
    "udp6": (("dl_type", 0x86DD), ("nw_proto", 17)),
    "sctp": (("dl_type", 0x0800), ("nw_proto", 132)),
    "sctp6": (("dl_type", 0x86DD), ("nw_proto", 132)),
    "icmp": (("dl_type", 0x0800), ("nw_proto", 1)),
    "icmp6": (("dl_type", 0x86DD), ("nw_proto", 58)),
    "igmp": (("dl_type", 0x0800), ("nw_proto", 2)),
}

# IP protocol numbers by the names OVS flow syntax gives them.
IP_PROTOCOL_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6", 132: "sctp"}
CT_STATE_BITS = {"new": 0x01, "est": 0x02, "rel": 0x04, "rpl": 0x08, "inv": 0x10,
                 "trk": 0x20, "snat": 0x40, "dnat": 0x80}
TCP_FLAG_BITS = {"fin": 0x001, "syn": 0x002, "rst": 0x004, "psh": 0x008, "ack": 0x010,
                 "urg": 0x020, "ece": 0x040, "cwr": 0x080, "ns": 0x100}
# nw_frag: bit 0 = any fragment, bit 1 = later fragment (OVS FLOW_NW_FRAG_*).
FRAG_VALUES = {"no": (0, 1), "yes": (1, 1), "first": (1, 3), "later": (3, 3),
               "not_later": (0, 2)}
SPECIAL_PORTS = {"LOCAL": 0xFFFE, "IN_PORT": 0xFFF8, "CONTROLLER": 0xFFFD, "NONE": 0xFFFF,
                 "ANY": 0xFFFF, "NORMAL": 0xFFFA, "FLOOD": 0xFFFB, "ALL": 0xFFFC,
                 "TABLE": 0xFFF9, "UNSET": 0xFFF7}


class FieldError(ValueError):
    """A field or value this parser does not know."""


def canonical(name: str) -> str:
    """The canonical (or composite) name for any spelling of a field."""
    name = ALIASES.get(name, name)
    if name in FIELDS or name in COMPOSITES:
        return name
    raise FieldError(f"unknown field {name!r}")


def _mac(text: str) -> int:
    if text.startswith("0x"):
        return int(text, 16)
    parts = text.split(":")
    if len(parts) != 6:
        raise FieldError(f"bad MAC {text!r}")
    return int("".join(p.zfill(2) for p in parts), 16)


def _ipv4(text: str) -> int:
    return int(text, 16) if text.startswith("0x") else int(ipaddress.IPv4Address(text))


def _ipv6(text: str) -> int:
    return int(text, 16) if text.startswith("0x") else int(ipaddress.IPv6Address(text))


def _flags(text: str, bits: dict[str, int], field_name: str) -> tuple[int, int]:
    value = mask = 0
    token = ""
    sign = None
    for ch in text + "+":
        if ch in "+-":
            if sign is not None:
                if token not in bits:
                    raise FieldError(f"unknown {field_name} flag {token!r}")
                mask |= bits[token]
                if sign == "+":
                    value |= bits[token]
            sign, token = ch, ""
        else:
            token += ch
    return value, mask


def parse_value(field: Field, text: str, ports: dict[str, int] | None = None) -> tuple[int, int]:
    """Parse ``value[/mask]`` of ``field`` into integers (mask = all ones if absent)."""
    kind = field.kind
    if kind == "ct_state" and text[:1] in "+-":
        return _flags(text, CT_STATE_BITS, "ct_state")
    if kind == "tcp_flags" and text[:1] in "+-":
        return _flags(text, TCP_FLAG_BITS, "tcp_flags")
    if kind in ("ct_state", "tcp_flags") and text[:1].isalpha():
        # exact flags as a packet shows them: "syn|ack", "new|trk"
        bits = CT_STATE_BITS if kind == "ct_state" else TCP_FLAG_BITS
        try:
            return sum(bits[name] for name in text.split("|")), field.full
        except KeyError as exc:
            raise FieldError(f"unknown {field.name} flag {exc.args[0]!r}") from None
    if kind == "frag":
        if text in FRAG_VALUES:
            return FRAG_VALUES[text]
    value_text, slash, mask_text = text.partition("/")
    try:
        if kind == "mac":
            value = _mac(value_text)
            mask = _mac(mask_text) if slash else field.full
        elif kind in ("ipv4", "ipv6"):
            parse = _ipv4 if kind == "ipv4" else _ipv6
            value = parse(value_text)
            if not slash:
                mask = field.full
            elif mask_text.isdigit():
                plen = int(mask_text)
                mask = (field.full << (field.bits - plen)) & field.full
            else:
                mask = parse(mask_text)
        elif kind == "port" and not value_text[:1].isdigit():
            if value_text in SPECIAL_PORTS:
                value = SPECIAL_PORTS[value_text]
            elif ports and value_text in ports:
                value = ports[value_text]
            else:
                raise FieldError(f"unknown port {value_text!r}")
            mask = field.full
        else:
            value = int(value_text, 0)
            mask = int(mask_text, 0) if slash else field.full
    except ValueError as exc:
        if isinstance(exc, FieldError):
            raise
        raise FieldError(f"bad value {text!r} for {field.name}") from None
    return value & mask, mask


def split_composite(name: str, value: int, mask: int) -> list[tuple[str, int, int]]:
    """Spread a value/mask over the 32-bit registers an xreg/xxreg stands for."""
    parts = COMPOSITES[name]
    out = []
    for i, reg in enumerate(parts):
        shift = 32 * (len(parts) - 1 - i)
        m = (mask >> shift) & 0xFFFFFFFF
        if m:
            out.append((reg, (value >> shift) & m, m))
    return out


def format_mac(value: int) -> str:
    """``0x02000a000001`` → ``02:00:0a:00:00:01``."""
    raw = f"{value:012x}"
    return ":".join(raw[i:i + 2] for i in range(0, 12, 2))


def ct_state_names(state: int) -> list[str]:
    """The ct_state flags set in ``state``, in OVS's order (new, est, …, trk, snat, dnat)."""
    return [n for n, b in CT_STATE_BITS.items() if state & b]


def format_value(field: Field, value: int) -> str:
    """How OVS would print a full (unmasked) value of ``field``."""
    if field.kind == "mac":
        return format_mac(value)
    if field.kind == "ipv4":
        return str(ipaddress.IPv4Address(value))
    if field.kind == "ipv6":
        return str(ipaddress.IPv6Address(value))
    if field.kind == "ct_state":
        return "+".join(ct_state_names(value)) or "0"
    if field.kind in ("port",) or field.bits <= 16:
        return str(value)
    return hex(value)
