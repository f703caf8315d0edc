"""The packets ovn-controller builds for the controller actions that pause translation.

put_dhcp_opts, put_dhcpv6_opts and put_nd_ra_opts are ``controller(pause)`` actions:
pinctrl rewrites the packet, writes a result bit into the register named in the
userdata, and resumes the frozen translation (NXT_RESUME) right after the action; the
logical flows that follow swap addresses and send the answer back.  This module reads
the userdata as lib/actions.c encodes it and builds the answer as controller/pinctrl.c
does (OVN v22.03 … v26.03; where releases differ, it says so; docs/ovs-xlate-semantics.md
§8.4):

* userdata: ``struct action_header`` (opcode, 4 pad bytes), the result field's NXM
  header (``nx_put_header``, OpenFlow 1.5), its bit offset (be32), then per action:
  put_dhcp_opts — the offered address (be32) and DHCP options code/len/value, with
  bootfile_name (67), bootfile_name_alt (254) and next_server (253, from 22.06) first
  (``encode_PUT_DHCPV4_OPTS``); put_dhcpv6_opts — options code(be16)/len(be16)/value
  (``encode_PUT_DHCPV6_OPTS``; which codes pinctrl composes is a release fact,
  ``OvnFacts.dhcpv6_codes``: bootfile_name from 23.06, fqdn from 23.09); put_nd_ra_opts —
  the whole ICMPv6 RA message (``encode_PUT_ND_RA_OPTS``).
* answers: ``pinctrl_handle_put_dhcp_opts`` (DISCOVER → OFFER, REQUEST → ACK, or NAK
  when the requested address is not the offer, INFORM → ACK without address and lease
  options; op BOOTREPLY, yiaddr the offer, siaddr next_server, option 53 first, then
  the userdata's options, 4 pad bytes, END; the IP destination the offer, or broadcast
  when the request's flags ask for it); ``pinctrl_handle_put_dhcpv6_opts`` (SOLICIT →
  ADVERTISE; REQUEST, CONFIRM, DECLINE, INFORMATION-REQUEST → REPLY; the client id
  copied, server id as a DUID-LL, IA_NA around the address with infinite lifetimes,
  DNS servers, domain search, bootfile_name (the _alt one unless the client's user class
  is iPXE), fqdn when the client sent one); ``pinctrl_handle_put_nd_ra_opts`` (the
  userdata's RA as the ICMPv6 body).  A request pinctrl refuses resumes unchanged with the bit 0.

The request is the packet as the wire carries it (``ofrace.openflow.frames.encode``),
and the answer is decoded by the same ``frames.decode`` a capture is: what ofrace
predicts and what the wire carries are compared field by field, option by option.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from ofrace.openflow.fields import COMPOSITES
from ofrace.openflow.frames import (
    DHCP_HEADER_LEN,
    DHCP_TYPES,
    DHCPV6_TYPES,
    decode,
    encode,
    internet_checksum,
)
from ofrace.ovn.versions import OvnFacts, facts_for
from ofrace.simulate.packet import write

# icmp4.frag_mtu / icmp6.frag_mtu inside icmp4_error{}/icmp6_error{}: no result register
FRAG_MTU = ("put_icmp4_frag_mtu", "put_icmp6_frag_mtu")
PAUSING = ("put_dhcp_opts", "put_dhcpv6_opts", "put_nd_ra_opts", "dns_lookup", *FRAG_MTU)
DNS_TTL = 3600                                   # pinctrl.c DNS_DEFAULT_RR_TTL
DNS_A, DNS_PTR, DNS_AAAA, DNS_ANY = 1, 12, 28, 255
DHCP_NAMES = {v: k.upper() for k, v in DHCP_TYPES.items()}
DHCPV6_NAMES = {v: k.upper() for k, v in DHCPV6_TYPES.items()}
# DHCP options by code: (name, type), from lib/ovn-l7.h (DHCP_OPT_*), for the text only.
DHCP_OPTIONS = {
    1: ("netmask", "ipv4"), 3: ("router", "ipv4"), 6: ("dns_server", "ipv4"),
    7: ("log_server", "ipv4"), 9: ("lpr_server", "ipv4"), 12: ("hostname", "str"),
    15: ("domain_name", "str"), 16: ("swap_server", "ipv4"), 19: ("ip_forward_enable", "uint"),
    23: ("default_ttl", "uint"), 26: ("mtu", "uint"), 31: ("router_discovery", "uint"),
    36: ("ethernet_encap", "uint"), 37: ("tcp_ttl", "uint"), 41: ("nis_server", "ipv4"),
    42: ("ntp_server", "ipv4"), 51: ("lease_time", "uint"), 53: ("message_type", "uint"),
    54: ("server_id", "ipv4"), 58: ("T1", "uint"), 59: ("T2", "uint"),
    66: ("tftp_server", "str"), 67: ("bootfile_name", "str"), 119: ("domain_search_list", "hex"),
    121: ("classless_static_route", "hex"), 150: ("tftp_server_address", "ipv4"),
    210: ("path_prefix", "str"), 252: ("wpad", "str"), 253: ("next_server", "ipv4"),
    254: ("bootfile_name_alt", "str"),
}
DHCPV6_OPTIONS = {1: "client_id", 2: "server_id", 3: "ia_na", 23: "dns_server",
                  24: "domain_search"}
RA_OPTIONS = {1: "source_lla", 3: "prefix", 5: "mtu", 24: "route_info", 25: "rdnss",
              31: "dnssl"}
# The request fields pinctrl reads from the frame; the answer replaces them.
_HEADERS = ("dl_src", "dl_dst", "dl_type", "nw_src", "nw_dst", "ipv6_src", "ipv6_dst", "nw_proto",
            "nw_ttl", "tp_src", "tp_dst", "payload_len", "dhcp_msg", "dhcp_reply", "nd_ra",
            "dns_query", "dns_reply")
_NXM_REG_CLASS = 0x0001      # NXM_NX_REG0..15 (fields 0-15), NXM_NX_XXREG0..3 (111-114)
_XXREG_FIELD = 111
_OXM_PKT_REG_CLASS = 0x8001  # OXM_OF_PKT_REG0..7 (xreg, 64 bits)


class UserdataError(ValueError):
    """The userdata is not what lib/actions.c encodes for the action."""


@dataclass
class Answer:
    """What pinctrl does with one paused packet: the answer (or why none), and the
    fields to resume with (headers, answer body, the result register)."""

    action: str
    answered: bool
    summary: str                       # "DHCPOFFER <the offered address>", or why none
    options: list[str] = field(default_factory=list)   # name=value, in wire order
    resume_with: dict = field(default_factory=dict)

    def text(self) -> str:
        return self.summary + (f": {', '.join(self.options)}" if self.options else "")


def result_field(userdata: bytes) -> tuple[str, int, bytes]:
    """The result register, its bit, and the action's own arguments after them."""
    body = userdata[8:]
    if len(body) < 8:
        raise UserdataError("no result field in the userdata")
    header = struct.unpack("!I", body[:4])[0]
    cls, number = header >> 16, (header >> 9) & 0x7F
    size = 4
    if cls == 0xFFFF:
        size = 8   # an experimenter OXM: not a register OVN writes results to
    if cls == _NXM_REG_CLASS and number < 16:
        name = f"reg{number}"
    elif cls == _NXM_REG_CLASS and _XXREG_FIELD <= number < _XXREG_FIELD + 4:
        name = f"xxreg{number - _XXREG_FIELD}"
    elif cls == _OXM_PKT_REG_CLASS and number < 8:
        name = f"xreg{number}"
    else:
        raise UserdataError(f"result field header {header:#010x} is no register")
    offset = struct.unpack("!I", body[size:size + 4])[0]
    return name, offset, body[size + 4:]


