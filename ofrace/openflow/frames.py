"""Packets as bytes on the wire and back: OVS field dicts to Ethernet frames and frames to
the fields a prediction names.

Why bytes: ``netdev-dummy/receive`` also takes a datapath flow, but a packet built from a
flow has TCP seq/ack 0, no payload and no ICMP echo id, so userspace conntrack (which
checks TCP windows and keys ICMP by id, lib/conntrack-tcp.c, lib/conntrack-icmp.c) marks
every packet after a SYN invalid.  A real conversation needs real frames: checksums,
sequence numbers, payloads, DHCP and ND bodies.  Decoding is here too, so a recorded
capture reads back the same way a live one does.
"""

from __future__ import annotations

import struct

GENEVE_PORT = 6081
ETH_MIN = 60          # an Ethernet frame without its FCS is padded to this length
TCP_WINDOW = 65535    # no window scaling: the SYN carries no options
# Frame-only details a conversation step may carry beside the OpenFlow fields: TCP and
# ICMP echo; a DHCP/DHCPv6 request's message type and requested address; and the body
# of a DHCP/DHCPv6 answer or a Router Advertisement, as ``dhcp_body``/``ra_body`` give it.
WIRE_KEYS = ("tcp_seq", "tcp_ack", "payload_len", "icmp_id", "icmp_seq", "dhcp_msg",
             "dhcp_requested_ip", "dhcp_reply", "nd_ra", "dns_query", "dns_reply",
             "icmp_inner",   # the header an ICMP error quotes (conntrack relates by it)
             "icmp_frag_mtu")  # the next-hop MTU of a needs-frag / packet-too-big error
DNS_PORT = 53
DNS_ID = 0x0F0A           # the id of every DNS query ofrace builds
DNS_TYPES = {"a": 1, "ptr": 12, "aaaa": 28, "any": 255}
DHCP_XID = 0x0F0A0001     # the transaction id of every DHCP request ofrace builds
DHCPV6_XID = 0x0F0A01
DHCP_BROADCAST = 0x8000   # the request asks for a broadcast answer (RFC 2131 flags)
DHCP_HEADER_LEN = 236     # op … file, before the magic cookie
DHCP_COOKIE = 0x63825363
# Message types by name: DHCP (RFC 2132 option 53) and DHCPv6 (RFC 8415 msg-type).
DHCP_TYPES = {"discover": 1, "offer": 2, "request": 3, "decline": 4, "ack": 5, "nak": 6,
              "release": 7, "inform": 8}
DHCPV6_TYPES = {"solicit": 1, "advertise": 2, "request": 3, "confirm": 4, "renew": 5,
                "rebind": 6, "reply": 7, "release": 8, "decline": 9,
                "information-request": 11}


