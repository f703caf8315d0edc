"""The packets ovn-controller sends when a trace hands it one: followed like any other.

A ``controller()`` exit whose OVN action makes pinctrl build a packet (``ofrace.ovn.
pinctrl``) becomes a hop that starts on the chassis' integration bridge with that packet
and the packet-out's actions (the packet-in's registers reloaded, then the actions OVN
nested in the userdata).  ``arp``/``nd_ns`` also hold the packet: it waits, per trace,
until a ``put_arp``/``put_nd`` later in the same trace learns the MAC binding it waits
for, and is then re-injected from the hop that taught it.  MAC bindings go through the
Southbound, so every chassis' held packets see a binding any chassis learned
(controller/pinctrl.c ``run_buffered_binding``).  What is still held when the trace ends
gets a verdict that says for which address and where the ARP/NS went.

The bindings learned outlive the trace: the next packet traced on the same tracer (the
next step of a conversation) finds them, as the real one finds the MAC_Binding row
ovn-controller wrote, although the snapshot's flows predate it.  A packet that meets
``arp``/``nd_ns`` for an address learned that way is re-injected at once, with no
ARP/NS, and its verdict says why.  One that meets them for an address learned earlier
in the same trace, once it follows a released packet (a Southbound round trip after the
binding was written), may find the binding in its chassis' flows or not: a race seen both
ways on the wire, so both branches are traced, each marked ``maybe``: re-injected at
once, and held with its ARP/NS sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ofrace.openflow.fields import format_mac
from ofrace.ovn import controller as controller_actions
from ofrace.ovn import pinctrl, service_monitor
from ofrace.ovn.versions import OvnFacts


@dataclass
class Held:
    """A packet ovn-controller holds for a next hop's MAC, and the verdict that says so."""

    chassis: str
    name: str                 # arp or nd_ns
    key: pinctrl.BindingKey
    packet: dict              # the packet-in: headers and registers
    payload_length: int
    verdict: object           # the Verdict on the hop it was held in
    hop: object               # that hop
    request: object = None    # the TraceStart of the ARP/NS it sent
    paused: bool | None = None  # whether the controller action that held it paused


@dataclass
class ControllerState:
    """What ovn-controllers hold and learned during one trace."""

    held: list[Held] = field(default_factory=list)
    learned: dict = field(default_factory=dict)   # BindingKey -> MAC
    earlier: dict = field(default_factory=dict)   # learned by earlier traces of the tracer

    def next_trace(self) -> ControllerState:
        """The state the next trace starts from: nothing held, every binding known."""
        return ControllerState(earlier={**self.earlier, **self.learned})


@dataclass
class Answer:
    """What ovn-controller does with one controller exit: the verdict of the packet that
    went to it, and the packets it sends (TraceStart keyword arguments)."""

    text: str
    starts: list[dict]
    held: Held | None = None

    def keep(self, verdict, starts: list) -> None:
        """The verdict made from ``text`` and the TraceStarts made from ``starts``: a held
        packet's verdict changes when it is released or the trace ends."""
        if self.held is not None:
            self.held.verdict = verdict
            self.held.request = starts[0] if starts else None


