"""Trace a packet through a whole cluster: chassis to chassis, with one conntrack state.

A trace starts where the logical inport lives (its chassis and OpenFlow
port), runs the chassis' real tables (``ofrace.simulate``), and follows
every exit: a tunnel output continues on the chassis that owns the remote
encap IP, entering through the tunnel port that points back at the sender,
with the Geneve metadata the packet carried; a VIF output is a delivery; an
uplink output crosses the physical network to the chassis that receive the
frame (``provider_network``: its MAC's owner, or every chassis on the network
for a broadcast), or leaves the cluster when no chassis owns the destination
MAC; a controller action is handed to ovn-controller.  Branches (flooding,
multicast, ``all`` groups) each end in their own verdict.  Conntrack lives
per chassis for the whole trace — and for the reply trace that follows it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

from ofrace.errors import InputError, MissingDataError
from ofrace.openflow.actions import ActionError, Clone, SetField, parse_actions
from ofrace.openflow.bridge import BridgeIndex
from ofrace.openflow.fields import FIELDS, format_mac
from ofrace.openflow.flowtext import FlowSyntaxError, TokenCache, parse_flow
from ofrace.openflow.frames import WIRE_KEYS
from ofrace.ovn import controller as controller_actions
from ofrace.ovn.southbound import ChassisNames, SouthboundIndex
from ofrace.ovn.versions import OvnFacts
from ofrace.simulate.conntrack import ConntrackTable, ForcedConntrack
from ofrace.simulate.conntrack_dump import table_from_dump
from ofrace.simulate.engine import (
    CT_FIELDS,
    ChassisDatapath,
    Continuation,
    SimulationOptions,
    userspace_recirc_depth,
)
from ofrace.simulate.groups import datapath_kinds
from ofrace.simulate.steps import Exit, ExitKind, Step, StepKind
from ofrace.snapshot import Chassis, Snapshot, unwrap_optional
from ofrace.trace import controller_packets
from ofrace.trace.provider_network import (
    ChassisBySystemId,
    Crossing,
    ProviderNetworks,
    uplinks_of,
)
from ofrace.trace.resumed import resumed_answer
from ofrace.trace.verdicts import VERDICT_OF_EXIT, VerdictKind

MAX_HOPS = 16


@dataclass
class TraceStart:
    """Where a packet enters: a chassis, a bridge, and the packet with its in_port."""

    chassis: str
    bridge: str
    packet: dict
    entry: str              # in words: "VIF nginx-x6pc6 (default_nginx-…)", "tunnel from …"
    table: int = 0
    logical_port: str | None = None
    payload_length: int = 0  # bytes past the headers: the frame check_pkt_larger measures
    actions: list | None = None  # a packet-out's actions (a packet ovn-controller sent)
    answer: bool = False         # a packet ovn-controller built, not the traced one itself
    maybe: bool = False          # this hop happens or not by a race the snapshot cannot tell
    # a packet ovn-controller released, or one that followed from it: a Southbound round
    # trip after every binding learned earlier in the trace (``trace.controller_packets``)
    after_release: bool = False
    # A translation ovn-controller resumes (engine ``Continuation``): ``packet`` holds
    # the fields its answer changed (trace.resumed); ``entry`` says what it built.
    continuation: Continuation | None = None


@dataclass
class Verdict:
    """How one copy of the packet ended."""

    kind: VerdictKind      # for ``unknown``, ``text`` names the data that is missing
    chassis: str
    text: str
    packet: dict
    logical_port: str | None = None
    port: str | None = None
    exit: Exit | None = None

    def __post_init__(self):
        self.kind = VerdictKind(self.kind)


@dataclass
class Hop:
    """One chassis visit: where the packet entered, what ran, where it went."""

    start: TraceStart
    root: Step
    exits: list[Exit]
    verdicts: list[Verdict] = field(default_factory=list)
    children: list[Hop] = field(default_factory=list)
    parent_exit: int | None = None   # index of the exit (in the parent hop) that led here
    notes: list[str] = field(default_factory=list)  # side events (ACL log copies, …)
    assumed: list[int] = field(default_factory=list)  # groups traced bucket by bucket


@dataclass
class ClusterTrace:
    hops: list[Hop]                  # the first hop, and every hop reachable from it
    root: Hop

    def verdicts(self) -> list[Verdict]:
        """How the traced packet itself ended (a packet it was held for counts; what
        ovn-controller built in answer to it, an ARP request say, does not)."""
        own = set()

        def walk(hop: Hop, parent_own: bool) -> None:
            released = hop.start.actions is not None and not hop.start.answer
            if not hop.start.answer and (parent_own or released):
                own.add(id(hop))
            for child in hop.children:
                walk(child, id(hop) in own)

        walk(self.root, True)
        return [v for hop in self.hops if id(hop) in own for v in hop.verdicts]

    def all_verdicts(self) -> list[Verdict]:
        """Every copy's end, those of the packets ovn-controller built included."""
        return [v for hop in self.hops for v in hop.verdicts]