def internet_checksum(data: bytes) -> int:
    """The ones'-complement sum of RFC 1071 (IPv4 header, TCP, UDP, ICMP, ICMPv6)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _with_checksum(l4: bytes, offset: int, pseudo: bytes) -> bytes:
    value = internet_checksum(pseudo + l4)
    return l4[:offset] + struct.pack("!H", value) + l4[offset + 2:]


def _l4_body(fields: dict, wire: dict) -> tuple[bytes, int | None]:
    """The transport header and payload (checksum still zero), and its checksum offset."""
    proto = fields.get("nw_proto", 0)
    payload = bytes(wire.get("payload_len", 0))
    if proto == 6:
        header = struct.pack("!HHIIBBHHH", fields.get("tp_src", 0), fields.get("tp_dst", 0),
                             wire.get("tcp_seq", 0) & 0xFFFFFFFF,
                             wire.get("tcp_ack", 0) & 0xFFFFFFFF, 0x50,
                             fields.get("tcp_flags", 0x002) & 0xFF, TCP_WINDOW, 0, 0)
        return header + payload, 16
    if proto == 17:
        payload = _udp_payload(fields, wire, payload)
        return struct.pack("!HHHH", fields.get("tp_src", 0), fields.get("tp_dst", 0),
                           8 + len(payload), 0) + payload, 6
    if proto in (1, 58):
        kind, code = fields.get("tp_src", 0), fields.get("tp_dst", 0)
        return struct.pack("!BBH", kind, code, 0) + _icmp_body(fields, wire, payload), 2
    return payload, None


def _udp_payload(fields: dict, wire: dict, payload: bytes) -> bytes:
    """A DHCP request or DHCPv6 client message where the ports say so (pinctrl parses
    them): its type from ``dhcp_msg`` (default DISCOVER / SOLICIT), a DHCPREQUEST with
    option 50 ``dhcp_requested_ip``; a DHCPv6 message with a client id and an IA_NA."""
    sport, dport, mac = fields.get("tp_src"), fields.get("tp_dst"), fields.get("dl_src", 0)
    kind = wire.get("dhcp_msg", fields.get("dhcp_msg")) or 1
    if (sport, dport) == (68, 67):
        bootp = struct.pack("!BBBBIHH", 1, 1, 6, 0, DHCP_XID, 0, DHCP_BROADCAST) + bytes(16)
        bootp += mac.to_bytes(6, "big") + bytes(10 + 64 + 128)
        options = bytes([53, 1, kind])
        requested = wire.get("dhcp_requested_ip", fields.get("dhcp_requested_ip"))
        if requested:
            options += bytes([50, 4]) + requested.to_bytes(4, "big")
        return bootp + struct.pack("!I", DHCP_COOKIE) + options + bytes([255]) + payload
    if (sport, dport) == (546, 547):
        duid = struct.pack("!HH", 3, 1) + mac.to_bytes(6, "big")
        body = bytes([kind]) + DHCPV6_XID.to_bytes(3, "big")
        body += struct.pack("!HH", 1, len(duid)) + duid
        body += struct.pack("!HHIII", 3, 12, 1, 0, 0)
        return body + struct.pack("!HHH", 8, 2, 0) + payload
    query = wire.get("dns_query", fields.get("dns_query"))
    if dport == DNS_PORT and query:
        name, qtype = query
        return (struct.pack("!HHHHHH", DNS_ID, 0x0100, 1, 0, 0, 0) + dns_name(name)
                + struct.pack("!HH", qtype, 1) + payload)
    return payload


def dns_name(name: str) -> bytes:
    """``name`` as DNS labels (RFC 1035 §3.1), ending with the root's empty label."""
    labels = [label for label in name.rstrip(".").split(".") if label]
    return b"".join(bytes([len(x)]) + x.encode() for x in labels) + b"\0"


def _icmp_body(fields: dict, wire: dict, payload: bytes) -> bytes:
    kind = fields.get("tp_src", 0)
    if fields.get("nw_proto") == 58 and kind in (135, 136):
        target = fields.get("nd_target", 0).to_bytes(16, "big")
        if kind == 135:
            option = bytes([1, 1]) + fields.get("arp_sha", 0).to_bytes(6, "big")
            return bytes(4) + target + option
        option = bytes([2, 1]) + fields.get("arp_tha", 0).to_bytes(6, "big")
        return struct.pack("!I", 0x60000000) + target + option
    if fields.get("nw_proto") == 58 and kind == 133:
        return bytes(4) + bytes([1, 1]) + fields.get("dl_src", 0).to_bytes(6, "big")
    mtu = wire.get("icmp_frag_mtu", fields.get("icmp_frag_mtu", 0))
    if _frag_needed(fields.get("nw_proto"), kind, fields.get("tp_dst", 0)):
        # RFC 1191 (unused be16, next-hop MTU be16) / RFC 4443 §3.2 (MTU be32)
        return (struct.pack("!HH", 0, mtu) if fields.get("nw_proto") == 1
                else struct.pack("!I", mtu)) + payload
    return struct.pack("!HH", wire.get("icmp_id", 0), wire.get("icmp_seq", 0)) + payload


def _frag_needed(proto, kind: int, code: int) -> bool:
    """ICMPv4 fragmentation needed (type 3 code 4) or ICMPv6 packet too big (type 2): the
    errors whose header carries an MTU (what pinctrl's put_icmp4/6_frag_mtu writes)."""
    return (proto == 1 and (kind, code) == (3, 4)) or (proto == 58 and kind == 2)


