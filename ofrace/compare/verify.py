"""Ofrace's prediction against the wire, one conversation step at a time.

Why: ofproto/trace cannot check conntrack, NAT or gateways (see ``agreement``); real
packets can.  ``predict`` traces a step from the snapshot taken before the
conversation (one tracer per conversation, so its conntrack carries from the SYN to
the FIN); ``compare_step`` sets what the capture points saw beside it and names the
first place where they part.  Sending and capturing is the lab's job
(``ofrace.lab.verify``); this module never touches a node.

A mismatch is *explained* only by what the prediction itself shows: the packet went
to ovn-controller (controller-answered: a packet pinctrl holds and releases after the
step's quiet period, answers from outside the trace, held across steps),
or its path went through conntrack and the wire delivered where ofrace dropped or
dropped where ofrace delivered (ct state: new, established, invalid; issue 13), or its
path went through a select group whose bucket ofrace picked itself and the wire took
another bucket's backend (select-group: the datapath's hash is not reproduced; issue
13).  The same port with other headers (NAT, routing rewrites) is never explained:
docs/gaps.md lists the classes.  A frame out of an uplink is predicted twice: at the
uplink (its capture sees it leave) and wherever the tracer follows it across the
physical network (``ofrace.trace.provider_network``).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field

from ofrace.openflow.actions import ActionError, Clone, Ct, parse_actions
from ofrace.openflow.frames import WIRE_KEYS
from ofrace.simulate.conntrack_dump import parse_dump
from ofrace.simulate.steps import ExitKind, StepKind
from ofrace.trace.cluster import ClusterTracer, TraceStart

# Headers a packet on the wire must carry exactly as predicted.
WIRE_FIELDS = ("dl_src", "dl_dst", "dl_type", "nw_src", "nw_dst", "ipv6_src", "ipv6_dst",
               "nw_proto", "nw_ttl", "tp_src", "tp_dst",
               # the body of a DHCP/DHCPv6 answer, an RA and a DNS answer, option by option
               # (frames.decode on the wire, ofrace.ovn.pinctrl_answers predicted)
               "dhcp_reply", "nd_ra", "dns_reply",
               "icmp_frag_mtu")   # what put_icmp4/6_frag_mtu wrote into the error
GAP_CONTROLLER = "controller-answered"
GAP_CONNTRACK = "conntrack"
GAP_SELECT_GROUP = "select-group"
UNEXPLAINED = "unexplained"
BFD_PORT = 3784
# Underlay copies the network between chassis delivers to a chassis are counted under
# this prefix and the receiving chassis' name (the lab's hub; sent copies under the
# sender's name).
HUB_TO = "hub to "
GENEVE_PORT = 6081


@dataclass(frozen=True)
class WirePacket:
    chassis: str
    port: str
    fields: tuple          # sorted (name, value) of WIRE_FIELDS present

    @classmethod
    def of(cls, chassis: str, port: str, packet: dict) -> WirePacket:
        return cls(chassis, port, tuple(sorted((k, packet[k]) for k in WIRE_FIELDS
                                               if packet.get(k))))

    def text(self) -> str:
        return f"{self.chassis}/{self.port} " + ",".join(f"{k}={_shown(k, v)}"
                                                       for k, v in self.fields)


def _shown(name: str, value: int) -> str:
    if name in ("dl_src", "dl_dst"):
        raw = f"{value:012x}"
        return ":".join(raw[i:i + 2] for i in range(0, 12, 2))
    if name in ("nw_src", "nw_dst"):
        return str(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    if name in ("ipv6_src", "ipv6_dst"):
        return str(ipaddress.IPv6Address(value))
    return f"{value:#x}" if name == "dl_type" else str(value)


@dataclass(frozen=True)
class SelectGroupCrossed:
    """A select group the path went through, its bucket chosen by ofrace (no --bucket),
    and each bucket's ct(nat(dst=…)) destination: (address, port or None), or None."""

    chassis: str
    group: int
    bucket: int
    targets: tuple

    def other_targets(self) -> set[tuple]:
        """Destinations the datapath's own hash could have picked instead."""
        chosen = self.targets[self.bucket] if self.bucket < len(self.targets) else None
        return {t for i, t in enumerate(self.targets)
                if i != self.bucket and t is not None and t != chosen}


