"""OpenFlow 1.5 binary actions → the action records of ``ofrace.openflow.actions``.

OVN puts the actions of a nested block (``arp { … }``, ``icmp4 { … }``, ``nd_na { … }``)
into the userdata of a ``controller()`` action, after its 8-byte header, as OpenFlow 1.5
wire actions (ovn-org/ovn lib/actions.c ``encode_nested_actions`` →
``ofpacts_put_openflow_actions(…, OFP15_VERSION)``); pinctrl sends them back in a
packet-out.  ``ovs-ofctl dump-flows`` prints them only as hex, so a trace reads them
here.  Layouts are OVS's (lib/ofp-actions.c: the ``OFPAT_RAW15_*`` / ``NXAST_RAW_*``
enum and the ``struct ofp*_action_*``/``nx_action_*`` it names; field codes from
include/openvswitch/meta-flow.h, the "NXM:"/"OXM:" line of each field).  An action this
module does not know decodes to ``Unknown``, which a trace reports where it is hit.
"""

from __future__ import annotations

import struct

from ofrace.openflow.actions import (
    Clone,
    Controller,
    FieldRef,
    Group,
    Move,
    Output,
    Pop,
    Push,
    PushVlan,
    Resubmit,
    SetField,
    Simple,
    Unknown,
    field_width,
)

NX_VENDOR_ID = 0x00002320
OFPAT_VENDOR = 0xFFFF
OFPXMC_EXPERIMENTER = 0xFFFF

# (OXM/NXM class, field) -> (canonical field, bytes on the wire, how the value maps).
_NXM0 = {0: ("in_port", 2), 1: ("dl_dst", 6), 2: ("dl_src", 6), 3: ("dl_type", 2),
         4: ("vlan_tci", 2), 5: ("nw_tos", 1), 6: ("nw_proto", 1), 7: ("nw_src", 4),
         8: ("nw_dst", 4), 9: ("tp_src", 2), 10: ("tp_dst", 2), 11: ("tp_src", 2),
         12: ("tp_dst", 2), 13: ("tp_src", 1), 14: ("tp_dst", 1), 15: ("nw_proto", 2),
         16: ("nw_src", 4), 17: ("nw_dst", 4)}
_NXM1 = {16: ("tun_id", 8), 17: ("arp_sha", 6), 18: ("arp_tha", 6), 19: ("ipv6_src", 16),
         20: ("ipv6_dst", 16), 21: ("tp_src", 1), 22: ("tp_dst", 1), 23: ("nd_target", 16),
         24: ("arp_sha", 6), 25: ("arp_tha", 6), 26: ("nw_frag", 1), 27: ("ipv6_label", 4),
         28: ("nw_ecn", 1), 29: ("nw_ttl", 1), 31: ("tun_src", 4), 32: ("tun_dst", 4),
         33: ("pkt_mark", 4), 34: ("tcp_flags", 2), 35: ("dp_hash", 4), 36: ("recirc_id", 4),
         37: ("conj_id", 4), 104: ("tun_flags", 2), 105: ("ct_state", 4), 106: ("ct_zone", 2),
         107: ("ct_mark", 4), 108: ("ct_label", 16), 109: ("tun_ipv6_src", 16),
         110: ("tun_ipv6_dst", 16), 119: ("ct_nw_proto", 1), 120: ("ct_nw_src", 4),
         121: ("ct_nw_dst", 4), 122: ("ct_ipv6_src", 16), 123: ("ct_ipv6_dst", 16),
         124: ("ct_tp_src", 2), 125: ("ct_tp_dst", 2)}