def follow(tracer, hop, exit_, chassis: str, facts: OvnFacts) -> Answer | None:
    """What ovn-controller sends for this controller exit; None when pinctrl builds and
    learns nothing here, so the usual verdict applies."""
    action = controller_actions.decode_userdata(exit_.data.get("userdata", ""), facts)
    # continuations (DHCP, RA, DNS answers) are resumed elsewhere; from 24.09 arp{} and
    # nd_ns{} pause too, and are still built and held here
    if action is None or (exit_.data.get("pause") and action.name not in pinctrl.HOLDS):
        return None
    if action.name == "handle_svc_check":
        return _service_monitor_reply(tracer, exit_.packet, chassis)
    state = tracer.controller_state
    userdata = bytes.fromhex(exit_.data.get("userdata", ""))
    packet = exit_.packet
    bridge = tracer.chassis(chassis).integration_bridge
    if action.name in pinctrl.LEARNS:
        key, mac = pinctrl.learned(action.name, packet, facts)
        unchanged = mac in (state.learned.get(key), state.earlier.get(key))
        state.learned[key] = mac
        address = pinctrl.show_held(action.name, key.address)
        race = ""
        if unchanged and facts.release_needs_new_binding:
            race = (f" (a race in OVN {facts.release}: pinctrl re-injects held packets only "
                    "when a MAC_Binding row is inserted or changed, and this one was already "
                    "learned; if its write reached ovn-controller before the packet was held, "
                    "the packet waits until its buffer expires (10 s) and is dropped)")
        return Answer(f"to ovn-controller on {chassis}: {action.name}: learns that {address} "
                      f"is at {format_mac(mac)}",
                      [_released(tracer, held, mac, race)
                       for held in _waiting_for(tracer, state, key)])
    if action.name not in pinctrl.BUILDS:
        return None
    payload = hop.start.payload_length
    built = pinctrl.build(action.name, userdata, packet, payload, facts)
    starts = []
    if built is not None:
        starts.append(dict(chassis=chassis, bridge=bridge, packet=built.packet,
                           entry=f"built by ovn-controller on {chassis}: "
                                 f"{pinctrl.describe_built(built)}",
                           payload_length=built.payload_length, actions=built.actions,
                           answer=True))
    if action.name in pinctrl.HOLDS:
        key = pinctrl.held_key(action.name, packet, facts)
        what = "ARP request" if action.name == "arp" else "Neighbor Solicitation"
        address = pinctrl.show_held(action.name, key.address)
        held = Held(chassis, action.name, key, dict(packet), payload, None, hop, None,
                    bool(exit_.data.get("pause")))
        known = _known_in(tracer, state.earlier, key)
        if known is not None:
            return Answer(f"to ovn-controller on {chassis}: {action.name}: {address} is at "
                          f"{format_mac(known)} since an earlier packet of this trace's "
                          "conversation taught it (a MAC_Binding the snapshot's flows "
                          f"predate): re-injected with no {what}",
                          [_released(tracer, held, known)])
        learned = _known_in(tracer, state.learned, key) if hop.start.after_release else None
        if learned is not None:
            never = (f"; OVN {facts.release} re-injects a held packet only when a binding "
                     "changes, and the answer will not change this one: it may never go"
                     if facts.release_needs_new_binding else "")
            for start in starts:
                start["maybe"] = True
            return Answer(f"to ovn-controller on {chassis}: {action.name}: {address} was "
                          f"learned as {format_mac(learned)} earlier in this trace, a "
                          "Southbound round trip before this packet (it follows one "
                          "ovn-controller released).  A race: if that MAC_Binding has "
                          f"reached the flows on {chassis}, the packet goes at once; if not, "
                          f"it is held and an {what} sent{never} (both traced)",
                          [_released(tracer, held, learned,
                                     " (if that binding has reached the flows: a race)")]
                          + starts)
        state.held.append(held)
        return Answer(f"held by ovn-controller on {chassis}: waiting for the MAC of "
                      f"{pinctrl.show_held(action.name, key.address)} (its {what} is traced "
                      "from here)", starts, held)
    if built is None:
        return Answer(f"to ovn-controller on {chassis}: {action.name}: pinctrl sends nothing "
                      "for this packet", [])
    return Answer(f"to ovn-controller on {chassis}: {action.name}: answers with "
                  f"{pinctrl.describe_built(built)} (traced from here)", starts)


def _service_monitor_reply(tracer, packet: dict, chassis: str) -> Answer:
    """A reply to a health-check probe: pinctrl consumes it and updates the monitor's
    status (``pinctrl_handle_svc_check``).  A SYN-ACK that acknowledges the probe is
    answered with a RST-ACK to the backend (``pinctrl_handle_tcp_svc_check``), traced as
    a hop that may or may not happen: whether the reply's destination port and ack match
    the probe's random source port and sequence number is not in the snapshot."""
    # keyed like pinctrl_find_svc_monitor: the datapath and the logical inport too
    inport = packet.get(tracer.facts(chassis).register("inport"))
    candidates = [m for m in service_monitor.monitors(tracer.names.sb, tracer.names.nb)
                  if _port_keys(tracer, m.logical_port) == (packet.get("metadata"), inport)]
    monitor = service_monitor.replied(candidates, packet)
    if monitor is None:
        return Answer(f"consumed by ovn-controller on {chassis}: handle_svc_check finds no "
                      "service monitor for this packet (pinctrl warns and drops it)", [])
    text = (f"consumed by ovn-controller on {chassis}: service monitor reply for "
            f"{monitor.name} ({monitor.protocol}, {monitor.logical_port})")
    flags = packet.get("tcp_flags", 0)
    if monitor.protocol == "udp":
        return Answer(f"{text}: port unreachable, a failure", [])
    if flags & service_monitor.TCP_SYN_ACK != service_monitor.TCP_SYN_ACK:
        return Answer(text + (": RST, a failure" if flags & service_monitor.TCP_RST
                              else ": neither SYN-ACK nor RST, ignored"), [])
    reset = _reset_start(tracer, monitor, packet, chassis)
    return Answer(f"{text}: SYN-ACK, the backend is online if it acknowledges the probe "
                  "(then its RST-ACK is traced from here)", [reset] if reset else [])