def encode(fields: dict, wire: dict | None = None) -> bytes:
    """An Ethernet frame carrying ``fields`` (OVS names), with ``wire``'s seq/ack, payload
    length and ICMP echo id; checksums computed, short frames padded."""
    wire = wire or {}
    eth = fields.get("dl_dst", 0).to_bytes(6, "big") + fields.get("dl_src", 0).to_bytes(6, "big")
    vlan = fields.get("vlan_tci", 0)
    if vlan & 0x1000:
        eth += struct.pack("!HH", 0x8100, vlan & 0xEFFF)
    dl_type = fields.get("dl_type", 0)
    eth += struct.pack("!H", dl_type)
    if dl_type == 0x0806:
        body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, fields.get("nw_proto", 1))
        body += fields.get("arp_sha", fields.get("dl_src", 0)).to_bytes(6, "big")
        body += fields.get("nw_src", 0).to_bytes(4, "big")
        body += fields.get("arp_tha", 0).to_bytes(6, "big")
        body += fields.get("nw_dst", 0).to_bytes(4, "big")
    elif dl_type == 0x0800:
        l4, offset = _l4_body(fields, wire)
        src = fields.get("nw_src", 0).to_bytes(4, "big")
        dst = fields.get("nw_dst", 0).to_bytes(4, "big")
        proto = fields.get("nw_proto", 0)
        if offset is not None and proto != 1:
            l4 = _with_checksum(l4, offset, src + dst + struct.pack("!BBH", 0, proto, len(l4)))
        elif offset is not None:
            l4 = _with_checksum(l4, offset, b"")
        header = struct.pack("!BBHHHBB", 0x45, fields.get("nw_tos", 0), 20 + len(l4), 0, 0,
                             fields.get("nw_ttl", 64), proto) + b"\0\0" + src + dst
        header = header[:10] + struct.pack("!H", internet_checksum(header)) + header[12:]
        body = header + l4
    elif dl_type == 0x86DD:
        l4, offset = _l4_body(fields, wire)
        src = fields.get("ipv6_src", 0).to_bytes(16, "big")
        dst = fields.get("ipv6_dst", 0).to_bytes(16, "big")
        proto = fields.get("nw_proto", 0)
        if offset is not None:
            l4 = _with_checksum(l4, offset, src + dst + struct.pack("!IxxxB", len(l4), proto))
        body = struct.pack("!IHBB", 0x60000000, len(l4), proto, fields.get("nw_ttl", 64))
        body += src + dst + l4
    else:
        body = bytes(wire.get("payload_len", 0))
    frame = eth + body
    return frame + bytes(max(0, ETH_MIN - len(frame)))


