"""The index of one bridge: its tables, ports, groups and TLV map, ready to simulate.

Built from a snapshot ``Bridge`` (and the chassis' Interface rows); every
flow either lands in a table or, when it cannot be read, in ``unparsed``
with its reason, so a trace can say when it reaches a gap.

A 200k-flow br-int is opened with one cheap pass that only sorts lines by
table (or with the node's own count of each table's lines); a table is parsed
and indexed when a lookup first needs it, so a trace pays for the tables it
crosses (``build_all()`` does every table), and of a big table only the part a
packet's ``metadata`` can match (``_for_packet``).
A snapshot saved with the classifier's index (``classifier_index``,
``ofrace.openflow.stored``) skips both: its tables answer from the stored
index, reading only the lines a lookup returns.
"""

from __future__ import annotations

import re
from array import array
from dataclasses import dataclass, field, replace
from itertools import chain

from ofrace.memory import building
from ofrace.openflow.actions import parse_actions
from ofrace.openflow.classifier import RANK, FlowEntry, FlowTable, Subtable
from ofrace.openflow.flowtext import (
    CONJUNCTION,
    FlowSyntaxError,
    TokenCache,
    line_cookie,
    line_counters,
    scan_line,
    scan_match,
    table_at,
)
from ofrace.openflow.stored import StoredReader, StoredTable, read_classifier, write_classifier
from ofrace.snapshot import Bridge, Chassis, Interface

_PORT_DESC = re.compile(r"^\s*(\d+|LOCAL)\(([^)]*)\): addr:([0-9a-f:]+)", re.M)
_PORT_FLAGS = re.compile(r"^\s*(\d+|LOCAL)\([^)]*\): addr:[0-9a-f:]+\n\s*config:\s*([^\n]*)\n"
                         r"\s*state:\s*([^\n]*)", re.M)
_FDB = re.compile(r"^\s*(\d+|LOCAL)\s+(\d+)\s+([0-9a-f:]{17})\s", re.M)
_TLV = re.compile(r"^\s*(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(\d+)\s+tun_metadata(\d+)", re.M)


@dataclass
class Port:
    """An OpenFlow port of the bridge, with the OVSDB facts about it."""

    ofport: int
    name: str
    type: str = ""
    options: dict[str, str] = field(default_factory=dict)
    external_ids: dict[str, str] = field(default_factory=dict)
    mac: str | None = None
    error: str | None = None
    # OpenFlow port config and state words from dump-ports-desc ("NO_FLOOD", "LINK_DOWN")
    config: frozenset[str] = frozenset()
    state: frozenset[str] = frozenset()
    interface: Interface | None = None   # its OVSDB row (liveness: link, BFD, CFM)


def port_may_enable(port: Port | None) -> tuple[bool | None, str]:
    """Whether OVS counts ``port`` as live for a bundle (ofproto-dpif-xlate.c
    ``member_enabled_cb``: the port's ``may_enable``, which ofproto-dpif.c ``port_run``
    sets from the carrier and ``may_enable_port``: with BFD or CFM on, one of them must
    say the link forwards), and why; None where the snapshot cannot tell.

    ovs-vswitchd copies BFD/CFM state into OVSDB when it changes (bridge.c
    ``run_status_update``), so the snapshot's state is the one at collection time.  LACP
    (bond members) is not read: OVN outputs to tunnel ports, which are not bonds."""
    if port is None:
        return False, "no such port on the bridge"
    iface = port.interface
    if "LINK_DOWN" in port.state or (iface is not None and iface.link_state == "down"):
        return False, f"{port.name}'s link is down"
    if iface is None or not iface.liveness_read:
        return None, (f"{port.name}'s BFD/CFM state was not collected" if iface is not None
                      else f"{port.name} has no Interface row in the snapshot")
    bfd_on = (iface.bfd or {}).get("enable") == "true" or bool(iface.bfd_status)
    cfm_on = iface.cfm_mpid is not None
    if not bfd_on and not cfm_on:
        return True, f"{port.name}'s link is up (no BFD or CFM on it)"
    cfm_ok = cfm_on and not iface.cfm_fault and iface.cfm_remote_opstate != "down"
    forwarding = (iface.bfd_status or {}).get("forwarding")
    if cfm_ok or forwarding == "true":
        return True, (f"BFD on {port.name} says forwarding" if forwarding == "true"
                      else f"CFM on {port.name} reports no fault")
    if bfd_on and forwarding is None and not cfm_ok:
        return None, f"BFD is on for {port.name} but its state was not in the snapshot yet"
    return False, (f"BFD on {port.name} says not forwarding (state "
                   f"{(iface.bfd_status or {}).get('state', '?')})" if bfd_on
                   else f"CFM on {port.name} reports a fault")


