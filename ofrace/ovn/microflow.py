"""The packet to trace, written as the microflow a user already gives ``ovn-trace``.

A microflow is an OVN logical match expression that pins down one packet::

    inport == "lp1" && eth.src == 00:01:02:03:04:05 && ip4.src == 10.0.0.1 && tcp.dst == 80

This module turns it into canonical OpenFlow values (``ofrace.openflow.fields``)
so the simulator can start from the same packet ovn-trace would.  The rules
follow OVN's own (``lib/lex.c``, ``lib/expr.c``, ``lib/logical-fields.c``):

* Tokens: JSON-quoted strings; decimal (no leading zeros), ``0x`` hex, MAC
  (exactly ``xx:xx:xx:xx:xx:xx``), IPv4 and IPv6 constants; ``//`` and
  one-line ``/* */`` comments.  A token starting with hex letters is a
  constant only if a ``:`` follows them (``fe80::1``), else a name.
* Fields carry prerequisites (``tcp.dst`` needs ``tcp``, which needs ``ip``,
  which is ``ip4 || ip6``); a prerequisite that leaves a choice open is
  "ambiguous" unless other terms settle it, as in ovn-trace.  Terms that
  cannot hold together are "contradictory".
* A bare name is a predicate (``tcp``) or a 1-bit field meaning ``== 1``;
  wider fields need an explicit comparison.  Predicates may only be tested
  positively (``ip4 == 0`` is an error), 1-bit fields may be ``== 0``.
* A constant is too wide for a field by its written form: IPv4 literals are
  32 bits, MACs 48, IPv6 128, integers their bit length.

Stricter than ovn-trace, on purpose: every field gets one exact value, so
masks, sets, ranges, subfields, ``!``, ``!=``, ``<`` ... and ``||`` are
rejected (ovn-trace accepts those that normalise to a single conjunction and
zeroes the unconstrained bits); an address field only takes its own address
form or an integer (ovn-trace would read ``ip6.src == 1.2.3.4`` as
``::1.2.3.4``); conntrack state (``ct.*``) is not part of the packet, it is
given separately, like ovn-trace's ``--ct``.
"""

from __future__ import annotations

import difflib
import fnmatch
import ipaddress
import json
import re
from dataclasses import dataclass

from ofrace.errors import InputError
from ofrace.openflow.fields import ALIASES, COMPOSITES, FIELDS, split_composite

# --------------------------------------------------------------------------- tables


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
        # Logical flags live in reg10 (MFF_LOG_FLAGS); bits stable since OVN 23.03.
        F("flags", "int", 32, "reg10"),
        F("flags.loopback", "int", 1, "reg10", lsb=0),
        F("flags.force_snat_for_dnat", "int", 1, "reg10", lsb=2),
        F("flags.force_snat_for_lb", "int", 1, "reg10", lsb=3),
        F("flags.skip_snat_for_lb", "int", 1, "reg10", lsb=9),
        F("flags.use_snat_zone", "int", 1, "reg10", lsb=11),
    ]
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
    ("flags.*", "is not a flag ofrace knows (it follows OVN 23.03's flag bits)"),
)

_KIND_TAKES = {"int": "an integer", "mac": "a MAC address", "ipv4": "an IPv4 address",
               "ipv6": "an IPv6 address", "port": 'a quoted port name, e.g. "lp1"'}
# Address kinds: a field of one takes its own address form or a plain integer.
_ADDRESS_KINDS = frozenset({"mac", "ipv4", "ipv6"})

# --------------------------------------------------------------------------- results


class MicroflowError(InputError, ValueError):
    """A microflow ovn-trace would reject (or ofrace cannot pin down), with where."""

    def __init__(self, message: str, position: int, text: str = ""):
        message = " ".join(message.split())  # quoted terms may span lines
        super().__init__(message)
        self.message = message
        self.position = position
        self.text = text

    def caret(self) -> str:
        """The offending line and a ``^`` under the offending character."""
        line_start = self.text.rfind("\n", 0, self.position) + 1
        line_end = self.text.find("\n", self.position)
        line = self.text[line_start:] if line_end < 0 else self.text[line_start:line_end]
        # Keep tabs so the caret lines up however the terminal expands them.
        pad = "".join("\t" if ch == "\t" else " " for ch in line[: self.position - line_start])
        return f"{line}\n{pad}^"