_NXM1.update({i: (f"reg{i}", 4) for i in range(16)})
_NXM1.update({111 + i: (f"xxreg{i}", 16) for i in range(4)})
_OXM = {0: ("in_port", 4), 2: ("metadata", 8), 3: ("dl_dst", 6), 4: ("dl_src", 6),
        5: ("dl_type", 2), 6: ("vlan_vid", 2), 7: ("vlan_pcp", 1), 8: ("ip_dscp", 1),
        9: ("nw_ecn", 1), 10: ("nw_proto", 1), 11: ("nw_src", 4), 12: ("nw_dst", 4),
        13: ("tp_src", 2), 14: ("tp_dst", 2), 15: ("tp_src", 2), 16: ("tp_dst", 2),
        17: ("tp_src", 2), 18: ("tp_dst", 2), 19: ("tp_src", 1), 20: ("tp_dst", 1),
        21: ("nw_proto", 2), 22: ("nw_src", 4), 23: ("nw_dst", 4), 24: ("arp_sha", 6),
        25: ("arp_tha", 6), 26: ("ipv6_src", 16), 27: ("ipv6_dst", 16),
        28: ("ipv6_label", 4), 29: ("tp_src", 1), 30: ("tp_dst", 1), 31: ("nd_target", 16),
        32: ("arp_sha", 6), 33: ("arp_tha", 6), 34: ("mpls_label", 4), 35: ("mpls_tc", 1),
        36: ("mpls_bos", 1), 38: ("tun_id", 8), 44: ("packet_type", 4)}
_CLASSES = {0x0000: _NXM0, 0x0001: _NXM1, 0x8000: _OXM,
            0x8001: {i: (f"xreg{i}", 8) for i in range(8)}}
# Experimenter OXM fields: (experimenter id, field) -> (field, bytes).
_EXPERIMENTER = {(0x00002320, 0): ("dp_hash", 4),            # NXOXM_ET_DP_HASH
                 (0x4F4E4600, 42): ("tcp_flags", 2),         # ONFOXM_ET_TCP_FLAGS
                 (0x00D0F0A0, 1): ("nd_reserved", 4),        # ERICOXM_OF_ICMPV6_ND_RESERVED
                 (0x00D0F0A0, 2): ("nd_options_type", 1)}    # ERICOXM_..._ND_OPTIONS_TYPE


class BinaryActionError(ValueError):
    """Bytes that are not OpenFlow 1.5 actions (truncated, a length that does not fit)."""


def _ofp11_port(port: int) -> int:
    """An OpenFlow 1.1+ 32-bit port number as OVS's 16-bit one
    (lib/ofp-port.c ``ofputil_port_from_ofp11``: 0xffffff00+ are the reserved ports)."""
    return port - 0xFFFF0000 if port >= 0xFFFFFF00 else port


def _field_header(data: bytes, at: int) -> tuple[str, int, bool, int]:
    """An OXM/NXM header at ``at`` → (field, value bytes, has mask, header bytes)."""
    if at + 4 > len(data):
        raise BinaryActionError("truncated field header")
    header, = struct.unpack_from("!I", data, at)
    oxm_class, oxm_field = header >> 16, (header >> 9) & 0x7F
    hasmask, length = bool(header & 0x100), header & 0xFF
    if oxm_class == OFPXMC_EXPERIMENTER:
        if at + 8 > len(data):
            raise BinaryActionError("truncated experimenter field header")
        experimenter, = struct.unpack_from("!I", data, at + 4)
        known = _EXPERIMENTER.get((experimenter, oxm_field))
        if known is None:
            raise BinaryActionError(f"unknown experimenter field {experimenter:#x}/{oxm_field}")
        return known[0], known[1], hasmask, 8
    known = _CLASSES.get(oxm_class, {}).get(oxm_field)
    if known is None:
        raise BinaryActionError(f"unknown field class {oxm_class:#x} field {oxm_field}")
    name, size = known
    if length not in (size, 2 * size):
        raise BinaryActionError(f"field {name}: length {length}, expected {size}")
    return name, size, hasmask, 4


def _canonical_ref(name: str, start: int = 0, n_bits: int | None = None) -> FieldRef:
    """A bit range of an OXM field, in ofrace's storage (VLAN VID/PCP are views of
    vlan_tci, DSCP the upper 6 bits of nw_tos)."""
    if name == "vlan_vid":
        return FieldRef("vlan_tci", start, start + (n_bits or 12) - 1)
    if name == "vlan_pcp":
        return FieldRef("vlan_tci", 13 + start, 13 + start + (n_bits or 3) - 1)
    if name == "ip_dscp":
        return FieldRef("nw_tos", 2 + start, 2 + start + (n_bits or 6) - 1)
    width = field_width(name)
    return FieldRef(name, start, start + (n_bits or width) - 1)


