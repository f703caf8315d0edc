"""Execute a packet through the OpenFlow tables of one chassis, as ovs-vswitchd would.

The translation follows ofproto-dpif-xlate's rules (see docs/ovs-xlate-semantics.md):
lookups start at table 0; resubmit nests (depth ≤ 64, ≤ 4096 in all);
output to the input port is skipped; a patch port continues in the peer
bridge with metadata, registers, tunnel and conntrack state cleared and the
original state restored afterwards; ``ct(table=N)`` freezes the packet and
resumes it at table N in a new pass once the current one is done.  Each
action kind has one handler, found by type in ``_HANDLERS``.

Exits (ports, tunnels, controller, drops) are collected with the packet as
it left; crossing to another chassis is the job of ``ofrace.trace``.
"""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
import re
from dataclasses import dataclass, field

from ofrace.openflow import actions as A
from ofrace.openflow.actions import ActionError, parse_actions
from ofrace.openflow.bridge import TUNNEL_TYPES, BridgeIndex, Port, port_may_enable
from ofrace.openflow.fields import CT_STATE_BITS, SPECIAL_PORTS, format_mac
from ofrace.openflow.flowtext import (
    FlowSyntaxError,
    split_top_level,
    without_stats,
)
from ofrace.simulate.conntrack import CT_CACHE, ConntrackTable, CtOutcome, format_ct_state
from ofrace.simulate.groups import (
    HASH_ALG_SYM_L4,
    GroupModelError,
    bucket_scores,
    bucket_watch,
    dp_hash_plan,
    dp_hash_scan,
    hash_fields_basis,
    parse_select_group,
    ranked_by_score,
    userspace_dp_hash,
)
from ofrace.simulate.hashing import flow_hash_fields, hash_int, multipath_link
from ofrace.simulate.packet import Packet, read_ref, write, write_ref
from ofrace.simulate.steps import Exit, ExitKind, Step

MAX_DEPTH = 64
MAX_RESUBMITS = 4096
MAX_PASSES = 32


def userspace_recirc_depth(ovs_version: str) -> int:
    """How deep dpif-netdev nests recirculations (and tunnel pops) before it drops the
    packet: lib/dpif-netdev.c MAX_RECIRC_DEPTH, 6 up to OVS 3.2, 8 from 3.3 (commit
    5df46a44e "dpif-netdev: Increase MAX_RECIRC_DEPTH to 8").  An unreadable version is
    taken as a current one."""
    numbers = re.findall(r"\d+", ovs_version or "")
    if len(numbers) >= 2 and (int(numbers[0]), int(numbers[1])) < (3, 3):
        return 6
    return 8
LOCAL = SPECIAL_PORTS["LOCAL"]
IN_PORT = SPECIAL_PORTS["IN_PORT"]
NORMAL = SPECIAL_PORTS["NORMAL"]
FLOOD = SPECIAL_PORTS["FLOOD"]
ALL = SPECIAL_PORTS["ALL"]
CONTROLLER = SPECIAL_PORTS["CONTROLLER"]
NONE = SPECIAL_PORTS["NONE"]
CT_FIELDS = ("ct_state", "ct_zone", "ct_mark", "ct_label", "ct_nw_src", "ct_nw_dst",
             "ct_ipv6_src", "ct_ipv6_dst", "ct_nw_proto", "ct_tp_src", "ct_tp_dst")
# Packet header fields whose rewrites a trace shows where they happen.
HEADER_FIELDS = ("dl_src", "dl_dst", "vlan_tci", "nw_src", "nw_dst", "ipv6_src", "ipv6_dst",
                 "nw_ttl", "nw_tos", "tp_src", "tp_dst", "nw_proto", "arp_sha", "arp_tha")
# Where a packet keeps the NAT a ct() without recirculation applied in the datapath,
# unseen by the pass's fields: {field: (the pass's value then, the NATed value)}.
DATAPATH_NAT = "_datapath_nat"
NAT_FIELDS = ("nw_src", "nw_dst", "ipv6_src", "ipv6_dst", "tp_src", "tp_dst")
# Where a packet on a branch (one of several alternatives the datapath picks among, each
# traced) keeps its own copy of the conntrack table: what one alternative commits is not
# seen by another.
BRANCH_CONNTRACK = "_branch_conntrack"
TUNNEL_FIELDS = ("tun_id", "tun_src", "tun_dst", "tun_ipv6_src", "tun_ipv6_dst", "tun_flags",
                 "tun_tos", "tun_ttl")


class _Stop(Exception):
    """Unwinds the whole translation (``exit`` action, limits)."""


@dataclass
class SimulationOptions:
    """Choices the real datapath makes that a trace must make explicitly."""

    select_buckets: dict[int, int] = field(default_factory=dict)  # group id -> bucket
    # bridge -> "userspace" or "kernel" (groups.datapath_kind): whose dp_hash is computable
    datapath_kinds: dict[str, str] = field(default_factory=dict)
    packet_length: int | None = None
    learn: bool = True  # False: like ofproto/trace without a packet, learn has no effect
    # dpif-netdev's MAX_RECIRC_DEPTH for userspace bridges (userspace_recirc_depth); the
    # kernel datapath's limits are not modelled
    recirc_depth: int | None = None


@dataclass
class _Frozen:
    """A packet waiting to resume after ct(table=N)."""

    bridge: str
    table: int
    packet: Packet
    step: Step
    outcome: CtOutcome
    depth: int = 1        # the datapath's recirculation depth its pass runs at


@dataclass(slots=True)
class _Frame:
    """One flow's action list being executed: where the next action is.  A controller
    action with pause freezes the remaining actions of every frame acting on its packet."""

    bridge: str
    table: int
    actions: tuple | list
    packet: Packet
    step: Step
    next: int = 0


@dataclass
class Continuation:
    """What ``controller(pause)`` froze (ofproto-dpif-xlate.c ``freeze_unroll_actions``:
    the actions after it in its flow and in each flow that resubmitted into it, innermost
    first), the packet and stack as they were, for ``ChassisDatapath.resume``."""

    chassis: str
    bridge: str
    frames: list[tuple[int, tuple, Step]]   # (table, actions still to run, the flow's step)
    packet: Packet
    stack: list[int]
    userdata: bytes


@dataclass
class _Context:
    chassis: str
    exits: list[Exit]
    frozen: list[_Frozen]
    frames: list[_Frame] = field(default_factory=list)
    depth: int = 0
    resubmits: int = 0
    pass_no: int = 0
    recirc_depth: int = 0   # the datapath's nesting of this pass (recirculations, tnl_pop)
    last_flow: Step | None = None
    stack: list[int] = field(default_factory=list)
    stopped: bool = False
    payload_length: int = 0     # bytes past the headers (check_pkt_larger sees them)