def answer(action: str, userdata_hex: str, packet: dict, facts: OvnFacts | None = None,
           dns: list[tuple[set[int], dict[str, str]]] | None = None) -> Answer:
    """pinctrl's answer to ``packet`` (the packet as the pause froze it) for ``action``, as
    the release of ``facts`` (default: the newest known) builds it; ``dns``: the SB DNS
    rows as (datapath tunnel keys, records), what dns_lookup answers from."""
    userdata = bytes.fromhex(userdata_hex)
    if action in FRAG_MTU:
        return frag_mtu(action, userdata, packet)
    register, bit, args = result_field(userdata)
    frame = encode(packet, packet)
    request = decode(frame)
    l4 = _l4(frame)
    if action == "put_dhcp_opts":
        result = _dhcpv4(args, frame, l4)
    elif action == "put_dhcpv6_opts":
        result = _dhcpv6(args, frame, l4, (facts or facts_for(None)).dhcpv6_codes)
    elif action == "put_nd_ra_opts":
        result = _router_advertisement(args, frame, request)
    elif action == "dns_lookup":
        result = _dns_answer(frame, l4, packet.get("metadata", 0), dns or [])
    else:
        raise UserdataError(f"{action} is not a pausing answer")
    # unanswered, the packet resumes as it was (its headers said, for the hop's "in:")
    built = decode(result.resume_with.pop("frame")) if result.answered else request
    result.resume_with.pop("frame", None)
    resume = {k: built[k] for k in _HEADERS if k in built}
    value = dict(packet)
    write(value, register, int(result.answered) << bit, 1 << bit)
    resume.update({r: value.get(r, 0) for r in COMPOSITES.get(register, (register,))})
    result.resume_with = resume
    return result