@dataclass(frozen=True)
class Term:
    """One conjunct as written, kept so messages can quote and point at it."""

    name: str  # logical field or predicate
    value: int | str | None  # None for a bare predicate or 1-bit field
    start: int
    end: int
    value_start: int | None
    text: str


@dataclass(frozen=True)
class Microflow:
    """The packet a microflow describes, in canonical OpenFlow fields.

    ``fields`` includes what prerequisites imply (``tcp.dst`` gives
    ``nw_proto=6``); ``masks`` says which bits of each were stated, since
    subfields such as ``vlan.vid`` pin only part of a canonical field.
    """

    text: str
    inport: str | None
    outport: str | None
    fields: dict[str, int]
    masks: dict[str, int]
    terms: tuple[Term, ...]


# --------------------------------------------------------------------------- lexer


@dataclass(frozen=True)
class _Token:
    kind: str  # id | string | constant | mask | address_set | port_group | end | error | punct
    text: str
    start: int
    end: int
    value: object = None  # str for strings, _Constant for constants, message for errors


@dataclass(frozen=True)
class _Constant:
    value: int
    width: int  # OVN's "minimum reasonable width" of the written form
    form: str  # decimal | hex | mac | ipv4 | ipv6


_PUNCTUATION = ("<->", "==", "!=", "<=", ">=", "&&", "||", "..", "--",
                "(", ")", "{", "}", "[", "]", ",", ";", ":", "=", "!", "<", ">", "-")
_STRAY = {"&": "`&` is only valid as part of `&&`", "|": "`|` is only valid as part of `||`",
          ".": "`.` is only valid as part of `..` or a number",
          "/": "`/` is only valid after a constant (a mask) or as `//` or `/*`"}
_HEX = set("0123456789abcdefABCDEF")
_MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")


def _is_alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def _is_name_char(ch: str, first: bool = False) -> bool:
    """OVN's identifier characters: letters, ``_`` and ``.``, then digits too."""
    return len(ch) == 1 and ch.isascii() and (
        ch.isalpha() or ch in "_." or (not first and ch.isdigit()))


def _constant_end(text: str, i: int) -> int:
    """Where a constant starting at ``i`` ends, by OVN's rule: alphanumerics,
    ``:`` until a ``.`` is seen (so ``1.2.3.4:80`` splits), ``.`` unless ``..``."""
    saw_dot = False
    while i < len(text):
        ch = text[i]
        if ch == "." and text[i + 1:i + 2] != ".":
            saw_dot = True
        elif not (_is_alnum(ch) or (ch == ":" and not saw_dot)):
            break
        i += 1
    return i


def _decode_constant(raw: str) -> _Constant | str:
    """A constant's value and width, or why it is not one."""
    if len(raw) == 17 and _MAC.fullmatch(raw):
        return _Constant(int(raw.replace(":", ""), 16), 48, "mac")
    if raw.isdigit():
        if raw[0] == "0" and len(raw) > 1:
            return "decimal constants must not have leading zeros"
        if len(raw) > 20:  # 2**64 has 20 digits; int() of thousands of digits refuses
            return "decimal constants must be less than 2**64"
        value = int(raw)
        if value >= 1 << 64:
            return "decimal constants must be less than 2**64"
        return _Constant(value, value.bit_length(), "decimal")
    if raw[:2] in ("0x", "0X"):
        digits = raw[2:]
        if not digits:
            return f"hex digits expected after {raw}"
        if not set(digits) <= _HEX:
            return "invalid syntax in hexadecimal constant"
        if len(digits.lstrip("0")) > 32:
            return "hexadecimal constant requires more than 128 bits"
        value = int(digits, 16)
        if value >= 1 << 128:
            return "hexadecimal constant requires more than 128 bits"
        return _Constant(value, value.bit_length(), "hex")
    for form, parse, width in (("ipv4", ipaddress.IPv4Address, 32),
                               ("ipv6", ipaddress.IPv6Address, 128)):
        try:
            return _Constant(int(parse(raw)), width, form)
        except ValueError:
            pass
    return f"invalid numeric constant `{raw}`"


