"""The simulated packet: canonical field → integer, with bit-range reads and writes.

A plain dict keeps lookups cheap (the classifier reads it directly); absent
fields read as 0, as in OVS's zero-initialised ``struct flow``.  Wide
registers (``xreg``/``xxreg``) are read and written through the 32-bit
registers they overlay, so both spellings always agree.
"""

from __future__ import annotations

from ofrace.openflow.actions import FieldRef
from ofrace.openflow.fields import COMPOSITES, FIELDS, IP_PROTOCOL_NAMES, format_value

Packet = dict  # canonical field name -> int


def read(packet: Packet, name: str) -> int:
    parts = COMPOSITES.get(name)
    if parts is None:
        return packet.get(name, 0)
    value = 0
    for reg in parts:
        value = (value << 32) | packet.get(reg, 0)
    return value


def write(packet: Packet, name: str, value: int, mask: int) -> None:
    """``field = (field & ~mask) | (value & mask)``."""
    parts = COMPOSITES.get(name)
    if parts is None:
        old = packet.get(name, 0)
        packet[name] = (old & ~mask) | (value & mask)
        return
    for i, reg in enumerate(parts):
        shift = 32 * (len(parts) - 1 - i)
        m = (mask >> shift) & 0xFFFFFFFF
        if m:
            old = packet.get(reg, 0)
            packet[reg] = (old & ~m) | ((value >> shift) & m)


def read_ref(packet: Packet, ref: FieldRef) -> int:
    return (read(packet, ref.name) >> ref.start) & ((1 << ref.width) - 1)


def write_ref(packet: Packet, ref: FieldRef, value: int) -> None:
    mask = ((1 << ref.width) - 1) << ref.start
    write(packet, ref.name, value << ref.start, mask)


def describe(packet: Packet) -> str:
    """One line a person can scan: MACs, addresses, ports, TTL."""
    dl_type = packet.get("dl_type", 0)
    src = format_value(FIELDS["dl_src"], packet.get("dl_src", 0))
    dst = format_value(FIELDS["dl_dst"], packet.get("dl_dst", 0))
    text = f"{src} > {dst}"
    vlan = packet.get("vlan_tci", 0)
    if vlan & 0x1000:
        text += f" vlan {vlan & 0xFFF}"
    proto = packet.get("nw_proto", 0)
    if dl_type == 0x0806:
        op = {1: "request", 2: "reply"}.get(proto, str(proto))
        spa = format_value(FIELDS["nw_src"], packet.get("nw_src", 0))
        tpa = format_value(FIELDS["nw_dst"], packet.get("nw_dst", 0))
        return f"{text}, ARP {op} who-has {tpa} tell {spa}" if proto == 1 else (
            f"{text}, ARP {op} {spa} is-at "
            f"{format_value(FIELDS['arp_sha'], packet.get('arp_sha', 0))} (to {tpa})")
    if dl_type in (0x0800, 0x86DD):
        kind = "ipv4" if dl_type == 0x0800 else "ipv6"
        sname, dname = ("nw_src", "nw_dst") if kind == "ipv4" else ("ipv6_src", "ipv6_dst")
        s = format_value(FIELDS[sname], packet.get(sname, 0))
        d = format_value(FIELDS[dname], packet.get(dname, 0))
        ttl = packet.get("nw_ttl", 0)
        if proto in (6, 17, 132):
            pname = IP_PROTOCOL_NAMES[proto].upper()
            sp, dp = packet.get("tp_src", 0), packet.get("tp_dst", 0)
            if kind == "ipv6":
                return f"{text}, {pname} [{s}]:{sp} > [{d}]:{dp}, ttl {ttl}"
            flags = ""
            if proto == 6 and packet.get("tcp_flags"):
                from ofrace.openflow.fields import TCP_FLAG_BITS
                names = [n for n, b in TCP_FLAG_BITS.items() if packet["tcp_flags"] & b]
                flags = f" [{','.join(names)}]"
            return f"{text}, {pname} {s}:{sp} > {d}:{dp}{flags}, ttl {ttl}"
        if proto in (1, 58):
            mtu = f" mtu {packet['icmp_frag_mtu']}" if packet.get("icmp_frag_mtu") else ""
            return (f"{text}, ICMP{'v6' if proto == 58 else ''} {s} > {d} "
                    f"type {packet.get('tp_src', 0)} code {packet.get('tp_dst', 0)}{mtu}, "
                    f"ttl {ttl}")
        return f"{text}, {kind} proto {proto} {s} > {d}, ttl {ttl}"
    return f"{text}, ethertype {dl_type:#06x}"