class ChassisDatapath:
    """The bridges of one chassis, and the machinery to run packets through them."""

    def __init__(self, chassis: str, bridges: dict[str, BridgeIndex], conntrack=None,
                 options: SimulationOptions | None = None):
        self.chassis = chassis
        self.bridges = bridges
        self.conntrack = conntrack if conntrack is not None else ConntrackTable()
        self.options = options or SimulationOptions()
        self.learned: list[Step] = []
        # the packet as it entered, and the bridge (the userspace dp_hash hashes it)
        self.received: tuple[str, Packet] | None = None
        # datapath choices ofrace could not compute: (group id, what it did instead)
        self.unknown_choices: list[tuple[int, str]] = []

    # ------------------------------------------------------------------ API

    def inject(self, bridge: str, packet: Packet, root: Step | None = None,
               table: int = 0, payload_length: int = 0) -> tuple[Step, list[Exit]]:
        """Run ``packet`` (with its ``in_port``) through ``bridge`` from ``table``;
        ``payload_length``: the bytes the real frame carries past its headers."""
        return self._translate(bridge, packet, root, payload_length,
                               lambda ctx, p, r: self._lookup(ctx, bridge, table, p, r))

    def execute(self, bridge: str, packet: Packet, actions, root: Step | None = None,
                payload_length: int = 0) -> tuple[Step, list[Exit]]:
        """A packet-out: ``actions`` run on ``packet`` (its ``in_port``, e.g. CONTROLLER)
        as ofproto's packet-out translates them (ofproto/ofproto.c handle_packet_out →
        ofproto-dpif.c packet_execute: the actions in table 0's context, resubmits and
        recirculations as for any packet)."""
        return self._translate(bridge, packet, root, payload_length,
                               lambda ctx, p, r: self._execute(ctx, bridge, 0, actions, p, r))

    def _translate(self, bridge: str, packet: Packet, root: Step | None, payload_length: int,
                   first_pass) -> tuple[Step, list[Exit]]:
        root = root or Step("bridge", f'bridge("{bridge}")', self.chassis, bridge)
        ctx = _Context(self.chassis, [], [], payload_length=payload_length)
        packet = dict(packet)
        self.received = (bridge, dict(packet))
        entry = self.bridges[bridge].ports.get(packet.get("in_port", -1))
        if entry is not None and entry.type in TUNNEL_TYPES and self._recirc_limit(bridge):
            # dpif-netdev pops the tunnel header one level down (OVS_ACTION_ATTR_TUNNEL_POP
            # counts against MAX_RECIRC_DEPTH like a recirculation)
            ctx.recirc_depth = 1
        try:
            first_pass(ctx, packet, root)
        except _Stop:
            pass
        self._end_of_pass(ctx, bridge, packet, root, 0, 0)
        self._recirculate(ctx)
        return root, ctx.exits

    def resume(self, continuation: Continuation, packet: Packet, root: Step | None = None,
               payload_length: int = 0) -> tuple[Step, list[Exit]]:
        """Run what ``continuation`` froze with ``packet`` (the controller's new packet and
        registers, OFPT_RESUME / NXT_RESUME): each frame's remaining actions, innermost
        first, then the recirculations they queue."""
        root = root or Step("bridge", f'bridge("{continuation.bridge}")', self.chassis,
                            continuation.bridge)
        ctx = _Context(self.chassis, [], [], payload_length=payload_length)
        ctx.stack = list(continuation.stack)
        packet = dict(packet)
        # A new datapath packet (the packet-out NXT_RESUME makes): its ct_state and the
        # other conntrack fields come back from the continuation's metadata, but no
        # connection is attached to it, so the next ct() looks its tuple up afresh.
        packet.pop(CT_CACHE, None)
        bridge = continuation.bridge
        self.received = (bridge, dict(packet))
        try:
            for table, actions, flow in continuation.frames:
                if ctx.stopped:
                    break
                if not actions:
                    continue    # the flow ended with the action it resubmitted through
                step = root.add(Step("flow", f"resumed after controller(pause): "
                                     f"{flow.flow or flow.text}", self.chassis, bridge,
                                     table=table, priority=flow.priority, cookie=flow.cookie,
                                     flow=flow.flow, data={"pass": 0, "packet": dict(packet),
                                                           "resumed": True}))
                ctx.last_flow = step
                self._execute(ctx, bridge, table, actions, packet, step)
        except _Stop:
            pass
        self._end_of_pass(ctx, bridge, packet, root, 0, 0)
        self._recirculate(ctx)
        return root, ctx.exits

    def _recirculate(self, ctx: _Context) -> None:
        """The passes ct(table=N) queued, in order, each to its end."""
        passes = 0
        while ctx.frozen:
            passes += 1
            frozen = ctx.frozen.pop(0)
            if passes > MAX_PASSES:
                self._exit(ctx, "limit", frozen.bridge, frozen.packet, frozen.step,
                           f"more than {MAX_PASSES} recirculations")
                break
            limit = self._recirc_limit(frozen.bridge)
            if limit is not None and frozen.depth > limit:
                # lib/dpif-netdev.c dp_execute_cb, OVS_ACTION_ATTR_RECIRC: past
                # MAX_RECIRC_DEPTH nested recirculations the packet is dropped
                # (coverage datapath_drop_recirc_error)
                self._exit(ctx, "drop", frozen.bridge, frozen.packet, frozen.step,
                           f"Packet dropped. Max recirculation depth exceeded (the "
                           f"userspace datapath nests at most {limit} recirculations)")
                continue
            resume = frozen.step.add(Step(
                "recirc", f"↳ recirculated to table {frozen.table} with ct_state "
                f"{format_ct_state(frozen.outcome.state)} (zone {frozen.outcome.zone})",
                self.chassis, frozen.bridge,
                table=frozen.table, data={"pass": passes, "packet": dict(frozen.packet)}))
            ctx.depth, ctx.resubmits, ctx.stopped = 0, 0, False
            ctx.pass_no, ctx.last_flow = passes, None
            ctx.recirc_depth = frozen.depth
            exits_before, frozen_before = len(ctx.exits), len(ctx.frozen)
            try:
                self._lookup(ctx, frozen.bridge, frozen.table, frozen.packet, resume)
            except _Stop:
                pass
            self._end_of_pass(ctx, frozen.bridge, frozen.packet, resume, exits_before,
                              frozen_before)

    def _recirc_limit(self, bridge: str) -> int | None:
        """MAX_RECIRC_DEPTH where it is known: a userspace bridge's (None: no limit
        modelled, the kernel datapath's are other)."""
        if self.options.datapath_kinds.get(bridge) != "userspace":
            return None
        return self.options.recirc_depth

    def _end_of_pass(self, ctx: _Context, bridge: str, packet: Packet, start: Step,
                     exits_before: int, frozen_before: int) -> None:
        """A datapath pass that neither output nor recirculated dropped the packet.

        A copy sent to the controller does not count as an output: whether the packet
        itself ends there (held for ARP) or goes on (an ACL log) is OVN's meaning, told
        by the trace layer."""
        decisive = [e for e in ctx.exits[exits_before:] if e.kind != ExitKind.CONTROLLER]
        if decisive or len(ctx.frozen) > frozen_before:
            return
        where = ctx.last_flow or start
        if ctx.last_flow is None:
            reason = "no output action: dropped"
        elif where.kind == "miss":
            reason = f"no flow matched in table {where.table}"
        else:
            reason = (f"no output action: dropped after table {where.table} "
                      f"(priority {where.priority})")
        self._exit(ctx, "drop", where.bridge or bridge, packet, where, reason)

    # --------------------------------------------------------------- lookup

    def _lookup(self, ctx: _Context, bridge_name: str, table_no: int, packet: Packet,
                parent: Step) -> None:
        bridge = self.bridges[bridge_name]
        if bridge.unread:
            self._unknown_lookup(ctx, parent, bridge_name, table_no, packet,
                          f"{bridge_name}'s flows were not read", bridge.unread)
            return
        probe = packet
        if packet.get("nw_frag", 0) & 1:
            # Fragment handling "normal": fragments are looked up without L4 ports.
            probe = {**packet, "tp_src": 0, "tp_dst": 0}
        try:
            entry, conj_id = bridge.lookup(table_no, probe)
        except (ValueError, FlowSyntaxError) as exc:  # the matching line is garbled
            self._unknown_lookup(ctx, parent, bridge_name, table_no, packet,
                          "the matching flow line is unreadable",
                          f"{bridge_name} table {table_no}: the matching flow line could not "
                          f"be read ({exc})")
            return
        gaps = bridge.uncertain(table_no, probe)
        if entry is None:
            step = parent.add(Step("miss", f"{table_no}. no flow matched", self.chassis,
                                   bridge_name, table=table_no, data={"pass": ctx.pass_no}))
            ctx.last_flow = step
            if gaps:
                step.data["unparsed"] = [u.line for u in gaps]
                self._exit(ctx, "unknown", bridge_name, packet, step,
                           f"{bridge_name} table {table_no} missed, and {len(gaps)} flow "
                           "line(s) that may belong to it could not be read (one of them "
                           "may have matched)")
            # A miss is a drop of this lookup only (OVS: the no-packet-in rule); whether
            # the packet went anywhere is decided at the end of the pass.
            return
        outrank = [u for u in gaps if u.priority is None or u.priority >= entry.priority]
        if outrank:
            self._unknown_lookup(ctx, parent, bridge_name, table_no, packet,
                          "unreadable flow lines may outrank the hit",
                          f"{bridge_name} table {table_no}: {len(outrank)} flow line(s) that "
                          f"could not be read may outrank the flow that matched (priority "
                          f"{entry.priority})", [u.line for u in outrank])
            return
        line = bridge.line(entry.index)
        flow_text = without_stats(line)
        step = parent.add(Step(
            "flow", flow_text, self.chassis, bridge_name, table=table_no,
            priority=entry.priority, cookie=entry.cookie, flow=flow_text,
            # The packet as this flow matched it: later stages read meaning from it
            # (OVN's register roles, the protocol of the rewrites); the engine does not.
            # Its counters as the node last read them: evidence that real packets took it.
            data={"flow_index": entry.index, "pass": ctx.pass_no, "packet": dict(packet),
                  "counters": bridge.counters(entry.index)}))
        ctx.last_flow = step
        if conj_id is not None:
            step.data["conj_id"] = conj_id
        if gaps:
            step.data["unparsed"] = [u.line for u in gaps]
        try:
            acts = self._parsed(bridge_name, entry)
        except ActionError as exc:
            self._exit(ctx, "gap", bridge_name, packet, step, str(exc))
            return
        if not acts:
            step.data["no_actions"] = True
        if conj_id is not None:
            packet["conj_id"] = conj_id
        self._execute(ctx, bridge_name, table_no, acts, packet, step)

    def _unknown_lookup(self, ctx: _Context, parent: Step, bridge: str, table: int, packet: Packet,
                 what: str, reason: str, unparsed: list[str] | None = None) -> None:
        """A lookup whose answer is not in the snapshot: the trace ends here, unknown."""
        step = parent.add(Step("unknown", f"{table}. {what}", self.chassis, bridge, table=table,
                               data={"pass": ctx.pass_no}))
        if unparsed:
            step.data["unparsed"] = unparsed
        ctx.last_flow = step
        self._exit(ctx, "unknown", bridge, packet, step, reason)

    def _parsed(self, bridge: str, entry) -> tuple:
        return self.bridges[bridge].actions(entry)

    # ------------------------------------------------------------- actions

    def _execute(self, ctx: _Context, bridge: str, table: int, acts, packet: Packet,
                 step: Step) -> None:
        frame = _Frame(bridge, table, acts, packet, step)
        ctx.frames.append(frame)
        try:
            self._execute_frame(ctx, frame)
        finally:
            ctx.frames.pop()

    def _execute_frame(self, ctx: _Context, frame: _Frame) -> None:
        bridge, table, packet, step = frame.bridge, frame.table, frame.packet, frame.step
        for i, action in enumerate(frame.actions):
            frame.next = i + 1
            if ctx.stopped:
                return
            handler = _HANDLERS.get(type(action))
            if handler is None:
                self._exit(ctx, "gap", bridge, packet, step,
                           f"action {action} is not simulated")
                return
            rewrites = type(action) in _REWRITING
            before = {f: packet.get(f, 0) for f in HEADER_FIELDS} if rewrites else None
            result = handler(self, ctx, bridge, table, action, packet, step)
            if rewrites:
                changes = [(f, before[f], packet.get(f, 0)) for f in HEADER_FIELDS
                           if packet.get(f, 0) != before[f]]
                if changes:
                    step.data.setdefault("changes", []).extend(changes)
            if result is False:
                return

    def _exit(self, ctx: _Context, kind: str, bridge: str, packet: Packet, step: Step,
              reason: str, port: Port | None = None, data: dict | None = None) -> Exit:
        left = datapath_packet(packet)
        left.pop(BRANCH_CONNTRACK, None)
        exit_ = Exit(kind, self.chassis, bridge, reason, left,
                     port=port.ofport if port else None, port_name=port.name if port else None,
                     data={**(data or {}), "pass": ctx.pass_no}, step=step)
        ctx.exits.append(exit_)
        step.add(Step("exit", f"{kind}: {reason}", self.chassis, bridge,
                      data={"exit": len(ctx.exits) - 1}))
        return exit_

    def _resubmit(self, ctx, bridge, table, action: A.Resubmit, packet, step):
        if action.ct:
            self._exit(ctx, "gap", bridge, packet, step, "resubmit(...,ct) is not simulated")
            return False
        ctx.resubmits += 1
        if ctx.resubmits > MAX_RESUBMITS:
            self._exit(ctx, "limit", bridge, packet, step, f"over {MAX_RESUBMITS} resubmits")
            raise _Stop
        if ctx.depth >= MAX_DEPTH:
            self._exit(ctx, "limit", bridge, packet, step,
                       f"over max translation depth {MAX_DEPTH}")
            raise _Stop
        saved_port = packet.get("in_port", 0)
        if action.port is not None:
            packet["in_port"] = action.port
        target = table if action.table is None else action.table
        deepens = target <= table  # OVS counts depth only for non-increasing resubmits
        ctx.depth += deepens
        try:
            self._lookup(ctx, bridge, target, packet, step)
        finally:
            ctx.depth -= deepens
            if action.port is not None:
                packet["in_port"] = saved_port
        return None

    def _goto(self, ctx, bridge, table, action: A.GotoTable, packet, step):
        ctx.depth += 1
        try:
            self._lookup(ctx, bridge, action.table, packet, step)
        finally:
            ctx.depth -= 1
        return False

    def _set_field(self, ctx, bridge, table, action: A.SetField, packet, step):
        write(packet, action.target.name, action.value, action.mask)

    def _move(self, ctx, bridge, table, action: A.Move, packet, step):
        write_ref(packet, action.dst, read_ref(packet, action.src))

    def _push(self, ctx, bridge, table, action: A.Push, packet, step):
        ctx.stack.append(read_ref(packet, action.src))

    def _pop(self, ctx, bridge, table, action: A.Pop, packet, step):
        if not ctx.stack:
            self._exit(ctx, "gap", bridge, packet, step, "pop from an empty stack")
            return False
        write_ref(packet, action.dst, ctx.stack.pop())

    def _simple(self, ctx, bridge, table, action: A.Simple, packet, step):
        name = action.name
        if name == "drop":
            return False
        if name == "exit":
            ctx.stopped = True
            return False
        if name == "ct_clear":
            # ofproto-dpif-xlate.c composes ct_clear only while ctx->conntracked (the
            # pass resumed after ct(table=N), or began tracked): after a ct() without
            # recirculation the flow is already untracked, nothing reaches the datapath,
            # and the packet keeps the connection and ct_state that ct() gave it there.
            if packet.get("ct_state", 0) & CT_STATE_BITS["trk"]:
                packet.pop(CT_CACHE, None)
            for f in CT_FIELDS:
                packet.pop(f, None)
            return None
        if name == "dec_ttl":
            if packet.get("dl_type") not in (0x0800, 0x86DD):
                return None
            ttl = packet.get("nw_ttl", 0)
            if ttl <= 1:
                step.add(Step("ttl", f"dec_ttl: TTL {ttl} expired; the rest of this flow's "
                              "actions are skipped", self.chassis, bridge))
                return False
            packet["nw_ttl"] = ttl - 1
            return None
        if name == "pop_vlan":
            packet["vlan_tci"] = 0
            return None
        kind = name if name in ("meter", "sample") else "note"
        step.add(Step(kind, f"{name}{'' if action.arg is None else ':' + str(action.arg)}"
                      " (no effect on the packet)", self.chassis, bridge))
        return None

    def _push_vlan(self, ctx, bridge, table, action: A.PushVlan, packet, step):
        packet["vlan_tci"] = 0x1000

    def _check_pkt_larger(self, ctx, bridge, table, action: A.CheckPktLarger, packet, step):
        length = self.options.packet_length or _frame_length(packet, ctx.payload_length)
        write_ref(packet, action.dst, 1 if length > action.length else 0)

    def _clone(self, ctx, bridge, table, action: A.Clone, packet, step):
        inner = step.add(Step("clone", "clone", self.chassis, bridge))
        saved_stack = list(ctx.stack)
        self._execute(ctx, bridge, table, action.actions, dict(packet), inner)
        ctx.stack = saved_stack  # an exit inside a clone also ends what follows it (as OVS)

    def _ct(self, ctx, bridge, table, action: A.Ct, packet, step):
        """Conntrack runs on the datapath's packet: this pass's fields plus the NAT
        of earlier ct() actions without recirculation (``DATAPATH_NAT``)."""
        before = dict(packet)
        real = datapath_packet(packet)
        seen = dict(real)
        table = packet.get(BRANCH_CONNTRACK) or self.conntrack
        outcome = table.execute(action, real, where=f"{self.chassis}/{bridge}")
        ct_step = step.add(Step("ct", f"ct: {outcome.describe()}", self.chassis, bridge,
                                data={"zone": outcome.zone, "state": outcome.state,
                                      "nat": outcome.nat, "commit": outcome.committed,
                                      "recirculates": action.table is not None,
                                      "why": outcome.why,
                                      "conntrack": outcome.lookup_json()}))
        nat_changes = [(f, seen.get(f, 0), real.get(f, 0)) for f in NAT_FIELDS
                       if real.get(f, 0) != seen.get(f, 0)]
        if nat_changes:
            ct_step.data["changes"] = nat_changes
            ct_step.data["proto"] = (real.get("dl_type", 0), real.get("nw_proto", 0))
        if action.table is None:
            # No recirculation: the rest of the pass goes on untracked with its own
            # fields (ofproto-dpif-xlate.c compose_conntrack_action leaves the flow's
            # addresses alone), but the datapath rewrote the packet itself: what
            # leaves, and the next ct(), carry the NAT.
            pending = dict(before.get(DATAPATH_NAT) or {})
            for f, _, value in nat_changes:
                pending[f] = (before.get(f, 0), value)
            packet.clear()
            packet.update(before)
            for f in CT_FIELDS:
                packet.pop(f, None)
            packet[CT_CACHE] = real.get(CT_CACHE)
            if pending:
                packet[DATAPATH_NAT] = pending
                ct_step.data["datapath_nat"] = {f: v for f, (_, v) in pending.items()}
            return None
        frozen = real
        frozen.pop(DATAPATH_NAT, None)
        _set_ct_fields(frozen, outcome)
        ctx.frozen.append(_Frozen(bridge, action.table, frozen, ct_step, outcome,
                                  ctx.recirc_depth + 1))
        # A clone goes to conntrack and resumes later; this pass goes on with the
        # pre-ct packet, untracked (ofproto/trace: "Sets the packet to an untracked
        # state, and clears all the conntrack fields").
        packet.clear()
        packet.update(before)
        for f in CT_FIELDS:
            packet.pop(f, None)
        return None

    def _group(self, ctx, bridge, table, action: A.Group, packet, step):
        group = self.bridges[bridge].groups.get(action.group_id)
        if group is None and self.bridges[bridge].groups_unread:
            self._exit(ctx, "unknown", bridge, packet, step,
                       f"group {action.group_id}: the groups of {bridge} were not read "
                       f"({self.bridges[bridge].groups_unread})")
            return False
        if group is None:
            step.add(Step("group", f"output to nonexistent group {action.group_id}",
                          self.chassis, bridge))
            return False
        if not group.buckets:
            step.add(Step("group", f"group {group.group_id}: no buckets", self.chassis, bridge))
            return None
        picker = None   # who picks among the buckets traced as branches, if not ofrace
        if group.type in ("all", "indirect"):
            chosen = list(range(len(group.buckets)))
        elif action.group_id in self.options.select_buckets:
            chosen = [self.options.select_buckets[action.group_id]]
            if chosen[0] >= len(group.buckets):
                self._exit(ctx, "gap", bridge, packet, step,
                           f"bucket {chosen[0]} was chosen for group {group.group_id}, which "
                           f"has {len(group.buckets)} bucket(s) on {self.chassis} {bridge}")
                return False
            step.add(Step("group", f"group {group.group_id}: bucket {chosen[0]} chosen by "
                          "--bucket", self.chassis, bridge))
        elif group.type == "ff":
            chosen = self._first_live_bucket(bridge, group, step)
        else:
            chosen, picker = self._select_bucket(bridge, group, packet, step)
        copies = _branch_copies(packet, len(chosen), self.conntrack if picker else None)
        for i, bucket_packet in zip(chosen, copies, strict=True):
            text = _bucket_actions(group.buckets[i])
            label = (f"bucket {i} of group {group.group_id} ({picker}; --bucket "
                     f"{group.group_id}={i} picks)") if picker else None
            gstep = step.add(Step("group", (f"branch: {label}: " if label else "")
                                  + f"group {group.group_id} ({group.type}) bucket {i} "
                                  f"of {len(group.buckets)}: {text}", self.chassis, bridge,
                                  data={"group": group.group_id, "bucket": i,
                                        **({"branch": label} if label else {})}))
            try:
                acts = parse_actions(text) if text not in ("", "drop") else ()
            except ActionError as exc:
                self._exit(ctx, "gap", bridge, packet, gstep, str(exc))
                continue
            # Each bucket runs on a copy: OVS restores the flow after a bucket, and an
            # exit inside a bucket ends only that bucket.
            ctx.depth += 1
            self._execute(ctx, bridge, table, acts, bucket_packet, gstep)
            ctx.depth -= 1
            ctx.stopped = False
        return None

    def _first_live_bucket(self, bridge: str, group, step: Step) -> list[int]:
        """A fast-failover group takes its first live bucket (ofproto-dpif-xlate.c
        ``group_first_live_bucket``): one whose ``watch_port`` is up by the port's config
        and state in the snapshot (BFD/CFM liveness is not modelled; ``watch_group``
        counts as live)."""
        ports = self.bridges[bridge].ports
        for i, bucket in enumerate(group.buckets):
            watch = next((item[11:] for item in split_top_level(bucket)
                          if item.startswith("watch_port:")), None)
            port = ports.get(int(watch)) if watch and watch.isdigit() else None
            if port is not None and ("LINK_DOWN" in port.state or "PORT_DOWN" in port.config):
                step.add(Step("group", f"group {group.group_id}: bucket {i} not live "
                              f"({port.name} is down)", self.chassis, bridge))
                continue
            return [i]
        step.add(Step("group", f"group {group.group_id}: no live bucket", self.chassis, bridge))
        return []

    def _select_bucket(self, bridge: str, group, packet: Packet,
                       step: Step) -> tuple[list[int], str | None]:
        """The bucket OVS takes (ofrace/simulate/groups.py), as ``([bucket], None)``;
        where the datapath's choice cannot be known, every bucket, each a branch, and
        who picks among them (said in the step and in ``unknown_choices``)."""
        gid = group.group_id
        try:
            select = parse_select_group(group)
        except GroupModelError as exc:
            return self._unknown_choice(bridge, group, step, str(exc),
                                        "which one OVS takes is not known")
        plan = dp_hash_plan(select) if select.method in ("", "dp_hash") else None
        if select.method == "hash" and select.fields:
            basis = hash_fields_basis(select, packet)
            scores = bucket_scores(select, basis)
            chosen, picker = self._live_choice(bridge, group, ranked_by_score(select, basis),
                                               step)
            text = (f"bucket {chosen[0]}" if len(chosen) == 1 else "no live bucket"
                    if not chosen else f"buckets {chosen} by liveness")
            step.add(Step("group", f"group {gid}: hash of fields("
                          f"{','.join(f.name for f in select.fields)}) → {text} "
                          f"(scores {', '.join(map(str, scores))})", self.chassis, bridge,
                          data={"group": gid, "method": "hash", "scores": scores}))
            return chosen, picker
        if plan is None:
            return self._unknown_choice(bridge, group, step,
                                        "OVS's default selection (a jhash of the L2-L4 "
                                        "headers) is not modelled",
                                        "OVS's default selection hash picks one")
        kind = self.options.datapath_kinds.get(bridge, "kernel")
        if kind != "userspace":
            return self._unknown_choice(bridge, group, step,
                                        "the kernel datapath computes dp_hash with a "
                                        "per-boot random seed",
                                        "the kernel datapath's dp_hash picks one")
        entry_bridge, received = self.received or (bridge, packet)
        entry = self.bridges[entry_bridge].ports.get(received.get("in_port", -1))
        if entry is not None and entry.type in TUNNEL_TYPES:
            return self._unknown_choice(bridge, group, step,
                                        "the userspace datapath's dp_hash of a packet that "
                                        "came in through a tunnel hashes its outer header",
                                        "the dp_hash of the outer header picks one")
        if entry is not None and entry.type == "dpdk" and plan.alg != HASH_ALG_SYM_L4:
            return self._unknown_choice(bridge, group, step,
                                        "a DPDK NIC's own RSS hash seeds dp_hash",
                                        "the NIC's RSS hash picks one")
        dp_hash = userspace_dp_hash(plan, received, packet)
        mask = len(plan.table) - 1
        best = plan.table[dp_hash & mask]
        alg = "sym_l4" if plan.alg == HASH_ALG_SYM_L4 else "l4"
        step.add(Step("group", f"group {gid}: dp_hash {alg}({plan.basis}) = {dp_hash:#010x} "
                      f"(userspace datapath), & {mask:#x} → bucket {best}", self.chassis,
                      bridge, data={"group": gid, "method": "dp_hash", "dp_hash": dp_hash}))
        return self._live_choice(bridge, group, dp_hash_scan(plan, dp_hash), step)

    def _live_choice(self, bridge: str, group, order: list[int],
                     step: Step) -> tuple[list[int], str | None]:
        """The first live bucket in OVS's order of preference (``bucket_is_alive``: no
        watch, or a ``watch_port`` whose ``may_enable`` holds, as for a bundle member);
        where liveness is not in the snapshot, every bucket OVS may take, as branches."""
        ports = self.bridges[bridge].ports
        candidates = []
        for i in order:
            watch_port, watch_group = bucket_watch(group.buckets[i])
            if watch_port is None or watch_group is not None:
                live, why = True, "no watched port"   # a watch_group counts as live
            else:
                live, why = _member_live(watch_port, ports)
            if live is False:
                step.add(Step("group", f"group {group.group_id}: bucket {i} not live ({why})",
                              self.chassis, bridge))
                continue
            candidates.append(i)
            if live:
                break
        else:
            if candidates:   # none known live: each unknown one may be the one taken
                return candidates, "whether its watch_port is live is not in the snapshot"
            return [], None
        if len(candidates) == 1:
            return candidates, None
        return candidates, "whether the buckets' watch_ports are live is not in the snapshot"

    def _unknown_choice(self, bridge: str, group, step: Step, why: str,
                        picker: str) -> tuple[list[int], str]:
        """A choice the snapshot cannot make: every bucket is traced, each a branch whose
        verdicts say so (never one bucket taken as if known)."""
        ports = self.bridges[bridge].ports
        # a bucket whose watched port is known down is never taken (bucket_is_alive)
        watched = [bucket_watch(bucket)[0] for bucket in group.buckets]
        may = [i for i, port in enumerate(watched)
               if port is None or _member_live(port, ports)[0] is not False]
        text = (f"group {group.group_id} on {self.chassis} {bridge}: which bucket the "
                f"datapath takes is not known ({why}); each of its {len(may)} bucket(s) it "
                f"may take is traced as a branch: --bucket {group.group_id}=N picks one")
        step.add(Step("group", text, self.chassis, bridge,
                      data={"group": group.group_id, "unknown_choice": True}))
        self.unknown_choices.append((group.group_id, text))
        return may, picker

    def _bundle(self, ctx, bridge, table, action: A.Bundle, packet, step):
        """lib/bundle.c ``bundle_execute``: active_backup takes the first member that is
        live, hrw the live member with the highest ``hash_2words(i, flow hash)``; none
        live: OFPP_NONE (bundle outputs nothing, bundle_load loads 0xffff).  A member is
        live by ``port_may_enable`` (link, BFD, CFM from the snapshot).  Where that is
        unknown, each member OVS could take is traced as a branch (bundle_load cannot
        be: the rest of the translation would have to be run once per member)."""
        ports = self.bridges[bridge].ports
        order = list(range(len(action.members)))
        flow_hash = None
        if action.algorithm == "hrw":
            flow_hash = flow_hash_fields(packet, action.fields, action.basis)
            # the highest hash wins; on a tie the earlier member (bundle.c: hash > best)
            order.sort(key=lambda i: (-hash_int(i, flow_hash), i))
        candidates: list[tuple[int, str]] = []   # (member, why) OVS may take
        said = []
        for i in order:
            member = action.members[i]
            live, why = _member_live(member, ports)
            said.append(f"{_port_text(member, ports)}: {why}")
            if live is False:
                continue
            candidates.append((member, why))
            if live:
                break
        else:
            candidates.append((NONE, "no member is live"))
        how = (f"hash {action.fields}({action.basis}) = {flow_hash:#010x}, members by hash"
               if flow_hash is not None else "members in order")
        summary = (f"bundle {action.algorithm} ({how}): " + "; ".join(said))
        if len(candidates) == 1:
            member = candidates[0][0]
            bstep = step.add(Step("bundle", f"{summary} → {_port_text(member, ports)}",
                                  self.chassis, bridge, data={"member": member}))
            return self._bundle_result(ctx, bridge, table, action, packet, bstep, member)
        if action.dst is not None:
            self._exit(ctx, "unknown", bridge, packet, step,
                       f"{summary}: which member bundle_load takes depends on liveness the "
                       "snapshot does not hold")
            return False
        bstep = step.add(Step("bundle", f"{summary}: liveness not in the snapshot, each "
                              "member OVS may take is traced as a branch", self.chassis,
                              bridge, data={"unknown_choice": True}))
        copies = _branch_copies(packet, len(candidates), self.conntrack)
        for n, ((member, why), copy_) in enumerate(zip(candidates, copies, strict=True)):
            before = ", ".join(_port_text(m, ports) for m, _ in candidates[:n])
            label = (f"bundle member {_port_text(member, ports)}, taken if "
                     + (f"{before} {'is' if n == 1 else 'are'} not live and " if before
                        else "")
                     + f"it is live ({why})") if member != NONE else (
                f"no bundle member live ({why})")
            branch = bstep.add(Step("bundle", f"branch: {label}", self.chassis, bridge,
                                    data={"member": member, "branch": label}))
            self._bundle_result(ctx, bridge, table, action, copy_, branch, member)
            ctx.stopped = False
        return None

    def _bundle_result(self, ctx, bridge, table, action: A.Bundle, packet, step, member):
        if action.dst is not None:
            write_ref(packet, action.dst, member & 0xFFFF)
            return None
        if member == NONE:
            return None
        return self._output(ctx, bridge, table, A.Output(port=member), packet, step)

    def _multipath(self, ctx, bridge, table, action: A.Multipath, packet, step):
        """lib/multipath.c ``multipath_execute``: a link from the flow hash, into dst."""
        flow_hash = flow_hash_fields(packet, action.fields, action.basis)
        link = multipath_link(flow_hash, action.algorithm, action.n_links, action.arg)
        write_ref(packet, action.dst, link)
        step.add(Step("multipath", f"multipath {action.algorithm}: hash {action.fields}"
                      f"({action.basis}) = {flow_hash:#010x} → link {link} of "
                      f"{action.n_links} into {action.dst}", self.chassis, bridge,
                      data={"link": link}))

    def _controller(self, ctx, bridge, table, action: A.Controller, packet, step):
        data = {"userdata": action.userdata.hex(), "pause": action.pause,
                "reason": action.reason, "meter_id": action.meter_id}
        if action.pause:
            data["continuation"] = self._continuation(ctx, bridge, packet, action.userdata)
        self._exit(ctx, "controller", bridge, packet, step, "sent to the controller",
                   data=data)
        if action.pause:
            # The rest of the translation is frozen until ovn-controller resumes it.
            ctx.stopped = True
            return False
        return None

    def _continuation(self, ctx: _Context, bridge: str, packet: Packet,
                      userdata: bytes) -> Continuation:
        """The frames acting on ``packet`` from the innermost out.  A clone's or a group
        bucket's copy, or a patch peer's packet, is another packet and ends the list, as
        OVS finishes the freeze at their end (``clone_xlate_actions``,
        ``xlate_group_bucket``, ``patch_port_output`` call ``finish_freezing``)."""
        frames = []
        for frame in reversed(ctx.frames):
            if frame.packet is not packet or frame.bridge != bridge:
                break
            frames.append((frame.table, frame.actions[frame.next:], frame.step))
        return Continuation(self.chassis, bridge, frames, datapath_packet(packet),
                            list(ctx.stack), bytes(userdata))

    def _learn(self, ctx, bridge, table, action: A.Learn, packet, step):
        from ofrace.simulate.learn import learn_flow

        if not self.options.learn:
            step.add(Step("learn", "learn: suppressed (no side effects in this mode)",
                          self.chassis, bridge))
            return None
        result = learn_flow(self.bridges[bridge], action, packet)
        step.add(Step("learn", f"learned: {result}", self.chassis, bridge))
        return None

    def _conjunction(self, ctx, bridge, table, action, packet, step):
        return None

    def _unknown(self, ctx, bridge, table, action: A.Unknown, packet, step):
        self._exit(ctx, "gap", bridge, packet, step,
                   f"action {action.name}:{action.text} is not simulated")
        return False

    # --------------------------------------------------------------- output

    def _output(self, ctx, bridge_name, table, action: A.Output, packet, step):
        port_no = read_ref(packet, action.source) if action.source else action.port
        in_port = packet.get("in_port", 0)
        if port_no == IN_PORT:
            port_no = in_port
        elif port_no == in_port:
            step.add(Step("skip", f"output:{port_no} skipped: it is the input port",
                          self.chassis, bridge_name))
            return None
        if port_no in (NORMAL, FLOOD, ALL):
            return self._flood(ctx, bridge_name, port_no, packet, step)
        if port_no == CONTROLLER:
            return self._controller(ctx, bridge_name, table, A.Controller(), packet, step)
        bridge = self.bridges[bridge_name]
        port = bridge.ports.get(port_no)
        if port is None:
            step.add(Step("skip", f"output:{port_no}: no such port (dropped)", self.chassis,
                          bridge_name))
            return None
        self._output_port(ctx, bridge_name, port, packet, step)
        return None

    def _output_port(self, ctx, bridge_name: str, port: Port, packet: Packet, step: Step):
        if "NO_FWD" in port.config:  # ofproto-dpif-xlate.c check_output_prerequisites
            step.add(Step("skip", f"output to {port.name} skipped: NO_FWD", self.chassis,
                          bridge_name))
            return None
        if port.type == "patch":
            return self._patch(ctx, bridge_name, port, packet, step)
        if port.type in TUNNEL_TYPES:
            return self._tunnel(ctx, bridge_name, port, packet, step)
        kind = "LOCAL" if port.ofport == LOCAL else (port.type or "system")
        # The translation outputs to a port that is down as to any other (only bonds and
        # fast-failover groups look at liveness); what the device does with it varies
        # (OVS's dummy ports still send), so it is said, not decided.
        down = ("; its link is down" if "LINK_DOWN" in port.state else
                "; it is administratively down" if "PORT_DOWN" in port.config else "")
        self._exit(ctx, "output", bridge_name, packet, step,
                   f"output to {port.name} ({kind}){down}", port=port,
                   data={"iface_id": port.external_ids.get("iface-id"),
                         **({"port_down": True} if down else {})})

    def _patch(self, ctx, bridge_name, port: Port, packet, step):
        peer_name = port.options.get("peer")
        for other_name, other in self.bridges.items():
            peer = other.port_by_name.get(peer_name)
            if peer is not None and other_name != bridge_name:
                break
        else:
            self._exit(ctx, "unknown", bridge_name, packet, step,
                       f"patch port {port.name}: its peer {peer_name} is on no bridge in the "
                       "snapshot (that bridge's flows were not read)")
            return
        if ctx.depth >= MAX_DEPTH:
            self._exit(ctx, "limit", bridge_name, packet, step, "patch port loop")
            raise _Stop
        crossed = dict(packet)
        crossed["in_port"] = peer.ofport
        crossed["metadata"] = 0
        for name in list(crossed):
            if (name.startswith("reg") or name.startswith("tun_metadata")
                    or name in TUNNEL_FIELDS or name in CT_FIELDS):
                del crossed[name]
        cross = step.add(Step("patch", f'patch {port.name} -> bridge("{other_name}") '
                              f"in_port {peer.name} ({peer.ofport})", self.chassis, other_name,
                              data={"from_port": port.name, "to_port": peer.name}))
        saved_stack = ctx.stack
        ctx.stack = []
        ctx.depth += 1
        try:
            self._lookup(ctx, other_name, 0, crossed, cross)
        finally:
            ctx.depth -= 1
            ctx.stack = saved_stack
            ctx.stopped = False  # an exit in the peer bridge does not stop this one

    def _tunnel(self, ctx, bridge_name, port: Port, packet, step):
        opts = port.options
        outer = {
            "type": port.type,
            "remote_ip": opts.get("remote_ip"),
            "local_ip": opts.get("local_ip"),
            "tun_id": packet.get("tun_id", 0) if opts.get("key", "0") == "flow"
            else tunnel_key(opts.get("key", "0")),
            "options": {f: packet[f] for f in packet if f.startswith("tun_metadata")},
            # the same options on the wire, by (class, type): the receiver's TLV map
            # may give them other tun_metadataN fields
            "geneve": self.bridges[bridge_name].geneve_options(packet),
        }
        # remote_ip=flow/local_ip=flow (OVN 26.03's flow-based tunnels): the flow's
        # set_field tun_dst/tun_src names the endpoints (a field value, an integer)
        for key, v4, v6 in (("remote_ip", "tun_dst", "tun_ipv6_dst"),
                            ("local_ip", "tun_src", "tun_ipv6_src")):
            if outer[key] == "flow":
                outer[key] = _tunnel_endpoint(packet.get(v4), packet.get(v6))
        self._exit(ctx, "tunnel", bridge_name, packet, step,
                   f"output to tunnel {port.name} ({port.type} to {outer['remote_ip']})",
                   port=port, data=outer)

    def _flood(self, ctx, bridge_name, how: int, packet, step):
        """FLOOD and ALL (ofproto-dpif-xlate.c ``flood_packets``: every port but the input
        port; FLOOD skips ports with NO_FLOOD); NORMAL is ``_normal``."""
        if how == NORMAL:
            return self._normal(ctx, bridge_name, packet, step)
        label = "FLOOD" if how == FLOOD else "ALL"
        flood = step.add(Step("flood", f"{label}: to every port", self.chassis, bridge_name))
        self._flood_ports(ctx, bridge_name, packet, flood, skip_no_flood=how == FLOOD)
        return None

    def _flood_ports(self, ctx, bridge_name, packet, step, skip_no_flood: bool) -> None:
        in_port = packet.get("in_port", 0)
        for port in sorted(self.bridges[bridge_name].ports.values(), key=lambda p: p.ofport):
            if port.ofport == in_port:
                continue
            if skip_no_flood and "NO_FLOOD" in port.config:
                step.add(Step("skip", f"{port.name}: NO_FLOOD, not flooded to", self.chassis,
                              bridge_name))
                continue
            self._output_port(ctx, bridge_name, port, dict(packet), step)

    def _normal(self, ctx, bridge_name, packet, step):
        """ofproto-dpif-xlate.c ``xlate_normal``: drop frames to reserved multicast MACs,
        learn the source MAC on the input port (``update_learning_table``, when the
        translation may have side effects, as for a real packet), then send to the port
        the destination was learned on, or flood (ports with NO_FLOOD excepted).  VLAN
        modes, bonds, mirrors and multicast snooping are not modelled."""
        bridge = self.bridges[bridge_name]
        in_port = packet.get("in_port", 0)
        src, dst = packet.get("dl_src", 0), packet.get("dl_dst", 0)
        vlan = packet.get("vlan_tci", 0) & 0xFFF
        # A controller's own packets (in_port CONTROLLER or NONE) have a bundle of their own
        # and teach nothing (lookup_input_bundle__).
        from_controller = in_port in (CONTROLLER, SPECIAL_PORTS["NONE"])
        if bridge.ports and in_port not in bridge.ports and not from_controller:
            step.add(Step("normal", f"NORMAL: in_port {in_port} is no port of {bridge_name} "
                          "(no input bundle); dropped", self.chassis, bridge_name))
            return None
        if dst >> 8 == 0x0180C20000:
            step.add(Step("normal", f"NORMAL: reserved destination {format_mac(dst)}; dropped",
                          self.chassis, bridge_name))
            return None
        if (self.options.learn and not from_controller and not (src >> 40) & 1
                and bridge.fdb.get((vlan, src)) != in_port):
            bridge.fdb[(vlan, src)] = in_port
            here = bridge.ports.get(in_port)
            step.add(Step("normal", f"NORMAL: learned {format_mac(src)} on "
                          f"{here.name if here else in_port} (VLAN {vlan})", self.chassis,
                          bridge_name, data={"learned_mac": src, "port": in_port}))
        if not (dst >> 40) & 1:
            learned = bridge.fdb.get((vlan, dst))
            if learned is not None:
                if learned == in_port:
                    step.add(Step("normal", f"NORMAL: {format_mac(dst)} was learned on the input "
                                  "port; dropped", self.chassis, bridge_name))
                    return None
                port = bridge.ports.get(learned)
                if port is None:
                    step.add(Step("normal", f"NORMAL: {format_mac(dst)} learned on port "
                                  f"{learned}, which is unknown; dropped", self.chassis,
                                  bridge_name))
                    return None
                normal = step.add(Step("normal", f"NORMAL: {format_mac(dst)} learned on "
                                       f"{port.name}", self.chassis, bridge_name))
                self._output_port(ctx, bridge_name, port, dict(packet), normal)
                return None
        why = ("broadcast/multicast" if (dst >> 40) & 1 else
               "destination MAC not in the MAC table" if bridge.fdb_known else
               "no MAC table was collected for this bridge")
        flood = step.add(Step("flood", f"NORMAL: flooded ({why})", self.chassis, bridge_name))
        self._flood_ports(ctx, bridge_name, packet, flood, skip_no_flood=True)
        return None