def _tokenize(text: str) -> list[_Token]:
    """All tokens, ending with ``end``; a lexical error becomes an ``error``
    token so it is reported only if the parser gets that far (as OVN does)."""
    tokens: list[_Token] = []
    i = 0

    def error(start: int, message: str) -> list[_Token]:
        tokens.append(_Token("error", text[start:start + 1], start, start + 1, message))
        return tokens

    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            tokens.append(_Token("end", "", len(text), len(text)))
            return tokens
        ch, start = text[i], i
        if text.startswith("//", i):
            newline = text.find("\n", i)
            i = len(text) if newline < 0 else newline
            continue
        if text.startswith("/*", i):
            close = text.find("*/", i + 2)
            if close < 0 or "\n" in text[i:close]:
                return error(start, "`/*` without matching `*/` on the same line")
            i = close + 2
            continue
        if ch == "/" and tokens and tokens[-1].kind == "constant" and tokens[-1].end == i:
            tokens.append(_Token("mask", "/", i, i + 1))
            i += 1
            continue
        hex_run = i
        while hex_run < len(text) and text[hex_run] in _HEX:
            hex_run += 1
        if ch in "0123456789" or text.startswith("::", i) or (
                ch in _HEX and text[hex_run:hex_run + 1] == ":"):
            i = _constant_end(text, i)
            decoded = _decode_constant(text[start:i])
            if isinstance(decoded, str):
                return error(start, decoded)
            tokens.append(_Token("constant", text[start:i], start, i, decoded))
            continue
        if ch == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            if i >= len(text):
                return error(start, "input ends inside a quoted string")
            i += 1
            try:
                tokens.append(_Token("string", text[start:i], start, i, json.loads(text[start:i])))
            except ValueError:
                return error(start, "invalid escape in quoted string")
            continue
        if ch in "$@" or (_is_name_char(ch, first=True) and ch != "."):
            i += 1 if ch in "$@" else 0
            if not _is_name_char(text[i:i + 1], first=True):
                return error(start, f"`{ch}` must be followed by a name")
            while i < len(text) and _is_name_char(text[i]):
                i += 1
            kind = {"$": "address_set", "@": "port_group"}.get(ch, "id")
            tokens.append(_Token(kind, text[start:i], start, i))
            continue
        punct = next((p for p in _PUNCTUATION if text.startswith(p, i)), None)
        if punct is None:
            return error(start, _STRAY.get(ch, f"invalid character `{ch}`"))
        i += len(punct)
        tokens.append(_Token(punct, punct, start, i))


# --------------------------------------------------------------------------- expansion

# Canonical field -> (value, mask): the bits a term or alternative pins down.
Bits = dict[str, tuple[int, int]]
# One way a term can hold, with the names of the alternatives taken to get there.
_Choice = tuple[Bits, tuple[str, ...]]


def _merge(a: Bits, b: Bits) -> Bits | None:
    """Both sets of bits at once, or None if they disagree somewhere."""
    merged = dict(a)
    for name, (value, mask) in b.items():
        old_value, old_mask = merged.get(name, (0, 0))
        if (old_value ^ value) & old_mask & mask:
            return None
        merged[name] = (old_value | value, old_mask | mask)
    return merged


def _combine(left: list[_Choice], right: list[_Choice]) -> list[_Choice]:
    out = []
    for left_bits, left_labels in left:
        for right_bits, right_labels in right:
            merged = _merge(left_bits, right_bits)
            if merged is not None:
                out.append((merged, left_labels + right_labels))
    return out


def _common(choices: list[_Choice]) -> Bits:
    """The fields every choice pins identically.  Whole fields only: the bits
    0x0800 and 0x86dd share are no reason to blame ``eth.type`` on a term."""
    first = choices[0][0]
    return {name: pinned for name, pinned in first.items()
            if all(bits.get(name) == pinned for bits, _ in choices[1:])}


def _field_bits(field: LogicalField, value: int) -> Bits:
    mask = ((1 << field.width) - 1) << field.lsb
    value <<= field.lsb
    if field.target in COMPOSITES:
        return {reg: (v, m) for reg, v, m in split_composite(field.target, value, mask)}
    return {field.target: (value, mask)}