@dataclass
class Group:
    group_id: int
    type: str
    buckets: list[str]
    raw: str
    selection_method: str | None = None


# OVS interface types that are tunnels (vswitchd/vswitch.xml, Interface type).
TUNNEL_TYPES = frozenset({"geneve", "vxlan", "stt", "gre", "erspan", "ip6gre", "ip6erspan",
                          "gtpu", "bareudp"})


@dataclass
class TunnelOption:
    """One Geneve option mapped to a ``tun_metadataN`` field by the TLV map."""

    opt_class: int
    opt_type: int
    length: int
    index: int


@dataclass
class UnparsedFlow:
    index: int
    line: str
    reason: str

    @property
    def priority(self) -> int | None:
        """The priority the line states, when that much of it can be read."""
        m = _PRIORITY.search(self.line.split(" actions=", 1)[0])
        return int(m.group(1)) if m else None


UNREADABLE_TABLE = "unreadable table number"
_PRIORITY = re.compile(r"(?:^|[ ,])priority=(\d{1,5})(?:[, ]|$)")


class BridgeIndex:
    """Tables of one bridge, indexed for lookup, plus what the simulator needs around them."""

    def __init__(self, bridge: Bridge, interfaces: list[Interface] = (), chassis: str = ""):
        self.name = bridge.name
        self.chassis = chassis
        stored = bridge.flow_index()
        # A copy: learned flows are appended here without touching the snapshot.
        self.flows = bridge.lines() if stored is not None else list(bridge.flows)
        self.learned: list[int] = []  # indexes of flows added by learn actions
        self._fresh = bridge.fresh_counters()   # counters newer than the lines' own
        self._actions: dict[int, tuple] = {}  # flow index -> decoded actions
        self.tables: dict[int, FlowTable] = {}  # the tables built so far
        self._pending: dict[int, array] = {}     # table -> its unparsed line indexes
        # big unbuilt tables split by the metadata their flows match (``_for_packet``),
        # shared with every index of the same lines (``Bridge.table_splits``)
        self._slices: dict[int, tuple | bool] = (bridge.table_splits() if stored is None
                                                 else {})
        self._sliced: dict[tuple[int, int | None], _Slice] = {}
        self._unparsed: list[UnparsedFlow] = []
        self.ports: dict[int, Port] = {}
        self._load_ports(bridge, interfaces)
        self.port_by_name = {p.name: p for p in self.ports.values()}
        self.groups = {g.group_id: g for g in parse_groups(bridge.groups)}
        self.tlv_map = {t.index: t for t in parse_tlv_map(bridge.tlv_map)}
        self.fdb = parse_fdb(bridge.fdb)
        self.fdb_known = bool(bridge.fdb.strip())
        # Why this bridge's flows (or groups) are not in the snapshot, set by whoever
        # knows (the chassis): a lookup in an unread bridge is unknown, not a miss.
        self.unread: str | None = None
        self.groups_unread: str | None = bridge.errors.get("groups") or None
        found = read_classifier(stored, self) if stored is not None else None
        if found is None:
            if stored is not None:   # an index this Python cannot use: the lines, as before
                self.flows = list(self.flows)
            layout = bridge.table_layout()
            if layout is None or not self._take_layout(layout):
                self._sort_by_table(self.flows)
            return
        tables, unreadable, arrays = found
        self._stored = StoredReader(arrays, self.flows, self._entry_cache)
        self._unparsed = [UnparsedFlow(i, self.flows[i], reason) for i, reason in unreadable]
        self._pending = {t.number: t for t in tables}

    def geneve_options(self, packet: dict) -> dict[tuple[int, int], int]:
        """The Geneve options a packet leaving this bridge carries: each ``tun_metadataN``
        it set, under the (class, type) this bridge's TLV map gives that field."""
        return {(t.opt_class, t.opt_type): packet[f"tun_metadata{i}"]
                for i, t in self.tlv_map.items() if f"tun_metadata{i}" in packet}

    def metadata_field(self, opt_class: int, opt_type: int) -> str | None:
        """The ``tun_metadataN`` this bridge's TLV map gives a Geneve option, if any."""
        return next((f"tun_metadata{i}" for i, t in self.tlv_map.items()
                     if (t.opt_class, t.opt_type) == (opt_class, opt_type)), None)

    def _load_ports(self, bridge: Bridge, interfaces) -> None:
        for m in _PORT_DESC.finditer(bridge.ports_desc):
            number = 0xFFFE if m.group(1) == "LOCAL" else int(m.group(1))
            self.ports[number] = Port(ofport=number, name=m.group(2), mac=m.group(3))
        for m in _PORT_FLAGS.finditer(bridge.ports_desc):
            port = self.ports[0xFFFE if m.group(1) == "LOCAL" else int(m.group(1))]
            port.config = frozenset(m.group(2).split()) - {"0"}
            port.state = frozenset(m.group(3).split()) - {"0"}
        for iface in interfaces:
            if iface.bridge != bridge.name:
                continue
            number = iface.ofport
            if iface.type == "internal" and iface.name == bridge.name:
                number = 0xFFFE
            port = self.ports.get(number) if number is not None else None
            if port is None:
                port = Port(ofport=number if number is not None else -1, name=iface.name)
                if number is not None and number >= 0:
                    self.ports[number] = port
            port.name = iface.name  # port descriptions truncate names to 15 characters
            port.type = iface.type
            port.options = iface.options
            port.external_ids = iface.external_ids
            port.error = iface.error
            port.interface = iface
            if iface.mac_in_use and not port.mac:
                port.mac = iface.mac_in_use

    def _sort_by_table(self, lines: list[str]) -> None:
        """Line indexes per table, reading only each line's ``table=`` (dump-flows
        prints a table's flows together, so the last table number is usually right)."""
        pending = self._pending
        last_text, last_list = "table=0,", None
        for index, line in enumerate(lines):
            t = table_at(line)
            if t < 0:
                number = 0
            elif line.startswith(last_text, t) and last_list is not None:
                last_list.append(index)
                continue
            else:
                end = line.find(",", t)
                try:
                    number = int(line[t + 6:end])
                except ValueError:
                    self._unparsed.append(UnparsedFlow(index, line, UNREADABLE_TABLE))
                    continue
                last_text = line[t:end + 1]
            found = pending.get(number)
            if found is None:
                found = pending[number] = array("I")
            found.append(index)
            if t >= 0:
                last_list = found

    def _take_layout(self, layout: list[tuple[int, int]]) -> bool:
        """Each table's lines from the node's own count of them, in order, instead of
        reading every line's table: taken when the counts cover every line and each
        table's first and last lines say that table."""
        lines, start, pending = self.flows, 0, {}
        for number, count in layout:
            end = start + count
            if (count <= 0 or number in pending or end > len(lines)
                    or _table_of(lines[start]) != number or _table_of(lines[end - 1]) != number):
                return False
            pending[number] = range(start, end)
            start = end
        if start != len(lines):
            return False
        self._pending = pending
        return True

    def table(self, number: int) -> FlowTable | None:
        """Table ``number``, parsed and indexed on first use (None when it has no flows)."""
        pending = self._pending.pop(number, None)
        if pending is not None:
            with building():
                self._index(number, pending)
            self._built()
        return self.tables.get(number)

    def _place(self, stored: StoredTable) -> None:
        """A table of the stored index, with its unreadable lines, as ``_index`` leaves it."""
        self._unparsed.extend(UnparsedFlow(i, self.flows[i], reason)
                              for i, reason in stored.unparsed)
        table = stored.table(self._stored)
        if table is not None:
            self.tables[stored.number] = table

    def _built(self) -> None:
        if not self._pending:
            self.__dict__.pop("_builder", None)  # the parse caches, only needed while building

    def build_all(self) -> BridgeIndex:
        """Parse and index every table now (audits, benchmarks, counting)."""
        with building():
            while self._pending:
                number = next(iter(self._pending))
                self._index(number, self._pending.pop(number))
        self._built()
        return self

    @property
    def unparsed(self) -> list[UnparsedFlow]:
        """Every flow that could not be read (parses every table first)."""
        self.build_all()
        return self._unparsed

    def gaps(self, number: int) -> list[UnparsedFlow]:
        """Unreadable flows that may belong to table ``number``."""
        self.table(number)
        return [u for u in self._unparsed if u.line.find(f"table={number},") >= 0]

    def uncertain(self, number: int, packet=None) -> list[UnparsedFlow]:
        """Unreadable lines a lookup in table ``number`` (of ``packet``) may have missed:
        its own, those whose table number is unreadable, and (table 0) those that name
        no table."""
        part = (self._for_packet(number, packet)
                if packet is not None and number not in self.tables else None)
        own = part.unparsed if part is not None else self.gaps(number)
        found = {u.index: u for u in own}
        for u in self._unparsed:
            if u.index not in found and (u.reason == UNREADABLE_TABLE or (
                    number == 0 and "table=" not in u.line)):
                found[u.index] = u
        return list(found.values())

    def _index(self, number: int, indexes) -> None:
        """Table ``number`` whole, from its lines (or its stored index)."""
        if isinstance(indexes, StoredTable):
            self._place(indexes)
            return
        table = self.tables.get(number)
        if table is None:
            table = self.tables[number] = FlowTable(number)
        self._fill(table, indexes, self._unparsed)
        if not len(table):
            del self.tables[number]  # every line of it was unreadable

    def _fill(self, table: FlowTable, indexes, unparsed: list[UnparsedFlow]) -> None:
        """Parse the lines at ``indexes`` into ``table``; the hot path at 200k+ flows
        (SubtableSet.add is inlined)."""
        cache = self.__dict__.get("_builder")
        if cache is None:
            cache = self.__dict__["_builder"] = TokenCache(
                {p.name: n for n, p in self.ports.items()})
        regular, conjunctive = table.regular, table.conjunctive
        clauses = table.conj_clauses
        conj_of = cache.conjunctions
        scan = scan_match
        lines = self.flows
        for index in indexes:
            line = lines[index]
            try:
                priority, shape, values, offset = scan(line, cache)
            except (FlowSyntaxError, ValueError) as exc:
                unparsed.append(UnparsedFlow(index, line, str(exc)))
                continue
            target = regular
            if line.startswith("conjunction(", offset):
                # An address set's flows all carry the same conjunction actions.
                acts = line[offset:]
                conj = conj_of.get(acts)
                if conj is None:
                    conj = conj_of[acts] = tuple((int(a), int(b), int(c))
                                                 for a, b, c in CONJUNCTION.findall(acts))
                clauses[index] = conj
                target = conjunctive
            sub = target.by_shape.get(shape)
            if sub is None:
                sub = target.by_shape[shape] = Subtable(shape)
            code = (priority << 32) | (RANK - index)
            buckets = sub.buckets
            have = buckets.get(values)
            if have is None:
                buckets[values] = code
            elif have.__class__ is int:
                buckets[values] = [have, code]
            else:
                have.append(code)
            if priority > sub.max_priority:
                sub.max_priority = priority
                target.ordered = None
            target.count += 1

    # --- a big table, indexed only for the metadata a packet carries ---------------

    def _for_packet(self, number: int, packet) -> _Slice | None:
        """The part of a big unbuilt table a packet with this ``metadata`` can match:
        its flows that match exactly that metadata, and those that match no single
        value of it.  None when the table is better built whole."""
        pending = self._pending.get(number)
        if pending is None or isinstance(pending, StoredTable) or len(pending) < SLICE_FROM:
            return None
        slices = self._slices.get(number)
        if slices is None:
            slices = self._slices[number] = _split_by_metadata(self.flows, pending)
        if slices is False:
            return None
        by_value, rest = slices
        metadata = packet.get("metadata", 0)
        key = (number, metadata if metadata in by_value else None)
        found = self._sliced.get(key)
        if found is None:
            with building():
                found = self._sliced[key] = _Slice(FlowTable(number), [])
                self._fill(found.table, sorted(chain(by_value.get(metadata, ()), rest)),
                           found.unparsed)
        return found

    @property
    def flow_count(self) -> int:
        self.build_all()
        return sum(len(t) for t in self.tables.values())

    def line(self, index: int) -> str:
        return self.flows[index]

    def counters(self, index: int) -> dict | None:
        """The flow's counters as the node last gave them (``line_counters``)."""
        fresh = self._fresh
        if fresh is not None and index < len(fresh):
            return fresh[index]
        return line_counters(self.flows[index])

    def lookup(self, table_no: int, packet) -> tuple[FlowEntry | None, int | None]:
        """The flow ``packet`` hits in ``table_no`` (and the conj_id that matched it)."""
        table = self.tables.get(table_no)
        if table is None:
            part = self._for_packet(table_no, packet)
            table = part.table if part is not None else self.table(table_no)
        if table is None:
            return None, None
        index, conj_id = table.lookup(packet)
        if index is None:
            return None, None
        return self.entry(index), conj_id

    def actions(self, entry: FlowEntry) -> tuple:
        """The decoded actions of a flow, decoded once per index (raises ActionError)."""
        acts = self._actions.get(entry.index)
        if acts is None:
            acts = self._actions[entry.index] = (
                parse_actions(entry.actions) if entry.actions not in ("drop", "") else ())
        return acts

    def entry(self, index: int) -> FlowEntry:
        line = self.flows[index]
        table_no, priority, _, _, offset = scan_line(line, self._entry_cache)
        return FlowEntry(table_no, priority, line_cookie(line), index, line[offset:].strip())

    @property
    def _entry_cache(self) -> TokenCache:
        cache = self.__dict__.get("_cache")
        if cache is None:
            cache = self.__dict__["_cache"] = TokenCache(
                {p.name: n for n, p in self.ports.items()})
        return cache