def _reset_start(tracer, monitor, reply: dict, chassis: str) -> dict | None:
    """The RST-ACK's hop: the probe's packet-out with the reset's headers."""
    pb = tracer.names.ports_by_name.get(monitor.logical_port)
    mac = service_monitor.backend_mac(pb, monitor.ip) if pb else None
    if mac is None:
        return None
    probe, actions = service_monitor.probe(
        monitor, tracer.names.datapath_key(pb["datapath"]), pb["tunnel_key"], mac,
        tracer.facts(chassis))
    return dict(chassis=chassis, bridge=tracer.chassis(chassis).integration_bridge,
                packet=service_monitor.reset_after_syn_ack(probe, reply),
                entry=f"built by ovn-controller on {chassis}: RST-ACK to {monitor.name} "
                      "after its SYN-ACK, if that acknowledged the probe (the probe's source "
                      "port and sequence number are random)",
                actions=actions, answer=True, maybe=True)


def _port_keys(tracer, logical_port: str) -> tuple[int | None, int | None]:
    pb = tracer.names.ports_by_name.get(logical_port) or {}
    return (tracer.names.datapath_key(pb["datapath"]) if pb else None, pb.get("tunnel_key"))


def _ports_of(tracer, key: pinctrl.BindingKey) -> set[int]:
    """The logical port a binding was learned on, and its chassisredirect port if it has
    one (``run_buffered_binding`` also releases packets held on ``cr-<port>``)."""
    ports = {key.port}
    for pb in tracer.names.rows("Port_Binding"):
        if pb.get("tunnel_key") == key.port and \
                tracer.names.datapath_key(pb["datapath"]) == key.datapath:
            if (pb.get("options") or {}).get("chassis-redirect-port"):
                cr = tracer.names.ports_by_name.get(f"cr-{pb['logical_port']}")
                if cr is not None and cr.get("type") == "chassisredirect":
                    ports.add(cr["tunnel_key"])
    return ports


def _known_in(tracer, bindings: dict, key: pinctrl.BindingKey) -> int | None:
    """The MAC ``bindings`` (learned by earlier traces, or by this one) hold for ``key``
    (on its port or its cr-port)."""
    ports = _ports_of(tracer, key)
    for other, mac in bindings.items():
        if other.datapath == key.datapath and other.port in ports and \
                other.address == key.address and other.v6 == key.v6:
            return mac
    return None


def _waiting_for(tracer, state: ControllerState, key: pinctrl.BindingKey) -> list[Held]:
    """The packets held for ``key``, taken out of the held list to be released."""
    ports = _ports_of(tracer, key)
    found = [h for h in state.held if h.key.datapath == key.datapath
             and h.key.port in ports and h.key.address == key.address and h.key.v6 == key.v6]
    for held in found:
        state.held.remove(held)
        if held.verdict in held.hop.verdicts:
            held.hop.verdicts.remove(held.verdict)
    return found


def _released(tracer, held: Held, mac: int, race: str = "") -> dict:
    packet, actions, how = pinctrl.release(held.packet, mac, tracer.facts(held.chassis),
                                           held.paused)
    address = pinctrl.show_held(held.name, held.key.address)
    return dict(chassis=held.chassis,
                bridge=tracer.chassis(held.chassis).integration_bridge, packet=packet,
                entry=f"released by ovn-controller on {held.chassis}: the packet held for "
                      f"{address}, {how}{race}", payload_length=held.payload_length,
                actions=actions, maybe=bool(race), after_release=True)


def finish(tracer, trace) -> None:
    """Held packets no answer released in this trace: their verdicts say where the
    ARP/NS went."""
    for held in tracer.controller_state.held:
        went = []
        for hop in trace.hops:
            if held.request is not None and hop.start is held.request:
                went = [v.text for h in _subtree(hop) for v in h.verdicts]
        where = "; ".join(dict.fromkeys(went)) if went else "nowhere that was traced"
        what = "ARP request" if held.name == "arp" else "Neighbor Solicitation"
        text = held.verdict.text
        assumed = text[text.find(" (branch: "):] if " (branch: " \
            in text else ""   # _mark_assumed's note on the branch it is in, kept
        held.verdict.text = (f"held by ovn-controller on {held.chassis}: waiting for the MAC "
                             f"of {pinctrl.show_held(held.name, held.key.address)}; no "
                             f"answer in this trace. Its {what}: {where}{assumed}")


def _subtree(hop):
    yield hop
    for child in hop.children:
        yield from _subtree(child)