def _field_choices(field: LogicalField, value: int) -> list[_Choice]:
    choices: list[_Choice] = [(_field_bits(field, value), ())]
    if field.requires:
        choices = _combine(choices, _name_choices(field.requires))
    return choices


def _name_choices(name: str) -> list[_Choice]:
    """What a bare name stands for: a predicate, or a 1-bit field equal to 1."""
    predicate = PREDICATES.get(name)
    if predicate is None:
        return _field_choices(LOGICAL_FIELDS[name], 1)
    choices: list[_Choice] = [({}, ())]
    for field_name, value in predicate.sets:
        choices = _combine(choices, _field_choices(LOGICAL_FIELDS[field_name], value))
    for other in predicate.also:
        choices = _combine(choices, _name_choices(other))
    if predicate.any_of:
        options = [(bits, (option,) + labels)
                   for option in predicate.any_of for bits, labels in _name_choices(option)]
        choices = _combine(choices, options)
    return choices


def _describe(choices: list[_Choice]) -> str:
    """Name the alternatives left open, e.g. ``ip4 or ip6``."""
    shared = set.intersection(*(set(labels) for _, labels in choices))
    names = [next((label for label in labels if label not in shared), "?")
             for _, labels in choices]
    return " or ".join(dict.fromkeys(names))


# --------------------------------------------------------------------------- parser

_REJECTED = {
    "||": "`||` is not allowed: a microflow is one packet, so it is a conjunction (`&&`) "
          "of exact values",
    "!": "`!` is not allowed: a microflow states what the packet is "
         "(for a 1-bit field, write `field == 0`)",
    "mask": "masks are not allowed: a microflow needs exact values, so give the whole value "
            "without `/`",
    "{": "value sets `{...}` are not allowed: a microflow needs one exact value per field",
    "[": "subfields `field[...]` are not allowed: give the whole field's exact value",
    "..": "ranges are not allowed: a microflow needs one exact value per field",
    "address_set": "address sets (`$name`) are not allowed: give the exact address",
    "port_group": "port groups (`@name`) are not allowed: give the exact port name",
    "=": "use `==` to compare (`=` assigns, in OVN actions)",
}
for _op in ("!=", "<", "<=", ">", ">="):
    _REJECTED[_op] = (f"`{_op}` is not allowed: a microflow needs every field pinned to "
                      "one exact value, so use `==`")


MAX_PAREN_DEPTH = 32  # OVN's limit too