def _set_field(name: str, value: int, mask: int | None) -> SetField:
    if name == "in_port":
        value = _ofp11_port(value)
    if name == "vlan_vid":   # OFPVID_PRESENT (0x1000) is the CFI bit, as in vlan_tci
        m = 0x1FFF if mask is None else mask & 0x1FFF
        return SetField(FieldRef("vlan_tci", 0, 15), value & m, m)
    if name == "vlan_pcp":
        m = 0x7 if mask is None else mask & 0x7
        return SetField(FieldRef("vlan_tci", 0, 15), ((value & m) << 13) | 0x1000,
                        (m << 13) | 0x1000)
    if name == "ip_dscp":
        m = 0x3F if mask is None else mask & 0x3F
        return SetField(FieldRef("nw_tos", 0, 7), (value & m) << 2, m << 2)
    width = field_width(name)
    full = (1 << width) - 1
    m = full if mask is None else mask & full
    return SetField(FieldRef(name, 0, width - 1), value & m, m)


def _decode_set_field(body: bytes) -> SetField:
    name, size, hasmask, hlen = _field_header(body, 0)
    need = hlen + size * (2 if hasmask else 1)
    if len(body) < need:
        raise BinaryActionError(f"set_field {name}: truncated value")
    value = int.from_bytes(body[hlen:hlen + size], "big")
    mask = int.from_bytes(body[hlen + size:need], "big") if hasmask else None
    return _set_field(name, value, mask)


def _decode_copy_field(body: bytes) -> Move:
    """OF1.5 copy_field (``struct ofp15_action_copy_field``): what OVN's ``a = b`` and
    ``a <-> b`` halves become."""
    n_bits, src_ofs, dst_ofs = struct.unpack_from("!HHH", body, 0)
    src, _, _, slen = _field_header(body, 8)
    dst, _, _, _ = _field_header(body, 8 + slen)
    return Move(_canonical_ref(src, src_ofs, n_bits), _canonical_ref(dst, dst_ofs, n_bits))


def _decode_stack(subtype: int, body: bytes):
    """``struct nx_action_stack``: offset, field header, n_bits."""
    offset, = struct.unpack_from("!H", body, 0)
    name, _, _, hlen = _field_header(body, 2)
    n_bits, = struct.unpack_from("!H", body, 2 + hlen)
    ref = _canonical_ref(name, offset, n_bits)
    return Push(ref) if subtype == 27 else Pop(ref)


def _decode_controller2(body: bytes) -> Controller:
    """``NXAST_CONTROLLER2``: properties after 6 bytes of padding (type, length, value,
    padded to 8): NXAC2PT_USERDATA (3) and NXAC2PT_PAUSE (4) are the ones OVN writes."""
    at, userdata, pause, max_len, reason, meter = 6, b"", False, None, None, None
    while at + 4 <= len(body):
        ptype, plen = struct.unpack_from("!HH", body, at)
        if plen < 4:
            raise BinaryActionError("controller2 property with length < 4")
        value = body[at + 4:at + plen]
        if ptype == 0:
            max_len = int.from_bytes(value[:2], "big")
        elif ptype == 2:
            reason = str(value[0]) if value else None
        elif ptype == 3:
            userdata = bytes(value)
        elif ptype == 4:
            pause = True
        elif ptype == 5:
            meter = int.from_bytes(value[:4], "big")
        at += (plen + 7) // 8 * 8
    return Controller(userdata=userdata, pause=pause, reason=reason, meter_id=meter,
                      max_len=max_len)