def frag_mtu(action: str, userdata: bytes, packet: dict) -> Answer:
    """``pinctrl_handle_put_icmp_frag_mtu``: the MTU after the action header (be16 for
    ICMPv4, ``encode_PUT_ICMP4_FRAG_MTU``; be32 for ICMPv6) written into the ICMP header
    of the error being built, checksums redone; a packet that is no ICMP, or a userdata
    too short, resumes unchanged (pinctrl warns and still resumes)."""
    v4 = action == "put_icmp4_frag_mtu"
    size = 2 if v4 else 4
    icmp = (packet.get("dl_type"), packet.get("nw_proto")) in ((0x0800, 1), (0x86DD, 58))
    if not icmp:
        return Answer(action, False, "not an ICMP packet: resumed unchanged")
    if len(userdata) < 8 + size:
        return Answer(action, False, "no MTU in the userdata: resumed unchanged")
    mtu = int.from_bytes(userdata[8:8 + size], "big")
    return Answer(action, True, f"next-hop MTU {mtu} written into the ICMP"
                                f"{'' if v4 else 'v6'} header", [],
                  {"icmp_frag_mtu": mtu})


def _l4(frame: bytes) -> bytes:
    """The transport header and payload of an IPv4/IPv6 frame (no VLAN in OVN's tables)."""
    dl_type = struct.unpack("!H", frame[12:14])[0]
    offset = 14
    if dl_type == 0x8100:
        dl_type, offset = struct.unpack("!H", frame[16:18])[0], 18
    if dl_type == 0x0800:
        total = struct.unpack("!H", frame[offset + 2:offset + 4])[0]
        return frame[offset + (frame[offset] & 0x0F) * 4:offset + total]
    length = struct.unpack("!H", frame[offset + 4:offset + 6])[0]
    return frame[offset + 40:offset + 40 + length]


def _l3_offset(frame: bytes) -> int:
    return 18 if frame[12:14] == b"\x81\x00" else 14