def datapath_packet(packet: Packet) -> Packet:
    """The packet as the datapath holds it: the pass's fields, with the NAT of a
    ct() without recirculation where no later action rewrote that field (an
    OpenFlow rewrite to another value is committed over it, as xlate's
    commit_odp_actions would)."""
    real = dict(packet)
    for name, (flow_value, nat_value) in (packet.get(DATAPATH_NAT) or {}).items():
        if packet.get(name, 0) == flow_value:
            real[name] = nat_value
    real.pop(DATAPATH_NAT, None)
    return real


def _member_live(member: int, ports: dict[int, Port]) -> tuple[bool | None, str]:
    """ofproto-dpif-xlate.c ``member_enabled_cb``: reserved ports but CONTROLLER are
    always enabled; a port by its ``may_enable``."""
    if member in (IN_PORT, SPECIAL_PORTS["TABLE"], NORMAL, FLOOD, ALL, NONE):
        return True, "a reserved port"
    if member == CONTROLLER:
        return False, "the controller cannot be a bundle member"
    return port_may_enable(ports.get(member))


def _port_text(number: int, ports: dict[int, Port]) -> str:
    port = ports.get(number)
    return f"{port.name} ({number})" if port is not None else str(number)


def _branch_copies(packet: Packet, n: int, conntrack) -> list[Packet]:
    """``n`` copies of ``packet``; with ``conntrack`` (the copies are alternatives, not
    copies the datapath makes), each but the first gets its own conntrack, forked before
    any runs: the first goes on with the chassis' own table, which is what ``--reply``
    and ``--conversation`` continue from (their first arrival)."""
    copies = [dict(packet) for _ in range(n)]
    if conntrack is not None:
        for other in copies[1:]:
            _branch_off(other, conntrack)
    return copies