def _nat_destination(actions) -> tuple | None:
    """The first ct(nat(dst=A[:P])) among ``actions`` (inside clone() too)."""
    for action in actions:
        if isinstance(action, Ct) and action.nat and action.nat.kind == "dst" \
                and action.nat.addr_min:
            try:
                address = int(ipaddress.ip_address(action.nat.addr_min.strip("[]")))
            except ValueError:
                return None
            return address, action.nat.port_min
        if isinstance(action, Clone):
            found = _nat_destination(action.actions)
            if found:
                return found
    return None


def _bucket_target(bucket: str) -> tuple | None:
    text = bucket.split("actions=", 1)[1] if "actions=" in bucket else bucket
    try:
        return _nat_destination(parse_actions(text))
    except ActionError:
        return None


@dataclass
class Prediction:
    outputs: list[WirePacket] = field(default_factory=list)
    # (chassis, VNI, Geneve options) -> encapsulated copies that chassis sends
    tunnels: Counter = field(default_factory=Counter)
    controller: list[WirePacket] = field(default_factory=list)  # what ovn-controller gets
    dropped: list[str] = field(default_factory=list)
    dropped_packets: list[WirePacket] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    through_conntrack: bool = False
    # outputs of packets ovn-controller holds and then releases (it re-injects them when
    # its pinctrl thread sees the MAC binding, a moment the sweep's quiet period may end
    # before)
    released: list[WirePacket] = field(default_factory=list)
    # outputs of a hop that happens or not by a race (ofrace.trace: TraceStart.maybe): the
    # wire may carry them or not, both as predicted
    maybe: list[WirePacket] = field(default_factory=list)
    select_groups: list[SelectGroupCrossed] = field(default_factory=list)


@dataclass
class Mismatch:
    step: str
    where: str
    predicted: str
    wire: str
    gap: str


