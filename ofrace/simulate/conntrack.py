"""A connection tracker for simulated packets: one table per zone, NAT included.

It follows the kernel/userspace conntrack contract that OVN's flows rely on:
a packet with no connection is ``new``; ``commit`` creates the connection
and remembers its NAT; later packets of that connection are ``est`` in the
original direction once a reply was seen, ``est+rpl`` in the reply
direction, and ``ct(nat)`` applies the remembered translation (forward or
reversed).  One ``ConntrackTable`` lives for a whole trace — across
recirculations, bridges and chassis — and across the forward and reply
traces of one connection, which is what lets ``--reply`` undo DNAT/SNAT as
the wire does.

``ForcedConntrack`` is the other mode: like ``ofproto/trace --ct-next``, it
hands out user-given ct_state values per recirculation and never rewrites
addresses, for comparisons with ofproto/trace.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ofrace.openflow.actions import Ct, FieldRef
from ofrace.openflow.fields import CT_STATE_BITS, IP_PROTOCOL_NAMES, ct_state_names
from ofrace.simulate.packet import Packet, read_ref

NEW, EST, REL, RPL, INV, TRK, SNAT, DNAT = (CT_STATE_BITS[k] for k in
                                            ("new", "est", "rel", "rpl", "inv", "trk",
                                             "snat", "dnat"))
# Where a packet keeps the connection its last ct() found (not an OpenFlow field).
CT_CACHE = "_ct_connection"
IP_TYPES = {0x0800: ("nw_src", "nw_dst"), 0x86DD: ("ipv6_src", "ipv6_dst")}
PORTED = (6, 17, 132)


def parse_ct_state(text: str) -> int:
    """``"trk,new"`` / ``"+trk+est"`` / ``"0x21"`` → ct_state bits."""
    text = text.strip()
    if text[:2] == "0x" or text.isdigit():
        return int(text, 0)
    value = 0
    for name in text.replace("+", ",").replace("|", ",").split(","):
        name = name.strip()
        if not name:
            continue
        if name not in CT_STATE_BITS:
            raise ValueError(f"unknown ct_state flag {name!r} "
                             f"(known: {', '.join(CT_STATE_BITS)})")
        value |= CT_STATE_BITS[name]
    return value


def ct_state_problem(state: int) -> str:
    """Why no packet can have this ct_state, or "" (lib/flow.c validate_ct_state,
    which ofproto/trace applies to its --ct-next)."""
    if state and not state & TRK:
        return 'without "trk" no other flag can be set (an untracked packet has none)'
    if state & INV and state & ~(TRK | INV):
        return 'with "inv" only "trk" may be set'
    if state & NEW and state & EST:
        return '"new" and "est" are mutually exclusive'
    if state & NEW and state & RPL:
        return '"new" and "rpl" are mutually exclusive (a reply is never new)'
    return ""


def format_ct_state(state: int) -> str:
    """As a trace step says it: ``trk+est``, or ``untracked``."""
    return "+".join(ct_state_names(state)) or "untracked"


# ICMP messages conntrack keys as their own connection (lib/conntrack.c
# extract_l4_icmp/extract_l4_icmp6, reverse_icmp_type/reverse_icmp6_type):
# type → the type its answer has.  Requests (the first key) may start one
# (conntrack-icmp.c icmp4_valid_new/icmp6_valid_new); answers never do.
ICMP_QUERY_ANSWER = {1: {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15},
                     58: {128: 129, 129: 128}}
ICMP_QUERY_NEW = {1: (8, 13, 15), 58: (128,)}
# ICMP errors conntrack keys by the header they quote (then ``rel``).
ICMP_ERRORS = {1: (3, 4, 5, 11, 12), 58: (1, 2, 3, 4)}

# TCP (lib/conntrack-tcp.c): flag bits and the per-peer states of ct-dpif.h.
FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
(TCPS_CLOSED, TCPS_LISTEN, TCPS_SYN_SENT, TCPS_SYN_RECV, TCPS_ESTABLISHED, TCPS_CLOSE_WAIT,
 TCPS_FIN_WAIT_1, TCPS_CLOSING, TCPS_LAST_ACK, TCPS_FIN_WAIT_2, TCPS_TIME_WAIT) = range(11)
WSCALE_UNKNOWN = 0x40      # a peer picked up mid-stream: windows taken at their widest
TCP_MAX_WSCALE = 14
MAX_ACK_WINDOW = 0xFFFF + 1500


@dataclass(frozen=True)
class FiveTuple:
    """A conntrack key.  For ICMP queries the id plays both ports and the types
    ride along (``stype``/``dtype``: this packet's type, its answer's), as OVS
    keeps them; reversing the key swaps both, so a reply matches its request."""

    dl_type: int
    src: int
    dst: int
    proto: int
    sport: int
    dport: int
    stype: int = 0
    dtype: int = 0

    def reversed(self) -> FiveTuple:
        return FiveTuple(self.dl_type, self.dst, self.src, self.proto, self.dport,
                         self.sport, self.dtype, self.stype)

    def __str__(self) -> str:
        cls = ipaddress.IPv4Address if self.dl_type == 0x0800 else ipaddress.IPv6Address
        proto = IP_PROTOCOL_NAMES.get(self.proto, str(self.proto))
        if self.proto in PORTED:
            return f"{proto} {cls(self.src)}:{self.sport} > {cls(self.dst)}:{self.dport}"
        if self.proto in ICMP_QUERY_ANSWER:
            return f"{proto} {cls(self.src)} > {cls(self.dst)} type {self.stype} id {self.sport}"
        return f"{proto} {cls(self.src)} > {cls(self.dst)}"


@dataclass
class PacketKey:
    """What conntrack reads from a packet: its key, whether it is an ICMP error
    about another connection, or why it cannot be keyed (then ``+inv``)."""

    tuple: FiveTuple | None
    related: bool = False
    invalid: str = ""


def packet_key(packet: Packet, quoted: bool = False) -> PacketKey:
    """The key as lib/conntrack.c ``conn_key_extract`` builds it.

    ICMP: ``tp_src``/``tp_dst`` are type/code; the echo id is the optional
    ``icmp_id`` (absent: 0, in both directions).  An ICMP error needs the header
    it quotes as ``icmp_inner`` (a packet dict: addresses, ``nw_proto``, ports);
    without it the error cannot be related and is invalid, as OVS would find an
    error with a truncated quote.
    """
    names = IP_TYPES.get(packet.get("dl_type", 0))
    if names is None:
        return PacketKey(None, invalid="not IP")
    proto = packet.get("nw_proto", 0)
    src, dst = packet.get(names[0], 0), packet.get(names[1], 0)
    dl_type = packet["dl_type"]
    if proto in PORTED:
        return PacketKey(FiveTuple(dl_type, src, dst, proto, packet.get("tp_src", 0),
                                   packet.get("tp_dst", 0)))
    if (proto == 1 and dl_type == 0x0800) or (proto == 58 and dl_type == 0x86DD):
        return _icmp_key(packet, dl_type, proto, src, dst, quoted)
    return PacketKey(FiveTuple(dl_type, src, dst, proto, 0, 0))


def _icmp_key(packet: Packet, dl_type: int, proto: int, src: int, dst: int,
              quoted: bool) -> PacketKey:
    icmp_type, code = packet.get("tp_src", 0), packet.get("tp_dst", 0)
    answers = ICMP_QUERY_ANSWER[proto]
    if icmp_type in answers:
        if code != 0:
            return PacketKey(None, invalid=f"ICMP type {icmp_type} with code {code} "
                             "(conntrack keys only code 0)")
        ident = packet.get("icmp_id", 0)
        return PacketKey(FiveTuple(dl_type, src, dst, proto, ident, ident, icmp_type,
                                   answers[icmp_type]))
    if icmp_type in ICMP_ERRORS[proto] and not quoted:
        inner = packet.get("icmp_inner")
        if not inner:
            return PacketKey(None, invalid=f"ICMP error type {icmp_type}: conntrack relates "
                             "it through the header it quotes, and this packet carries "
                             "none (icmp_inner)")
        quoted_key = packet_key(dict(inner, dl_type=dl_type), quoted=True)
        if quoted_key.tuple is None:
            return PacketKey(None, invalid=f"ICMP error quoting {quoted_key.invalid}")
        if quoted_key.tuple.src != dst:
            return PacketKey(None, invalid="ICMP error whose quoted source is not its "
                             "destination")
        return PacketKey(quoted_key.tuple.reversed(), related=True)
    return PacketKey(None, invalid=f"ICMP type {icmp_type} is not tracked")


def packet_tuple(packet: Packet) -> FiveTuple | None:
    return packet_key(packet).tuple


def apply_tuple(packet: Packet, t: FiveTuple) -> None:
    src, dst = IP_TYPES[t.dl_type]
    packet[src], packet[dst] = t.src, t.dst
    if t.proto in PORTED:
        packet["tp_src"], packet["tp_dst"] = t.sport, t.dport


@dataclass
class TcpPeer:
    """One end of a TCP connection as lib/conntrack-tcp.c follows it."""

    state: int = TCPS_CLOSED
    seqlo: int = 0
    seqhi: int = 0
    max_win: int = 0
    wscale: int = 0


def _seq_geq(a: int, b: int) -> bool:
    """a ≥ b in 32-bit sequence arithmetic (SEQ_GEQ)."""
    return ((a - b) & 0xFFFFFFFF) < 0x80000000


def tcp_invalid_flags(flags: int) -> str:
    """Why these flags are never valid (conntrack-tcp.c tcp_invalid_flags), or ""."""
    if flags & SYN and flags & (RST | FIN):
        return "SYN with RST or FIN"
    if not flags & SYN and not flags & (ACK | RST):
        return f"TCP flags {flags:#x}: neither SYN, ACK nor RST"
    if not flags & ACK and flags & (FIN | PSH | URG):
        return "FIN, PSH or URG without ACK"
    return ""


def tcp_why_not_new(flags: int) -> str:
    """Why a TCP packet cannot start a connection (tcp_valid_new), or ""."""
    why = tcp_invalid_flags(flags)
    if why:
        if flags == 0:
            return ("TCP flags 0 (no SYN): conntrack marks it invalid "
                    "(lib/conntrack-tcp.c tcp_valid_new); to open a connection give a SYN "
                    "(tcp_flags=0x002; tcp.flags == 2 in a microflow)")
        return f"{why}: conntrack marks it invalid (lib/conntrack-tcp.c tcp_invalid_flags)"
    if flags & SYN and flags & ACK:
        return ("SYN-ACK with no connection: conntrack marks it invalid (a half-open "
                "connection is never picked up; lib/conntrack-tcp.c tcp_valid_new)")
    return ""


@dataclass
class TcpTracking:
    """The TCP state machine of lib/conntrack-tcp.c (pf's), per connection, as in
    OVS 3.1 (the same at 2026's head), with ``tcp_seq_chk`` at its default (on).

    Sequence numbers are checked only when the packet carries them
    (``tcp_seq``, ``tcp_ack``, optional ``payload_len`` and ``tcp_win``, all
    in the same packets of a conversation); without them every packet is
    taken as inside the window, and only the flags and the peers' states
    decide (``tcp_conn_update``'s first branch).  No window-scale option is
    modelled (a SYN carries none).  A connection read from the node's table has
    ``windows_known`` False: a dump prints states, not sequence numbers, so its
    packets are checked by flags and states only.
    """

    peers: list[TcpPeer] = field(default_factory=lambda: [TcpPeer(), TcpPeer()])
    windows_known: bool = True

    @classmethod
    def first(cls, packet: Packet) -> TcpTracking:
        """tcp_new_conn: the opener is SYN_SENT, the other end CLOSED."""
        flags = packet.get("tcp_flags", 0)
        seq = packet.get("tcp_seq", 0)
        src, dst = TcpPeer(TCPS_SYN_SENT), TcpPeer(TCPS_CLOSED)
        src.seqlo = seq
        src.seqhi = (seq + packet.get("payload_len", 0) + 1 + bool(flags & SYN)
                     + bool(flags & FIN)) & 0xFFFFFFFF
        if not flags & SYN:
            # Picked up mid-stream (an ACK): both windows at their widest.
            src.wscale = dst.wscale = WSCALE_UNKNOWN
        src.max_win = max(packet.get("tcp_win", 0xFFFF), 1)
        dst.seqhi, dst.max_win = 1, 1
        return cls([src, dst])

    def update(self, packet: Packet, reply: bool) -> tuple[str, str]:
        """tcp_conn_update: ("valid" | "valid_new" | "invalid" | "new", why)."""
        flags = packet.get("tcp_flags", 0)
        why = tcp_invalid_flags(flags)
        if why:
            return "invalid", f"{why} (lib/conntrack-tcp.c tcp_invalid_flags)"
        src, dst = (self.peers[1], self.peers[0]) if reply else (self.peers[0], self.peers[1])
        if flags & (SYN | ACK) == SYN:
            if dst.state >= TCPS_FIN_WAIT_2 and src.state >= TCPS_FIN_WAIT_2:
                src.state = dst.state = TCPS_CLOSED
                return "new", "a SYN on a closed connection starts a new one"
            if src.state <= TCPS_SYN_SENT:
                # A repeated SYN before any answer: still new (OVS commit ac23d20fc).
                src.state = TCPS_SYN_SENT
                return "valid_new", ""
        if "tcp_seq" in packet and self.windows_known:
            in_window, loose = self._window(packet, src, dst, flags)
        else:
            if src.state < TCPS_SYN_SENT:
                src.state = TCPS_SYN_SENT
            in_window, loose = True, False
        if in_window:
            if flags & SYN and src.state < TCPS_SYN_SENT:
                src.state = TCPS_SYN_SENT
            if flags & FIN and src.state < TCPS_CLOSING:
                src.state = TCPS_CLOSING
            if flags & ACK:
                if dst.state == TCPS_SYN_SENT:
                    dst.state = TCPS_ESTABLISHED
                elif dst.state == TCPS_CLOSING:
                    dst.state = TCPS_FIN_WAIT_2
            if flags & RST:
                src.state = dst.state = TCPS_TIME_WAIT
            return "valid", ""
        if loose:
            if flags & FIN and src.state < TCPS_CLOSING:
                src.state = TCPS_CLOSING
            if flags & RST:
                src.state = dst.state = TCPS_TIME_WAIT
            return "valid", ""
        return "invalid", ("sequence/ack numbers outside the window "
                           "(lib/conntrack-tcp.c tcp_conn_update)")

    @staticmethod
    def _window(packet: Packet, src: TcpPeer, dst: TcpPeer, flags: int) -> tuple[bool, bool]:
        """The window checks of tcp_conn_update: (in the window, in the loose window).

        Updates the peers' numbers as OVS does when the packet passes."""
        mask = 0xFFFFFFFF
        win = packet.get("tcp_win", 0xFFFF)
        sws = dws = 0
        if (src.wscale & WSCALE_UNKNOWN and dst.wscale & WSCALE_UNKNOWN
                and not flags & SYN):
            sws = dws = TCP_MAX_WSCALE
        seq = orig_seq = packet["tcp_seq"] & mask
        ack = packet.get("tcp_ack", 0) & mask
        end = (seq + packet.get("payload_len", 0) + bool(flags & SYN) + bool(flags & FIN)) & mask
        check_ackskew = True
        if src.state < TCPS_SYN_SENT:
            # This end's first packet: it sets its numbers.
            src.seqlo, src.state = seq, TCPS_SYN_SENT
            reach = (end + max(1, dst.max_win << dws)) & mask
            if src.seqhi == 1 or _seq_geq(reach, src.seqhi):
                src.seqhi, check_ackskew = reach, False
            src.max_win = max(src.max_win, win)
        if not flags & ACK or (ack == 0 and flags & (ACK | RST) == ACK | RST):
            ack = dst.seqlo
        if seq == end:
            seq = end = src.seqlo
        ackskew = ((dst.seqlo - ack + 0x80000000) & mask) - 0x80000000 if check_ackskew else 0
        in_window = (_seq_geq(src.seqhi, end)
                     and _seq_geq(seq, (src.seqlo - (dst.max_win << dws)) & mask)
                     and ackskew >= -MAX_ACK_WINDOW and ackskew <= (MAX_ACK_WINDOW << sws)
                     and (not flags & RST or orig_seq in (src.seqlo, (src.seqlo + 1) & mask)
                          or (orig_seq + 1) & mask == src.seqlo))
        loose = (not in_window
                 and (dst.state < TCPS_SYN_SENT or dst.state >= TCPS_FIN_WAIT_2
                      or src.state >= TCPS_FIN_WAIT_2)
                 and _seq_geq((src.seqhi + MAX_ACK_WINDOW) & mask, end)
                 and _seq_geq(seq, (src.seqlo - MAX_ACK_WINDOW) & mask))
        if in_window or loose:
            src.max_win = max(src.max_win, win)
            if not _seq_geq(src.seqlo, end):
                src.seqlo = end
            if _seq_geq((ack + (win << sws)) & mask, dst.seqhi):
                dst.seqhi = (ack + max(win << sws, 1)) & mask
        return in_window, loose


@dataclass
class Connection:
    """A committed connection: its two directions, NAT, mark, label and the
    protocol's own state (TCP peers; ICMP/"other": whether a reply was seen)."""

    zone: int
    original: FiveTuple
    reply: FiveTuple          # what the answer looks like on the wire (after NAT)
    nat_kinds: tuple[str, ...] = ()
    mark: int = 0
    label: int = 0
    seen_reply: bool = False
    committed_at: str = ""
    committed: bool = True
    tcp: TcpTracking | None = None
    # the node's dump entry it was read from (conntrack_dump.DumpEntry: ``describe()``,
    # ``line``), None for this trace's own
    dumped: object | None = None
    assumed: list[str] = field(default_factory=list)   # what that entry could not tell

    def describe(self) -> str:
        """Which entry this is, for a ct() step: the dumped one, or this trace's."""
        if self.dumped is not None:
            return f"{self.dumped.describe()} from the node's table"
        return f"{self.original} zone {self.zone} committed by this trace at {self.committed_at}"

    def update(self, packet: Packet, reply: bool) -> tuple[str, str]:
        """The protocol's conn_update: ("valid" | "valid_new" | "invalid" | "new", why).

        ICMP (conntrack-icmp.c icmp_conn_update) and other protocols, UDP
        included (conntrack-other.c other_conn_update), stay ``new`` in the
        original direction until a reply was seen; TCP follows its peers."""
        if self.tcp is not None:
            result = self.tcp.update(packet, reply)
        else:
            result = ("valid" if reply or self.seen_reply else "valid_new", "")
        if reply and result[0] == "valid":
            self.seen_reply = True
        return result


@dataclass
class CtOutcome:
    """What one ct() did, for the trace to show."""

    zone: int
    state: int
    tuple: FiveTuple | None
    committed: bool = False
    nat: str | None = None
    connection: Connection | None = None
    forced: bool = False
    mark: int = 0    # ct_mark / ct_label the resumed pass will read
    label: int = 0
    why: str = ""    # why conntrack gave this state, when it is not the obvious one
    lookup: str = ""  # which entry the lookup found, or that none existed (and where)
    found: Connection | None = None   # the entry it found

    def describe(self) -> str:
        text = f"zone {self.zone}: {format_ct_state(self.state)}"
        if self.tuple:
            text += f" ({self.tuple})"
        if self.nat:
            text += f", {self.nat}"
        if self.committed:
            text += ", committed"
        if self.lookup:
            text += f"; {self.lookup}"
        if self.why:
            text += f" — {self.why}"
        return text

    def lookup_json(self) -> dict:
        """The lookup for machines (docs/trace-json.md, ``conntrack``)."""
        conn = self.found
        return {"zone": self.zone, "state": format_ct_state(self.state),
                "found": conn is not None,
                "entry": None if conn is None else {
                    "original": str(conn.original), "reply": str(conn.reply),
                    "from": "trace" if conn.dumped is None else "node",
                    "dump": None if conn.dumped is None else conn.dumped.line,
                    "assumed": list(conn.assumed)},
                "lookup": self.lookup, "why": self.why}


def exec_marks(ct: Ct, mark: int, label: int) -> tuple[int, int]:
    """ct_mark and ct_label after the ``exec(set_field:…)`` of a ct() action."""
    for action in ct.exec:
        target = getattr(action, "target", None)
        if target is None:
            continue
        if target.name == "ct_mark":
            mark = (mark & ~action.mask) | (action.value & action.mask)
        elif target.name == "ct_label":
            label = (label & ~action.mask) | (action.value & action.mask)
    return mark, label


def nat_translate(tup: FiveTuple, nat) -> FiveTuple:
    """The tuple after nat(src=…)/nat(dst=…): the first address and port of the range.

    An ICMP id is kept (lib/conntrack.c nat_get_unique_tuple starts from the
    packet's own id and moves only on a clash, which one trace cannot have)."""
    addr = int(ipaddress.ip_address(nat.addr_min)) if nat.addr_min else None
    port = nat.port_min if tup.proto in PORTED else None
    if nat.kind == "dst":
        return replace(tup, dst=addr if addr is not None else tup.dst,
                       dport=port if port is not None else tup.dport)
    return replace(tup, src=addr if addr is not None else tup.src,
                   sport=port if port is not None else tup.sport)


def nat_state_bits(kinds: tuple[str, ...], reply: bool) -> int:
    """+snat/+dnat as lib/conntrack.c nat_packet sets them: a reply is translated
    the other way round (un-SNAT rewrites the destination: +dnat), and a
    connection with both kinds shows +snat only."""
    if reply:
        kinds = tuple({"src": "dst", "dst": "src"}[k] for k in kinds)
    if "src" in kinds:
        return SNAT
    return DNAT if "dst" in kinds else 0


def _starts(packet: Packet, key: PacketKey) -> str:
    """Why a packet with no connection is ``new`` (conntrack.c valid_new per protocol)."""
    if key.tuple.proto == 6:
        if packet.get("tcp_flags", 0) & SYN:
            return "a SYN opens a connection"
        return ("a TCP packet without SYN is picked up mid-stream "
                "(lib/conntrack-tcp.c tcp_valid_new)")
    return "its first packet starts a connection"


@dataclass
class ConntrackTable:
    """Connections by (zone, tuple in either direction), as OVS's userspace
    conntrack (lib/conntrack.c) keeps them for the netdev datapath.

    Where the kernel's nf_conntrack differs, docs/ovs-xlate-semantics.md says
    so ("Conntrack"); this model follows the userspace one.
    """

    entries: dict[tuple[int, FiveTuple], tuple[Connection, bool]] = field(default_factory=dict)
    # where the table started: what a lookup that finds nothing looked in
    started_from: str = "an empty table"
    # zone → reads the node's connections in that zone: a big table is read zone by zone,
    # when a ct() first looks there (or ``connections()`` asks for all)
    unread: dict[int, Callable[[], tuple[list[Connection], list[str]]]] = field(
        default_factory=dict)
    unreadable: dict[int, list[str]] = field(default_factory=dict)  # zone → lines not read

    def load(self, conn: Connection) -> None:
        """Hold a connection that exists already (one read from the node's table)."""
        self._store(conn)

    def read_zone(self, zone: int) -> None:
        read = self.unread.pop(zone, None)
        if read is not None:
            connections, unreadable = read()
            for conn in connections:
                self._store(conn)
            if unreadable:
                self.unreadable[zone] = unreadable

    def zone_of(self, ct: Ct, packet: Packet) -> int:
        return read_ref(packet, ct.zone) if isinstance(ct.zone, FieldRef) else ct.zone

    def execute(self, ct: Ct, packet: Packet, where: str = "") -> CtOutcome:
        """Run one ct() action on ``packet`` (headers are rewritten for NAT).

        Like the datapath, a packet keeps the connection its last ct() found
        (``CT_CACHE``, OVS's ``md.conn``): a later ct() in the same zone
        without ``force`` reuses it and its state without updating it
        (conntrack.c process_one_fast), until ``ct_clear``.  After a ct()
        that NATed, OVS drops ``md.conn`` and looks the connection up again
        by the translated tuple (initial_conn_lookup): the same connection,
        updated once more.
        """
        zone = self.zone_of(ct, packet)
        self.read_zone(zone)
        cached = packet.get(CT_CACHE)
        datapath_state = None
        if cached is not None and len(cached) > 5 and cached[5] != packet_tuple(packet):
            # A rewrite of the headers conntrack keys on drops the connection the packet
            # carries (lib/packets.c packet_set_ipv4_addr, packet_set_tcp_port, ...:
            # pkt_metadata_init_conn); its ct_state and ct_zone stay.
            datapath_state = (cached[0], cached[4])
            cached = None
        if (cached is not None and cached[0] == zone and not ct.force and not cached[3]
                and cached[1] is not None and cached[1].committed):
            return self._fast(ct, packet, zone, cached)
        key = packet_key(packet)
        if key.tuple is None:
            packet[CT_CACHE] = None
            return CtOutcome(zone, TRK | INV, None, why=key.invalid,
                             lookup="no lookup: conntrack cannot key this packet")
        tup = key.tuple
        by_reverse = False
        if cached is not None and cached[0] == zone:
            conn, is_reply = cached[1], cached[2]
        else:
            conn, is_reply, by_reverse = self._initial_lookup(zone, tup, packet, cached,
                                                              datapath_state)
        if conn is not None and ct.force and is_reply and conn.committed:
            self._forget(conn)
            conn, is_reply = None, False
        if conn is not None and conn.committed:
            return self._existing(ct, packet, zone, key, conn, is_reply, by_reverse)
        return self._not_found(ct, packet, zone, key, conn, where)

    def _initial_lookup(self, zone: int, tup: FiveTuple, packet: Packet, cached,
                        datapath_state: tuple[int, int] | None = None,
                        ) -> tuple[Connection | None, bool, bool]:
        """lib/conntrack.c initial_conn_lookup: (connection, reply, found by its reverse).

        A packet that carries no connection but whose ct_state says it was NATed in this
        zone (a paused translation resumed, whose continuation kept the conntrack fields;
        process_one keeps ct_state only while the zone is the same) is already translated:
        OVS looks its reversed tuple up and takes the opposite direction of what that
        finds.  So a held SYN resumed after its DNAT finds the LB's own connection, where
        a packet-out, untracked, is a new connection whose reply collides with it.  If the
        reversed tuple finds nothing, the packet's own tuple is looked up.
        ``datapath_state`` is the (ct_zone, ct_state) the datapath still holds when the
        flow's view has none (after a ct() without recirculation)."""
        md_zone, md_state = (packet.get("ct_zone"), packet.get("ct_state", 0))
        if datapath_state is not None and "ct_state" not in packet:
            md_zone, md_state = datapath_state
        natted = cached is None and md_zone == zone and md_state & (SNAT | DNAT)
        if natted:
            found = self.entries.get((zone, tup.reversed()))
            if found:
                return found[0], not found[1], True
        found = self.entries.get((zone, tup))
        return (*found, False) if found else (None, False, False)

    def _fast(self, ct: Ct, packet: Packet, zone: int, cached) -> CtOutcome:
        """conntrack.c process_one_fast: the carried connection, not updated.  A ct()
        with nat() still translates (handle_nat: the connection has NAT and the
        packet's ct_state has no +snat/+dnat yet), in the direction the carried
        connection was found, and OVS then drops ``md.conn``: a ct() without nat()
        that found the connection, followed by ct(commit,nat) in the same zone (OVN
        26.03's lr_out_snat after its ct_next) SNATs every packet, not the SYN only."""
        conn, is_reply, state = cached[1], cached[2], cached[4]
        outcome = CtOutcome(zone, state, packet_tuple(packet), connection=conn, found=conn,
                            lookup=f"found {conn.describe()} (the connection the packet "
                            "carries from its last ct(): no new lookup)")
        natted = False
        if ct.nat is not None and conn.nat_kinds and not state & (SNAT | DNAT):
            self._apply_existing_nat(conn, is_reply, bool(state & REL), packet, outcome)
            natted = True
        if ct.commit:
            self._exec(ct, conn, packet)
        if conn.committed:
            outcome.mark, outcome.label = conn.mark, conn.label
        if natted:
            packet[CT_CACHE] = (zone, conn, is_reply, True, outcome.state,
                                packet_tuple(packet))
        return outcome

    def _existing(self, ct: Ct, packet: Packet, zone: int, key: PacketKey,
                  conn: Connection, is_reply: bool, by_reverse: bool = False) -> CtOutcome:
        why = ""
        if key.related:
            state = TRK | REL | (RPL if is_reply else 0)
        else:
            result, why = conn.update(packet, is_reply)
            if result == "new":
                # conn_update_state: the old connection ends; a new one starts.
                self._forget(conn)
                return self._not_found(ct, packet, zone, key, None, conn.committed_at,
                                       why=why)
            if result == "invalid":
                state = TRK | INV
            elif result == "valid_new":
                state = TRK | NEW
            else:
                state = TRK | EST | (RPL if is_reply else 0)
        direction = " (its reply direction)" if is_reply else ""
        if by_reverse:
            direction += (" by the packet's reversed tuple: its ct_state says this zone "
                          "NATed it already (lib/conntrack.c initial_conn_lookup)")
        outcome = CtOutcome(zone, state, key.tuple, connection=conn, why=why, found=conn,
                            lookup=f"found {conn.describe()}{direction}")
        natted = False
        if ct.nat is not None and conn.nat_kinds:
            self._apply_existing_nat(conn, is_reply, key.related, packet, outcome)
            natted = True
        if ct.commit:
            self._exec(ct, conn, packet)
        outcome.mark, outcome.label = conn.mark, conn.label
        packet[CT_CACHE] = (zone, conn, is_reply, natted, outcome.state, packet_tuple(packet))
        return outcome

    def _not_found(self, ct: Ct, packet: Packet, zone: int, key: PacketKey,
                   carried: Connection | None, where: str, why: str = "") -> CtOutcome:
        """conntrack.c conn_not_found: a packet with no committed connection."""
        tup = key.tuple
        invalid = self._why_not_new(packet, key)
        none = f"no entry in zone {zone} ({self.started_from}, and nothing this trace committed)"
        if self.unreadable.get(zone):
            none += (f" — {len(self.unreadable[zone])} of the node's lines in this zone could "
                     f"not be read, e.g. {self.unreadable[zone][0]}")
        if invalid:
            packet[CT_CACHE] = None
            return CtOutcome(zone, TRK | INV, tup, why=invalid,
                             lookup=f"{none}: invalid because it cannot start a connection")
        # Unconfirmed until committed: the packet carries it, the table does not.
        conn = carried or Connection(zone, tup, tup.reversed(), committed=False,
                                     committed_at=where)
        outcome = CtOutcome(zone, TRK | NEW, tup, connection=conn, why=why,
                            lookup=f"{none}: new because {_starts(packet, key)}")
        natted = False
        if ct.nat is not None and ct.nat.kind is not None and not conn.nat_kinds:
            translated = self._unique(zone, tup, nat_translate(tup, ct.nat), ct.nat)
            conn.nat_kinds = (ct.nat.kind,)
            conn.reply = translated.reversed()
            apply_tuple(packet, translated)
            outcome.nat = f"{ct.nat.kind}-NAT to {translated}"
            natted = True
        elif ct.nat is not None and conn.nat_kinds:
            self._apply_existing_nat(conn, False, False, packet, outcome)
            natted = True
        if conn.nat_kinds:
            outcome.state |= nat_state_bits(conn.nat_kinds, False)
        if ct.commit:
            conn.committed = True
            if tup.proto == 6:
                conn.tcp = TcpTracking.first(packet)
            self._store(conn)
            outcome.committed = True
            self._exec(ct, conn, packet)
            outcome.mark, outcome.label = conn.mark, conn.label
        else:
            outcome.connection = conn if conn.nat_kinds else None
        packet[CT_CACHE] = (zone, conn, False, natted, outcome.state, packet_tuple(packet))
        return outcome

    def _unique(self, zone: int, tup: FiveTuple, translated: FiveTuple, nat) -> FiveTuple:
        """lib/conntrack.c nat_get_unique_tuple: a translation whose reply tuple another
        connection of the zone already holds moves the source port, starting from the
        packet's own, through 1-511, 600-1023 or 1024-65535 (by where it lies), at most
        128 tries (set_sport_range, nat_get_unique_l4).  Only where OVS starts from the
        packet's port (SNAT without a port range, and DNAT); a range start chosen by
        OVS's salted hash cannot be known, and the first port of the range is kept."""
        if tup.proto not in (6, 17) or (zone, translated.reversed()) not in self.entries:
            return translated
        if nat.kind == "src" and nat.port_min:
            return translated
        port = tup.sport
        low, high = (1, 511) if port < 512 else (600, 1023) if port < 1024 else (1024, 65535)
        for _ in range(min(high - low + 1, 128)):
            port = low if not low <= port <= high or port == high else port + 1
            candidate = replace(translated, sport=port)
            if (zone, candidate.reversed()) not in self.entries:
                return candidate
        return translated

    @staticmethod
    def _why_not_new(packet: Packet, key: PacketKey) -> str:
        """conntrack.c valid_new per protocol; related errors never start one."""
        tup = key.tuple
        if key.related:
            return ("ICMP error quoting a packet of no tracked connection "
                    "(lib/conntrack.c process_one: related packets start none)")
        if tup.proto == 6:
            return tcp_why_not_new(packet.get("tcp_flags", 0))
        if tup.proto in ICMP_QUERY_NEW and tup.stype not in ICMP_QUERY_NEW[tup.proto]:
            return (f"ICMP type {tup.stype} (an answer) with no connection: conntrack marks "
                    "it invalid (lib/conntrack-icmp.c icmp*_valid_new)")
        return ""

    def _apply_existing_nat(self, conn: Connection, is_reply: bool, related: bool,
                            packet: Packet, outcome: CtOutcome) -> None:
        """conntrack.c nat_packet: the other direction's key, reversed, is what
        this packet becomes; an ICMP error has only its outer addresses
        translated, and its quoted header the other way round."""
        target = conn.original.reversed() if is_reply else conn.reply.reversed()
        outcome.state |= nat_state_bits(conn.nat_kinds, is_reply)
        before = packet_key(packet).tuple
        if related:
            names = IP_TYPES[target.dl_type]
            for kind in conn.nat_kinds:
                # Forward: src-NAT rewrites the source; a reply: the destination.
                rewrites_src = (kind == "src") != is_reply
                field_name = names[0] if rewrites_src else names[1]
                packet[field_name] = target.src if rewrites_src else target.dst
            if packet.get("icmp_inner"):
                inner = dict(packet["icmp_inner"], dl_type=target.dl_type)
                apply_tuple(inner, target.reversed())
                inner.pop("dl_type")
                packet["icmp_inner"] = inner
            outcome.nat = f"{'reverse ' if is_reply else ''}NAT of an ICMP error"
            return
        apply_tuple(packet, target)
        if before != target:
            direction = "reverse " if is_reply else ""
            outcome.nat = f"{direction}NAT to {target}"

    def _exec(self, ct: Ct, conn: Connection, packet: Packet) -> None:
        conn.mark, conn.label = exec_marks(ct, conn.mark, conn.label)

    def _store(self, conn: Connection) -> None:
        self.entries[(conn.zone, conn.original)] = (conn, False)
        self.entries[(conn.zone, conn.reply)] = (conn, True)

    def _forget(self, conn: Connection) -> None:
        self.entries.pop((conn.zone, conn.original), None)
        self.entries.pop((conn.zone, conn.reply), None)

    def connections(self) -> list[Connection]:
        for zone in list(self.unread):
            self.read_zone(zone)
        seen, out = set(), []
        for conn, _ in self.entries.values():
            if id(conn) not in seen:
                seen.add(id(conn))
                out.append(conn)
        return out


@dataclass
class ForcedConntrack:
    """ct_state handed out in order, like ``ofproto/trace --ct-next``; no NAT rewrites."""

    states: list[int] = field(default_factory=list)
    default: int = TRK | NEW

    def zone_of(self, ct: Ct, packet: Packet) -> int:
        return read_ref(packet, ct.zone) if isinstance(ct.zone, FieldRef) else ct.zone

    def execute(self, ct: Ct, packet: Packet, where: str = "") -> CtOutcome:
        zone = self.zone_of(ct, packet)
        state = self.states.pop(0) if (self.states and ct.table is not None) else self.default
        tup = packet_tuple(packet)
        outcome = CtOutcome(zone, state, tup, committed=ct.commit, forced=True,
                            lookup="state forced (--ct-next): no lookup")
        # ofproto/trace resumes with the flow's own ct_mark/ct_label after exec().
        outcome.mark, outcome.label = exec_marks(ct, packet.get("ct_mark", 0),
                                                 packet.get("ct_label", 0))
        if ct.nat is not None and ct.nat.kind is not None and tup is not None:
            # ofproto/trace rewrites addresses for an explicit nat(src=…)/nat(dst=…).
            translated = nat_translate(tup, ct.nat)
            apply_tuple(packet, translated)
            outcome.nat = f"{ct.nat.kind}-NAT to {translated}"
        return outcome