def _branch_off(packet: Packet, conntrack) -> None:
    """Give ``packet`` (one alternative) its own conntrack: a fork of the table it sees,
    and its own copy of the connection its last ct() found (a commit changes it)."""
    packet[BRANCH_CONNTRACK] = fork_conntrack(packet.get(BRANCH_CONNTRACK) or conntrack)
    cached = packet.get(CT_CACHE)
    if cached is not None and cached[1] is not None:
        packet[CT_CACHE] = (cached[0], copy.copy(cached[1]), *cached[2:])


def fork_conntrack(table):
    """A copy of a conntrack table for one branch: its own set of connections (what a
    branch commits stays in it); connections that existed before are shared objects, so
    a state one branch moves (a TCP state) shows in the others."""
    return dataclasses.replace(table, **{
        f.name: copy.copy(getattr(table, f.name)) for f in dataclasses.fields(table)
        if f.init and isinstance(getattr(table, f.name), dict | list)})


def _set_ct_fields(packet: Packet, outcome: CtOutcome) -> None:
    packet["ct_state"] = outcome.state
    packet["ct_zone"] = outcome.zone
    conn = outcome.connection
    packet["ct_mark"] = outcome.mark
    packet["ct_label"] = outcome.label
    tup = conn.original if conn else outcome.tuple
    if tup is not None and not outcome.forced:
        if tup.dl_type == 0x0800:
            packet["ct_nw_src"], packet["ct_nw_dst"] = tup.src, tup.dst
        else:
            packet["ct_ipv6_src"], packet["ct_ipv6_dst"] = tup.src, tup.dst
        packet["ct_nw_proto"] = tup.proto
        packet["ct_tp_src"], packet["ct_tp_dst"] = tup.sport, tup.dport


