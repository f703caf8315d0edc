"""Read flow lines as ``ovs-ofctl dump-flows`` prints them, fast.

Big chassis carry 200k–400k flows, so this is the hot path of indexing: a
line is split once, and each ``key=value`` match token is parsed once per
distinct spelling and then served from a cache (OVN repeats the same
tokens — ``metadata=0x5``, ``reg3=0x3``, ``ip`` — across thousands of
flows).  Actions stay text here; ``ofrace.openflow.actions`` parses them
only for flows a trace actually hits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import compress, repeat
from operator import contains, itemgetter, methodcaller

from ofrace.openflow.fields import (
    ALIASES,
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
# The clauses of a conjunctive flow's actions: conjunction(id,clause/n_clauses).
CONJUNCTION = re.compile(r"conjunction\((\d+),(\d+)/(\d+)\)")


class FlowSyntaxError(ValueError):
    """A flow line this parser cannot read; the flow is kept raw and reported."""


@dataclass(frozen=True, slots=True)
class ParsedFlow:
    table: int
    priority: int
    cookie: int
    match: MatchItems
    actions: str


class TokenCache:
    """Parsed match tokens, shared by every flow of a bridge.

    A token maps to ``(shape, values)``: the ``(field, mask)`` pairs it
    constrains and their values, ready to be concatenated into a flow's
    subtable shape and key; or to ``(None, priority)`` for ``priority=N``.
    """

    def __init__(self, ports: dict[str, int] | None = None):
        self.ports = ports or {}
        self.parts: dict[str, tuple] = {}
        # No cache of whole match strings: on the scale lab 199,530 of 261,068
        # matches are distinct, and keeping them cost more than it saved.
        self.readers: dict[str, object] = {}
        self.conjunctions: dict[str, tuple] = {}  # conjunction actions text -> clauses

    def part(self, token: str) -> tuple:
        hit = self.parts.get(token)
        if hit is None:
            key, eq, text = token.partition("=")
            reader = self.readers.get(key, _UNSET)
            if reader is _UNSET:
                reader = self.readers[key] = plain_reader(key)
            if reader is not None and eq and "/" not in text:
                try:
                    hit = reader(text)
                except ValueError:
                    hit = None
            if hit is not None:
                self.parts[token] = hit
                return hit
            items = self._parse(token)
            if items and items[0][0] == "priority":
                hit = (None, items[0][1])
            else:
                hit = (tuple((f, m) for f, _, m in items), tuple(v for _, v, _ in items))
            self.parts[token] = hit
        return hit

    def items(self, token: str) -> tuple:
        """``((field, value, mask), …)`` for one token, or ``(("priority", n),)``."""
        shape, values = self.part(token)
        if shape is None:
            return (("priority", values),)
        return tuple((f, v, m) for (f, m), v in zip(shape, values, strict=True))

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
        except (FieldError, ValueError) as exc:
            raise FlowSyntaxError(str(exc)) from None
        return ((name, value, mask),)


_UNSET = object()


def _read_mac(text: str) -> int:
    if len(text) != 17 or text[2::3] != ":::::":
        raise ValueError(text)
    return int(text.replace(":", ""), 16)


def _read_ipv4(text: str) -> int:
    if not text.replace(".", "").isdigit():
        raise ValueError(text)
    a, b, c, d = (int(x) for x in text.split("."))
    if (a | b | c | d) > 255:
        raise ValueError(text)
    return (a << 24) | (b << 16) | (c << 8) | d


_PLAIN_READERS = {"int": lambda text: int(text, 0), "mac": _read_mac, "ipv4": _read_ipv4}


def plain_reader(key: str):
    """A fast ``text -> (shape, values)`` for unmasked values of ``key``, or None when
    the key needs the full parser (protocol names, composites, flags, VLANs)."""
    if key == "priority":
        return lambda text: (None, int(text))
    name = ALIASES.get(key, key)
    field = FIELDS.get(name)
    if field is None or key.startswith(("dl_vlan", "vlan_")):
        return None
    read = _PLAIN_READERS.get("int" if field.kind == "port" else field.kind)
    if read is None:
        return None
    shape, full = ((name, field.full),), field.full

    def reader(text: str) -> tuple:
        if field.kind == "port" and not text[:1].isdigit():
            raise ValueError(text)
        value = read(text)
        if value < 0:
            raise ValueError(text)
        return shape, (value & full,)

    return reader


def scan_line(line: str, cache: TokenCache) -> tuple[int, int, tuple, tuple, int]:
    """``(table, priority, shape, values, actions_offset)`` of one line.

    ``shape`` is the tuple of ``(field, mask)`` the flow matches, in printed
    order, ``values`` the masked values; ``line[actions_offset:]`` is the
    action text, left unparsed.
    """
    t = table_at(line)
    table = int(line[t + 6:line.find(",", t)]) if t >= 0 else 0
    return (table, *scan_match(line, cache))


def table_at(line: str) -> int:
    """Where ``table=`` starts in the ", "-separated head of a line (-1: table 0)."""
    cut = line.find(" actions=")
    comma = line.rfind(", ", 0, cut) if cut > 0 else -1
    return line.find("table=", 0, comma) if comma > 0 else -1


def scan_match(line: str, cache: TokenCache) -> tuple[int, tuple, tuple, int]:
    """The hot path of indexing: ``(priority, shape, values, actions_offset)``.

    The table is not read here: the index already sorted lines by table.
    """
    cut = line.find(" actions=")
    if cut < 0:
        if line.startswith("actions="):
            return DEFAULT_PRIORITY, (), (), 8
        raise FlowSyntaxError("no actions= in flow line")
    comma = line.rfind(", ", 0, cut)
    match = line[comma + 2:cut] if comma >= 0 else line[:cut]
    priority = DEFAULT_PRIORITY
    shape: tuple = ()
    values: tuple = ()
    if not match or match[-1] == ",":
        return priority, shape, values, cut + 9
    if not match.startswith("priority="):
        first = match.split("=", 1)[0]
        if first in HEADER_KEYS and "," not in match:
            return priority, shape, values, cut + 9
    parts = cache.parts
    for token in match.split(","):
        part = parts.get(token) or cache.part(token)
        if part[0] is None:
            priority = part[1]
        else:
            shape += part[0]
            values += part[1]
    return priority, shape, values, cut + 9


_STATS = ("duration=", "n_packets=", "n_bytes=", "idle_age=", "hard_age=")


def without_stats(line: str) -> str:
    """A flow line without its counters and ages: what the flow *is*, stable over time."""
    cut = line.find(" actions=")
    head, tail = (line[:cut], line[cut:]) if cut >= 0 else (line, "")
    if head.endswith(","):
        items, match = head[:-1].split(", "), ""
    else:
        comma = head.rfind(", ")
        items, match = (head[:comma].split(", "), head[comma + 2:]) if comma >= 0 else (
            [], head)
    if match and match.split("=", 1)[0] in HEADER_KEYS and "," not in match:
        items, match = items + [match], ""
    kept = [i for i in items if not i.startswith(_STATS)]
    return ", ".join(kept + ([match] if match else [])) + tail


def line_counters(line: str) -> dict | None:
    """A dump-flows line's ``n_packets``, ``n_bytes`` and ``duration`` (seconds): how
    often the flow was hit up to the moment it was read, None when the line has none
    (``--no-stats``, a flow typed by hand).  OVS prints them in the line's head, before
    the match (lib/ofp-flow.c ofputil_flow_stats_format)."""
    cut = line.find(" actions=")
    head = line[:cut] if cut >= 0 else line
    found = {}
    for item in head.split(", "):
        key, _, value = item.partition("=")
        if key in ("n_packets", "n_bytes"):
            found[key] = int(value.rstrip(","))
        elif key == "duration":
            found["duration"] = float(value.rstrip(",s"))
    if "n_packets" not in found:
        return None
    return {"n_packets": found["n_packets"], "n_bytes": found.get("n_bytes", 0),
            "duration": found.get("duration")}


def line_cookie(line: str) -> int:
    """The cookie of a dump-flows line (0 when it has none)."""
    if line.startswith("cookie="):
        end = line.find(",")
        return int(line[7:end if end > 0 else None].split("/")[0], 0)
    return 0


def parse_flow(line: str, cache: TokenCache) -> ParsedFlow:
    """One dump-flows line → table, priority, cookie, match items, action text."""
    line = line.strip()
    table, priority, shape, values, offset = scan_line(line, cache)
    match = tuple((f, v, m) for (f, m), v in zip(shape, values, strict=True))
    return ParsedFlow(table, priority, line_cookie(line), match, line[offset:])


def split_top_level(text: str) -> list[str]:
    """``a,b(c,d),{e,f}`` → ``["a", "b(c,d)", "{e,f}"]``: commas outside brackets split,
    parts stripped, empty parts dropped (group buckets, datapath actions)."""
    out, depth, cur = [], 0, []
    for ch in text:
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
            continue
        depth += ch in "({"
        depth -= ch in ")}"
        cur.append(ch)
    out.append("".join(cur))
    return [part.strip() for part in out if part.strip()]


def parse_packet(text: str, ports: dict[str, int] | None = None) -> dict[str, int]:
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


# --- every line's cookie and table at once (the audit, the stored index) ---------------

_TABLE = re.compile(r"(?:^|, )table=(\d+)")
# The head ovs-ofctl dump-flows writes (cookie, duration, table): its cookie and table are
# those line_cookie and _TABLE read, in one match; other lines take the general path.
DUMP_HEAD = re.compile(r"cookie=(0x[0-9a-f]+), (?:duration=[^,]*, )?table=(\d+), ")
DUMP_HEAD_BYTES = re.compile(DUMP_HEAD.pattern.encode())


def fast_heads(lines, pattern, actions, conjunction):
    """Every line's cookie and table, the lines, and the tables with a conjunction, read
    by C loops; None when some line has not the dump-flows head (``pattern``,
    ``actions``): then every line is read on its own (``read_head``)."""
    heads = list(map(pattern.match, lines))
    if None in heads or not all(map(contains, lines, repeat(actions))):
        return None
    pairs = list(map(methodcaller("group", 1, 2), heads))
    tables = list(map(int, map(itemgetter(1), pairs)))
    return (list(map(int, map(itemgetter(0), pairs), repeat(16))), tables, lines,
            set(compress(tables, map(contains, lines, repeat(conjunction)))))


def read_head(line: str) -> tuple[int, int] | None:
    """A flow line's cookie and table, or None when the line is garbled."""
    if " actions=" not in line and not line.startswith("actions="):
        return None
    m = DUMP_HEAD.match(line)
    if m is not None:
        return int(m.group(1), 16), int(m.group(2))
    try:
        cookie = line_cookie(line)
    except ValueError:
        return None
    m = _TABLE.search(line)
    if m is None and "table=" in line.split(" actions=", 1)[0]:
        return None
    return cookie, int(m.group(1)) if m else 0