def predict(tracer: ClusterTracer, chassis: str, bridge: str, packet: dict,
            entry: str, wire: dict | None = None) -> Prediction:
    """Where a packet entering (chassis, bridge, packet["in_port"]) comes out, by ofrace.

    ``wire``: the step's frame-only details (``Step.wire``); its ``payload_len`` makes
    the frame as long as the one sent, so check_pkt_larger (a gateway MTU) decides as on
    the wire, and conntrack sees the sequence numbers and echo id the wire carried."""
    wire = wire or {}
    # conntrack reads what only the frame carries: TCP seq/ack and payload for its window
    # check, the ICMP echo id for its key (ofrace.simulate.conntrack)
    traced = {**packet, **{k: v for k, v in wire.items() if k in WIRE_KEYS}}
    trace = tracer.trace(TraceStart(chassis, bridge, traced, entry,
                                    payload_length=wire.get("payload_len", 0)))
    out = Prediction()
    for hop in trace.hops:
        for step in hop.root.walk():
            if step.kind == StepKind.CT:
                out.through_conntrack = True
            elif step.kind == StepKind.GROUP and "bucket" in step.data:
                crossed = _select_group(tracer, step)
                if crossed and crossed not in out.select_groups:
                    out.select_groups.append(crossed)
        for exit_ in hop.exits:
            if exit_.kind == ExitKind.TUNNEL:
                out.tunnels[(hop.start.chassis, *_tunnel_key(exit_))] += 1
        for child in hop.children:
            exit_ = hop.exits[child.parent_exit] if child.parent_exit is not None else None
            if exit_ is not None and exit_.kind == ExitKind.TUNNEL:
                out.tunnels[(HUB_TO + child.start.chassis, *_tunnel_key(exit_))] += 1
    released = {id(e) for hop in trace.hops
                if hop.start.actions is not None and not hop.start.answer
                for h in _subtree(hop) for e in h.exits}
    maybe = {id(e) for hop in trace.hops if hop.start.maybe
             for h in _subtree(hop) for e in h.exits}
    ended = {id(v.exit) for v in trace.all_verdicts() if v.exit is not None}
    for hop in trace.hops:
        for child in hop.children:
            exit_ = hop.exits[child.parent_exit] if child.parent_exit is not None else None
            if exit_ is not None and exit_.kind == ExitKind.OUTPUT and id(exit_) not in ended:
                # out of an uplink and on across the physical network: the uplink's
                # capture sees it leave, the receiving chassis' hops say the rest
                ended.add(id(exit_))
                out.outputs.append(WirePacket.of(hop.start.chassis, exit_.port_name,
                                                 exit_.packet))
                if id(exit_) in released:
                    out.released.append(out.outputs[-1])
                if id(exit_) in maybe:
                    out.maybe.append(out.outputs[-1])
    for verdict in trace.all_verdicts():   # ovn-controller's packets reach the wire too
        exit_ = verdict.exit
        if exit_ is not None and exit_.kind == ExitKind.OUTPUT and verdict.port:
            out.outputs.append(WirePacket.of(verdict.chassis, verdict.port, verdict.packet))
            if id(exit_) in released:
                out.released.append(out.outputs[-1])
            if id(exit_) in maybe:
                out.maybe.append(out.outputs[-1])
        elif exit_ is not None and exit_.kind == ExitKind.CONTROLLER:
            out.controller.append(WirePacket.of(verdict.chassis, "controller",
                                                verdict.packet))
        elif exit_ is not None and exit_.kind == ExitKind.DROP:
            out.dropped.append(f"{verdict.chassis}: {verdict.text}")
            out.dropped_packets.append(WirePacket.of(verdict.chassis, "drop", verdict.packet))
        elif exit_ is not None and exit_.kind != ExitKind.TUNNEL:
            out.unknown.append(f"{verdict.chassis}: {verdict.text}")
    return out


def _subtree(hop):
    yield hop
    for child in hop.children:
        yield from _subtree(child)


def _tunnel_key(exit_) -> tuple:
    """(VNI, Geneve options as (class, type, value)) of an encapsulated copy."""
    options = tuple(sorted((c, t, v) for (c, t), v in (exit_.data.get("geneve") or {}).items()))
    return exit_.data.get("tun_id", 0), options


def _select_group(tracer: ClusterTracer, step) -> SelectGroupCrossed | None:
    """The group step as a select group whose bucket ofrace chose itself (the engine's
    hash, not ``--bucket``), with its buckets' NAT destinations; else None."""
    group_id = step.data["group"]
    if group_id in tracer.options.select_buckets:
        return None
    index = tracer.datapath(step.chassis).bridges.get(step.bridge)
    group = index.groups.get(group_id) if index else None
    if group is None or group.type != "select":
        return None
    return SelectGroupCrossed(step.chassis, group_id, step.data["bucket"],
                              tuple(_bucket_target(b) for b in group.buckets))


def is_noise(packet: dict) -> bool:
    """Traffic the lab makes on its own, whatever is sent: BFD between tunnel endpoints."""
    return packet.get("nw_proto") == 17 and BFD_PORT in (packet.get("tp_src"),
                                                         packet.get("tp_dst"))


_L3L4 = ("nw_src", "nw_dst", "ipv6_src", "ipv6_dst", "nw_proto", "tp_src", "tp_dst")


def _flow_of(packet: WirePacket) -> tuple:
    fields = dict(packet.fields)
    return tuple(fields.get(k, 0) for k in _L3L4)