def _bucket_actions(bucket: str) -> str:
    parts = []
    for item in split_top_level(bucket):
        if item.startswith(("bucket_id:", "weight:", "watch_port:", "watch_group:")):
            continue
        if item.startswith("actions="):
            parts.append(item[8:])
        else:
            parts.append(item)
    return ",".join(parts)


def _frame_length(packet: Packet, payload: int = 0) -> int:
    dl = packet.get("dl_type", 0)
    size = 14 + (4 if packet.get("vlan_tci", 0) & 0x1000 else 0) + payload
    if dl == 0x0800:
        size += 20
    elif dl == 0x86DD:
        size += 40
    elif dl == 0x0806:
        return max(size + 28, 60)
    proto = packet.get("nw_proto", 0)
    size += {6: 20, 17: 8, 1: 8, 58: 8, 132: 12}.get(proto, 0)
    return max(size, 60)


_REWRITING = (A.SetField, A.Move, A.Pop, A.Simple)
_HANDLERS = {
    A.Resubmit: ChassisDatapath._resubmit,
    A.GotoTable: ChassisDatapath._goto,
    A.SetField: ChassisDatapath._set_field,
    A.Move: ChassisDatapath._move,
    A.Push: ChassisDatapath._push,
    A.Pop: ChassisDatapath._pop,
    A.Simple: ChassisDatapath._simple,
    A.PushVlan: ChassisDatapath._push_vlan,
    A.CheckPktLarger: ChassisDatapath._check_pkt_larger,
    A.Clone: ChassisDatapath._clone,
    A.Ct: ChassisDatapath._ct,
    A.Group: ChassisDatapath._group,
    A.Controller: ChassisDatapath._controller,
    A.Learn: ChassisDatapath._learn,
    A.Conjunction: ChassisDatapath._conjunction,
    A.Unknown: ChassisDatapath._unknown,
    A.Output: ChassisDatapath._output,
    A.Bundle: ChassisDatapath._bundle,
    A.Multipath: ChassisDatapath._multipath,
}


