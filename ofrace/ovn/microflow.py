"""The packet to trace, written as the microflow a user already gives ``ovn-trace``.

A microflow is an OVN logical match expression that pins down one packet::

    inport == "lp1" && eth.src == 00:01:02:03:04:05 && ip4.src == 192.0.2.1 && tcp.dst == 80

This module, the parser (:mod:`ofrace.ovn.lexer` makes its tokens,
:mod:`ofrace.ovn.logical_fields` names its fields), turns it into canonical
OpenFlow values (``ofrace.openflow.fields``) so the simulator can start from
the same packet ovn-trace would.  The rules follow OVN's own
(``lib/lex.c``, ``lib/expr.c``, ``lib/logical-fields.c``):

* Tokens: see :mod:`ofrace.ovn.lexer`.
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
from dataclasses import dataclass

from ofrace.errors import InputError
from ofrace.openflow.fields import ALIASES, COMPOSITES, FIELDS, split_composite
from ofrace.openflow.frames import DHCP_TYPES, DHCPV6_TYPES, DNS_TYPES
from ofrace.ovn.lexer import Constant, Token, tokenize
from ofrace.ovn.logical_fields import (
    ADDRESS_KINDS,
    KIND_TAKES,
    LOGICAL_FIELDS,
    NOT_IN_MICROFLOW,
    PREDICATES,
    LogicalField,
)

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
        self.tokens = tokenize(text)
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

    def peek(self) -> Token:
        token = self.tokens[self.index]
        if token.kind == "error":
            raise self.error(str(token.value), token.start)
        return token

    def take(self) -> Token:
        token = self.peek()
        self.index += 1
        return token

    def unexpected(self, token: Token, expecting: str) -> MicroflowError:
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

    def value(self, field_name: str) -> Token:
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

    def check_name(self, token: Token) -> None:
        name = token.text
        if name in LOGICAL_FIELDS or name in PREDICATES:
            return
        for pattern, reason in NOT_IN_MICROFLOW:
            if fnmatch.fnmatchcase(name, pattern):
                raise self.error(f"{name} {reason}", token.start)
        raise self.error(_unknown_name_message(name), token.start)

    def bare(self, token: Token) -> None:
        name = token.text
        field = LOGICAL_FIELDS.get(name)
        if field is not None and field.kind == "port":
            raise self.error(f'{name} needs a value, e.g. {name} == "lp1"', token.start)
        if field is not None and field.width != 1:
            raise self.error(f"{name} is {field.width} bits wide, so it cannot stand alone "
                             f"(only 1-bit fields can): write {name} == VALUE", token.start)
        term = self.add_term(name, None, token.start, token.end, None)
        self.apply(term, _name_choices(name))

    def compare(self, name_token: Token, value_token: Token, start: int, end: int) -> None:
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
                raise self.error(f"{name} takes {KIND_TAKES['port']}", value_token.start)
            term = self.add_term(name, value_token.value, start, end, value_token.start)
            self.set_port(term)
            return
        if value_token.kind != "constant":
            raise self.error(f"{name} takes {KIND_TAKES[field.kind]}, not a string",
                             value_token.start)
        constant: Constant = value_token.value
        if {constant.form, field.kind} <= ADDRESS_KINDS and constant.form != field.kind:
            raise self.error(f"{name} takes {KIND_TAKES[field.kind]} (or an integer), "
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


# --------------------------------------------------------------------------- DHCP bodies

# What a DHCP/DHCPv6 client's request carries outside its body, by IP version: from the
# unconfigured client (0.0.0.0 to broadcast; DHCPv6 from its link-local address to
# All_DHCP_Relay_Agents_and_Servers, RFC 8415 §7.1), UDP client port to server port.
DHCP_CLIENT = {
    4: {"dl_dst": 0xFFFFFFFFFFFF, "dl_type": 0x0800, "nw_src": 0, "nw_dst": 0xFFFFFFFF,
        "nw_proto": 17, "nw_ttl": 64, "tp_src": 68, "tp_dst": 67},
    6: {"dl_dst": 0x333300010002, "dl_type": 0x86DD,
        "ipv6_dst": 0xFF020000000000000000000000010002, "nw_proto": 17, "nw_ttl": 1,
        "tp_src": 546, "tp_dst": 547},
}


# The message types a client sends (``--dhcp``, ``--dhcpv6``).
DHCP_REQUESTS = ("discover", "request", "decline", "release", "inform")
DHCPV6_REQUESTS = ("solicit", "request", "confirm", "renew", "rebind", "release", "decline",
                   "information-request")


def dhcp_message(kind: str, version: int) -> int:
    """The message type a ``--dhcp``/``--dhcpv6`` name stands for (the packet's
    ``dhcp_msg``, which ``ofrace.openflow.frames.encode`` writes into the body)."""
    names = DHCP_TYPES if version == 4 else DHCPV6_TYPES
    number = names.get(kind.lower())
    if number is None:
        flag = "--dhcp" if version == 4 else "--dhcpv6"
        raise InputError(f"{flag} {kind!r}: not a message type (one of {', '.join(names)})")
    return number


def dhcp_request_fields(kind: str, version: int, mac: int, fields: dict | None = None) -> dict:
    """The fields of a DHCP (``version`` 4) or DHCPv6 (6) request of type ``kind`` from
    the port with ``mac``: a microflow's ``fields`` (which must be that protocol's
    client-to-server UDP, if it says ports) kept, the rest filled in as a client sends it."""
    base = dict(DHCP_CLIENT[version], dl_src=mac)
    if version == 6:
        base["ipv6_src"] = link_local(mac)
    given = dict(fields or {})
    ports = (base["tp_src"], base["tp_dst"])
    said = (given.get("tp_src", ports[0]), given.get("tp_dst", ports[1]))
    if said != ports or given.get("nw_proto", 17) != 17:
        raise InputError(f"{'--dhcp' if version == 4 else '--dhcpv6'} needs a UDP packet "
                         f"from port {ports[0]} to {ports[1]}")
    return {**base, **given, "dhcp_msg": dhcp_message(kind, version)}


def link_local(mac: int) -> int:
    """fe80::/64 with the modified EUI-64 interface id of ``mac`` (RFC 4291 App. A)."""
    eui = ((mac >> 24) << 40) | (0xFFFE << 24) | (mac & 0xFFFFFF)
    return (0xFE80 << 112) | (eui ^ (0x02 << 56))


def dns_question(text: str) -> tuple[str, int]:
    """``NAME[:TYPE]`` (``--dns``) as the query's (name, type); TYPE a, aaaa, any or ptr."""
    name, _, kind = text.partition(":")
    qtype = DNS_TYPES.get((kind or "a").lower())
    if not name or qtype is None or len(name) > 253 or any(
            not 0 < len(label) < 64 for label in name.rstrip(".").split(".")):
        raise InputError(f"--dns {text!r}: give NAME[:TYPE], TYPE one of "
                         f"{', '.join(DNS_TYPES)}")
    return name, qtype