def controller_made(packet: WirePacket) -> bool:
    """Packets ovn-controller writes itself: ARP, ICMP errors, ND/RA, DHCP answers."""
    f = dict(packet.fields)
    if f.get("dl_type") == 0x0806:
        return True
    if f.get("nw_proto") == 1 and f.get("tp_src") in (3, 11, 12):
        return True
    if f.get("nw_proto") == 58 and f.get("tp_src") in (1, 2, 3, 4, 134, 136):
        return True
    return f.get("nw_proto") == 17 and f.get("tp_src") in (67, 547)


def towards(packet: WirePacket) -> tuple:
    """The destination side, which a held packet keeps when it is released (its source may
    be SNATed on the way out, after the hold)."""
    fields = dict(packet.fields)
    return tuple(fields.get(k, 0) for k in ("nw_dst", "ipv6_dst", "nw_proto", "tp_dst"))


# What differs between two backends of one select group: the destination, and the MACs
# and TTL of the way to it.
_BACKEND_FIELDS = ("dl_src", "dl_dst", "nw_ttl", "nw_dst", "ipv6_dst", "tp_dst")


def _other_bucket(prediction: Prediction, want: WirePacket, wire: WirePacket) -> bool:
    """``wire`` is ``want`` sent to another backend: equal but for the destination, which
    is the ct(nat(dst=…)) target of a bucket ofrace did not choose in a select group it
    crossed (the datapath's dp_hash picked another)."""
    if not prediction.select_groups:
        return False
    a, b = dict(want.fields), dict(wire.fields)
    if {k: v for k, v in a.items() if k not in _BACKEND_FIELDS} != \
            {k: v for k, v in b.items() if k not in _BACKEND_FIELDS}:
        return False
    address, port = b.get("nw_dst") or b.get("ipv6_dst"), b.get("tp_dst", 0)
    return any(address == target and port == (a.get("tp_dst", 0) if nat_port is None
                                              else nat_port)
               for crossed in prediction.select_groups
               for target, nat_port in crossed.other_targets())


def _extra_gap(prediction: Prediction, extra: WirePacket, held: set | None = None) -> str:
    """Why the wire carries a packet ofrace did not predict, if the prediction says why
    (``held``: where earlier steps sent packets ovn-controller may still hold)."""
    if prediction.controller and (controller_made(extra) or towards(extra) in {
            towards(p) for p in prediction.controller}):
        return GAP_CONTROLLER          # answered by pinctrl, or held and released
    if held and towards(extra) in held and not controller_made(extra):
        return GAP_CONTROLLER          # held by an earlier step, released by this one
    if prediction.through_conntrack and not prediction.outputs and _flow_of(extra) in {
            _flow_of(p) for p in prediction.dropped_packets}:
        return GAP_CONNTRACK           # ofrace's ct state dropped what the wire passed
    if any(_other_bucket(prediction, p, extra) for p in
           prediction.outputs + prediction.dropped_packets):
        return GAP_SELECT_GROUP        # the datapath's hash chose another backend
    return UNEXPLAINED


