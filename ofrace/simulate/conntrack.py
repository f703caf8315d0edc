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
from dataclasses import dataclass, field

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


def format_ct_state(state: int) -> str:
    """As a trace step says it: ``trk+est``, or ``untracked``."""
    return "+".join(ct_state_names(state)) or "untracked"


@dataclass(frozen=True)
class FiveTuple:
    dl_type: int
    src: int
    dst: int
    proto: int
    sport: int
    dport: int

    def reversed(self) -> FiveTuple:
        return FiveTuple(self.dl_type, self.dst, self.src, self.proto, self.dport, self.sport)

    def __str__(self) -> str:
        cls = ipaddress.IPv4Address if self.dl_type == 0x0800 else ipaddress.IPv6Address
        proto = IP_PROTOCOL_NAMES.get(self.proto, str(self.proto))
        if self.proto in PORTED:
            return f"{proto} {cls(self.src)}:{self.sport} > {cls(self.dst)}:{self.dport}"
        return f"{proto} {cls(self.src)} > {cls(self.dst)}"


def packet_tuple(packet: Packet) -> FiveTuple | None:
    names = IP_TYPES.get(packet.get("dl_type", 0))
    if names is None:
        return None
    proto = packet.get("nw_proto", 0)
    sport = dport = 0
    if proto in PORTED:
        sport, dport = packet.get("tp_src", 0), packet.get("tp_dst", 0)
    elif proto in (1, 58):
        # ICMP echo: the id plays the port; OVS keys on type/code, we keep it simple.
        sport, dport = packet.get("tp_src", 0), packet.get("tp_dst", 0)
    return FiveTuple(packet["dl_type"], packet.get(names[0], 0), packet.get(names[1], 0),
                     proto, sport, dport)


def apply_tuple(packet: Packet, t: FiveTuple) -> None:
    src, dst = IP_TYPES[t.dl_type]
    packet[src], packet[dst] = t.src, t.dst
    if t.proto in PORTED:
        packet["tp_src"], packet["tp_dst"] = t.sport, t.dport


@dataclass
class Connection:
    """A committed connection: its two directions, NAT, mark and label."""

    zone: int
    original: FiveTuple
    reply: FiveTuple          # what the answer looks like on the wire (after NAT)
    nat_kinds: tuple[str, ...] = ()
    mark: int = 0
    label: int = 0
    seen_reply: bool = False
    committed_at: str = ""
    committed: bool = True


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

    def describe(self) -> str:
        text = f"zone {self.zone}: {format_ct_state(self.state)}"
        if self.tuple:
            text += f" ({self.tuple})"
        if self.nat:
            text += f", {self.nat}"
        if self.committed:
            text += ", committed"
        return text


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
    """The tuple after nat(src=…)/nat(dst=…): the first address and port of the range."""
    addr = int(ipaddress.ip_address(nat.addr_min)) if nat.addr_min else None
    port = nat.port_min
    if nat.kind == "dst":
        return FiveTuple(tup.dl_type, tup.src, addr if addr is not None else tup.dst,
                         tup.proto, tup.sport, port if port is not None else tup.dport)
    return FiveTuple(tup.dl_type, addr if addr is not None else tup.src, tup.dst,
                     tup.proto, port if port is not None else tup.sport, tup.dport)


@dataclass
class ConntrackTable:
    """Connections by (zone, tuple in either direction)."""

    entries: dict[tuple[int, FiveTuple], tuple[Connection, bool]] = field(default_factory=dict)

    def zone_of(self, ct: Ct, packet: Packet) -> int:
        return read_ref(packet, ct.zone) if isinstance(ct.zone, FieldRef) else ct.zone

    def execute(self, ct: Ct, packet: Packet, where: str = "") -> CtOutcome:
        """Run one ct() action on ``packet`` (headers are rewritten for NAT).

        Like the datapath, a packet keeps the connection its last ct() found
        (``CT_CACHE``): a later ct() in the same zone reuses it even after NAT
        changed the packet's tuple (OVS conntrack's cached ``md.conn``, the
        kernel's ``skb_nfct_cached``), until ``ct_clear``.
        """
        zone = self.zone_of(ct, packet)
        tup = packet_tuple(packet)
        if tup is None:
            return CtOutcome(zone, TRK | INV, None)
        cached = packet.get(CT_CACHE)
        if cached is not None and cached[0] == zone:
            conn, is_reply = cached[1], cached[2]
        else:
            found = self.entries.get((zone, tup))
            conn, is_reply = found if found else (None, False)
        if conn is not None and ct.force and is_reply and ct.commit:
            self._forget(conn)
            conn, is_reply = None, False
        committed = conn is not None and conn.committed
        if not committed:
            state = TRK | NEW
        elif is_reply:
            state = TRK | EST | RPL
            conn.seen_reply = True
        else:
            state = TRK | (EST if conn.seen_reply else NEW)
        if conn is None:
            # Unconfirmed until committed: the packet carries it, the table does not.
            conn = Connection(zone, tup, tup.reversed(), committed=False, committed_at=where)
        outcome = CtOutcome(zone, state, tup, connection=conn)

        if ct.nat is not None:
            if conn.nat_kinds:
                self._apply_existing_nat(conn, is_reply, packet, outcome)
            elif ct.nat.kind is not None and not committed:
                translated = nat_translate(tup, ct.nat)
                conn.nat_kinds = (ct.nat.kind,)
                conn.reply = translated.reversed()
                apply_tuple(packet, translated)
                outcome.state |= SNAT if ct.nat.kind == "src" else DNAT
                outcome.nat = f"{ct.nat.kind}-NAT to {translated}"
        if ct.commit and not conn.committed:
            conn.committed = True
            self._store(conn)
            outcome.committed = True
        if ct.commit:
            self._exec(ct, conn, packet)
        outcome.mark, outcome.label = (conn.mark, conn.label) if conn.committed else (0, 0)
        if not conn.committed:
            outcome.connection = None if not conn.nat_kinds else conn
        packet[CT_CACHE] = (zone, conn, is_reply)
        return outcome

    def _apply_existing_nat(self, conn: Connection, is_reply: bool, packet: Packet,
                            outcome: CtOutcome) -> None:
        if not conn.nat_kinds:
            return
        target = conn.original.reversed() if is_reply else conn.reply.reversed()
        before = packet_tuple(packet)
        apply_tuple(packet, target)
        for kind in conn.nat_kinds:
            outcome.state |= SNAT if kind == "src" else DNAT
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
        outcome = CtOutcome(zone, state, tup, committed=ct.commit, forced=True)
        # ofproto/trace resumes with the flow's own ct_mark/ct_label after exec().
        outcome.mark, outcome.label = exec_marks(ct, packet.get("ct_mark", 0),
                                                 packet.get("ct_label", 0))
        if ct.nat is not None and ct.nat.kind is not None and tup is not None:
            # ofproto/trace rewrites addresses for an explicit nat(src=…)/nat(dst=…).
            translated = nat_translate(tup, ct.nat)
            apply_tuple(packet, translated)
            outcome.nat = f"{ct.nat.kind}-NAT to {translated}"
        return outcome