def _dhcpv4(args: bytes, frame: bytes, l4: bytes) -> Answer:
    if len(args) < 4:
        raise UserdataError("put_dhcp_opts: no offer address in the userdata")
    offer = args[:4]
    options = bytearray(args[4:])
    payload = l4[8:]
    if len(payload) < DHCP_HEADER_LEN + 4 or payload[0] != 1:
        return Answer("put_dhcp_opts", False, "not a DHCP request: pinctrl answers nothing "
                      "and resumes with the result bit 0", resume_with={"frame": frame})
    requested, kind, ipxe = payload[12:16], None, False
    rest = payload[DHCP_HEADER_LEN + 4:]
    while rest and rest[0] != 255:
        if rest[0] == 0:
            rest = rest[1:]
            continue
        code, length = rest[0], rest[1] if len(rest) > 1 else 0
        value = rest[2:2 + length]
        if code == 53 and length == 1:
            kind = value[0]
        elif code == 50 and length == 4:
            requested = value
        elif code == 175:
            ipxe = True
        rest = rest[2 + length:]
    if kind == DHCP_TYPES["discover"]:
        reply = DHCP_TYPES["offer"]
    elif kind == DHCP_TYPES["request"]:
        reply = DHCP_TYPES["ack"] if requested == offer else DHCP_TYPES["nak"]
    elif kind == DHCP_TYPES["inform"]:
        reply = DHCP_TYPES["ack"]
        options = _without(options, (1, 51, 58, 59))
    else:
        why = "no message type" if kind is None else f"message type {kind}"
        return Answer("put_dhcp_opts", False, f"DHCP request with {why}: pinctrl answers "
                      "nothing and resumes with the result bit 0", resume_with={"frame": frame})
    options, next_server = _bootfile_order(options, ipxe, payload[20:24])
    header = bytearray(payload[:DHCP_HEADER_LEN])
    header[0] = 2
    if kind != DHCP_TYPES["inform"]:
        nak = reply == DHCP_TYPES["nak"]
        header[16:20] = bytes(4) if nak else offer
        header[20:24] = bytes(4) if nak else next_server
    else:
        header[16:20] = bytes(4)
    carried = b"" if reply == DHCP_TYPES["nak"] else bytes(options)
    body = (bytes(header) + struct.pack("!I", 0x63825363) + bytes([53, 1, reply]) + carried
            + bytes(4) + bytes([255]) + bytes(4))
    broadcast = struct.unpack("!H", payload[10:12])[0] & 0x8000
    destination = b"\xff\xff\xff\xff" if broadcast else offer
    out = _with_l4(frame, l4[:4] + struct.pack("!HH", 8 + len(body), 0) + body,
                   ipv4_dst=destination)
    summary = f"DHCP{DHCP_NAMES[reply]} {ipaddress.IPv4Address(offer)}"
    shown = [] if reply == DHCP_TYPES["nak"] else _dhcp_option_text(bytes(options))
    return Answer("put_dhcp_opts", True, summary, shown, {"frame": out})


def _without(options: bytes, codes: tuple[int, ...]) -> bytearray:
    out, rest = bytearray(), bytes(options)
    while len(rest) >= 2:
        size = 2 + rest[1]
        if rest[0] not in codes:
            out += rest[:size]
        rest = rest[size:]
    return out


def _bootfile_order(options: bytearray, ipxe: bool, siaddr: bytes) -> tuple[bytearray, bytes]:
    """pinctrl's pass over the userdata's options: next_server (253) becomes siaddr;
    bootfile_name (67) followed by bootfile_name_alt (254) keeps one (the alt one, as 67,
    unless the client is iPXE); a lone 254 is sent as 67."""
    out, rest, next_server, have_bootfile = bytearray(), bytes(options), siaddr, False
    while len(rest) >= 2:
        code, size = rest[0], 2 + rest[1]
        option = bytearray(rest[:size])
        following = rest[size:]
        if code == 253:
            next_server = bytes(option[2:6])
        if code == 67:
            have_bootfile = True
            if following[:1] == b"\xfe":
                alt_size = 2 + following[1]
                if ipxe:
                    out += option
                else:
                    out += bytes([67]) + following[1:alt_size]
                rest = following[alt_size:]
                continue
        if code == 254 and not have_bootfile:
            option[0] = 67
        out += option
        rest = following
    return out, next_server


def _dhcp_option_text(options: bytes) -> list[str]:
    out, rest = [], options
    while len(rest) >= 2:
        code, value = rest[0], rest[2:2 + rest[1]]
        name, kind = DHCP_OPTIONS.get(code, (str(code), "hex"))
        out.append(f"{name}={_value_text(value, kind)}")
        rest = rest[2 + rest[1]:]
    return out