class _Parser:
    """Recursive descent over ``term (&& term)*`` with optional parentheses,
    applying each term's bits as it goes so conflicts point at the later term."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.terms: list[Term] = []
        self.ports: dict[str, tuple[str, Term]] = {}
        self.bits: Bits = {}
        self.sources: list[tuple[str, int, Term]] = []  # canonical field, mask, who set it
        self.pending: list[tuple[Term, list[_Choice]]] = []
        self.depth = 0

    # -- tokens

    def error(self, message: str, position: int) -> MicroflowError:
        return MicroflowError(message, position, self.text)

    def peek(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind == "error":
            raise self.error(str(token.value), token.start)
        return token

    def take(self) -> _Token:
        token = self.peek()
        self.index += 1
        return token

    def unexpected(self, token: _Token, expecting: str) -> MicroflowError:
        if token.kind in _REJECTED:
            return self.error(_REJECTED[token.kind], token.start)
        if token.kind == "end":
            return self.error(f"{expecting}, but the expression ends here", token.start)
        return self.error(f"{expecting}, not `{token.text}`", token.start)

    # -- grammar

    def parse(self) -> Microflow:
        self.conjunction()
        token = self.peek()
        if token.kind == ")":
            raise self.error("`)` without a matching `(`", token.start)
        if token.kind != "end":
            raise self.unexpected(token, "expecting `&&` between terms")
        if self.pending:
            term, choices = self.pending[0]
            raise self.error(
                f"`{term.text}` is ambiguous without {_describe(choices)}: add one of them, "
                "or a field that implies it (ovn-trace needs the same)", term.start)
        return Microflow(
            text=self.text,
            inport=self.ports["inport"][0] if "inport" in self.ports else None,
            outport=self.ports["outport"][0] if "outport" in self.ports else None,
            fields={name: value for name, (value, _) in self.bits.items()},
            masks={name: mask for name, (_, mask) in self.bits.items()},
            terms=tuple(self.terms))

    def conjunction(self) -> None:
        self.primary()
        while self.peek().kind == "&&":
            self.take()
            self.primary()

    def primary(self) -> None:
        token = self.peek()
        if token.kind == "(":
            if self.depth >= MAX_PAREN_DEPTH:
                raise self.error("parentheses nested too deeply", token.start)
            self.take()
            self.depth += 1
            self.conjunction()
            self.depth -= 1
            if self.peek().kind != ")":
                raise self.unexpected(
                    self.peek(), f"expecting `)` to close the `(` at character {token.start}")
            self.take()
        elif token.kind == "id":
            self.field_first()
        elif token.kind == "constant":
            self.constant_first()
        else:
            raise self.unexpected(token, "expecting a field name")

    def field_first(self) -> None:
        name_token = self.take()
        self.check_name(name_token)
        operator = self.peek()
        if operator.kind == "==":
            self.take()
            value_token = self.value(name_token.text)
            self.compare(name_token, value_token, name_token.start, value_token.end)
        elif operator.kind in _REJECTED:
            raise self.unexpected(operator, "")
        elif operator.kind in ("constant", "string"):
            raise self.error(f"expecting `==` between {name_token.text} and its value",
                             operator.start)
        else:
            self.bare(name_token)

    def constant_first(self) -> None:
        """``80 == tcp.dst``: OVN lets the constant come first."""
        value_token = self.take()
        if self.peek().kind != "==":
            raise self.unexpected(self.peek(), "expecting `==` after a constant")
        self.take()
        name_token = self.peek()
        if name_token.kind != "id":
            raise self.unexpected(name_token, "expecting a field name after `==`")
        self.take()
        self.check_name(name_token)
        self.compare(name_token, value_token, value_token.start, name_token.end)

    def value(self, field_name: str) -> _Token:
        token = self.peek()
        field = LOGICAL_FIELDS.get(field_name)
        if token.kind == "id" and field is not None and field.kind == "port":
            raise self.error(f'port names must be quoted: {field_name} == "{token.text}"',
                             token.start)
        if token.kind not in ("constant", "string"):
            raise self.unexpected(token, f"expecting a value after `{field_name} ==`")
        self.take()
        if self.peek().kind == "mask":
            raise self.unexpected(self.peek(), "")
        return token

    # -- names and values

    def check_name(self, token: _Token) -> None:
        name = token.text
        if name in LOGICAL_FIELDS or name in PREDICATES:
            return
        for pattern, reason in NOT_IN_MICROFLOW:
            if fnmatch.fnmatchcase(name, pattern):
                raise self.error(f"{name} {reason}", token.start)
        raise self.error(_unknown_name_message(name), token.start)

    def bare(self, token: _Token) -> None:
        name = token.text
        field = LOGICAL_FIELDS.get(name)
        if field is not None and field.kind == "port":
            raise self.error(f'{name} needs a value, e.g. {name} == "lp1"', token.start)
        if field is not None and field.width != 1:
            raise self.error(f"{name} is {field.width} bits wide, so it cannot stand alone "
                             f"(only 1-bit fields can): write {name} == VALUE", token.start)
        term = self.add_term(name, None, token.start, token.end, None)
        self.apply(term, _name_choices(name))

    def compare(self, name_token: _Token, value_token: _Token, start: int, end: int) -> None:
        name = name_token.text
        if name in PREDICATES:
            constant = value_token.value
            if value_token.kind != "constant" or constant.form not in ("decimal", "hex") \
                    or constant.value > 1:
                raise self.error(f"{name} is a predicate: compare it only with 1",
                                 value_token.start)
            if constant.value == 0:
                raise self.error(f"{name} may only be tested positively, as `{name}` or "
                                 f"`{name} == 1`", value_token.start)
            term = self.add_term(name, 1, start, end, value_token.start)
            self.apply(term, _name_choices(name))
            return
        field = LOGICAL_FIELDS[name]
        if field.kind == "port":
            if value_token.kind != "string":
                raise self.error(f"{name} takes {_KIND_TAKES['port']}", value_token.start)
            term = self.add_term(name, value_token.value, start, end, value_token.start)
            self.set_port(term)
            return
        if value_token.kind != "constant":
            raise self.error(f"{name} takes {_KIND_TAKES[field.kind]}, not a string",
                             value_token.start)
        constant: _Constant = value_token.value
        if {constant.form, field.kind} <= _ADDRESS_KINDS and constant.form != field.kind:
            raise self.error(f"{name} takes {_KIND_TAKES[field.kind]} (or an integer), "
                             f"not `{value_token.text}`", value_token.start)
        if constant.width > field.width:
            raise self.error(f"`{value_token.text}` is {constant.width} bits wide; {name} "
                             f"holds {field.width} (at most {(1 << field.width) - 1})",
                             value_token.start)
        term = self.add_term(name, constant.value, start, end, value_token.start)
        self.apply(term, _field_choices(field, constant.value))

    def add_term(self, name: str, value: int | str | None, start: int, end: int,
                 value_start: int | None) -> Term:
        term = Term(name, value, start, end, value_start, self.text[start:end])
        self.terms.append(term)
        return term

    # -- constraints

    def set_port(self, term: Term) -> None:
        previous = self.ports.get(term.name)
        if previous is not None and previous[0] != term.value:
            raise self.error(f"`{term.text}` contradicts `{previous[1].text}`", term.start)
        self.ports.setdefault(term.name, (term.value, term))

    def conflict(self, bits: Bits) -> tuple[str, Term] | None:
        """The first term whose bits disagree with ``bits``, if any."""
        for name, (value, mask) in bits.items():
            old_value, old_mask = self.bits.get(name, (0, 0))
            differ = (old_value ^ value) & old_mask & mask
            if differ:
                source = next(t for n, m, t in self.sources if n == name and m & differ)
                return name, source
        return None

    def add_bits(self, bits: Bits, term: Term) -> None:
        merged = _merge(self.bits, bits)
        assert merged is not None, "callers check conflict() first"
        self.bits = merged
        self.sources += [(name, mask, term) for name, (_, mask) in bits.items()]

    def apply(self, term: Term, choices: list[_Choice]) -> None:
        certain = _common(choices)
        clash = self.conflict(certain)
        if clash is not None:
            name, earlier = clash
            raise self.error(f"`{term.text}` contradicts `{earlier.text}` (both set {name})",
                             term.start)
        self.add_bits(certain, term)
        if len(choices) > 1:
            self.pending.append((term, choices))
        self.settle(term)

    def settle(self, current: Term) -> None:
        """Apply any open choice the terms so far leave a single way to make hold."""
        progress = True
        while progress:
            progress = False
            for entry in list(self.pending):
                owner, choices = entry
                possible = [c for c in choices if self.conflict(c[0]) is None]
                if len(possible) > 1:
                    continue
                if not possible:
                    raise self.contradiction(current, owner, choices)
                self.pending.remove(entry)
                self.add_bits(possible[0][0], owner)
                progress = True

    def contradiction(self, current: Term, owner: Term,
                      choices: list[_Choice]) -> MicroflowError:
        needs = _describe(choices)
        if owner is current:
            _, earlier = self.conflict(choices[0][0])
            message = f"`{owner.text}` needs {needs}, which contradicts `{earlier.text}`"
        else:
            message = f"`{current.text}` contradicts `{owner.text}`, which needs {needs}"
        return self.error(message, current.start)


def _unknown_name_message(name: str) -> str:
    """Explain an unknown name: an OpenFlow spelling, a typo, or neither."""
    canonical = ALIASES.get(name, name)
    if canonical in FIELDS or canonical in COMPOSITES:
        logical = [f.name for f in LOGICAL_FIELDS.values()
                   if f.target == canonical and f.width > 1]
        if logical:
            return (f"{name} is an OpenFlow field name; in OVN's match language write "
                    f"{' or '.join(logical)}")
    known = list(LOGICAL_FIELDS) + list(PREDICATES)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if close:
        return f"unknown field {name}; did you mean {' or '.join(close)}?"
    return f"unknown field {name}"


def parse_microflow(text: str) -> Microflow:
    """Parse an ovn-trace microflow into canonical OpenFlow values.

    Raises ``MicroflowError`` (a ``ValueError``) with the position of the
    offending character; its ``caret()`` shows where.
    """
    return _Parser(text).parse()