def _table_of(line: str) -> int | None:
    at = table_at(line)
    if at < 0:
        return 0
    end = line.find(",", at)
    try:
        return int(line[at + 6:end])
    except ValueError:
        return None


# Tables with fewer flows are built whole when first crossed: cheap, and reused by any
# packet.  A bigger one is cut by metadata (OVN: one logical datapath's flows), which a
# packet on one datapath crosses only a slice of.
SLICE_FROM = 256
_METADATA = "metadata="


@dataclass
class _Slice:
    table: FlowTable
    unparsed: list[UnparsedFlow]


def _split_by_metadata(lines, indexes) -> tuple[dict[int, list[int]], list[int]] | bool:
    """Line indexes by the single ``metadata`` value their match requires, and the rest
    (no metadata match, a masked one, or one not read here); False when most lines are
    in the rest (then the table is built whole)."""
    by_value: dict[int, list[int]] = {}
    rest: list[int] = []
    for index in indexes:
        line = lines[index]
        end = line.find(" actions=")
        if end < 0:
            end = len(line)
        at = line.find(_METADATA, 0, end)
        while at > 0 and line[at - 1] not in ", ":
            at = line.find(_METADATA, at + 1, end)     # tun_metadata0=…, not metadata=
        if at < 0:
            rest.append(index)
            continue
        start = at + len(_METADATA)
        stop = line.find(",", start, end)
        text = line[start:stop if stop >= 0 else end]
        try:
            value = int(text, 16) if text.startswith("0x") else int(text)
        except ValueError:        # masked (…/0x…) or not a number: any metadata may match
            rest.append(index)
            continue
        found = by_value.get(value)
        if found is None:
            by_value[value] = [index]
        else:
            found.append(index)
    if len(rest) * 2 > len(indexes):
        return False
    return by_value, rest