def _value_text(value: bytes, kind: str) -> str:
    if kind == "ipv4" and value and len(value) % 4 == 0:
        return ",".join(str(ipaddress.IPv4Address(value[i:i + 4]))
                        for i in range(0, len(value), 4))
    if kind == "uint" and value:
        return str(int.from_bytes(value, "big"))
    if kind == "str":
        return value.decode("utf-8", "replace")
    return value.hex()


def _with_l4(frame: bytes, l4: bytes, ipv4_dst: bytes | None = None) -> bytes:
    """``frame`` with a new transport part: lengths and checksums recomputed by
    ``frames.encode`` from the decoded headers would lose the body, so the IP header is
    patched here (pinctrl recomputes the IPv4 checksum; the UDP one is left 0 for IPv4,
    computed for IPv6)."""
    at = _l3_offset(frame)
    if struct.unpack("!H", frame[at - 2:at])[0] == 0x0800:
        ihl = (frame[at] & 0x0F) * 4
        header = bytearray(frame[at:at + ihl])
        header[2:4] = struct.pack("!H", ihl + len(l4))
        if ipv4_dst is not None:
            header[16:20] = ipv4_dst
        header[10:12] = b"\0\0"
        header[10:12] = struct.pack("!H", internet_checksum(bytes(header)))
        return frame[:at] + bytes(header) + l4
    header = bytearray(frame[at:at + 40])
    header[4:6] = struct.pack("!H", len(l4))
    return frame[:at] + bytes(header) + l4


def _dhcpv6(args: bytes, frame: bytes, l4: bytes, codes: frozenset[int]) -> Answer:
    payload = l4[8:]
    kind = payload[0] if payload else None
    if kind == DHCPV6_TYPES["solicit"]:
        reply = DHCPV6_TYPES["advertise"]
    elif kind in (DHCPV6_TYPES["request"], DHCPV6_TYPES["confirm"], DHCPV6_TYPES["decline"],
                  DHCPV6_TYPES["information-request"]):
        reply = DHCPV6_TYPES["reply"]
    else:
        return Answer("put_dhcpv6_opts", False, f"DHCPv6 message type {kind} is not "
                      "answered: resumes with the result bit 0", resume_with={"frame": frame})
    iaid, client_id, ipxe, fqdn_flags, rest = 0, None, False, None, payload[4:]
    while len(rest) >= 4:
        code, length = struct.unpack("!HH", rest[:4])
        if code == 3 and length >= 4:
            iaid = struct.unpack("!I", rest[4:8])[0]
        elif code == 1:
            client_id = rest[:4 + length]
        elif code == 15:      # user class: iPXE asks for bootfile_name, others for _alt
            ipxe = rest[6:4 + length].split(b"\0")[0] == b"iPXE"
        elif code == 39 and length:
            fqdn_flags = rest[4]
        rest = rest[4 + length:]
    if client_id is None or (not iaid and kind != DHCPV6_TYPES["information-request"]):
        return Answer("put_dhcpv6_opts", False, "DHCPv6 request without a client id or "
                      "IA_NA: resumes with the result bit 0", resume_with={"frame": frame})
    out, shown, rest = bytearray(), [], args
    while len(rest) >= 4:
        code, size = struct.unpack("!HH", rest[:4])
        value = rest[4:4 + size]
        rest = rest[4 + size:]
        if code not in codes:
            return Answer("put_dhcpv6_opts", False, f"DHCPv6 option {code} in the userdata "
                          "is not one this release's pinctrl composes: resumes with the "
                          "result bit 0", resume_with={"frame": frame})
        if code == 2:         # server id: a DUID-LL of the MAC
            out += struct.pack("!HHHH", 2, size + 4, 3, 1) + value
            shown.append(f"server_id={value.hex()}")
        elif code == 5:       # IA address inside an IA_NA, lifetimes infinite
            if not iaid:
                continue
            out += struct.pack("!HHIII", 3, 12 + 4 + 24, iaid, 0xFFFFFFFF, 0xFFFFFFFF)
            out += struct.pack("!HH", 5, size + 8) + value + struct.pack("!II", 0xFFFFFFFF,
                                                                       0xFFFFFFFF)
            shown.append(f"ia_addr={ipaddress.IPv6Address(value)}")
        elif code == 23:
            out += struct.pack("!HH", 23, size) + value
            shown.append("dns_server=" + ",".join(str(ipaddress.IPv6Address(value[i:i + 16]))
                                                  for i in range(0, len(value), 16)))
        elif code == 24:
            out += struct.pack("!HH", 24, size + 2) + bytes([size]) + value + b"\0"
            shown.append(f"domain_search={value.decode('utf-8', 'replace')}")
        elif code in (59, 254) and ipxe == (code == 59):   # sent as bootfile_name (59)
            out += struct.pack("!HH", 59, size) + value
            shown.append(f"bootfile_name={value.decode('utf-8', 'replace')}")
        elif code == 39 and fqdn_flags is not None:
            # N always set; O when the client asked the server to update (S)
            flags = 0x04 | (0x02 if fqdn_flags & 0x01 else 0)
            out += struct.pack("!HHB", 39, size + 1, flags) + value
            shown.append(f"fqdn={value.hex()}")
    body = bytes([reply]) + payload[1:4] + bytes(client_id) + bytes(out)
    udp = l4[:4] + struct.pack("!HH", 8 + len(body), 0) + body
    built = _with_l4(frame, udp)
    at = _l3_offset(built)
    pseudo = built[at + 8:at + 40] + struct.pack("!IxxxB", len(udp), 17)
    udp = udp[:6] + struct.pack("!H", internet_checksum(pseudo + udp)) + udp[8:]
    summary = f"DHCPv6 {DHCPV6_NAMES[reply]}"
    return Answer("put_dhcpv6_opts", True, summary, shown, {"frame": _with_l4(frame, udp)})