def compare_step(step: str, prediction: Prediction, seen: list[WirePacket],
                 underlay: Counter | None = None, held: set | None = None
                 ) -> list[Mismatch]:
    """Mismatches between predicted and captured packets (VIFs and uplinks: ``seen``;
    encapsulated copies each chassis sent on its tunnel underlay, by VNI and Geneve
    options: ``underlay``).

    The first mismatch is the first place they part: a predicted output the wire lacks
    (or carries with other headers), then a packet the wire carries that ofrace did not
    predict, then tunnel copies.  Each is put in a gap class only when the prediction
    itself shows the cause; else it is unexplained."""
    out = []
    left = list(seen)
    wire_dropped = not seen
    for want in prediction.outputs:
        if want in left:
            left.remove(want)
            continue
        if want in prediction.maybe:
            continue           # predicted as one of two outcomes of a race: the other
        same_port = [p for p in left if (p.chassis, p.port) == (want.chassis, want.port)]
        wire = same_port[0].text() if same_port else "nothing on that port"
        if same_port:
            left.remove(same_port[0])
        # a packet ovn-controller builds (an ARP request) is no ct() verdict of the wire's
        gap = GAP_CONNTRACK if wire_dropped and prediction.through_conntrack \
            and not controller_made(want) else UNEXPLAINED
        if not same_port and want in prediction.released:
            gap = GAP_CONTROLLER    # released after the step's quiet period, or not yet
        if any(_other_bucket(prediction, want, p) for p in (same_port[:1] or left)):
            gap = GAP_SELECT_GROUP     # at another backend, here or at another port
        out.append(Mismatch(step, f"{want.chassis}/{want.port}", want.text(), wire, gap))
    for extra in left:
        predicted = ("to ovn-controller on " + ", ".join(p.chassis for p in
                                                          prediction.controller)
                     if prediction.controller else "; ".join(prediction.dropped)
                     or "nothing on that port")
        out.append(Mismatch(step, f"{extra.chassis}/{extra.port}", predicted, extra.text(),
                            _extra_gap(prediction, extra, held)))
    # another backend may live on another chassis: its tunnel copies follow it
    tunnel_gap = GAP_SELECT_GROUP if any(m.gap == GAP_SELECT_GROUP for m in out) \
        else UNEXPLAINED
    if underlay is not None:
        for key in sorted(set(underlay) | set(prediction.tunnels)):
            if underlay[key] != prediction.tunnels[key]:
                chassis, vni, options = key
                keys = " ".join(f"option {c:#x}/{t:#x}={v:#x}" for c, t, v in options)
                out.append(Mismatch(step, f"{chassis} tunnel underlay",
                                    f"{prediction.tunnels[key]} copies with VNI {vni} {keys}",
                                    f"{underlay[key]} copies with VNI {vni} {keys}",
                                    tunnel_gap))
    return out


def reply_to(delivered: WirePacket, tcp_flags: int | None, icmp_type: int | None) -> dict:
    """The answer a destination sends to a packet as it was delivered: addresses and
    ports swapped, from the delivered packet (so after any NAT or LB)."""
    packet = dict(delivered.fields)
    swapped = dict(packet)
    for a, b in (("dl_src", "dl_dst"), ("nw_src", "nw_dst"), ("ipv6_src", "ipv6_dst"),
                 ("tp_src", "tp_dst")):
        if a in packet or b in packet:
            swapped[a], swapped[b] = packet.get(b, 0), packet.get(a, 0)
    swapped["nw_ttl"] = 64
    if packet.get("nw_proto") in (1, 58):   # ICMP: type and code are no ports
        swapped["tp_src"], swapped["tp_dst"] = packet.get("tp_src", 0), packet.get("tp_dst", 0)
    if tcp_flags is not None:
        swapped["tcp_flags"] = tcp_flags
    if icmp_type is not None:
        swapped["tp_src"], swapped["tp_dst"] = icmp_type, 0
    return swapped


