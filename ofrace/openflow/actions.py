"""Flow actions as typed records, decoded from ``ovs.flow``'s parse.

``ovs.flow.ofp.OFPFlow`` reads every action OVN writes (ct with nat,
learn, move, masked set_field, …) but leaves field names as printed
(``NXM_NX_REG15``, ``eth_src``) and some values raw.  This module turns its
output into a small closed set of records with canonical field names, via
one decoder table keyed by action name.  It runs only for flows a trace
hits, so its cost does not touch indexing.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from ovs.flow.kv import ParseError
from ovs.flow.ofp import OFPFlow

from ofrace.openflow.fields import (
    COMPOSITES,
    FIELDS,
    SPECIAL_PORTS,
    FieldError,
    canonical,
    parse_value,
)


class ActionError(ValueError):
    """An action this simulator cannot decode; the trace reports it where it is hit."""


@dataclass(frozen=True)
class FieldRef:
    """A bit range of a field: ``NXM_NX_REG0[0..15]`` → FieldRef("reg0", 0, 15)."""

    name: str
    start: int
    end: int

    @property
    def width(self) -> int:
        return self.end - self.start + 1

    def __str__(self) -> str:
        full = field_width(self.name)
        if self.start == 0 and self.end == full - 1:
            return f"{self.name}[]"
        return f"{self.name}[{self.start}..{self.end}]"


def field_width(name: str) -> int:
    if name in COMPOSITES:
        return 32 * len(COMPOSITES[name])
    return FIELDS[name].bits


def _ref(spec: dict) -> FieldRef:
    name = canonical(spec["field"])
    width = field_width(name)
    return FieldRef(name, spec.get("start", 0), spec.get("end", width - 1))


@dataclass(frozen=True)
class Output:
    port: int | None = None          # a port number, or a SPECIAL_PORTS value
    source: FieldRef | None = None   # output:NXM_NX_REG15[]


@dataclass(frozen=True)
class Resubmit:
    port: int | None
    table: int | None
    ct: bool = False


@dataclass(frozen=True)
class GotoTable:
    table: int


@dataclass(frozen=True)
class SetField:
    """Write ``value`` under ``mask`` into ``target`` (load and set_field alike)."""

    target: FieldRef
    value: int
    mask: int


@dataclass(frozen=True)
class Move:
    src: FieldRef
    dst: FieldRef


@dataclass(frozen=True)
class Push:
    src: FieldRef


@dataclass(frozen=True)
class Pop:
    dst: FieldRef


@dataclass(frozen=True)
class Nat:
    kind: str | None                  # "src", "dst", or None (apply the existing NAT)
    addr_min: str | None = None
    addr_max: str | None = None
    port_min: int | None = None
    port_max: int | None = None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ct:
    commit: bool = False
    force: bool = False
    zone: int | FieldRef = 0
    table: int | None = None
    nat: Nat | None = None
    exec: tuple = ()
    alg: str | None = None


@dataclass(frozen=True)
class Learn:
    spec: tuple                       # ovs.flow's list of single-key dicts, kept as is


@dataclass(frozen=True)
class Controller:
    userdata: bytes = b""
    pause: bool = False
    reason: str | None = None
    meter_id: int | None = None
    max_len: int | None = None


@dataclass(frozen=True)
class CheckPktLarger:
    length: int
    dst: FieldRef


@dataclass(frozen=True)
class Clone:
    actions: tuple


@dataclass(frozen=True)
class Simple:
    """Actions with no operand or whose effect is only reported (note, meter, …)."""

    name: str
    arg: object = None


@dataclass(frozen=True)
class Conjunction:
    conj_id: int
    clause: int
    n_clauses: int


@dataclass(frozen=True)
class Group:
    group_id: int


@dataclass(frozen=True)
class PushVlan:
    ethertype: int


@dataclass(frozen=True)
class Bundle:
    """``bundle(fields,basis,algorithm,ofport,members:…)`` outputs to one live member;
    ``bundle_load(…,dst,members:…)`` writes its number (OFPP_NONE: none) into ``dst``."""

    fields: str          # the hash (lib/flow.c flow_hash_fields): eth_src, symmetric_l4, …
    basis: int
    algorithm: str       # "active_backup" or "hrw"
    members: tuple[int, ...]
    dst: FieldRef | None = None


@dataclass(frozen=True)
class Multipath:
    """``multipath(fields,basis,algorithm,n_links,arg,dst)``: a link number from a hash."""

    fields: str
    basis: int
    algorithm: str       # modulo_n, hash_threshold, hrw, iter_hash
    n_links: int
    arg: int
    dst: FieldRef


@dataclass(frozen=True)
class Unknown:
    name: str
    text: str = field(default="")


def _port(value) -> int:
    if isinstance(value, int):
        return value
    text = str(value)
    if text.isdigit():
        return int(text)
    upper = text.upper()
    if upper in SPECIAL_PORTS:
        return SPECIAL_PORTS[upper]
    raise ActionError(f"unknown port {text!r}")


_FIELD_REF = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\[(?:(\d+)(?:\.\.(\d+))?)?\]$")


def parse_field_ref(text: str) -> FieldRef | None:
    """``NXM_NX_REG15[]``, ``reg0[16..30]``, ``reg0[3]`` → a FieldRef; None without ``[…]``."""
    m = _FIELD_REF.match(text)
    if not m:
        return None
    name = canonical(m.group(1))
    start = int(m.group(2)) if m.group(2) else 0
    end = int(m.group(3)) if m.group(3) else (start if m.group(2) else field_width(name) - 1)
    return FieldRef(name, start, end)


def _output(value: dict):
    port = value["port"]
    if isinstance(port, str):
        ref = parse_field_ref(port)
        if ref is not None:
            return Output(source=ref)
    return Output(port=_port(port))


# VLAN fields are views of vlan_tci (VID bits 0-11, PCP bits 13-15) that also set CFI.
_VLAN_VIEWS = {"vlan_vid": (0, 0xFFF), "dl_vlan": (0, 0xFFF), "vlan_pcp": (13, 0x7),
               "dl_vlan_pcp": (13, 0x7)}


def _vlan(name: str, raw) -> SetField:
    shift, bits = _VLAN_VIEWS[name]
    value = int(str(raw).split("/")[0], 0) & bits
    return SetField(FieldRef("vlan_tci", 0, 15), (value << shift) | 0x1000,
                    (bits << shift) | 0x1000)


def _set_field(value: dict):
    (name, val), = value["value"].items()
    if name in _VLAN_VIEWS:
        return _vlan(name, val)
    name = canonical(name)
    text = str(val)
    if name in COMPOSITES:
        v, _, m = text.partition("/")
        width = field_width(name)
        value_i = int(v, 0)
        mask_i = int(m, 0) if m else (1 << width) - 1
    else:
        value_i, mask_i = parse_value(FIELDS[name], text)
    return SetField(FieldRef(name, 0, field_width(name) - 1), value_i, mask_i)


def _load(value: dict):
    ref = _ref(value["dst"])
    mask = ((1 << ref.width) - 1) << ref.start
    return SetField(ref, (int(value["value"]) << ref.start) & mask, mask)


def _mod(name: str, target: str):
    def decode(value):
        f = FIELDS[target]
        v, m = parse_value(f, str(value))
        return SetField(FieldRef(target, 0, f.bits - 1), v, m)
    decode.__name__ = name
    return decode


def _nat(spec) -> Nat:
    if spec is True:
        return Nat(None)
    addrs = spec.get("addrs") or {}
    ports = spec.get("ports") or {}
    flags = tuple(k for k in ("random", "hash", "persistent") if spec.get(k))
    return Nat(spec.get("type"),
               str(addrs["start"]) if addrs else None, str(addrs["end"]) if addrs else None,
               ports.get("start"), ports.get("end"), flags)


def _ct(value: dict):
    zone = value.get("zone", 0)
    return Ct(commit=bool(value.get("commit")), force=bool(value.get("force")),
              zone=_ref(zone) if isinstance(zone, dict) else int(zone),
              table=value.get("table"), nat=_nat(value["nat"]) if "nat" in value else None,
              exec=tuple(_decode_list(value.get("exec", []))), alg=value.get("alg"))


def _controller(value):
    if value is True or value is None:
        return Controller()
    if not isinstance(value, dict):
        return Controller()
    raw = value.get("userdata", "")
    data = bytes(int(b, 16) for b in raw.split(".")) if raw else b""
    return Controller(userdata=data, pause=bool(value.get("pause")),
                      reason=value.get("reason"), meter_id=value.get("meter_id"),
                      max_len=value.get("max_len"))


_HASH_FIELDS = ("eth_src", "symmetric_l4", "symmetric_l3l4", "symmetric_l3l4+udp",
                "nw_src", "nw_dst", "symmetric_l3")


def _bundle(value: dict) -> Bundle:
    fields, algorithm = str(value["fields"]), str(value["algorithm"])
    if fields not in _HASH_FIELDS or algorithm not in ("active_backup", "hrw"):
        raise ValueError(f"bundle fields {fields!r} or algorithm {algorithm!r}")
    dst = value.get("dst")
    ref = (parse_field_ref(dst) if isinstance(dst, str) else _ref(dst)) if dst else None
    if dst and ref is None:
        raise ValueError(f"bundle_load destination {dst!r}")
    return Bundle(fields, int(value["basis"]), algorithm,
                  tuple(_port(m) for m in value["members"]), ref)


def _multipath(value: dict) -> Multipath:
    fields, algorithm = str(value["fields"]), str(value["algorithm"])
    if fields not in _HASH_FIELDS or algorithm not in ("modulo_n", "hash_threshold", "hrw",
                                                       "iter_hash"):
        raise ValueError(f"multipath fields {fields!r} or algorithm {algorithm!r}")
    return Multipath(fields, int(value["basis"]), algorithm, int(value["n_links"]),
                     int(value["arg"]), _ref(value["dst"]))


DECODERS = {
    "bundle": _bundle,
    "bundle_load": _bundle,
    "multipath": _multipath,
    "output": _output,
    "resubmit": lambda v: Resubmit(_port(v["port"]) if v.get("port") != "" else None,
                                   v.get("table"), bool(v.get("ct"))),
    "goto_table": lambda v: GotoTable(int(v)),
    "set_field": _set_field,
    "load": _load,
    "move": lambda v: Move(_ref(v["src"]), _ref(v["dst"])),
    "push": lambda v: Push(_ref(v)),
    "pop": lambda v: Pop(_ref(v)),
    "ct": _ct,
    "ct_clear": lambda v: Simple("ct_clear"),
    "dec_ttl": lambda v: Simple("dec_ttl"),
    "drop": lambda v: Simple("drop"),
    "exit": lambda v: Simple("exit"),
    "note": lambda v: Simple("note", v),
    "meter": lambda v: Simple("meter", v),
    "sample": lambda v: Simple("sample", v),
    # OVN's set_queue (QoS): the skb priority, which no forwarding decision reads
    "set_queue": lambda v: Simple("set_queue", v),
    "strip_vlan": lambda v: Simple("pop_vlan"),
    "pop_vlan": lambda v: Simple("pop_vlan"),
    "push_vlan": lambda v: PushVlan(int(v)),
    "group": lambda v: Group(int(v)),
    "clone": lambda v: Clone(tuple(_decode_list(v))),
    "learn": lambda v: Learn(tuple(v)),
    "controller": _controller,
    "check_pkt_larger": lambda v: CheckPktLarger(int(v["pkt_len"]), _ref(v["dst"])),
    "conjunction": lambda v: Conjunction(v["id"], v["k"], v["n"]),
    "mod_vlan_vid": lambda v: _vlan("vlan_vid", v),
    "mod_vlan_pcp": lambda v: _vlan("vlan_pcp", v),
    "mod_dl_src": _mod("mod_dl_src", "dl_src"),
    "mod_dl_dst": _mod("mod_dl_dst", "dl_dst"),
    "mod_nw_src": _mod("mod_nw_src", "nw_src"),
    "mod_nw_dst": _mod("mod_nw_dst", "nw_dst"),
    "mod_tp_src": _mod("mod_tp_src", "tp_src"),
    "mod_tp_dst": _mod("mod_tp_dst", "tp_dst"),
    "mod_nw_ttl": _mod("mod_nw_ttl", "nw_ttl"),
    "mod_nw_tos": _mod("mod_nw_tos", "nw_tos"),
    "mod_nw_ecn": _mod("mod_nw_ecn", "nw_ecn"),
}
# Output to a reserved port written without "output:".
for _name in ("NORMAL", "FLOOD", "ALL", "LOCAL", "IN_PORT"):
    DECODERS[_name.lower()] = (lambda n: lambda v: Output(port=SPECIAL_PORTS[n]))(_name)
    DECODERS[_name] = DECODERS[_name.lower()]
DECODERS["CONTROLLER"] = _controller


def _decode_one(key: str, value):
    decoder = DECODERS.get(key)
    if decoder is None:
        return Unknown(key, str(value))
    try:
        return decoder(value)
    except (FieldError, KeyError, ValueError, TypeError) as exc:
        return Unknown(key, f"{value} ({exc})")


def _decode_list(items) -> list:
    out = []
    for item in items:
        if isinstance(item, dict):
            for key, value in item.items():
                out.append(_decode_one(key, value))
        else:
            out.append(_decode_one(item.key, item.value))
    return out


@functools.lru_cache(maxsize=1 << 16)
def parse_actions(text: str) -> tuple:
    """Action text (after ``actions=``) → tuple of action records.

    Cached by text: the records are frozen, so one parse serves every flow with the same
    actions and every tracer of a process (a sweep or a replay makes one per
    conversation, and decoding was a fifth of its time).  Errors are not cached."""
    try:
        flow = OFPFlow(f"priority=0 actions={text}")
    except (ParseError, ValueError, KeyError, TypeError) as exc:
        raise ActionError(f"cannot parse actions {text!r}: {exc}") from None
    return tuple(_decode_list(flow.actions_kv))
