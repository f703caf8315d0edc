"""A cluster trace with its OVN meaning: stages, names, rewrites, verdicts.

This is the stage between simulation and rendering: it walks each hop's
steps in execution order and attaches, to every OpenFlow flow, the logical
flow behind its cookie (or the physical row, or a collision), the datapath
and logical ports by name, and the header fields the flow rewrote.  Both
renderers (text and JSON) read only this.  It reads the trace and never writes
into it: what it adds (a drop's cause) lives in its own objects.  OVN's meaning
of a register comes from the version facts of the chassis the step ran on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from threading import Thread

from ofrace.errors import OfraceError
from ofrace.openflow.fields import CT_STATE_BITS, FIELDS, format_value
from ofrace.ovn.cms_names import CmsName
from ofrace.ovn.ct_zones import zone_owners
from ofrace.ovn.logical_fields import OVN_L4_NAMES
from ofrace.ovn.southbound import ChassisNames, SouthboundIndex
from ofrace.simulate.steps import Step, StepKind
from ofrace.snapshot import Snapshot
from ofrace.trace.cluster import ClusterTrace, Hop, Verdict
from ofrace.trace.verdicts import ANSWERABLE, VerdictKind

INVALID = CT_STATE_BITS["inv"]
TCP_SYN, TCP_ACK = 0x002, 0x010

# Canonical field -> OVN name, for IPv4 / IPv6 / ARP packets.
_OVN_NAMES = {
    "dl_src": "eth.src", "dl_dst": "eth.dst", "vlan_tci": "vlan.tci", "nw_ttl": "ip.ttl",
    "nw_tos": "ip.dscp", "nw_src": "ip4.src", "nw_dst": "ip4.dst", "ipv6_src": "ip6.src",
    "ipv6_dst": "ip6.dst", "tp_src": "l4.src", "tp_dst": "l4.dst", "nw_proto": "ip.proto",
    "arp_sha": "arp.sha", "arp_tha": "arp.tha",
}
# NB rows worth naming next to a stage: the policy objects a user wrote.
_EXPLAINING = {"ACL", "Load_Balancer", "NAT", "Logical_Router_Static_Route",
               "Logical_Router_Policy", "QoS"}


def ovn_field_name(name: str, packet: dict) -> str:
    label = _OVN_NAMES.get(name, name)
    if packet.get("dl_type") == 0x0806:
        label = {"nw_src": "arp.spa", "nw_dst": "arp.tpa", "nw_proto": "arp.op"}.get(name, label)
    if label.startswith("l4."):
        proto = OVN_L4_NAMES.get(packet.get("nw_proto", 0), "l4")
        if proto.startswith("icmp"):
            return f"{proto}.{'type' if name == 'tp_src' else 'code'}"
        return f"{proto}.{label[3:]}"
    return label


@dataclass
class Change:
    field: str
    before: str
    after: str

    def __str__(self) -> str:
        return f"{self.field}: {self.before} → {self.after}"


@dataclass
class Event:
    """One line of the story: a flow with its logical meaning, or an action with an effect."""

    kind: str                          # flow | miss | ct | recirc | group | patch | exit | …
    text: str
    bridge: str
    table: int | None = None
    priority: int | None = None
    cookie: int | None = None
    flow: str | None = None
    stage: str | None = None           # logical stage name (ls_in_acl, lr_in_dnat, …)
    pipeline: str | None = None        # ingress | egress
    datapath: str | None = None        # logical datapath name
    inport: str | None = None
    outport: str | None = None
    logical_match: str | None = None
    logical_actions: str | None = None
    source: str | None = None          # northd source location, when northd records it
    northbound: list[str] = field(default_factory=list)
    owner: str | None = None           # non-lflow cookie owner (port binding, …)
    collision: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    depth: int = 0
    conntrack: dict | None = None      # a ct step's lookup: the entry found, or why none
    # The CMS's names (Neutron, ovn-kubernetes) of "datapath", "inport", "outport".
    cms: dict[str, CmsName] = field(default_factory=dict)
    # A flow's n_packets/n_bytes/duration when the node was read (None: not in the line).
    counters: dict | None = None


@dataclass
class AnnotatedVerdict:
    """A trace's verdict with what OVN says caused it; reads like the verdict it wraps."""

    verdict: Verdict
    cause: str | None = None   # "by ACL …" or "in logical stage … of …", for drops
    # Why conntrack marked the packet invalid, when it was and was not delivered: the
    # real reason a flags-0 microflow or a lone SYN-ACK ends where it does.
    invalid: str | None = None
    cms: CmsName | None = None  # the CMS's name of the logical port it was delivered to

    @property
    def text(self) -> str:
        text = self.verdict.text
        port = self.verdict.logical_port
        if self.cms is not None and port and port in text:
            text = text.replace(port, f"{port} [{self.cms.label}]", 1)
        text = f"{text} — {self.cause}" if self.cause else text
        return f"{text}; {self.invalid}" if self.invalid else text

    kind = property(lambda self: self.verdict.kind)
    chassis = property(lambda self: self.verdict.chassis)
    packet = property(lambda self: self.verdict.packet)
    logical_port = property(lambda self: self.verdict.logical_port)
    port = property(lambda self: self.verdict.port)
    exit = property(lambda self: self.verdict.exit)