@dataclass
class TraceOptions:
    select_buckets: dict[int, int] = field(default_factory=dict)
    max_hops: int = MAX_HOPS
    # Forced ct_state per ct() recirculation, in order (like ofproto/trace --ct-next):
    # no connection table then, and NAT only from explicit nat(src=/dst=) ranges.
    ct_next: list[int] | None = None
    # Each chassis' conntrack starts from the node's table in the snapshot (False: empty).
    ct_from_node: bool = True


class ClusterTracer:
    """Everything needed to trace on a snapshot: indexes, names, conntrack state."""

    def __init__(self, snapshot: Snapshot, options: TraceOptions | None = None):
        self.snapshot = snapshot
        self.options = options or TraceOptions()
        # Per chassis its zone's SB (interconnect), else the one SB.  ``names`` is the
        # index of the zone being traced in now: where the trace entered (``locate``), then
        # the chassis of each hop as it runs; without zones it never changes.
        self.names_for = ChassisNames(snapshot)
        self.names: SouthboundIndex = self.names_for.central
        self._providers: dict[int, ProviderNetworks] = {}
        self.conntrack: dict[str, ConntrackTable] = {}
        self._notes: list[str] = []     # said once, on the next hop that runs
        self._datapaths: dict[str, ChassisDatapath] = {}
        self._by_system_id = ChassisBySystemId(snapshot)
        # told of a hop just before the trace leaves it for another chassis (whose
        # node a live trace then reads): what the hop needs next can be read meanwhile
        self.before_crossing: Callable[[Hop], None] | None = None

    @property
    def provider(self) -> ProviderNetworks:
        """The physical networks as the zone being traced in knows their MAC owners."""
        found = self._providers.get(id(self.names))
        if found is None:
            found = self._providers[id(self.names)] = ProviderNetworks(self.snapshot,
                                                                       self.names)
        return found

    def enter_zone_of(self, chassis: str) -> SouthboundIndex:
        """Trace on in ``chassis``' zone: its SB names what runs there (one SB: no-op)."""
        self.names = self.names_for(chassis)
        return self.names

    # ----------------------------------------------------------- chassis

    def chassis(self, name: str) -> Chassis:
        ch = self.snapshot.chassis.get(name) or self._by_system_id.get(name)
        if ch is None:
            known = ", ".join(self.snapshot.chassis) or "none"
            raise InputError(f"no chassis {name!r} in the snapshot (chassis: {known})")
        if not ch.reachable:
            raise MissingDataError(ch.unread() or f"chassis {name} was not collected")
        return ch

    def datapath(self, name: str) -> ChassisDatapath:
        dp = self._datapaths.get(name)
        if dp is None:
            ch = self.chassis(name)
            bridges = {n: BridgeIndex(b, ch.interfaces, ch.name) for n, b in ch.bridges.items()}
            for n, index in bridges.items():
                index.unread = ch.unread(n)
            if self.options.ct_next is not None:
                # one queue of states for the whole trace, across chassis
                conntrack = self.conntrack.setdefault(
                    "*", ForcedConntrack(list(self.options.ct_next)))
            else:
                conntrack = self.conntrack.get(ch.name)
                if conntrack is None:
                    conntrack = self.conntrack[ch.name] = self._starting_table(ch)
            dp = self._datapaths[name] = ChassisDatapath(
                ch.name, bridges, conntrack,
                SimulationOptions(select_buckets=self.options.select_buckets,
                                  datapath_kinds=datapath_kinds(ch),
                                  recirc_depth=userspace_recirc_depth(ch.ovs_version)))
        return dp

    def _starting_table(self, ch: Chassis) -> ConntrackTable:
        """The chassis' connections as the node held them when collected (``--ct empty``:
        none); a snapshot without them says so once, rather than tracing as if empty."""
        if not self.options.ct_from_node:
            return ConntrackTable(started_from="the trace started with an empty table: "
                                  "--ct empty")
        if ch.conntrack is None:
            self._notes.append(
                f"{ch.name}: the snapshot has no connection table (collected before ofrace "
                "read it, or the read failed): conntrack starts empty here, so a packet of "
                "a connection the node holds is traced as new or invalid")
            return ConntrackTable(started_from="the node's table is not in the snapshot")
        table = table_from_dump(ch.conntrack)
        if ch.conntrack_truncated:
            table.started_from += ", read only in part (the dump was cut): it may hold one"
            self._notes.append(f"{ch.name}: the node's connection table was cut at the "
                               "collector's bound; a connection missing from it may exist")
        return table

    def facts(self, name: str) -> OvnFacts:
        """OVN's facts for the release ``name``'s ovn-controller runs."""
        return self.names.facts(name)

    def _chassis_for_sb_row(self, row: dict | None) -> Chassis | None:
        if row is None:
            return None
        return self._by_system_id.get(row["name"])

    # ------------------------------------------------------ where to start

    def locate(self, logical_port: str, chassis: str | None = None,
               packet: dict | None = None) -> TraceStart:
        """The chassis, bridge and OpenFlow in_port where ``logical_port``'s packets enter
        (``logical_port``: an OVN name or a name the CMS gave it; the start names OVN's;
        ``packet``: the headers asked for, which pick the chassis a frame from a provider
        network reaches)."""
        if self.snapshot.zones:
            self._enter_zone_of_port(logical_port, chassis)
        else:
            sb = self.snapshot.southbound
            if sb is None:
                raise MissingDataError("the snapshot has no Southbound database: logical "
                                       "ports cannot be resolved (collect with --sb REMOTE)")
            if sb.error and not sb.tables.get("Port_Binding"):
                raise MissingDataError(f"the Southbound database was not read ({sb.error}): "
                                       "logical ports cannot be resolved")
        # OVN's name, or the CMS's (Neutron port name, pod): ambiguous/unknown raise
        logical_port = self.names.resolve_port(logical_port)
        pb = self.names.ports_by_name[logical_port]
        kind = pb.get("type") or ""
        if kind == "localnet":
            return self._locate_localnet(pb, chassis, packet or {})
        if kind in ("patch", "l3gateway", "chassisredirect"):
            return self._locate_router_side(pb, chassis)
        row = self.names.chassis_row_by_uuid(pb.get("chassis"))
        ch = self._chassis_for_sb_row(row) if row else None
        if chassis:
            ch = self.chassis(chassis)
        if ch is None:
            if row:
                raise MissingDataError(
                    f"logical port {logical_port} is bound to chassis "
                    f"{row.get('hostname') or row['name']}, which is not in the snapshot")
            raise InputError(f"logical port {logical_port} is bound to no chassis")
        if not ch.ovsdb_read:
            raise MissingDataError(ch.unread() if not ch.reachable else (
                f"{ch.name}'s OVSDB was not read: where {logical_port} enters cannot be known"))
        for iface in ch.interfaces:
            if iface.bridge == ch.integration_bridge and iface.iface_id == logical_port:
                if iface.ofport in (None, -1):
                    raise InputError(f"{logical_port}'s interface {iface.name} on {ch.name} has "
                                     f"no OpenFlow port ({iface.error or 'ofport -1'})")
                return TraceStart(ch.name, ch.integration_bridge, {"in_port": iface.ofport},
                                  f"VIF {iface.name} ({logical_port})",
                                  logical_port=logical_port)
        raise InputError(f"no interface with iface-id {logical_port} on {ch.name}'s "
                         f"{ch.integration_bridge}")

    def _enter_zone_of_port(self, logical_port: str, chassis: str | None) -> None:
        """Zones: resolve ``logical_port`` in the zone of ``chassis``, else in the zone
        that has it as its own port (not ovn-ic's remote copy)."""
        if chassis:
            self.enter_zone_of(self.chassis(chassis).name)
            return
        found = self.names_for.where_bound(logical_port)
        if found is None:
            unread = [z.name for z in self.snapshot.zones.values()
                      if z.southbound is None or z.southbound.error]
            if unread:
                raise MissingDataError(f"{logical_port} is in no zone's Southbound read; not "
                                       f"read: {', '.join(unread)}")
            raise InputError(f"no zone's Southbound has a logical port {logical_port!r}")
        self.names = found

    def _locate_localnet(self, pb: dict, chassis: str | None, packet: dict) -> TraceStart:
        network = (pb.get("options") or {}).get("network_name")
        tag = unwrap_optional(pb.get("tag"))
        if chassis:
            ch = self.chassis(chassis)
        elif "dl_dst" in packet:
            ch = self.chassis(self._receiving_chassis(pb, network, packet["dl_dst"],
                                                      int(tag) if tag else None))
        else:
            ch = self._gateway_chassis_of(pb["datapath"])
            if ch is None:
                raise InputError(f"{pb['logical_port']} is a localnet port on every chassis "
                                 "that has its network; say which with --chassis, or give "
                                 "eth.dst to pick the chassis that owns it")
        if not ch.ovsdb_read:
            raise MissingDataError(f"{ch.name}'s OVSDB was not read: its bridge mappings "
                                   "and uplinks are unknown")
        bridge = ch.bridge_mappings.get(network)
        if bridge is None or bridge not in ch.bridges:
            raise InputError(f"{ch.name} maps no bridge to network {network!r} "
                             f"(ovn-bridge-mappings: {ch.external_ids.get('ovn-bridge-mappings')})")
        uplinks = uplinks_of(ch, bridge)
        if not uplinks:
            raise InputError(f"bridge {bridge} on {ch.name} has no uplink port")
        packet = {"in_port": uplinks[0].ofport}
        if tag:
            packet["vlan_tci"] = 0x1000 | int(tag)
        return TraceStart(ch.name, bridge, packet,
                          f"uplink {uplinks[0].name} of {bridge} ({pb['logical_port']})",
                          logical_port=pb["logical_port"])

    def _receiving_chassis(self, pb: dict, network: str | None, dst: int,
                           vlan: int | None) -> str:
        """The chassis a frame to ``dst`` from ``pb``'s physical network reaches, as a
        learned switch delivers it (``provider_network``), among those where ``pb``'s
        switch is present (ovn-controller patched the localnet port in); one, or the
        user picks."""
        name = pb["logical_port"]
        found = self.provider.receiving_chassis(network or "", vlan, dst)
        present = self.provider.localnet_chassis(name)
        if present and found:
            missing = [c for c in found if c not in present]
            found = [c for c in found if c in present]
            if not found:
                raise InputError(f"eth.dst {format_mac(dst)} on network {network!r} reaches "
                                 f"{', '.join(missing)}, where {name} is not patched in "
                                 f"(it is on {', '.join(sorted(present))}); say which "
                                 "with --chassis")
        if len(found) == 1:
            return found[0]
        if not found:
            raise InputError(f"no chassis owns eth.dst {format_mac(dst)} on network "
                             f"{network!r}: a frame from {name} to it reaches no chassis; "
                             "say which with --chassis")
        what = "is a group address" if dst >> 40 & 1 else "is owned by several chassis"
        raise InputError(f"eth.dst {format_mac(dst)} {what}: every one of "
                         f"{', '.join(found)} receives the frame from {name}; trace it on "
                         "each with --chassis")

    def _gateway_chassis_of(self, datapath_uuid: str) -> Chassis | None:
        """The chassis a gateway datapath lives on (l3gateway or chassisredirect ports)."""
        for other in self.names.ports_on(datapath_uuid):
            opts = other.get("options") or {}
            if opts.get("l3gateway-chassis"):
                return self._by_system_id.get(opts["l3gateway-chassis"])
            if other.get("type") == "chassisredirect" and other.get("chassis"):
                return self._chassis_for_sb_row(
                    self.names.chassis_row_by_uuid(other.get("chassis")))
        return None

    def _redirect_chassis_of(self, port_name: str) -> Chassis | None:
        """The chassis of the chassisredirect port standing for ``port_name``, if any."""
        for other in self.names.rows("Port_Binding"):
            if (other.get("type") == "chassisredirect"
                    and (other.get("options") or {}).get("distributed-port") == port_name):
                return self._chassis_for_sb_row(
                    self.names.chassis_row_by_uuid(other.get("chassis")))
        return None

    def _locate_router_side(self, pb: dict, chassis: str | None) -> TraceStart:
        """A port with no OpenFlow port of its own: enter where its peer hands packets over.

        A chassisredirect port enters as its distributed port on the chassis it is bound
        to.  A port pinned to a gateway chassis (its own, or its peer's chassisredirect
        port's) enters there; otherwise, or if that chassis has no handover flow, on the
        first chassis (by name) whose tables hand packets over from its peer."""
        name = pb["logical_port"]
        opts = pb.get("options") or {}
        as_port = pb
        if pb.get("type") == "chassisredirect":
            as_port = self.names.ports_by_name.get(opts.get("distributed-port", ""))
            if as_port is None:
                raise InputError(f"{name} names no distributed port to enter as")
            if not chassis:
                row = self.names.chassis_row_by_uuid(pb.get("chassis"))
                bound = self._chassis_for_sb_row(row) if row else None
                if bound is None:
                    raise InputError(f"{name} is bound to no chassis in the snapshot; "
                                     "give --chassis")
                chassis = bound.name
            opts = as_port.get("options") or {}
        peer = self.names.ports_by_name.get(opts.get("peer", ""))
        if peer is None:
            raise InputError(f"{name} has no peer port to enter from")
        if chassis:
            candidates = [self.chassis(chassis)]
        else:
            pinned = (self._by_system_id.get(opts.get("l3gateway-chassis", ""))
                      or self._redirect_chassis_of(as_port["logical_port"])
                      or self._redirect_chassis_of(peer["logical_port"])
                      or self._gateway_chassis_of(as_port["datapath"]))

            def others() -> list[Chassis]:    # read only when the pinned one is not it
                return sorted((c for c in self.snapshot.chassis.values()
                               if c is not pinned and c.unread() is None),
                              key=lambda c: c.name)

            def pinned_first():
                yield pinned
                yield from others()

            candidates = pinned_first() if pinned else others()
            if pinned is None and not candidates:
                raise MissingDataError(f"{name} is not pinned to a chassis, and no chassis' "
                                       "tables were read")
        dp_key = self.names.datapath_key(peer["datapath"])
        entry = (f"logical port {name} (from its peer {peer['logical_port']})" if as_port is pb
                 else f"logical port {name} (as {as_port['logical_port']}, from its peer "
                      f"{peer['logical_port']})")
        tried = []
        for ch in candidates:
            tried.append(ch)
            if ch.unread() is not None:
                raise MissingDataError(ch.unread())
            facts = self.facts(ch.name)
            table = _handover_table(ch.bridges[ch.integration_bridge].flows, facts,
                                    dp_key, peer["tunnel_key"])
            if table is not None:
                return TraceStart(ch.name, ch.integration_bridge,
                                  {"in_port": 0, facts.register("datapath"): dp_key,
                                   facts.register("outport"): peer["tunnel_key"]},
                                  entry, table=table, logical_port=name)
        where = tried[0].name if len(tried) == 1 else "any chassis"
        raise InputError(f"no flow on {where} hands packets from {peer['logical_port']} "
                         f"to {name}")

    # -------------------------------------------------------------- trace

    def trace(self, start: TraceStart) -> ClusterTrace:
        previous = getattr(self, "controller_state", None)
        self.controller_state = (previous.next_trace() if previous is not None
                                 else controller_packets.ControllerState())
        self.enter_zone_of(self.chassis(start.chassis).name)
        root = self._run(start)
        hops = [root]
        queue = [(root, 0)]
        seen: set[tuple] = set()
        while queue:
            hop, depth = queue.pop(0)
            for i, exit_ in enumerate(hop.exits):
                for follow in self._follow(hop, exit_):
                    self._enqueue(hop, i, exit_, follow, depth, seen, hops, queue, start)
        _mark_assumed(root, [])
        trace = ClusterTrace(hops, root)
        controller_packets.finish(self, trace)
        return trace

    def _enqueue(self, hop: Hop, i: int, exit_: Exit, follow: TraceStart, depth: int,
                 seen: set, hops: list, queue: list, start: TraceStart) -> None:
        """Run the hop ``follow`` starts (unless it loops) as a child of ``hop``."""
        key = (follow.chassis, follow.bridge,
               repr(sorted(follow.packet.items())), repr(follow.actions))
        if key in seen or depth + 1 >= self.options.max_hops:
            hop.verdicts.append(Verdict("loop", hop.start.chassis,
                                        f"loop: back at {follow.chassis} with the same "
                                        "packet" if key in seen else
                                        f"more than {self.options.max_hops} hops",
                                        exit_.packet, exit=exit_))
            return
        seen.add(key)
        follow.after_release = follow.after_release or hop.start.after_release
        if follow.actions is None and follow.continuation is None:
            # the same frame goes on (ovn-controller's packets have their own length)
            follow.payload_length = hop.start.payload_length
        child = self._run(follow)
        child.parent_exit = i
        hop.children.append(child)
        hops.append(child)
        queue.append((child, depth + 1))

    def _run(self, start: TraceStart) -> Hop:
        dp = self.datapath(start.chassis)
        step = Step("hop", f"{start.chassis}: {start.entry}", start.chassis, start.bridge)
        if start.bridge not in dp.bridges:
            why = self.chassis(start.chassis).unread(start.bridge)
            return Hop(start, step, [Exit("unknown", start.chassis, start.bridge,
                                          why or f"bridge {start.bridge} was not read",
                                          dict(start.packet), step=step)])
        if start.actions is not None:   # a packet-out from ovn-controller
            root, exits = dp.execute(start.bridge, start.packet, start.actions, step,
                                     start.payload_length)
        elif start.continuation is not None:
            root, exits = dp.resume(start.continuation,
                                    {**start.continuation.packet, **start.packet}, step,
                                    start.payload_length)
        else:
            root, exits = dp.inject(start.bridge, start.packet, step, start.table,
                                    start.payload_length)
        hop = Hop(start, root, exits)
        hop.notes.extend(text for _, text in dp.unknown_choices)
        hop.assumed = [group for group, _ in dp.unknown_choices]
        dp.unknown_choices.clear()
        hop.notes += self._notes
        self._notes.clear()
        note = self.facts(start.chassis).note
        if note:  # OVN meaning read with another release's facts: say so where it is used
            hop.notes.append(f"{start.chassis}: {note}")
        return hop

    def _follow(self, hop: Hop, exit_: Exit) -> list[TraceStart]:
        """Turn an exit into a verdict, or into the starts of the hops it leads to."""
        ch = self.chassis(hop.start.chassis)
        self.enter_zone_of(ch.name)
        facts = self.facts(ch.name)
        if exit_.kind == ExitKind.TUNNEL:
            follow = self._through_tunnel(hop, ch, exit_)
            return [follow] if follow is not None else []
        if exit_.kind == ExitKind.CONTROLLER:
            resumed = resumed_answer(hop.notes, ch.name, exit_, facts, self.names,
                                     hop.start.payload_length)
            if resumed is not None:   # put_dhcp_opts & co: the answer resumes here
                return [TraceStart(resumed.chassis, resumed.bridge, resumed.packet,
                                   resumed.entry, continuation=resumed.continuation,
                                   payload_length=resumed.payload_length)]
            answer = controller_packets.follow(self, hop, exit_, ch.name, facts)
            if answer is not None:   # pinctrl builds, holds or learns: follow what it sends
                starts = [TraceStart(**start) for start in answer.starts]
                hop.verdicts.append(Verdict("controller", ch.name, answer.text, exit_.packet,
                                            exit=exit_))
                answer.keep(hop.verdicts[-1], starts)
                return starts
            action = controller_actions.decode_userdata(exit_.data.get("userdata", ""), facts)
            if action is not None and not action.holds:
                # A copy for ovn-controller (an ACL log); the packet itself goes on.
                what = controller_actions.describe(exit_.data["userdata"], exit_.packet, facts)
                hop.notes.append(f"to ovn-controller on {ch.name}: {what}")
                return []
        if exit_.kind == ExitKind.DROP and _held_in_same_pass(hop, exit_, facts):
            return []  # the packet waits in ovn-controller; that verdict says it
        if exit_.kind == ExitKind.OUTPUT and any(
                i.name == exit_.port_name for i in uplinks_of(ch, exit_.bridge)):
            crossing = self.provider.crossing(ch, exit_.bridge, exit_.port_name, exit_.packet)
            if crossing is not None:
                return self._across_provider_network(hop, ch, exit_, crossing)
        verdict = self._verdict(ch, exit_)
        hop.verdicts.append(verdict)
        return []

    def _through_tunnel(self, hop: Hop, ch: Chassis, exit_: Exit) -> TraceStart | None:
        if self.before_crossing is not None:
            self.before_crossing(hop)
        remote_ip = exit_.data.get("remote_ip")
        row = self.names.chassis_by_encap_ip.get(remote_ip or "")
        target = self._chassis_for_sb_row(row)
        if row is None:
            hop.verdicts.append(Verdict(
                "left", ch.name, f"tunneled to {remote_ip}, which is no chassis in the "
                "Southbound", exit_.packet, port=exit_.port_name, exit=exit_))
            return None
        why = target.unread() if target is not None else (
            f"{row.get('hostname') or row['name']} is not in the snapshot")
        if target is not None and why is None and not target.ovsdb_read:
            why = f"{target.name}'s OVSDB was not read"
        if why is not None:
            hop.verdicts.append(Verdict(
                "unknown", ch.name, f"unknown: tunneled from {ch.name} to "
                f"{row.get('hostname') or row['name']}, whose tables cannot be followed: {why}",
                exit_.packet, port=exit_.port_name, exit=exit_))
            return None
        local_ip = exit_.data.get("local_ip") or (ch.encap_ips[0] if ch.encap_ips else None)
        tunnel = next((i for i in target.interfaces
                       if i.bridge == target.integration_bridge and i.type == exit_.data["type"]
                       and i.options.get("remote_ip") in (local_ip, "flow")), None)
        if tunnel is None or tunnel.ofport in (None, -1):
            hop.verdicts.append(Verdict(
                "error", ch.name, f"{target.name} has no {exit_.data['type']} tunnel port back "
                f"to {ch.name} ({local_ip}): the packet would be dropped there",
                exit_.packet, exit=exit_))
            return None
        # A new packet on the remote chassis: headers only (no registers, metadata,
        # conntrack state or cached connection), and what only the frame carries (TCP
        # seq/ack, payload, echo id), which the remote chassis' conntrack checks too.
        packet = {k: v for k, v in exit_.packet.items()
                  if k in WIRE_KEYS or k in FIELDS and not (
                      k.startswith("reg") or k.startswith("tun_") or k in CT_FIELDS
                      or k in ("metadata", "in_port", "conj_id"))}
        packet.update({"in_port": tunnel.ofport, "tun_id": exit_.data.get("tun_id", 0),
                       "tun_src": int(ipaddress.IPv4Address(local_ip)) if local_ip else 0,
                       "tun_dst": int(ipaddress.IPv4Address(remote_ip))})
        packet.update(self._received_options(target, exit_))
        return TraceStart(target.name, target.integration_bridge, packet,
                          f"tunnel {tunnel.name} from {ch.name}")

    def _across_provider_network(self, hop: Hop, ch: Chassis, exit_: Exit,
                                 crossing: Crossing) -> list[TraceStart]:
        """An uplink exit continues on each chassis the physical network delivers the
        frame to, entering by that chassis' uplink with the frame's VLAN tag; with none,
        it leaves the cluster, and the verdict says to which MAC."""
        on = "provider network " + " or ".join(crossing.networks)
        for why in crossing.unknown:
            hop.verdicts.append(Verdict(
                "unknown", ch.name, f"unknown: sent on {on} from {ch.name} to a chassis whose "
                f"tables cannot be followed: {why}", exit_.packet, port=exit_.port_name,
                exit=exit_))
        if not crossing.receivers and not crossing.unknown:
            hop.verdicts.append(Verdict(
                "left", ch.name, f"left the cluster on {ch.name} bridge {exit_.bridge} port "
                f"{exit_.port_name}: to the physical network ({on}), addressed to "
                f"{crossing.left}", exit_.packet, port=exit_.port_name, exit=exit_))
        return [TraceStart(r.chassis, r.bridge, r.packet,
                           f"uplink {r.uplink.name} of {r.bridge}: provider network "
                           f"{r.network} from {ch.name} ({r.why})")
                for r in crossing.receivers]

    def _received_options(self, target: Chassis, exit_: Exit) -> dict[str, int]:
        """The tunnel options as the receiving bridge sees them: each Geneve option in the
        ``tun_metadataN`` the receiver's TLV map gives it (ovn-controller may have mapped
        OVN's option to different fields on two chassis).  Without TLV maps on both
        sides, the sender's fields are kept as they are."""
        geneve = exit_.data.get("geneve") or {}
        receiver = self.datapath(target.name).bridges.get(target.integration_bridge)
        if not geneve or receiver is None or not receiver.tlv_map:
            return dict(exit_.data.get("options", {}))
        received = {}
        for (opt_class, opt_type), value in geneve.items():
            name = receiver.metadata_field(opt_class, opt_type)
            if name is not None:  # an option the receiver has no field for is not matchable
                received[name] = value
        return received

    def _verdict(self, ch: Chassis, exit_: Exit) -> Verdict:
        if exit_.kind == ExitKind.OUTPUT:
            iface_id = exit_.data.get("iface_id")
            if iface_id:
                return Verdict("delivered", ch.name, f"delivered to {iface_id} on {ch.name}",
                               exit_.packet, logical_port=iface_id, port=exit_.port_name,
                               exit=exit_)
            if exit_.port_name == exit_.bridge:
                return Verdict("host", ch.name, f"to {ch.name}'s host stack through "
                               f"{exit_.bridge} (LOCAL)", exit_.packet, port=exit_.port_name,
                               exit=exit_)
            return Verdict("left", ch.name, f"left the cluster on {ch.name} bridge "
                           f"{exit_.bridge} port {exit_.port_name}", exit_.packet,
                           port=exit_.port_name, exit=exit_)
        if exit_.kind == ExitKind.CONTROLLER:
            text = controller_actions.describe(exit_.data.get("userdata", ""), exit_.packet,
                                               self.facts(ch.name))
            return Verdict("controller", ch.name, f"to ovn-controller on {ch.name}: {text}",
                           exit_.packet, exit=exit_)
        kind = VERDICT_OF_EXIT[exit_.kind]
        what = {VerdictKind.DROPPED: "dropped", VerdictKind.UNKNOWN: "unknown"}.get(
            kind, exit_.kind)
        return Verdict(kind, ch.name, f"{what} on {ch.name}: {exit_.reason}", exit_.packet,
                       exit=exit_)