def decode(frame: bytes) -> dict:
    """An Ethernet frame as OVS fields, and the frame-only ``WIRE_KEYS`` of TCP, ICMP
    echo, DHCP/DHCPv6 and Router Advertisements; a Geneve frame also gives ``tun_id``,
    ``geneve_options`` [(class, type, value)] and the ``inner`` frame's fields; a frame
    cut short gives what it holds."""
    if len(frame) < 14:
        return {}
    out = {"dl_dst": int.from_bytes(frame[0:6], "big"),
           "dl_src": int.from_bytes(frame[6:12], "big")}
    dl_type, body = struct.unpack("!H", frame[12:14])[0], frame[14:]
    if dl_type == 0x8100 and len(body) >= 4:
        out["vlan_tci"] = struct.unpack("!H", body[0:2])[0] | 0x1000
        dl_type, body = struct.unpack("!H", body[2:4])[0], body[4:]
    out["dl_type"] = dl_type
    if dl_type == 0x0806 and len(body) >= 28:
        out.update(nw_proto=struct.unpack("!H", body[6:8])[0],
                   arp_sha=int.from_bytes(body[8:14], "big"),
                   nw_src=int.from_bytes(body[14:18], "big"),
                   arp_tha=int.from_bytes(body[18:24], "big"),
                   nw_dst=int.from_bytes(body[24:28], "big"))
        return out
    if dl_type == 0x0800 and len(body) >= 20:
        ihl = (body[0] & 0x0F) * 4
        out.update(nw_ttl=body[8], nw_proto=body[9], nw_src=int.from_bytes(body[12:16], "big"),
                   nw_dst=int.from_bytes(body[16:20], "big"))
        l4 = body[ihl:struct.unpack("!H", body[2:4])[0]]      # without Ethernet padding
    elif dl_type == 0x86DD and len(body) >= 40:
        out.update(nw_proto=body[6], nw_ttl=body[7],
                   ipv6_src=int.from_bytes(body[8:24], "big"),
                   ipv6_dst=int.from_bytes(body[24:40], "big"))
        l4 = body[40:40 + struct.unpack("!H", body[4:6])[0]]
    else:
        return out
    proto = out["nw_proto"]
    if proto in (6, 17) and len(l4) >= 4:
        out["tp_src"], out["tp_dst"] = struct.unpack("!HH", l4[:4])
        if proto == 6 and len(l4) >= 20:
            out["tcp_flags"] = ((l4[12] & 0x01) << 8) | l4[13]
            out["tcp_seq"], out["tcp_ack"] = struct.unpack("!II", l4[4:12])
            out["payload_len"] = len(l4) - (l4[12] >> 4) * 4
        if proto == 17 and out["tp_dst"] == GENEVE_PORT and len(l4) >= 16:
            _geneve(l4[8:], out)
        elif proto == 17:
            out["payload_len"] = max(0, len(l4) - 8)
            _dhcp(out, l4[8:])
    elif proto in (1, 58) and len(l4) >= 2:
        out["tp_src"], out["tp_dst"] = l4[0], l4[1]
        if proto == 58 and l4[0] == 134:
            out["nd_ra"] = ra_body(l4)
        if len(l4) >= 8 and _frag_needed(proto, l4[0], l4[1]):
            out["icmp_frag_mtu"] = struct.unpack("!I", l4[4:8])[0] & \
                (0xFFFF if proto == 1 else 0xFFFFFFFF)
        if len(l4) >= 8 and l4[0] in (0, 8, 128, 129):
            out["icmp_id"], out["icmp_seq"] = struct.unpack("!HH", l4[4:8])
            out["payload_len"] = len(l4) - 8
    return out


def _dhcp(out: dict, payload: bytes) -> None:
    """A DHCP/DHCPv6 message's type (``dhcp_msg``), and an answer's body (``dhcp_reply``)."""
    ports = (out["tp_src"], out["tp_dst"])
    if 67 in ports and 68 in ports and len(payload) >= DHCP_HEADER_LEN + 4:
        body = dhcp_body(payload)
        kind = next((int(item[3:], 16) for item in body if item.startswith("53=")), None)
        if kind is not None:
            out["dhcp_msg"] = kind
        if payload[0] == 2:    # BOOTREPLY: a server's answer
            out["dhcp_reply"] = body
    elif 546 in ports and 547 in ports and payload:
        out["dhcp_msg"] = payload[0]
        if payload[0] in (DHCPV6_TYPES["advertise"], DHCPV6_TYPES["reply"]):
            out["dhcp_reply"] = dhcpv6_body(payload)
    elif DNS_PORT in ports and len(payload) >= 12:
        try:
            if payload[2] & 0x80:      # QR: a response
                out["dns_reply"] = dns_body(payload)
            elif struct.unpack("!H", payload[4:6])[0]:
                name, end = _read_name(payload, 12)
                out["dns_query"] = (name, struct.unpack("!H", payload[end:end + 2])[0])
        except (IndexError, struct.error, ValueError):
            pass                       # not DNS after all: the ports alone say nothing


def dns_body(payload: bytes) -> tuple[str, ...]:
    """A DNS message as comparable text: id, flags, counts, the questions, then every
    resource record ``name type class ttl rdata-hex``."""
    ident, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", payload[:12])
    out = [f"id={ident:#x}", f"flags={flags:#06x}", f"qd={qd}", f"an={an}", f"ns={ns}",
           f"ar={ar}"]
    at = 12
    for _ in range(qd):
        name, at = _read_name(payload, at)
        qtype, qclass = struct.unpack("!HH", payload[at:at + 4])
        out.append(f"q {name} {qtype} {qclass}")
        at += 4
    for _ in range(an + ns + ar):
        name, at = _read_name(payload, at)
        rtype, rclass, ttl, size = struct.unpack("!HHIH", payload[at:at + 10])
        out.append(f"rr {name} {rtype} {rclass} {ttl} {payload[at + 10:at + 10 + size].hex()}")
        at += 10 + size
    return tuple(out)