def classifier_index(chassis: Chassis, bridge: Bridge) -> bytes:
    """``Snapshot.save(flow_index=classifier_index)``: the bridge's tables, indexed now,
    stored beside its lines (``ofrace.openflow.stored``)."""
    from_lines = replace(bridge, flows=bridge.flows)   # never a stored index of its own
    return write_classifier(BridgeIndex(from_lines, chassis.interfaces, chassis.name))


def parse_groups(lines: list[str]) -> list[Group]:
    """``dump-groups`` lines → groups with their bucket action text."""
    groups = []
    for line in lines:
        m = re.match(r"group_id=(\d+),type=(\w+)(.*)$", line.strip())
        if not m:
            continue
        rest = m.group(3)
        method = re.search(r"selection_method=([\w]+)", rest)
        buckets = [b.strip().rstrip(",") for b in re.split(r",?bucket=", rest)[1:]]
        groups.append(Group(int(m.group(1)), m.group(2), buckets, line.strip(),
                            method.group(1) if method else None))
    return groups


def parse_tlv_map(text: str) -> list[TunnelOption]:
    """``dump-tlv-map`` text → which Geneve option each ``tun_metadataN`` carries."""
    return [TunnelOption(int(c, 16), int(t, 16), int(ln), int(i))
            for c, t, ln, i in _TLV.findall(text)]


def parse_fdb(text: str) -> dict[tuple[int, int], int]:
    """``fdb/show`` text → {(vlan, mac): ofport}: where NORMAL sends a known MAC."""
    table = {}
    for port, vlan, mac in _FDB.findall(text):
        number = 0xFFFE if port == "LOCAL" else int(port)
        table[(int(vlan), int(mac.replace(":", ""), 16))] = number
    return table
