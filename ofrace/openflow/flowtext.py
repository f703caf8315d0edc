"""Read flow lines as ``ovs-ofctl dump-flows`` prints them, fast.

Big chassis carry 200k–400k flows, so this is the hot path of indexing: a
line is split once, and each ``key=value`` match token is parsed once per
distinct spelling and then served from a cache (OVN repeats the same
tokens — ``metadata=0x5``, ``reg15=0x3``, ``ip`` — across thousands of
flows).  Actions stay text here; ``ofrace.openflow.actions`` parses them
only for flows a trace actually hits.
"""

from __future__ import annotations

from dataclasses import dataclass

from ofrace.openflow.fields import (
    COMPOSITES,
    FIELDS,
    PROTOCOLS,
    FieldError,
    canonical,
    parse_value,
    split_composite,
)

DEFAULT_PRIORITY = 32768
# Items of the ", "-separated head of a dump-flows line that are not matches.
HEADER_KEYS = frozenset({
    "cookie", "duration", "table", "n_packets", "n_bytes", "idle_timeout", "hard_timeout",
    "idle_age", "hard_age", "importance", "send_flow_rem", "check_overlap", "reset_counts",
    "no_packet_counts", "no_byte_counts", "out_port", "out_group",
})

MatchItems = tuple[tuple[str, int, int], ...]


class FlowSyntaxError(ValueError):
    """A flow line this parser cannot read; the flow is kept raw and reported."""


@dataclass(frozen=True, slots=True)
class ParsedFlow:
    table: int
    priority: int
    cookie: int
    match: MatchItems
    actions: str
    timeouts: tuple[int, int] = (0, 0)


class TokenCache:
    """Parsed match tokens, shared by every flow of a bridge."""

    def __init__(self, ports: dict[str, int] | None = None):
        self.ports = ports or {}
        self._cache: dict[str, tuple] = {}

    def items(self, token: str) -> tuple:
        """``((field, value, mask), …)`` for one token, or ``("priority", n)``."""
        hit = self._cache.get(token)
        if hit is None:
            hit = self._cache[token] = self._parse(token)
        return hit

    def _parse(self, token: str) -> tuple:
        key, eq, text = token.partition("=")
        if not eq:
            if key in PROTOCOLS:
                return tuple((f, v, FIELDS[f].full) for f, v in PROTOCOLS[key])
            raise FlowSyntaxError(f"unknown match keyword {key!r}")
        if key == "priority":
            return (("priority", int(text)),)
        if key in ("dl_vlan", "vlan_vid"):
            vid = int(text, 0)
            if key == "dl_vlan" and vid == 0xFFFF:
                return (("vlan_tci", 0, 0xFFFF),)
            return (("vlan_tci", 0x1000 | (vid & 0xFFF), 0x1FFF),)
        if key in ("dl_vlan_pcp", "vlan_pcp"):
            pcp = int(text, 0)
            return (("vlan_tci", 0x1000 | (pcp << 13), 0xF000),)
        try:
            name = canonical(key)
            if name in COMPOSITES:
                width = 32 * len(COMPOSITES[name])
                full = (1 << width) - 1
                value_text, slash, mask_text = text.partition("/")
                value = int(value_text, 0)
                mask = int(mask_text, 0) if slash else full
                return tuple(split_composite(name, value & mask, mask))
            value, mask = parse_value(FIELDS[name], text, self.ports)
        except FieldError as exc:
            raise FlowSyntaxError(str(exc)) from None
        return ((name, value, mask),)


def split_line(line: str) -> tuple[str, str, str]:
    """``(head items, match, actions)`` text of one dump-flows line."""
    line = line.strip()
    head, sep, actions = line.partition(" actions=")
    if not sep:
        if line.startswith("actions="):
            return "", "", line[8:]
        raise FlowSyntaxError("no actions= in flow line")
    if head.endswith(","):
        return head[:-1], "", actions
    hdr, _, last = head.rpartition(", ")
    first_key = last.split("=", 1)[0].split(",", 1)[0]
    if first_key in HEADER_KEYS and "," not in last:
        return head, "", actions
    return hdr, last, actions


def parse_flow(line: str, cache: TokenCache) -> ParsedFlow:
    """One dump-flows line → table, priority, cookie, canonical match, action text."""
    hdr, match_text, actions = split_line(line)
    table = cookie = idle = hard = 0
    if hdr:
        for item in hdr.split(", "):
            key, _, value = item.partition("=")
            if key == "table":
                table = int(value)
            elif key == "cookie":
                cookie = int(value.split("/")[0], 0)
            elif key == "idle_timeout":
                idle = int(value)
            elif key == "hard_timeout":
                hard = int(value)
    priority = DEFAULT_PRIORITY
    merged: dict[str, list[int]] = {}
    if match_text:
        for token in match_text.split(","):
            for item in cache.items(token):
                name = item[0]
                if name == "priority":
                    priority = item[1]
                    continue
                known = merged.get(name)
                if known is None:
                    merged[name] = [item[1], item[2]]
                else:
                    known[0] |= item[1]
                    known[1] |= item[2]
    match = tuple(sorted((name, vm[0], vm[1]) for name, vm in merged.items()))
    return ParsedFlow(table, priority, cookie, match, actions, (idle, hard))


def parse_microflow(text: str, ports: dict[str, int] | None = None) -> dict[str, int]:
    """An OVS flow string (``in_port=1,tcp,nw_src=…``) → a packet's field values.

    This is what ``ofproto/trace`` takes; masks are not allowed, as a packet
    has exact values.
    """
    cache = TokenCache(ports)
    packet: dict[str, int] = {}
    for token in filter(None, (t.strip() for t in text.split(","))):
        for item in cache.items(token):
            if item[0] == "priority":
                raise FlowSyntaxError("a packet has no priority")
            name, value, mask = item
            packet[name] = (packet.get(name, 0) & ~mask) | value
    return packet
