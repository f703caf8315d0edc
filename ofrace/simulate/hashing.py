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


def _jhash_mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    a = (a - c) & _M32; a ^= _rot(c, 4); c = (c + b) & _M32           # noqa: E702
    b = (b - a) & _M32; b ^= _rot(a, 6); a = (a + c) & _M32           # noqa: E702
    c = (c - b) & _M32; c ^= _rot(b, 8); b = (b + a) & _M32           # noqa: E702
    a = (a - c) & _M32; a ^= _rot(c, 16); c = (c + b) & _M32          # noqa: E702
    b = (b - a) & _M32; b ^= _rot(a, 19); a = (a + c) & _M32          # noqa: E702
    c = (c - b) & _M32; c ^= _rot(b, 4); b = (b + a) & _M32           # noqa: E702
    return a, b, c


def _jhash_final(a: int, b: int, c: int) -> int:
    c ^= b; c = (c - _rot(b, 14)) & _M32                              # noqa: E702
    a ^= c; a = (a - _rot(c, 11)) & _M32                              # noqa: E702
    b ^= a; b = (b - _rot(a, 25)) & _M32                              # noqa: E702
    c ^= b; c = (c - _rot(b, 16)) & _M32                              # noqa: E702
    a ^= c; a = (a - _rot(c, 4)) & _M32                               # noqa: E702
    b ^= a; b = (b - _rot(a, 14)) & _M32                              # noqa: E702
    c ^= b; c = (c - _rot(b, 24)) & _M32                              # noqa: E702
    return c


def jhash_bytes(data: bytes, basis: int) -> int:
    """lib/jhash.c ``jhash_bytes`` (Bob Jenkins' lookup3 over little-endian words, the
    tail zero-padded): what ``flow_hash_fields`` uses for bundle and multipath."""
    a = b = c = (0xDEADBEEF + len(data) + basis) & _M32
    rest = data
    while len(rest) >= 12:
        a = (a + int.from_bytes(rest[0:4], "little")) & _M32
        b = (b + int.from_bytes(rest[4:8], "little")) & _M32
        c = (c + int.from_bytes(rest[8:12], "little")) & _M32
        a, b, c = _jhash_mix(a, b, c)
        rest = rest[12:]
    if rest:
        tail = rest.ljust(12, b"\0")
        a = (a + int.from_bytes(tail[0:4], "little")) & _M32
        b = (b + int.from_bytes(tail[4:8], "little")) & _M32
        c = (c + int.from_bytes(tail[8:12], "little")) & _M32
        c = _jhash_final(a, b, c)
    return c


def _xor_addresses(packet: dict) -> bytes:
    """The source and destination addresses XORed, as the 16-byte union of lib/flow.c's
    symmetric hashes holds them (IPv4 in its first 4 bytes); zeros for non-IP."""
    dl_type = packet.get("dl_type", 0)
    if dl_type == 0x0800:
        return (packet.get("nw_src", 0) ^ packet.get("nw_dst", 0)).to_bytes(4, "big") + bytes(12)
    if dl_type == 0x86DD:
        return (packet.get("ipv6_src", 0) ^ packet.get("ipv6_dst", 0)).to_bytes(16, "big")
    return bytes(16)


def flow_hash_symmetric_l4(packet: dict, basis: int) -> int:
    """lib/flow.c ``flow_hash_symmetric_l4``: jhash of a zeroed 32-byte struct: addresses
    XORed (16), eth_type, the VLAN ids XORed, TCP/SCTP ports XORed, MACs XORed, proto."""
    dl_type = packet.get("dl_type", 0)
    ip = dl_type in (0x0800, 0x86DD)
    proto = packet.get("nw_proto", 0) & 0xFF if ip else 0
    ports = packet.get("tp_src", 0) ^ packet.get("tp_dst", 0) if proto in (6, 132) else 0
    macs = packet.get("dl_src", 0) ^ packet.get("dl_dst", 0)
    raw = (_xor_addresses(packet) + dl_type.to_bytes(2, "big")
           + (packet.get("vlan_tci", 0) & 0xFFF).to_bytes(2, "big") + ports.to_bytes(2, "big")
           + macs.to_bytes(6, "big") + bytes([proto]) + bytes(3))
    return jhash_bytes(raw, basis)


def flow_hash_symmetric_l3(packet: dict, basis: int) -> int:
    """lib/flow.c ``flow_hash_symmetric_l3``: jhash of addresses XORed and eth_type
    (a 20-byte struct, padding zeroed)."""
    raw = _xor_addresses(packet) + packet.get("dl_type", 0).to_bytes(2, "big") + bytes(2)
    return jhash_bytes(raw, basis)


def flow_hash_fields(packet: dict, fields: str, basis: int) -> int:
    """lib/flow.c ``flow_hash_fields``: the hash bundle and multipath choose by."""
    dl_type = packet.get("dl_type", 0)
    if fields == "eth_src":
        return jhash_bytes(packet.get("dl_src", 0).to_bytes(6, "big"), basis)
    if fields == "symmetric_l4":
        return flow_hash_symmetric_l4(packet, basis)
    if fields in ("symmetric_l3l4", "symmetric_l3l4+udp"):
        return flow_hash_symmetric_l3l4(packet, basis, fields.endswith("+udp"))
    if fields == "symmetric_l3":
        return flow_hash_symmetric_l3(packet, basis)
    side = fields[3:]   # nw_src, nw_dst
    if dl_type == 0x0800:
        return jhash_bytes(packet.get(f"nw_{side}", 0).to_bytes(4, "big"), basis)
    if dl_type == 0x86DD:
        return jhash_bytes(packet.get(f"ipv6_{side}", 0).to_bytes(16, "big"), basis)
    return basis


def hash_2words(x: int, y: int) -> int:
    """lib/hash.h ``hash_2words``."""
    return hash_int(x, y)


def multipath_link(hash_: int, algorithm: str, n_links: int, arg: int) -> int:
    """lib/multipath.c ``multipath_algorithm``: the link a flow hash selects."""
    if algorithm == "modulo_n":
        return hash_ % n_links
    if algorithm == "hash_threshold":
        return 0 if n_links == 1 else hash_ // (_M32 // n_links + 1)
    if algorithm == "hrw" and n_links <= 64:
        weights = [hash_2words(hash_, link) for link in range(n_links)]
        return max(range(n_links), key=lambda link: (weights[link], -link))
    modulo = arg if algorithm == "iter_hash" else 0
    if modulo < n_links or modulo // 2 > n_links:
        modulo = 1 << (n_links - 1).bit_length()   # round_up_pow2
    i = 0
    while True:
        link = hash_2words(hash_, i) % modulo
        i += 1
        if link < n_links:
            return link
