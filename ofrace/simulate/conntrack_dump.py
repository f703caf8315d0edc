"""The node's own connection table: ``ovs-appctl dpctl/dump-conntrack [-m]`` read into
the conntrack model, so a trace starts from what the datapath really holds.

The line format is lib/ct-dpif.c ``ct_dpif_format_entry``: ``PROTO,orig=(TUPLE),
reply=(TUPLE)[,id=N][,zone=N][,status=FLAGS][,mark=N][,labels=0xHEX]
[,protoinfo=(…)][,helper=NAME][,master=(TUPLE)]``; a tuple is ``src=,dst=`` and
``sport=,dport=`` (or, for ICMP, ``id=`` and with ``-m`` ``type=,code=``).  With
``-m`` a TCP entry says each direction's state (``state_orig``/``state_reply``: the two
peers of lib/conntrack-tcp.c, ``tcp_conn_get_protoinfo``) and ``BE_LIBERAL`` for a peer
picked up mid-stream; without it one coalesced ``state=`` (the larger of the two,
SYN_RECV shown as ESTABLISHED, FIN_WAIT_2 as TIME_WAIT).

What a dump cannot tell, and how the model takes it (each said in the trace):
the TCP sequence numbers and windows (the packets of a loaded connection are checked
by flags and states only); for UDP, ICMP and other protocols in the userspace
datapath, whether a reply was seen (``status=0``: taken as seen, so the next packet is
``est``; a kernel dump's SEEN_REPLY says it).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from functools import lru_cache, partial

from ofrace.simulate.conntrack import (
    ICMP_QUERY_ANSWER,
    PORTED,
    TCPS_TIME_WAIT,
    WSCALE_UNKNOWN,
    Connection,
    ConntrackTable,
    FiveTuple,
    TcpPeer,
    TcpTracking,
)

# lib/ct-dpif.h CT_DPIF_TCP_STATES, in order (the numbers conntrack-tcp.c keeps).
TCP_STATE_NAMES = ("CLOSED", "LISTEN", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "CLOSE_WAIT",
                   "FIN_WAIT_1", "CLOSING", "LAST_ACK", "FIN_WAIT_2", "TIME_WAIT")
PROTOCOLS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "icmpv6": 58}
ORIGIN = "the node's table"


class DumpLineError(ValueError):
    """A dump line that is not an entry ct-dpif.c prints."""


@dataclass
class DumpEntry:
    """One connection as the node printed it."""

    line: str
    zone: int
    original: FiveTuple
    reply: FiveTuple
    mark: int = 0
    labels: int = 0
    status: tuple[str, ...] | None = None      # None: not in the dump (no -m)
    tcp_states: tuple[int, int] | None = None  # (original, reply) peer
    tcp_liberal: tuple[bool, bool] = (False, False)
    tcp_wscale: tuple[int, int] = (0, 0)
    helper: str = ""
    assumed: list[str] = field(default_factory=list)  # what the line could not tell

    @property
    def protocol(self) -> int:
        return self.original.proto

    @property
    def nat_kinds(self) -> tuple[str, ...]:
        """What the reply tuple says was translated: it differs from the reversed
        original where NAT rewrote (its source: DNAT; its destination: SNAT)."""
        back = self.original.reversed()
        kinds = []
        if (self.reply.src, self.reply.sport) != (back.src, back.sport):
            kinds.append("dst")
        if (self.reply.dst, self.reply.dport) != (back.dst, back.dport):
            kinds.append("src")
        return tuple(kinds)

    def state_text(self) -> str:
        """TCP's per-direction states (``ESTABLISHED``, or ``SYN_SENT/CLOSED``), else ""."""
        if self.tcp_states is None:
            return ""
        names = [_tcp_state_name(s) for s in self.tcp_states]
        return names[0] if names[0] == names[1] else "/".join(names)

    def describe(self) -> str:
        text = f"{self.original} zone {self.zone}"
        if self.state_text():
            text += f" {self.state_text()}"
        if self.nat_kinds:
            text += f", reply {self.reply}"
        if self.mark:
            text += f", mark {self.mark:#x}"
        if self.labels:
            text += f", labels {self.labels:#x}"
        return text