@dataclass
class AnnotatedHop:
    chassis: str
    bridge: str
    entry: str
    packet_in: dict
    events: list[Event]
    verdicts: list[AnnotatedVerdict]
    children: list[AnnotatedHop]
    notes: list[str] = field(default_factory=list)
    cms: CmsName | None = None   # the CMS's name of the logical port it entered from
    zone: str | None = None      # the OVN zone whose SB named this hop (interconnect)


@dataclass
class AnnotatedTrace:
    root: AnnotatedHop
    verdicts: list[AnnotatedVerdict]


class Annotator:
    def __init__(self, names: SouthboundIndex, snapshot: Snapshot | None = None,
                 names_for: ChassisNames | None = None):
        """``snapshot``: where the chassis' zone assignments are read (ct zones by name);
        ``names_for``: per chassis its OVN zone's index (the tracer's, shared), so each
        hop is read with its own zone's SB; ``names`` serves every chassis without zones."""
        self.names = names
        self.snapshot = snapshot
        if names_for is None and snapshot is not None:
            names_for = ChassisNames(snapshot, names)
        self.names_for = names_for or (lambda chassis: names)
        self._zones: dict[str, dict[int, str]] = {}

    def zone_owner(self, chassis: str, zone: int) -> str | None:
        """The logical port or datapath ``zone`` belongs to on ``chassis``, if known."""
        if self.snapshot is None or chassis not in self.snapshot.chassis:
            return None
        if chassis not in self._zones:
            self._zones[chassis] = zone_owners(self.snapshot.chassis[chassis],
                                               self.names_for(chassis))
        return self._zones[chassis].get(zone)

    def trace(self, trace: ClusterTrace) -> AnnotatedTrace:
        self._read_datapaths(trace)
        annotated: dict[int, AnnotatedVerdict] = {}
        root = self.hop(trace.root, annotated)
        return AnnotatedTrace(root, [annotated[id(v)] for v in trace.verdicts()])

    def read_ahead(self, hop: Hop) -> None:
        """``ClusterTracer.before_crossing``: a live SB starts reading the logical flows of
        the hop's datapaths now, in the background, while the trace reads the next node;
        ``trace`` then waits for it (the SB reads one thing at a time) and reads the rest."""
        wanted = self._wanted([hop])
        if not any(getattr(names.sb, "fetch_datapaths", None) is not None
                   for names, _, _ in wanted):
            return

        def read() -> None:
            try:
                for names, keys, cookies in wanted:
                    names.read_datapaths(keys, cookies)
            except OfraceError:
                pass                    # ``trace`` reads it again, and says what failed
        Thread(target=read, daemon=True, name="read logical flows ahead").start()

    def _wanted(self, hops) -> list[tuple[SouthboundIndex, set[int], set[int]]]:
        """Per SB index, the datapaths (``metadata``) and cookies of the flows hit."""
        wanted: dict[int, tuple[SouthboundIndex, set[int], set[int]]] = {}
        for hop in hops:
            for step in hop.root.walk():
                if step.kind != StepKind.FLOW or not step.cookie:
                    continue
                names = self.names_for(step.chassis)
                _, keys, cookies = wanted.setdefault(id(names), (names, set(), set()))
                cookies.add(step.cookie)
                key = (step.data.get("packet") or {}).get("metadata")
                if isinstance(key, int):
                    keys.add(key)
        return list(wanted.values())

    def _read_datapaths(self, trace: ClusterTrace) -> None:
        """Each SB index is told the datapaths (``metadata``) of the flows the trace hit,
        so a live SB reads just their logical flows, at once."""
        for names, keys, cookies in self._wanted(trace.hops):
            names.read_datapaths(keys, cookies)

    def hop(self, hop: Hop, annotated: dict[int, AnnotatedVerdict] | None = None
            ) -> AnnotatedHop:
        annotated = {} if annotated is None else annotated
        events: list[Event] = []
        for step, depth in _walk(hop.root, 0):
            if step.kind == StepKind.HOP:
                continue
            events.append(self.event(step, depth))
        verdicts = []
        names = self.names_for(hop.start.chassis)
        for verdict in hop.verdicts:
            annotated[id(verdict)] = AnnotatedVerdict(
                verdict, self.cause(verdict, hop), invalid_because(hop, verdict),
                self.names_for(verdict.chassis).port_cms(verdict.logical_port))
            verdicts.append(annotated[id(verdict)])
        return AnnotatedHop(hop.start.chassis, hop.start.bridge, hop.start.entry,
                            dict(hop.start.packet), events, verdicts,
                            [self.hop(child, annotated) for child in hop.children],
                            list(hop.notes), names.port_cms(hop.start.logical_port),
                            getattr(names, "zone", None))

    def cause(self, verdict: Verdict, hop: Hop | None = None) -> str | None:
        """What dropped a packet: the ACL (or other NB object) or the logical stage."""
        if verdict.kind != VerdictKind.DROPPED or verdict.exit is None or verdict.exit.step is None:
            return None
        step = verdict.exit.step
        if step.kind != StepKind.FLOW:
            return None
        ev = self.event(step, 0)
        if ev.northbound:
            return f"by {ev.northbound[0]}"
        evaluated = self._acl_evaluated(hop, step, ev.stage) if hop is not None else None
        if evaluated is not None:
            return (f"by {evaluated.northbound[0]} (evaluated in {evaluated.stage}, "
                    f"applied in {ev.stage} of {ev.datapath or '?'})")
        if ev.stage:
            where = ev.datapath or "?"
            if "datapath" in ev.cms:
                where += f" [{ev.cms['datapath'].label}]"
            return (f"in logical stage {ev.stage} of {where} "
                    f"({ev.logical_match} → {ev.logical_actions})")
        return None

    def _acl_evaluated(self, hop: Hop, until: Step, stage: str | None) -> Event | None:
        """The ACL whose verdict an ``*_acl_action`` flow carries out.

        From OVN 23.06 an ACL's flow in ``ls_in_acl_eval``/``ls_out_acl_eval`` only sets
        registers (reg8[16] allow, reg8[17] drop, reg8[18] reject) and the packet is dropped
        later, in ``*_acl_action`` by a flow that belongs to no ACL (northd/northd.c
        build_acl_action_lflows): the ACL is the last one the packet hit in the eval stage
        of the same pipeline before that flow."""
        if not stage or not stage.endswith("_acl_action"):
            return None
        wanted, found = stage[: -len("_action")] + "_eval", None
        for step in hop.root.walk():
            if step is until:
                break
            if step.kind != StepKind.FLOW or not step.cookie:
                continue
            lflow = self.names_for(step.chassis).cookie(step.cookie).logical_flow
            if (lflow or {}).get("external_ids", {}).get("stage-name") != wanted:
                continue
            ev = self.event(step, 0)
            if any(nb.startswith("ACL") for nb in ev.northbound):
                found = ev
        return found

    def event(self, step: Step, depth: int) -> Event:
        ev = Event(step.kind, step.text, step.bridge, step.table, step.priority, step.cookie,
                   step.flow, depth=depth)
        packet = step.data.get("packet") or {}
        dl_type, nw_proto = step.data.get(
            "proto", (packet.get("dl_type", 0), packet.get("nw_proto", 0)))
        proto_packet = {"dl_type": dl_type, "nw_proto": nw_proto}
        ev.changes = [Change(ovn_field_name(f, proto_packet), _fmt(f, old), _fmt(f, new))
                      for f, old, new in step.data.get("changes", [])]
        if step.kind == StepKind.CT and step.data.get("conntrack") is not None:
            ev.conntrack = dict(step.data["conntrack"])
            zone = ev.conntrack["zone"]
            owner = self.zone_owner(step.chassis, zone) if isinstance(zone, int) else None
            ev.conntrack["zone_owner"] = owner
            if owner:
                ev.text = ev.text.replace(f"ct: zone {zone}:", f"ct: zone {zone} ({owner}):", 1)
        if step.kind != StepKind.FLOW:
            return ev
        ev.counters = step.data.get("counters")
        names = self.names_for(step.chassis)
        facts = names.facts(step.chassis)
        metadata, reg14, reg15 = (packet.get(facts.register(role), 0)
                                  for role in ("datapath", "inport", "outport"))
        dp = names.datapath_by_key(metadata) if metadata else None
        if dp is not None:
            ev.datapath = names.datapath_name(dp)
            ev.inport = names.port_name(metadata, reg14) if reg14 else None
            ev.outport = names.port_name(metadata, reg15) if reg15 else None
            known = {"datapath": names.datapath_cms(ev.datapath),
                     "inport": names.port_cms(ev.inport),
                     "outport": names.port_cms(ev.outport)}
            ev.cms = {role: name for role, name in known.items() if name is not None}
        answer = names.cookie(step.cookie or 0)
        if answer.collision:
            ev.collision = [o.describe(names) for o in answer.owners]
        lflow = answer.logical_flow
        if lflow is not None:
            ext = lflow.get("external_ids") or {}
            ev.stage = ext.get("stage-name")
            ev.pipeline = lflow.get("pipeline")
            ev.logical_match = lflow.get("match")
            ev.logical_actions = lflow.get("actions")
            ev.source = ext.get("source")
            ev.northbound = [nb.describe(names.cms) for nb in names.northbound_for(lflow)
                             if nb.table in _EXPLAINING]
        elif answer.owners:
            ev.owner = answer.owners[0].describe(names)
        return ev