@dataclass
class VerifyReport:
    """Per packet class: steps sent, equal, mismatched; the mismatches by gap."""

    topology: str
    sent: Counter = field(default_factory=Counter)
    equal: Counter = field(default_factory=Counter)
    mismatched: Counter = field(default_factory=Counter)
    mismatches: list[tuple[str, Mismatch]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    connections: Counter = field(default_factory=Counter)   # conversations: checked, equal
    unobservable: int = 0      # predicted outputs at ports without a capture
    seconds: float = 0.0

    def add(self, packet_class: str, mismatches: list[Mismatch]) -> None:
        self.sent[packet_class] += 1
        if mismatches:
            self.mismatched[packet_class] += 1
            self.mismatches.append((packet_class, mismatches[0]))
        else:
            self.equal[packet_class] += 1

    def add_connections(self, packet_class: str, mismatches: list[Mismatch]) -> None:
        self.connections["checked"] += 1
        if mismatches:
            self.mismatches.append((packet_class, mismatches[0]))
        else:
            self.connections["equal"] += 1

    @property
    def unexplained(self) -> list[Mismatch]:
        return [m for _, m in self.mismatches if m.gap == UNEXPLAINED]

    def as_json(self) -> dict:
        return {"topology": self.topology, "seconds": round(self.seconds, 1),
                "classes": {c: {"sent": self.sent[c], "equal": self.equal[c],
                                "mismatched": self.mismatched[c]} for c in sorted(self.sent)},
                "mismatches": [{"class": c, "step": m.step, "where": m.where,
                                "predicted": m.predicted, "wire": m.wire, "gap": m.gap}
                               for c, m in self.mismatches],
                "conntrack": {"conversations": self.connections["checked"],
                              "equal": self.connections["equal"]},
                "unobservable_outputs": self.unobservable, "skipped": self.skipped}


# -- conntrack entries ---------------------------------------------------------------------

_PORTED = {6: "tcp", 17: "udp", 132: "sctp"}


def predicted_connections(tracer: ClusterTracer) -> set[tuple]:
    """(chassis, zone, protocol, src, dst, sport, dport) of every TCP/UDP/SCTP connection
    ofrace's conntrack committed during a conversation, by its original direction."""
    found = set()
    for chassis, table in tracer.conntrack.items():
        for conn in table.connections():
            t = conn.original
            if conn.committed and t.proto in _PORTED:
                found.add((chassis, conn.zone, _PORTED[t.proto], str(ipaddress.ip_address(t.src)),
                           str(ipaddress.ip_address(t.dst)), t.sport, t.dport))
    return found


def parse_dump_conntrack(chassis: str, text: str) -> set[tuple]:
    """``ovs-appctl dpctl/dump-conntrack`` lines (``-m`` or not), as
    ``predicted_connections`` spells them: TCP/UDP/SCTP by their original direction."""
    entries, _ = parse_dump(text)
    return {(chassis, e.zone, _PORTED[e.protocol], str(ipaddress.ip_address(e.original.src)),
             str(ipaddress.ip_address(e.original.dst)), e.original.sport, e.original.dport)
            for e in entries if e.protocol in _PORTED}


def compare_connections(label: str, predicted: set[tuple], wire: set[tuple],
                        controller: bool = False, held: set | None = None
                        ) -> list[Mismatch]:
    """Connections one side has and the other lacks (ct state is issue 13's gap).  One
    only the wire has is ``controller-answered`` where the conversation sent packets to
    ovn-controller (``controller``: its answers, a DHCP offer say, or a packet it held and
    released, cross ct() on their way out) or where its destination is one an earlier
    step's packet was held for (``held``, as ``towards`` spells it)."""
    def text(entry):
        chassis, zone, proto, src, dst, sport, dport = entry
        return f"{proto} {src}:{sport} > {dst}:{dport} in zone {zone} on {chassis}"

    def wire_gap(entry) -> str:
        _, _, proto, _, dst, _, dport = entry
        address = int(ipaddress.ip_address(dst))
        number = {v: k for k, v in _PORTED.items()}[proto]
        towards_it = {(address, 0, number, dport), (0, address, number, dport)}
        return GAP_CONTROLLER if controller or towards_it & (held or set()) \
            else GAP_CONNTRACK

    out = [Mismatch(label, f"{e[0]} conntrack zone {e[1]}", text(e), "no such entry",
                    GAP_CONNTRACK) for e in sorted(predicted - wire)]
    out += [Mismatch(label, f"{e[0]} conntrack zone {e[1]}", "no such entry", text(e),
                     wire_gap(e)) for e in sorted(wire - predicted)]
    return out