def _router_advertisement(args: bytes, frame: bytes, request: dict) -> Answer:
    if request.get("nw_proto") != 58 or request.get("tp_src") != 133 or request.get("tp_dst"):
        return Answer("put_nd_ra_opts", False, "not a Router Solicitation: resumes with the "
                      "result bit 0", resume_with={"frame": frame})
    if len(args) < 16:
        raise UserdataError("put_nd_ra_opts: no Router Advertisement in the userdata")
    at = _l3_offset(frame)
    icmp = bytearray(args)
    icmp[2:4] = b"\0\0"
    pseudo = frame[at + 8:at + 40] + struct.pack("!IxxxB", len(icmp), 58)
    icmp[2:4] = struct.pack("!H", internet_checksum(pseudo + bytes(icmp)))
    shown = [f"hop_limit={icmp[4]}", f"flags={icmp[5]:#04x}",
             f"router_lifetime={struct.unpack('!H', icmp[6:8])[0]}"]
    rest = bytes(icmp[16:])
    while len(rest) >= 2 and rest[1]:
        size = rest[1] * 8
        kind, value = rest[0], rest[2:size]
        if kind == 3 and len(value) >= 30:
            shown.append(f"prefix={ipaddress.IPv6Address(value[14:30])}/{value[0]}"
                         f" (flags {value[1]:#04x})")
        elif kind == 5 and len(value) >= 6:
            shown.append(f"mtu={struct.unpack('!I', value[2:6])[0]}")
        elif kind == 1 and len(value) >= 6:
            shown.append("source_lla=" + ":".join(f"{b:02x}" for b in value[:6]))
        else:
            shown.append(f"{RA_OPTIONS.get(kind, kind)}={value.hex()}")
        rest = rest[size:]
    return Answer("put_nd_ra_opts", True, "Router Advertisement", shown,
                  {"frame": _with_l4(frame, bytes(icmp))})


def dns_records(rows: list[dict], datapath_key) -> list[tuple[set[int], dict[str, str]]]:
    """The SB DNS rows as pinctrl caches them (``sync_dns_cache``): the tunnel keys of
    their datapaths, and their records (names stored lowercase)."""
    out = []
    for row in rows:
        keys = {datapath_key(uuid) for uuid in _uuids(row.get("datapaths"))}
        out.append(({k for k in keys if k is not None}, dict(row.get("records") or {})))
    return out