def _tcp_state_name(state: int) -> str:
    return TCP_STATE_NAMES[state] if 0 <= state < len(TCP_STATE_NAMES) else f"[{state}]"


# One top-level item: ``key=value`` or ``key=(…)`` (ct-dpif.c nests no deeper), then a
# comma or the end.  A line is read only if its items cover it exactly.
_ITEM = re.compile(r"([a-z_]+)=(?:\(([^()]*)\)|([^,()]*))(?:,|$)")


def _pairs(text: str) -> dict[str, str]:
    out, at = {}, 0
    for match in _ITEM.finditer(text):
        if match.start() != at:
            break
        out[match.group(1)] = match.group(2) if match.group(2) is not None else match.group(3)
        at = match.end()
    if at != len(text):
        raise DumpLineError(f"unreadable from {text[at:at + 30]!r}")
    return out


def _tuple(text: str, proto: int, assumed: list[str]) -> FiveTuple:
    fields = _pairs(text)
    try:
        (version, src), (other, dst) = _address(fields["src"]), _address(fields["dst"])
    except (KeyError, ValueError):
        raise DumpLineError(f"no addresses in ({text})") from None
    if version != other:
        raise DumpLineError(f"mixed address families in ({text})")
    dl_type = 0x0800 if version == 4 else 0x86DD
    if proto in PORTED:
        return FiveTuple(dl_type, src, dst, proto, _number(fields, "sport"),
                         _number(fields, "dport"))
    if proto in ICMP_QUERY_ANSWER:
        ident = _number(fields, "id")
        if "type" in fields:
            icmp_type = _number(fields, "type")
        else:  # without -m: the type is not printed
            icmp_type = 8 if proto == 1 else 128
            assumed.append("the ICMP type (taken as an echo request: the dump has no -m)")
        answer = ICMP_QUERY_ANSWER[proto].get(icmp_type, 0)
        return FiveTuple(dl_type, src, dst, proto, ident, ident, icmp_type, answer)
    return FiveTuple(dl_type, src, dst, proto, 0, 0)


@lru_cache(maxsize=65536)
def _address(text: str) -> tuple[int, int]:
    """(IP version, address as a number); a table repeats few addresses many times."""
    address = ipaddress.ip_address(text)
    return address.version, int(address)


def _number(fields: dict[str, str], key: str, default: int | None = None) -> int:
    value = fields.get(key)
    if value is None:
        if default is not None:
            return default
        raise DumpLineError(f"no {key}=")
    try:
        return int(value, 0)
    except ValueError:
        raise DumpLineError(f"{key}={value!r} is not a number") from None


def _tcp_state(value: str) -> int:
    if value in TCP_STATE_NAMES:
        return TCP_STATE_NAMES.index(value)
    if value[:1] == "[" and value[-1:] == "]" and value[1:-1].isdigit():
        return int(value[1:-1])
    raise DumpLineError(f"unknown TCP state {value!r}")


def parse_entry(line: str) -> DumpEntry:
    """One line of the dump (DumpLineError if it is not an entry)."""
    head, sep, rest = line.strip().partition(",")
    if not sep:
        raise DumpLineError("no fields")
    proto = PROTOCOLS.get(head)
    if proto is None:
        if not head.isdigit() or int(head) > 255:
            raise DumpLineError(f"unknown protocol {head!r}")
        proto = int(head)
    fields = _pairs(rest)
    if "orig" not in fields or "reply" not in fields:
        raise DumpLineError("no orig=(…) or reply=(…)")
    assumed: list[str] = []
    entry = DumpEntry(line.strip(), _number(fields, "zone", 0),
                      _tuple(fields["orig"], proto, assumed),
                      _tuple(fields["reply"], proto, assumed),
                      mark=_number(fields, "mark", 0), labels=_number(fields, "labels", 0),
                      helper=fields.get("helper", ""), assumed=assumed)
    if "status" in fields:
        status = fields["status"]
        entry.status = tuple(s for s in status.split("|") if s and s != "0")
    if proto == 6:
        _read_tcp(entry, _pairs(fields.get("protoinfo", "")))
    return entry