def _read_name(payload: bytes, at: int, depth: int = 0) -> tuple[str, int]:
    """The name at ``at`` (compression pointers followed) and where it ends."""
    labels = []
    while True:
        size = payload[at]
        if size & 0xC0 == 0xC0:
            if depth > 8:
                raise ValueError("DNS name pointer loop")
            target = struct.unpack("!H", payload[at:at + 2])[0] & 0x3FFF
            labels.append(_read_name(payload, target, depth + 1)[0])
            return ".".join(x for x in labels if x), at + 2
        at += 1
        if not size:
            return ".".join(labels), at
        labels.append(payload[at:at + size].decode("ascii", "replace"))
        at += size


def dhcp_body(payload: bytes) -> tuple[str, ...]:
    """A DHCP message (the UDP payload) as comparable text: its header fields an answer
    sets, then each option ``code=hex`` in order (pads and the end left out)."""
    op, _, _, _, xid, _, flags = struct.unpack("!BBBBIHH", payload[:12])
    ciaddr, yiaddr, siaddr, giaddr = struct.unpack("!IIII", payload[12:28])
    out = [f"op={op}", f"xid={xid:#x}", f"flags={flags:#x}", f"ciaddr={_ip4(ciaddr)}",
           f"yiaddr={_ip4(yiaddr)}", f"siaddr={_ip4(siaddr)}", f"giaddr={_ip4(giaddr)}",
           f"chaddr={payload[28:34].hex()}"]
    rest = payload[DHCP_HEADER_LEN + 4:]
    while rest:
        code = rest[0]
        if code == 255:
            break
        if code == 0 or len(rest) < 2:
            rest = rest[1:]
            continue
        length = rest[1]
        out.append(f"{code}={rest[2:2 + length].hex()}")
        rest = rest[2 + length:]
    return tuple(out)


def dhcpv6_body(payload: bytes) -> tuple[str, ...]:
    """A DHCPv6 message as comparable text: type, transaction id, each option
    ``code=hex`` in order."""
    out = [f"msg={payload[0]}", f"xid={int.from_bytes(payload[1:4], 'big'):#x}"]
    rest = payload[4:]
    while len(rest) >= 4:
        code, length = struct.unpack("!HH", rest[:4])
        out.append(f"{code}={rest[4:4 + length].hex()}")
        rest = rest[4 + length:]
    return tuple(out)


def ra_body(icmp: bytes) -> tuple[str, ...]:
    """A Router Advertisement (the ICMPv6 message) as comparable text: hop limit, flags,
    lifetimes, then each option ``type=hex`` in order."""
    if len(icmp) < 16:
        return ("short",)
    hop_limit, flags, lifetime = icmp[4], icmp[5], struct.unpack("!H", icmp[6:8])[0]
    reachable, retrans = struct.unpack("!II", icmp[8:16])
    out = [f"hop_limit={hop_limit}", f"flags={flags:#04x}", f"router_lifetime={lifetime}",
           f"reachable={reachable}", f"retrans={retrans}"]
    rest = icmp[16:]
    while len(rest) >= 2 and rest[1]:
        size = rest[1] * 8
        out.append(f"{rest[0]}={rest[2:size].hex()}")
        rest = rest[size:]
    return tuple(out)


def _ip4(value: int) -> str:
    return ".".join(str(value >> s & 0xFF) for s in (24, 16, 8, 0))


def _geneve(header: bytes, out: dict) -> None:
    opt_len = (header[0] & 0x3F) * 4
    out["tun_id"] = int.from_bytes(header[4:7], "big")
    options, rest = [], header[8:8 + opt_len]
    while len(rest) >= 4:
        cls, typ, length = struct.unpack("!HBB", rest[:4])
        size = (length & 0x1F) * 4
        options.append((cls, typ, int.from_bytes(rest[4:4 + size], "big")))
        rest = rest[4 + size:]
    out["geneve_options"] = options
    out["inner"] = decode(header[8 + opt_len:])
