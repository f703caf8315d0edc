"""OVS's hash functions, bit for bit, for the datapath choices that depend on them.

Which bucket a select group takes is a hash of the packet (ofproto-dpif-xlate.c
``pick_hash_fields_select_group``, ``group_best_live_bucket``; the userspace
datapath's ``hash`` action in odp-execute.c).  These are the generic ("mhash",
Murmur3-based) versions of lib/hash.h and lib/hash.c that x86-64 builds use
unless compiled with SSE4.2 (distribution packages are not), and lib/flow.c's
flow hashes.  OVS hashes the bytes of ``struct flow`` as little-endian 32-bit
words, so header fields (kept in network order there) are byte-swapped here.
"""

from __future__ import annotations

_M32 = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M32


def hash_add(hash_: int, data: int) -> int:
    """lib/hash.h ``mhash_add``: one 32-bit word into the running hash (0 adds nothing
    but the mixing step)."""
    data &= _M32
    if data:
        data = (data * 0xCC9E2D51) & _M32
        data = _rot(data, 15)
        data = (data * 0x1B873593) & _M32
        hash_ ^= data
    hash_ = _rot(hash_, 13)
    return (hash_ * 5 + 0xE6546B64) & _M32


def hash_add64(hash_: int, data: int) -> int:
    return hash_add(hash_add(hash_, data & _M32), data >> 32)


def hash_finish(hash_: int, final: int) -> int:
    """lib/hash.h ``hash_finish`` (``mhash_finish(hash ^ final)``)."""
    hash_ = (hash_ ^ final) & _M32
    hash_ ^= hash_ >> 16
    hash_ = (hash_ * 0x85EBCA6B) & _M32
    hash_ ^= hash_ >> 13
    hash_ = (hash_ * 0xC2B2AE35) & _M32
    hash_ ^= hash_ >> 16
    return hash_


def hash_int(x: int, basis: int) -> int:
    """lib/hash.h ``hash_int`` = ``hash_2words(x, basis)``."""
    return hash_finish(hash_add(hash_add(x, 0), basis), 8)


def hash_uint64(x: int) -> int:
    """lib/hash.h ``hash_uint64`` (basis 0)."""
    return hash_finish(hash_add64(0, x), 8)


def hash_bytes(data: bytes, basis: int) -> int:
    """lib/hash.c ``hash_bytes``: little-endian words, a zero-padded tail, the length."""
    hash_ = basis
    whole = len(data) - len(data) % 4
    for i in range(0, whole, 4):
        hash_ = hash_add(hash_, int.from_bytes(data[i:i + 4], "little"))
    if whole < len(data):
        hash_ = hash_add(hash_, int.from_bytes(data[whole:], "little"))
    return hash_finish(hash_, len(data))


def _le32(be_value: int) -> int:
    """A 32-bit header field in network order, read as x86 reads it from memory."""
    return int.from_bytes(be_value.to_bytes(4, "big"), "little")


def _ports_word(tp_src: int, tp_dst: int) -> int:
    """``tp_src`` and ``tp_dst`` (adjacent be16 in struct flow) as one little-endian word."""
    return int.from_bytes(tp_src.to_bytes(2, "big") + tp_dst.to_bytes(2, "big"), "little")


_L4_WITH_PORTS = (6, 17, 132, 1, 58)


def flow_hash_5tuple(packet: dict, basis: int) -> int:
    """lib/flow.c ``flow_hash_5tuple`` (= ``miniflow_hash_5tuple``): addresses, protocol,
    both ports (ICMP type/code) for TCP, UDP, SCTP, ICMP, ICMPv6; ARP hashes its
    addresses and opcode."""
    hash_ = basis
    dl_type = packet.get("dl_type", 0)
    if dl_type == 0x86DD:
        for name in ("ipv6_src", "ipv6_dst"):
            raw = packet.get(name, 0).to_bytes(16, "big")
            hash_ = hash_add64(hash_, int.from_bytes(raw[:8], "little"))
            hash_ = hash_add64(hash_, int.from_bytes(raw[8:], "little"))
    elif dl_type in (0x0800, 0x0806):
        hash_ = hash_add(hash_, _le32(packet.get("nw_src", 0)))
        hash_ = hash_add(hash_, _le32(packet.get("nw_dst", 0)))
    else:
        return hash_finish(hash_, 42)
    proto = packet.get("nw_proto", 0) & 0xFF
    hash_ = hash_add(hash_, proto)
    if proto in _L4_WITH_PORTS:
        hash_ = hash_add(hash_, _ports_word(packet.get("tp_src", 0), packet.get("tp_dst", 0)))
    return hash_finish(hash_, 42)


def flow_hash_symmetric_l3l4(packet: dict, basis: int, inc_udp_ports: bool = False) -> int:
    """lib/flow.c ``flow_hash_symmetric_l3l4``: the same for both directions (source and
    destination XORed); non-IP falls back to ``flow_hash_symmetric_l2``."""
    hash_ = basis
    dl_type = packet.get("dl_type", 0)
    if dl_type == 0x0800:
        hash_ = hash_add(hash_, _le32(packet.get("nw_src", 0) ^ packet.get("nw_dst", 0)))
    elif dl_type == 0x86DD:
        mixed = (packet.get("ipv6_src", 0) ^ packet.get("ipv6_dst", 0)).to_bytes(16, "big")
        hash_ = hash_add64(hash_, int.from_bytes(mixed[:8], "little"))
        hash_ = hash_add64(hash_, int.from_bytes(mixed[8:], "little"))
    else:
        return flow_hash_symmetric_l2(packet, basis)
    proto = packet.get("nw_proto", 0) & 0xFF
    hash_ = hash_add(hash_, proto)
    fragment = packet.get("nw_frag", 0) & 0x3
    if not fragment and (proto in (6, 132) or (inc_udp_ports and proto == 17)):
        ports = packet.get("tp_src", 0) ^ packet.get("tp_dst", 0)
        hash_ = hash_add(hash_, int.from_bytes(ports.to_bytes(2, "big"), "little"))
    return hash_finish(hash_, basis)


def flow_hash_symmetric_l2(packet: dict, basis: int) -> int:
    """lib/flow.c ``flow_hash_symmetric_l2``: XOR of the MACs, the VLAN id, the ethertype."""
    macs = (packet.get("dl_src", 0) ^ packet.get("dl_dst", 0)).to_bytes(6, "big")
    vid = packet.get("vlan_tci", 0) & 0xFFF
    raw = (packet.get("dl_type", 0).to_bytes(2, "big") + vid.to_bytes(2, "big") + macs
           + b"\0\0")
    hash_ = basis
    for i in range(0, 12, 4):
        hash_ = hash_add(hash_, int.from_bytes(raw[i:i + 4], "little"))
    return hash_finish(hash_, basis)