def invalid_because(hop: Hop, verdict: Verdict) -> str | None:
    """Why the ct() that left a copy ``+inv`` did so, with how to ask for a valid packet,
    for a copy that was not delivered; None when its last ct() state was not invalid.

    The copy's ct_state and ct_zone say which ct() it carries; that ct() is the last one
    of that zone with that state before the copy's exit, in the hop's execution order."""
    if verdict.kind in ANSWERABLE or not verdict.packet.get("ct_state", 0) & INVALID:
        return None
    zone, found = verdict.packet.get("ct_zone", 0), None
    until = verdict.exit.step if verdict.exit is not None else None
    for step in hop.root.walk():
        if step is until:
            break
        if step.kind == StepKind.CT and step.data.get("state", 0) & INVALID \
                and step.data.get("zone", 0) == zone:
            found = step
    if found is None:
        return None
    why = found.data.get("why") or "no reason recorded"
    text = f"ct() in zone {zone} on {found.chassis} said +inv: {why}"
    flags = verdict.packet.get("tcp_flags", 0)
    if verdict.packet.get("nw_proto") == 6 and "tcp.flags == 2" not in why:
        if flags & TCP_SYN and flags & TCP_ACK:
            text += " (trace the SYN with --conversation or --reply to answer it)"
        elif not flags & TCP_SYN:
            text += (" (a packet of an established connection: trace it with --established "
                     "or --step, or give tcp.flags == 2, a SYN, to open one)")
    return text


def _fmt(name: str, value: int) -> str:
    spec = FIELDS.get(name)
    return format_value(spec, value) if spec else str(value)


def _walk(step: Step, depth: int):
    yield step, depth
    for child in step.children:
        yield from _walk(child, depth + 1)