def _held_in_same_pass(hop: Hop, exit_: Exit, facts: OvnFacts) -> bool:
    for other in hop.exits:
        if other.kind == ExitKind.CONTROLLER and other.data.get("pass") == exit_.data.get("pass"):
            action = controller_actions.decode_userdata(other.data.get("userdata", ""), facts)
            if action is None or action.holds:
                return True
    return False


def _handover_table(lines: list[str], facts: OvnFacts, dp_key: int, port_key: int) -> int | None:
    """The table where ovn-controller hands a packet sent to a logical patch port over to
    its peer: a flow matching that outport on that datapath whose actions, in a clone, load
    a new logical datapath (controller/physical.c, the logical patch port flows).  Read from
    the decoded flow, as OVS prints the load (``->OXM_OF_METADATA[]``) whatever OVN wrote."""
    datapath, outport = facts.register("datapath"), facts.register("outport")
    cache = TokenCache()
    for line in lines:
        if "clone(" not in line:  # only a quick filter: the decoded flow decides
            continue
        try:
            flow = parse_flow(line, cache)
            match = {name: value for name, value, _ in flow.match}
            if match.get(outport) != port_key or match.get(datapath) != dp_key:
                continue
            actions = parse_actions(flow.actions)
        except (FlowSyntaxError, ActionError, ValueError):
            continue
        if any(isinstance(a, Clone) and any(isinstance(b, SetField) and b.target.name == datapath
                                            for b in a.actions) for a in actions):
            return flow.table
    return None


def _mark_assumed(hop: Hop, inherited: list[str]) -> None:
    """Verdicts downstream of a choice the datapath makes unknowably (a select group's
    bucket on the kernel datapath, …) were traced once per alternative: each says which
    branch it is on, and how to pick it (the hop's note says why it cannot be known)."""
    by_exit = _branch_labels(hop.root)
    for verdict in hop.verdicts:
        index = next((i for i, e in enumerate(hop.exits) if e is verdict.exit), None)
        labels = inherited + by_exit.get(index, [])
        if labels:
            verdict.text += f" (branch: {'; '.join(labels)})"
    for child in hop.children:
        _mark_assumed(child, inherited + by_exit.get(child.parent_exit, []))


def _branch_labels(root: Step) -> dict[int, list[str]]:
    """{exit index: the branch labels on the way from the hop's start to that exit}."""
    found: dict[int, list[str]] = {}
    todo = [(root, [])]
    while todo:
        step, labels = todo.pop()
        if "branch" in step.data:
            labels = [*labels, step.data["branch"]]
        if step.kind == StepKind.EXIT and labels:
            found[step.data["exit"]] = labels
        todo.extend((child, labels) for child in step.children)
    return found