def _read_tcp(entry: DumpEntry, info: dict[str, str]) -> None:
    if "state_orig" in info:
        entry.tcp_states = (_tcp_state(info["state_orig"]),
                            _tcp_state(info.get("state_reply", info["state_orig"])))
        entry.tcp_liberal = tuple("BE_LIBERAL" in info.get(f"flags_{side}", "")
                                  for side in ("orig", "reply"))
        entry.tcp_wscale = (_number(info, "wscale_orig", 0), _number(info, "wscale_reply", 0))
    elif "state" in info:
        state = _tcp_state(info["state"])
        entry.tcp_states = (state, state)
        entry.assumed.append("each direction's TCP state (the dump has no -m: one coalesced "
                             f"state, {info['state']}, taken for both)")
    else:
        entry.tcp_states = (TCPS_TIME_WAIT, TCPS_TIME_WAIT)
        entry.assumed.append("the TCP state (none printed: taken as closing)")
    entry.assumed.append("the TCP sequence numbers and windows (not in a dump: packets are "
                         "checked by flags and states only)")


def parse_dump(text: str) -> tuple[list[DumpEntry], list[str]]:
    """Every entry of a dump, and the lines that are not entries (said, never guessed)."""
    entries, unreadable = [], []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            entries.append(parse_entry(line))
        except DumpLineError as exc:
            unreadable.append(f"{line.strip()[:120]}: {exc}")
    return entries, unreadable


def connection_of(entry: DumpEntry) -> Connection:
    """The model's connection for a dumped one: committed, its NAT read from the tuples,
    TCP peers in the dumped states with windows unknown."""
    conn = Connection(entry.zone, entry.original, entry.reply, nat_kinds=entry.nat_kinds,
                      mark=entry.mark, label=entry.labels, committed_at=ORIGIN,
                      dumped=entry, assumed=entry.assumed)
    if entry.tcp_states is not None:
        peers = [TcpPeer(state=state, wscale=(WSCALE_UNKNOWN if liberal else 0) | scale)
                 for state, liberal, scale in zip(entry.tcp_states, entry.tcp_liberal,
                                                  entry.tcp_wscale, strict=True)]
        conn.tcp = TcpTracking(peers, windows_known=False)
    elif entry.status:
        conn.seen_reply = "SEEN_REPLY" in entry.status
    else:
        conn.seen_reply = True
        conn.assumed.append("whether a reply was seen (the userspace datapath does not "
                            "print it: taken as seen)")
    return conn


_ZONE = re.compile(r",zone=(\d+)")


def table_from_dump(text: str) -> ConntrackTable:
    """A table holding every connection of the dump.  Lines are only sorted by zone
    here; a zone's lines are read when a ct() first looks in it (a node may hold
    100k connections, a trace visits a few zones), and lines that are not entries are
    then said by the lookups of their zone."""
    by_zone: dict[int, list[str]] = {}
    for line in text.splitlines():
        if line.strip():
            zone = _ZONE.search(line)
            by_zone.setdefault(int(zone.group(1)) if zone else 0, []).append(line)
    table = ConntrackTable(started_from=f"{sum(map(len, by_zone.values()))} connections "
                                        "in the node's table")
    for zone, lines in by_zone.items():
        table.unread[zone] = partial(_read_zone, lines)
    return table


def _read_zone(lines: list[str]) -> tuple[list[Connection], list[str]]:
    entries, unreadable = parse_dump("\n".join(lines))
    return [connection_of(entry) for entry in entries], unreadable