def _decode_vendor(body: bytes):
    """A Nicira extension action (``NXAST_*``); ``body`` starts after the vendor id."""
    subtype, = struct.unpack_from("!H", body, 0)
    rest = body[2:]
    if subtype == 1:                               # NXAST_RESUBMIT
        port, = struct.unpack_from("!H", rest, 0)
        return Resubmit(None if port == 0xFFF8 else port, None)
    if subtype in (14, 44):                        # NXAST_RESUBMIT_TABLE(_CT)
        port, table = struct.unpack_from("!HB", rest, 0)
        return Resubmit(None if port == 0xFFF8 else port, None if table == 255 else table,
                        ct=subtype == 44)
    if subtype in (27, 28):                        # NXAST_STACK_PUSH / POP
        return _decode_stack(subtype, rest)
    if subtype == 37:                              # NXAST_CONTROLLER2
        return _decode_controller2(rest)
    if subtype == 20:                              # NXAST_CONTROLLER
        max_len, _, reason = struct.unpack_from("!HHB", rest, 0)
        return Controller(max_len=max_len, reason=str(reason))
    if subtype == 42:                              # NXAST_CLONE: nested actions
        return Clone(tuple(decode_actions(rest[6:])))
    if subtype == 43:
        return Simple("ct_clear")
    if subtype == 18:
        return Simple("dec_ttl")
    if subtype == 17:
        return Simple("exit")
    if subtype == 8:
        return Simple("note", rest[:].hex())
    if subtype == 32:                              # NXAST_OUTPUT_REG2
        ofs_nbits, _ = struct.unpack_from("!HH", rest, 0)
        name, _, _, _ = _field_header(rest, 4)
        return Output(source=_canonical_ref(name, ofs_nbits >> 6, (ofs_nbits & 0x3F) + 1))
    if subtype == 15:                              # NXAST_OUTPUT_REG
        ofs_nbits, = struct.unpack_from("!H", rest, 0)
        name, _, _, _ = _field_header(rest, 2)
        return Output(source=_canonical_ref(name, ofs_nbits >> 6, (ofs_nbits & 0x3F) + 1))
    return Unknown(f"nxast_{subtype}", rest.hex())


def decode_actions(data: bytes) -> list:
    """OpenFlow 1.5 actions, one record each (``Unknown`` for those not modelled)."""
    out, at = [], 0
    while at < len(data):
        if at + 4 > len(data):
            raise BinaryActionError(f"truncated action header at offset {at}")
        atype, alen = struct.unpack_from("!HH", data, at)
        if alen < 8 or alen % 8 or at + alen > len(data):
            raise BinaryActionError(f"action at offset {at}: bad length {alen}")
        body = data[at + 4:at + alen]
        at += alen
        if atype == OFPAT_VENDOR:
            vendor, = struct.unpack_from("!I", body, 0)
            out.append(_decode_vendor(body[4:]) if vendor == NX_VENDOR_ID
                       else Unknown(f"vendor_{vendor:#x}", body.hex()))
        elif atype == 0:                           # OFPAT_OUTPUT
            port, = struct.unpack_from("!I", body, 0)
            out.append(Output(port=_ofp11_port(port)))
        elif atype == 25:                          # OFPAT_SET_FIELD
            out.append(_decode_set_field(body))
        elif atype == 28:                          # OFPAT_COPY_FIELD (OF1.5)
            out.append(_decode_copy_field(body))
        elif atype == 24:                          # OFPAT_DEC_NW_TTL
            out.append(Simple("dec_ttl"))
        elif atype == 23:                          # OFPAT_SET_NW_TTL
            out.append(SetField(FieldRef("nw_ttl", 0, 7), body[0], 0xFF))
        elif atype == 17:                          # OFPAT_PUSH_VLAN
            out.append(PushVlan(struct.unpack_from("!H", body, 0)[0]))
        elif atype == 18:                          # OFPAT_POP_VLAN
            out.append(Simple("pop_vlan"))
        elif atype == 22:                          # OFPAT_GROUP
            out.append(Group(struct.unpack_from("!I", body, 0)[0]))
        elif atype == 29:                          # OFPAT_METER (OF1.5)
            out.append(Simple("meter", struct.unpack_from("!I", body, 0)[0]))
        else:
            out.append(Unknown(f"ofpat_{atype}", body.hex()))
    return out


def nested_actions(userdata: bytes) -> list:
    """The actions OVN nested in a controller() userdata (after the opcode and padding)."""
    return decode_actions(userdata[8:])