def _uuids(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple, set)):
        return [v for v in value if isinstance(v, str)]
    return []


def _dns_answer(frame: bytes, l4: bytes, datapath: int,
                rows: list[tuple[set[int], dict[str, str]]]) -> Answer:
    """``pinctrl_handle_dns_lookup``: a query (QR clear, a question) of type A, AAAA, ANY
    or PTR for a name a DNS row of the packet's datapath has; the answer keeps the header
    (QR set, ancount, arcount 0) and everything after it, then one RR per address (A:
    IPv4, AAAA: IPv6, ANY: both) or the PTR name, TTL 3600, the name as asked."""
    def unanswered(why: str) -> Answer:
        return Answer("dns_lookup", False, f"{why}: resumes with the result bit 0",
                      resume_with={"frame": frame})
    payload = l4[8:]
    if len(payload) < 12 or payload[2] & 0x80 or not struct.unpack("!H", payload[4:6])[0]:
        return unanswered("not a DNS query")
    at, labels = 12, []
    while at < len(payload) and payload[at]:
        size = payload[at]
        labels.append(payload[at + 1:at + 1 + size].decode("ascii", "replace"))
        at += 1 + size
    at += 1
    if at + 4 > len(payload):
        return unanswered("a DNS question without type and class")
    qname, qtype = payload[12:at], struct.unpack("!H", payload[at:at + 2])[0]
    if qtype not in (DNS_A, DNS_AAAA, DNS_ANY, DNS_PTR):
        return unanswered(f"DNS query type {qtype} is not answered")
    name = ".".join(labels).lower()
    found = next((records[name] for keys, records in rows
                  if datapath in keys and name in records), None)
    if found is None:
        return unanswered(f"no DNS record for {name!r} on this datapath")
    answers, shown = bytearray(), []

    def record(rtype: int, rdata: bytes) -> None:
        answers.extend(qname + struct.pack("!HHIH", rtype, 1, DNS_TTL, len(rdata)) + rdata)

    if qtype == DNS_PTR:
        record(DNS_PTR, bytes(_ptr_name(found)))
        shown.append(f"PTR {found}")
    else:
        for text in found.split():
            try:
                address = ipaddress.ip_interface(text).ip
            except ValueError:
                return unanswered(f"record {found!r} is not addresses")
            if address.version == 4 and qtype in (DNS_A, DNS_ANY):
                record(DNS_A, address.packed)
                shown.append(f"A {address}")
            elif address.version == 6 and qtype in (DNS_AAAA, DNS_ANY):
                record(DNS_AAAA, address.packed)
                shown.append(f"AAAA {address}")
    if not shown:
        return unanswered(f"no address of the asked type for {name!r}")
    header = bytearray(payload[:12])
    header[2] |= 0x80
    header[6:8] = struct.pack("!H", len(shown))
    header[10:12] = b"\0\0"
    body = bytes(header) + payload[12:] + bytes(answers)
    udp = l4[:4] + struct.pack("!HH", 8 + len(body), 0) + body
    built = _with_l4(frame, udp)
    if struct.unpack("!H", frame[_l3_offset(frame) - 2:_l3_offset(frame)])[0] == 0x86DD:
        at = _l3_offset(built)
        pseudo = built[at + 8:at + 40] + struct.pack("!IxxxB", len(udp), 17)
        udp = udp[:6] + struct.pack("!H", internet_checksum(pseudo + udp) or 0xFFFF) + udp[8:]
        built = _with_l4(frame, udp)
    return Answer("dns_lookup", True, f"DNS answer for {name}", shown, {"frame": built})


def _ptr_name(answer: str) -> bytearray:
    """pinctrl's PTR encoding: labels of ``answer`` and a final 0, in strlen + 2 bytes."""
    out = bytearray(len(answer) + 2)
    index, length = 0, 0
    for i, ch in enumerate(answer):
        if ch == ".":
            out[index] = length
            index += length + 1
            length = 0
        else:
            out[i + 1] = ord(ch)
            length += 1
    if length:
        out[index] = length
    return out