def _tunnel_endpoint(v4: int | None, v6: int | None) -> str | None:
    """A tunnel endpoint a flow set, as the address text ``options:remote_ip`` holds."""
    if v4:
        return str(ipaddress.IPv4Address(v4))
    if v6:
        return str(ipaddress.IPv6Address(v6))
    return None


def tunnel_key(text: str) -> int:
    """A tunnel port's ``key`` option as OVS reads it (lib/netdev-vport.c ``parse_key``:
    ``strtoull(s, NULL, 0)``): the longest number at the start, base from its prefix,
    0 when there is none — never an error (a fuzzed or odd option traced, not a crash)."""
    text = text.lstrip()
    negative = text[:1] == "-"
    text = text[1:] if text[:1] in "+-" else text
    base, digits = 10, "0123456789"
    if text[:2].lower() == "0x" and text[2:3].lower() in "0123456789abcdef" and text[2:3]:
        base, digits, text = 16, "0123456789abcdef", text[2:]
    elif text[:1] == "0":
        base, digits = 8, "01234567"
    end = 0
    while end < len(text) and text[end].lower() in digits:
        end += 1
    value = int(text[:end], base) if end else 0
    if value >= 1 << 64:
        return (1 << 64) - 1   # strtoull saturates at ULLONG_MAX, whatever the sign
    return (-value) % (1 << 64) if negative else value
