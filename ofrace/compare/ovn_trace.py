"""The logical view beside the physical one: ``ovn-trace`` against the flows really hit.

``ovn-trace`` simulates the logical pipelines from the SB; ofrace's trace runs the
real OpenFlow tables and knows which logical flow each OpenFlow flow came from (its
cookie).  ovn-trace runs against the snapshot's own SB (a private ovsdb-server,
``ofrace.compare.private_ovsdb``), with the conntrack states ofrace's trace met.  With
the same packet and states the two sequences of logical flows should be equal.  Where
they part, the cause is either one of ovn-trace's own limits (``LIMITATIONS``, each
from utilities/ovn-trace.c; docs/check-logical.md) or a real divergence: the OpenFlow
tables stopped implementing the logical flows (a missing flow, a stale one, a flow
changed by hand).  Either way the packet on the wire follows the OpenFlow tables, so
the answer says so: a real divergence is an audit finding.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from ofrace.annotate.annotated import AnnotatedHop, AnnotatedTrace, Annotator
from ofrace.annotate.session import TraceResult
from ofrace.compare.generator import generate
from ofrace.compare.private_ovsdb import PrivateSouthbound, missing_tools
from ofrace.compare.sweep import REPLY_FLAGS, entry_of
from ofrace.compare.verify import WirePacket, reply_to
from ofrace.errors import InputError, ToolError
from ofrace.openflow.fields import ct_state_names, format_mac
from ofrace.ovn.southbound import SouthboundIndex, port_addresses
from ofrace.simulate.steps import ExitKind, StepKind
from ofrace.snapshot import Snapshot
from ofrace.trace.cluster import ClusterTracer, TraceStart

_STAGE = re.compile(r"^\s*(\d+)\. (\S+) \([^)]*\): (.*), priority (\d+), uuid ([0-9a-f]{8})")
_PIPELINE = re.compile(r'^\s*(ingress|egress)\(dp="([^"]+)"')


@dataclass(frozen=True)
class LogicalStep:
    datapath: str
    pipeline: str
    stage: str
    uuid8: str           # first 8 hex digits of the Logical_Flow row
    # what only ofrace follows: a hop across the provider network ("provider-network") or
    # a packet ovn-controller built, released or resumed ("controller"); not compared
    origin: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.datapath} {self.pipeline} {self.stage} (lflow {self.uuid8})"


def parse_ovn_trace(text: str) -> list[LogicalStep]:
    """The logical flows ovn-trace's detailed output went through, in order."""
    steps = []
    datapath = pipeline = "?"
    for line in text.splitlines():
        m = _PIPELINE.match(line)
        if m:
            pipeline, datapath = m.group(1), m.group(2)
            continue
        m = _STAGE.match(line)
        if m:
            steps.append(LogicalStep(datapath, pipeline, m.group(2), m.group(5)))
    return steps


_UUID_TAIL = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                        r"[0-9a-fA-F]{12}$")


def ovn_trace_datapath_names(names: SouthboundIndex) -> dict[str, str]:
    """{the name ovn-trace prints for a datapath: ofrace's name for it}.  ovn-trace prints
    external_ids:name2 before name, a trailing UUID cut to its first 6 digits
    (utilities/ovn-trace.c read_datapaths, shorten_uuid); ofrace names it by name first
    (SouthboundIndex.datapath_name), so the two must be mapped before they are compared."""
    mapping = {}
    for row in names.rows("Datapath_Binding"):
        ext = row.get("external_ids") or {}
        nb = ext.get("logical-switch") or ext.get("logical-router") or row.get("_uuid", "")
        printed = ext.get("name2") or ext.get("name") or nb
        if _UUID_TAIL.search(printed):
            printed = printed[:len(printed) - 30]
        mapping[printed] = names.datapath_name(row)
    return mapping


def physical_steps(trace: AnnotatedTrace) -> list[LogicalStep]:
    """The logical flows whose OpenFlow flows the packet really hit, in order (one entry
    per logical flow visit, however many OpenFlow flows it took)."""
    steps: list[LogicalStep] = []

    def walk(hop: AnnotatedHop, origin: str) -> None:
        origin = origin or _origin(hop.entry)
        for ev in hop.events:
            if ev.kind != StepKind.FLOW or ev.stage is None or ev.cookie is None:
                continue
            step = LogicalStep(ev.datapath or "?", ev.pipeline or "?", ev.stage,
                               f"{ev.cookie:08x}", origin)
            if not steps or steps[-1] != step:
                steps.append(step)
        for child in hop.children:
            walk(child, origin)

    walk(trace.root, "")
    return steps


def _origin(entry: str) -> str:
    """What kind of hop ofrace's tracer made (ofrace.trace: its entry text says)."""
    if "provider network" in entry:
        return "provider-network"
    if re.match(r"(built|released|answered) by ovn-controller", entry):
        return "controller"
    return ""


def ct_arguments(states: list[int]) -> list[str]:
    """``--ct=FLAGS`` arguments for ovn-trace, one per ct() the physical trace made."""
    args = []
    for state in states:
        names = sorted(ct_state_names(state), key=lambda n: n != "trk")  # trk first
        args.append(f"--ct={','.join(names)}")
    return args


@dataclass
class LogicalDivergence:
    index: int
    physical: LogicalStep | None
    logical: LogicalStep | None
    agreed: list[LogicalStep]

    def __str__(self) -> str:
        where = (f"after {len(self.agreed)} logical flows in common"
                 if self.agreed else "at the first logical flow")
        return (f"logical and physical part {where}:\n"
                f"    physical (OpenFlow flows hit): {self.physical or '(ends here)'}\n"
                f"    logical  (ovn-trace):          {self.logical or '(ends here)'}")


def trivial_lflows(logical_flows: list[dict]) -> set[str]:
    """Default ``1 → next;`` flows: ovn-trace does not print them, so neither side counts them."""
    return {lf["_uuid"][:8] for lf in logical_flows
            if lf.get("match", "").strip() == "1" and lf.get("actions", "").strip() == "next;"}


def first_divergence(physical: list[LogicalStep], logical: list[LogicalStep],
                     skip: set[str] = frozenset()) -> LogicalDivergence | None:
    """Where the two sequences first differ (stage and lflow), or None."""
    physical = [s for s in physical if s.uuid8 not in skip]
    logical = [s for s in logical if s.uuid8 not in skip]
    for i in range(max(len(physical), len(logical))):
        p = physical[i] if i < len(physical) else None
        q = logical[i] if i < len(logical) else None
        if p is None or q is None or (p.uuid8, p.stage) != (q.uuid8, q.stage):
            return LogicalDivergence(i, p, q, physical[:i])
    return None


def engine_ct_states(result: TraceResult) -> list[int]:
    """The ct_state of every ct() that recirculated in ofrace's trace, in order."""
    return [s.data["state"] for hop in result.forward.hops for s in hop.root.walk()
            if s.kind == StepKind.CT and s.data.get("recirculates")]


_DESTINATIONS = ("ip4.dst", "ip6.dst")
_DESTINATION_PORTS = ("tcp.dst", "udp.dst", "sctp.dst")


def lb_destination(result: TraceResult) -> str | None:
    """The destination an existing connection's DNAT gave the packet in ofrace's trace (an
    LB backend, a DNAT target), as ovn-trace's ``--lb-dst`` takes it: ovn-trace's ct_lb
    without addresses (the established path) NATs only to that (``execute_ct_lb``).
    Not for a new connection: there the first ct_lb without addresses (pre-stateful)
    finds no entry on the wire, but would NAT to ``--lb-dst`` in ovn-trace; nor from a
    reply's rewrite (un-SNAT), which no load balancer chose."""

    def walk(hop: AnnotatedHop) -> str | None:
        for ev in hop.events:
            if ev.kind != StepKind.CT:
                continue
            state = str((ev.conntrack or {}).get("state", "")).split("+")
            if "new" in state:
                return None
            if "rpl" in state:      # a reply's rewrite undoes NAT: no LB chose it
                continue
            changed = {c.field: c.after for c in ev.changes}
            address = next((changed[f] for f in _DESTINATIONS if f in changed), None)
            if address is not None:
                port = next((changed[f] for f in _DESTINATION_PORTS if f in changed), None)
                if port is None:
                    return address
                return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        for child in hop.children:
            found = walk(child)
            if found:
                return found
        return None

    return walk(result.annotated.root)


def ovn_trace_options(result: TraceResult) -> list[str]:
    """What ovn-trace is told of the conntrack ofrace's trace met: each ct()'s state in
    order, and the destination a connection's DNAT chose."""
    options = ct_arguments(engine_ct_states(result))
    destination = lb_destination(result)
    if destination:
        options.append(f"--lb-dst={destination}")
    return options


@dataclass
class OvnTraceRun:
    """One ovn-trace run: what it printed, and how it ended."""

    argv: list[str]
    stdout: str
    stderr: str = ""
    returncode: int = 0


def run_ovn_trace(remote: str, microflow: str, options: list[str], timeout: float
                  ) -> OvnTraceRun:
    """One ``ovn-trace --detailed`` against ``remote``; not answering in time is the
    environment (a failure is judged by ``compare_logical``: some are ovn-trace's own)."""
    argv = ["ovn-trace", f"--db={remote}", "--detailed", *options, microflow]
    try:
        run = subprocess.run(argv, capture_output=True, text=True, timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        raise ToolError(f"ovn-trace did not answer within {timeout:g}s") from None
    return OvnTraceRun(argv, run.stdout, run.stderr, run.returncode)


OVN_TRACE_C = "ovn-org/ovn utilities/ovn-trace.c"


@dataclass(frozen=True)
class Limitation:
    """One of ovn-trace's own limits: where it parts from the real tables by design."""

    name: str
    what: str
    source: str          # the function in utilities/ovn-trace.c that shows it


LIMITATIONS = {limit.name: limit for limit in (
    Limitation("controller-packet-inline",
               "ovn-trace runs the actions of a packet ovn-controller builds (arp, icmp4/6, "
               "nd_ns, tcp_reset, reject, put_dhcp_opts …) in place; the real tables send the "
               "packet to ovn-controller, which builds and re-injects it later",
               "execute_arp, execute_icmp4, execute_nd_ns, execute_tcp_reset: "
               "trace_actions(on->nested, …) in place"),
    Limitation("physical-network-not-crossed",
               "ovn-trace ends where the packet leaves through a localnet port (onto the "
               "physical network); ofrace follows the frame across that network to the "
               "chassis whose OVN owns its destination MAC (ofrace/trace/provider_network.py)",
               'execute_output: a port with no peer ends the trace ("/* output to …, type '
               '\"localnet\" */")'),
    Limitation("ct-snat-gateway-router",
               "on a gateway router ovn-trace treats a bare ct_snat as having no visible "
               "effect and does not go on to the next table; the real tables recirculate",
               'execute_ct_nat: "ct_snat; has no visible effect in a gateway router"'),
    Limitation("same-priority-overlap",
               "two logical flows of one stage with the same priority both match: ovn-trace "
               "takes the first in its own sort, OVS's classifier the one it finds; which one "
               "is unspecified",
               'compare_flow: equal priority → "Otherwise who cares"; ovntrace_flow_lookup '
               "takes the first match"),
    Limitation("ct-commit-keeps-state",
               "ovn-trace's ct_commit does nothing to the packet, which keeps its ct_state; "
               "the real ct(commit) without a table clears the packet's conntrack fields, so "
               "later stages see it untracked (OVS ofproto/ofproto-dpif-xlate.c "
               "compose_conntrack_action: flow_clear_conntrack)",
               "trace_actions: case OVNACT_CT_COMMIT_V1/V2 \"Nothing to do\""),
    Limitation("ct-mark-not-carried",
               "ovn-trace's --ct sets ct_state only: ct_mark (natted, blocked, …) and ct_label "
               "of the connection are zero in its trace",
               "parse_ct_state / execute_ct_next: only ct_state is set"),
    Limitation("ct-state-carried",
               "ovn-trace keeps the packet's ct_state from one pipeline into the next "
               "(ingress to egress, across patch ports and tunnels) and its ct_lb ORs the "
               "next --ct state into it; the real packet gets a fresh ct_state from each "
               "ct() recirculation, and arrives untracked over a tunnel or a patch port "
               "(ct_clear)",
               "execute_output: egress_uflow = *uflow and new_uflow = *uflow (ct_state "
               "kept); execute_ct_lb: ct_state |= next_ct_state()"),
    Limitation("lb-backend-random",
               "for a new connection to a load balancer with several backends ovn-trace "
               "picks a backend at random; the real ct() and ofrace's trace chose another "
               "(--lb-dst cannot be given: ovn-trace would also NAT the connection's first "
               "ct_lb without addresses to it)",
               'execute_ct_lb: "Select a random destination as a fallback"; --lb-dst used by '
               "every ct_lb without addresses"),
    Limitation("nd-na-router-abort",
               "ovn-trace aborts on a logical flow with nd_na_router (a router answering a "
               "neighbour solicitation): it reads the action as nd_na and its type assertion "
               "fails, so it traces nothing",
               "trace_actions: case OVNACT_ND_NA_ROUTER → ovnact_get_ND_NA(a) "
               "(include/ovn/actions.h asserts the type)"),
    Limitation("put-nd-ra-opts-abort",
               "ovn-trace before 25.03 aborts on a logical flow with put_nd_ra_opts (a router "
               "answering a router solicitation): it reads the action as put_dhcpv6_opts and "
               "the type assertion fails, so it traces nothing",
               "trace_actions: case OVNACT_PUT_ND_RA_OPTS → ovnact_get_PUT_DHCPV6_OPTS(a) "
               "(22.03–24.03; 25.03 reads it as PUT_ND_RA_OPTS)"),
    Limitation("chassis-resident-everywhere",
               "ovn-trace is no chassis: it takes every existing port to be resident here, so "
               "is_chassis_resident(port) is always true in its trace; the real tables "
               "evaluate it on the chassis the packet is on (a gateway port's NAT and "
               "routing flows run only on its gateway chassis)",
               'ovntrace_is_chassis_resident: "assume any port that exists is resident"'),
    Limitation("un-nat-not-applied",
               "ovn-trace's ct_snat/ct_dnat without an address assumes there is no NAT entry "
               "and changes nothing; the real ct(nat) on a packet of a NATed connection "
               "(a reply's un-SNAT, un-DNAT) rewrites its addresses, so later stages (the "
               "routing) see other addresses",
               'execute_ct_nat: "assuming no un-%cnat entry, so no change"'),
    Limitation("port-security-first-entry",
               "ovn-trace's check_in_port_sec checks only the first port_security entry "
               "with the packet's source MAC; ovn-controller installs every entry (an "
               "allowed address pair given as a second entry with the same MAC passes on "
               "the wire, ovn-trace drops it)",
               "execute_check_in_port_sec: the loop breaks at the first entry whose MAC "
               "matches"),
    Limitation("unbound-port-egress",
               "ovn-trace runs the egress pipeline for an output to a port bound to no "
               "chassis; the real tables have no output flow for such a port (controller/"
               "physical.c installs them for bound ports only), so the packet ends after "
               "the ingress pipeline",
               "execute_output: the egress pipeline is traced for any port found"),
    Limitation("lb-hairpin",
               "ovn-trace computes chk_lb_hairpin from the VIP it finds in the packet's "
               "ct_nw_dst, which only its own ct_lb with a chosen destination sets; the real "
               "flag comes from the connection's ct_mark/ct_label",
               "execute_chk_lb_hairpin, get_lb_vip_data"),
)}
REAL_DIVERGENCE = "real-divergence"
# what ovn-trace prints when it dies of a known limitation → the limitation's name
_ABORTS = {"assertion ovnact->type == OVNACT_ND_NA failed": "nd-na-router-abort",
           "assertion ovnact->type == OVNACT_PUT_DHCPV6_OPTS failed": "put-nd-ra-opts-abort"}
OFRACE_GAP = "ofrace-stopped"
_CONTROLLER_BUILT = re.compile(r"^\s*(arp|icmp4|icmp6|icmp4_error|icmp6_error|nd_ns|nd_na|"
                               r"nd_na_router|tcp_reset|sctp_abort|reject|put_dhcp_opts|"
                               r"put_dhcpv6_opts|put_nd_ra_opts|dns_lookup)\b|"
                               r"\b(arp|icmp4|icmp6|icmp4_error|icmp6_error|nd_ns|nd_na|"
                               r"nd_na_router|tcp_reset|reject)\s*\{")
_CONTROLLER_RESULT = re.compile(r"\b(put_dhcp_opts|put_dhcpv6_opts|put_nd_ra_opts|dns_lookup)"
                                r"\s*\(")
_STATEFUL = re.compile(r"\b(ct_commit(?!_nat)|ct_next|ct_lb_mark|ct_lb|ct_dnat|ct_snat|"
                       r"ct_commit_nat|ct_dnat_in_czone|ct_snat_in_czone)\b")
_CT_STATE_MATCH = re.compile(r"\bct\.|\bct_state\b")
_CT_MARK = re.compile(r"\bct_(mark|label)\b")
_HAIRPIN = re.compile(r"\breg0\[(6|12)\]|hairpin")


_CHASSIS_RESIDENT = re.compile(r"\bis_chassis_resident\s*\(")
_CHECK_IN_PORT_SEC = re.compile(r"\bcheck_in_port_sec\s*\(")
_BARE_NAT = re.compile(r"\bct_(snat|dnat)(_in_czone)?\s*;")
_OUTPORT = re.compile(r'\boutport\s*=\s*"([^"]+)"\s*;\s*output\s*;')
_ADDRESSES = ("ip4.src", "ip4.dst", "ip6.src", "ip6.dst")


def _to_unbound_port(actions: str, ports: dict[str, dict]) -> bool:
    """The last common flow output to a VIF (type "") bound to no chassis."""
    m = _OUTPORT.search(actions)
    row = ports.get(m.group(1)) if m else None
    return row is not None and not row.get("type") and not row.get("chassis")


def _passes_a_later_port_security_entry(result: TraceResult, ports: dict[str, dict]
                                        ) -> bool:
    """The packet's source (MAC, IPv4) is allowed by a port_security entry of its inport,
    but not by the first entry with its MAC, the only one ovn-trace reads."""
    packet, port = result.start.packet, result.start.logical_port
    row = ports.get(port or "")
    if row is None or packet.get("dl_type") != 0x0800:
        return False
    mac = format_mac(packet.get("dl_src", 0))
    source = ipaddress.IPv4Address(packet.get("nw_src", 0))
    entries = [e.split() for e in row.get("port_security") or [] if e.split()]
    entries = [e for e in entries if e[0].lower() == mac]

    def allows(entry: list[str]) -> bool:
        nets = [ipaddress.ip_network(a, strict=False) for a in entry[1:]]
        v4 = [n for n in nets if n.version == 4]
        return not nets or any(source in n for n in v4)

    return bool(entries) and not allows(entries[0]) and any(allows(e) for e in entries[1:])


def _un_nat_rewrote(result: TraceResult, lflows: dict[str, dict]) -> bool:
    """A ct() in ofrace's trace changed the packet's addresses right after a logical
    flow with a bare ct_snat/ct_dnat (no address): an existing connection's NAT really
    applied there.  The ct step carries no lflow; the flow step before it does."""
    def actions(ev) -> str:
        if ev.logical_actions:
            return ev.logical_actions
        return lflows.get(f"{ev.cookie:08x}", {}).get("actions", "") if ev.cookie else ""

    def walk(hop: AnnotatedHop) -> bool:
        last = ""
        for ev in hop.events:
            if ev.kind == StepKind.FLOW and ev.cookie is not None:
                last = actions(ev)
            elif ev.kind == StepKind.CT and _BARE_NAT.search(last) \
                    and any(c.field in _ADDRESSES for c in ev.changes):
                return True
        return any(walk(child) for child in hop.children)

    return walk(result.annotated.root)


def _backends(actions: str) -> int:
    """How many backends a ct_lb/ct_lb_mark(backends=…) action lists (0: none)."""
    m = re.search(r"\bct_lb(?:_mark)?\s*\(\s*backends\s*=\s*([^;)]*)", actions)
    return len([b for b in m.group(1).split(",") if b.strip()]) if m else 0


def classify(divergence: LogicalDivergence, lflows: dict[str, dict],
             result: TraceResult, ports: dict[str, dict] | None = None) -> str:
    """The name of the ovn-trace limitation that explains ``divergence`` (a key of
    ``LIMITATIONS``), ``OFRACE_GAP``, or ``REAL_DIVERGENCE``.  Rules in order, each
    from the symptom its limitation leaves (docs/check-logical.md).  ``ports``: the
    SB's Port_Binding rows by logical port."""
    ports = ports or {}
    p, q = divergence.physical, divergence.logical
    last = divergence.agreed[-1] if divergence.agreed else None
    last_row = lflows.get(last.uuid8, {}) if last else {}
    kinds = {v.kind.value for v in result.annotated.verdicts}
    if p is None and kinds & {"error", "unknown", "loop"}:
        return OFRACE_GAP
    if p is not None and p.origin == "controller":
        return "controller-packet-inline"
    if q is None and p is not None and p.origin == "provider-network":
        return "physical-network-not-crossed"
    last_actions = last_row.get("actions", "") if last_row else ""
    if p is None and "controller" in kinds and (_CONTROLLER_BUILT.search(last_actions)
                                                or _CONTROLLER_RESULT.search(last_actions)):
        return "controller-packet-inline"
    if q is None and last_row and re.search(r"\bct_snat\s*;", last_actions):
        return "ct-snat-gateway-router"
    agreed_actions = [lflows.get(step.uuid8, {}).get("actions", "")
                      for step in divergence.agreed]
    p_row = lflows.get(p.uuid8, {}) if p else {}
    q_row = lflows.get(q.uuid8, {}) if q else {}
    matches = " ".join(r.get("match", "") for r in (p_row, q_row))
    stateful = [(step, m.group(1))
                for step, actions in zip(divergence.agreed, agreed_actions, strict=True)
                for m in _STATEFUL.finditer(actions)]
    where = p or q
    if _CHASSIS_RESIDENT.search(matches):
        return "chassis-resident-everywhere"
    if p is None and q is not None and q.pipeline == "egress" and last is not None \
            and last.pipeline == "ingress" and _to_unbound_port(last_actions, ports):
        return "unbound-port-egress"
    if any(_CHECK_IN_PORT_SEC.search(a) for a in agreed_actions) \
            and _passes_a_later_port_security_entry(result, ports):
        return "port-security-first-entry"
    # ct_mark/ct_label alone: ovn-trace has none (below); ct_state: who set it, and where
    if stateful and where is not None and _CT_STATE_MATCH.search(matches):
        step, action = stateful[-1]
        if action == "ct_commit":
            return "ct-commit-keeps-state"
        elsewhere = any((s.datapath, s.pipeline) != (where.datapath, where.pipeline)
                        for s, _ in stateful)
        if elsewhere and (action in ("ct_lb", "ct_lb_mark")
                          or (step.datapath, step.pipeline) != (where.datapath,
                                                                where.pipeline)):
            return "ct-state-carried"
    if any(_BARE_NAT.search(a) for a in agreed_actions) and _un_nat_rewrote(result, lflows):
        return "un-nat-not-applied"
    if any(_backends(a) > 1 for a in agreed_actions) and lb_destination(result) is None:
        return "lb-backend-random"
    if p and q and (p.datapath, p.pipeline, p.stage) == (q.datapath, q.pipeline, q.stage) \
            and p_row.get("priority") is not None \
            and p_row.get("priority") == q_row.get("priority"):
        return "same-priority-overlap"
    if _HAIRPIN.search(matches) or any(_HAIRPIN.search(s.stage) for s in (p, q) if s):
        return "lb-hairpin"
    if _CT_MARK.search(matches):
        return "ct-mark-not-carried"
    return REAL_DIVERGENCE


def _limitation_answer(name: str) -> dict:
    limit = LIMITATIONS[name]
    return {"kind": "ovn-trace limitation", "name": name, "why": limit.what,
            "source": f"{OVN_TRACE_C}: {limit.source}",
            "follows": "the real OpenFlow tables follow ofrace's trace; ovn-trace "
                       "parts by its own limit, not because the tables differ"}


OTHER_RELEASE = "ovn-trace-other-release"


def release_mismatch(tool_version: str, snapshot: Snapshot) -> str | None:
    """Why ovn-trace's logical view may not be this cluster's: it is another OVN release
    than the nodes run (northd's stages, actions and ovn-trace's own symbol table change
    between releases).  None when they match or either is unknown."""
    found = re.search(r"(\d+)\.(\d+)\.\d+", tool_version or "")
    nodes = {m.group(0) for c in snapshot.chassis.values()
             for m in [re.search(r"\d+\.\d+", c.ovn_version or "")] if m}
    if found is None or not nodes:
        return None
    tool = f"{found.group(1)}.{found.group(2)}"
    if nodes == {tool}:
        return None
    return (f"ovn-trace is OVN {tool}, the nodes run OVN {', '.join(sorted(nodes))}: "
            "put the nodes' release's ovn-trace first on PATH for a logical view of this "
            "cluster")


def compare_logical(snapshot: Snapshot, result: TraceResult, ovn_trace_text: str,
                    command: list[str], notes: list[str] = (), failure: str | None = None,
                    other_release: str | None = None) -> dict:
    """--check-logical's answer from ovn-trace's output and ofrace's trace: where they
    part, why (a named ovn-trace limitation, or a real divergence) and which side the
    real tables follow.  ``failure``: ovn-trace's stderr when it exited with an error;
    one of its known aborts is a limitation, any other failure the environment's."""
    if failure is not None:
        name = next((n for text, n in _ABORTS.items() if text in failure), None)
        if name is None:
            lines = failure.strip().splitlines() or ["(no message)"]
            raise ToolError(f"ovn-trace failed: {lines[-1]}")
        return {"agree": False, "summary": f"ovn-trace aborted: ovn-trace limitation ({name})",
                "physical": None, "logical": None, "detail": failure.strip().splitlines()[-1],
                "cause": _limitation_answer(name), "command": command, "notes": list(notes)}
    rows = snapshot.southbound.tables.get("Logical_Flow", [])
    skip = trivial_lflows(rows)
    datapaths = ovn_trace_datapath_names(SouthboundIndex(snapshot))
    logical = [replace(s, datapath=datapaths.get(s.datapath, s.datapath))
               for s in parse_ovn_trace(ovn_trace_text) if s.uuid8 not in skip]
    physical = [s for s in physical_steps(result.annotated) if s.uuid8 not in skip]
    divergence = first_divergence(physical, logical)
    answer = {"command": command, "notes": list(notes)}
    if other_release:
        answer["notes"].append(other_release)
    if divergence is None:
        return {"agree": True, "summary": f"same {len(physical)} logical flows", **answer}
    lflows = {row["_uuid"][:8]: row for row in rows}
    ports = {row.get("logical_port"): row
             for row in snapshot.southbound.tables.get("Port_Binding", [])}
    cause = classify(divergence, lflows, result, ports)
    if cause == REAL_DIVERGENCE and other_release:
        cause = OTHER_RELEASE
    if cause == OTHER_RELEASE:
        answer["notes"].remove(other_release)   # the cause says it
        explained = {"kind": "could not know", "name": cause, "why": other_release,
                     "source": None,
                     "follows": "unknown: another release's ovn-trace parts from the real "
                                "tables where the releases differ"}
    elif cause in LIMITATIONS:
        explained = _limitation_answer(cause)
    elif cause == OFRACE_GAP:
        explained = {"kind": "ofrace stopped", "name": cause,
                     "why": "ofrace's trace ended on something it could not simulate or "
                            "data the snapshot lacks (see its verdicts)",
                     "source": None, "follows": "unknown: ofrace's trace did not finish"}
    else:
        explained = {"kind": "real divergence", "name": cause,
                     "why": "the OpenFlow flows the packet hit are not the logical flows "
                            "ovn-trace chose: the tables stopped implementing the logical "
                            "flows (a flow missing, stale or changed)",
                     "source": None,
                     "follows": "the real tables follow ofrace's trace (the OpenFlow flows): "
                                "an audit finding, see `ofrace audit`"}
    return {"agree": False, "index": divergence.index,
            "summary": f"they part after {divergence.index} logical flows in common: "
                       f"{explained['kind']} ({cause})",
            "physical": str(divergence.physical) if divergence.physical else None,
            "logical": str(divergence.logical) if divergence.logical else None,
            "detail": str(divergence), "cause": explained, **answer}


def shown_command(argv: list[str]) -> list[str]:
    """The command as the user can read it: the private server's socket is temporary."""
    return [("--db=<the snapshot's SB, in a private ovsdb-server>"
             if a.startswith("--db=") else a) for a in argv]


def check_logical(snapshot: Snapshot, result: TraceResult, timeout: float = 120) -> dict:
    """Run ovn-trace on the snapshot's SB with the engine's ct choices; compare
    (``trace --check-logical``).  ovn-trace or ovsdb-server missing or failing is the
    environment."""
    missing = missing_tools()
    if missing:
        raise ToolError(f"--check-logical needs {', '.join(missing)}, not installed here "
                        "(apt-get install ovn-common openvswitch-switch)")
    sb = snapshot.southbound
    if sb is None or not sb.tables.get("Logical_Flow"):
        raise InputError("--check-logical needs the snapshot's Southbound (its logical flows)")
    microflow = result.microflow
    if "from" in result.request and result.start.logical_port:
        # the short form's packet with every header ofrace gave it (TCP flags, …)
        microflow = logical_microflow(result.start.packet, result.start.logical_port)
    with PrivateSouthbound(sb, timeout) as private:
        run = run_ovn_trace(private.remote, microflow, ovn_trace_options(result),
                            private.seconds_left())
        notes = private.notes
    return compare_logical(snapshot, result, run.stdout, shown_command(run.argv), notes,
                           run.stderr if run.returncode else None,
                           release_mismatch(ovn_trace_version(), snapshot))


def ovn_trace_version() -> str:
    """``ovn-trace --version``'s first line ('' when it does not answer)."""
    try:
        run = subprocess.run(["ovn-trace", "--version"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (run.stdout.splitlines() or [""])[0]


def logical_microflow(packet: dict, inport: str) -> str:
    """A packet ofrace built (a generated scenario) as the microflow ovn-trace takes, with
    every header ovn-trace's logical flows may read (ARP, ND, TCP flags)."""
    terms = [f'inport == "{inport}"', f"eth.src == {format_mac(packet.get('dl_src', 0))}",
             f"eth.dst == {format_mac(packet.get('dl_dst', 0))}"]
    dl_type = packet.get("dl_type")
    if dl_type == 0x0806:
        terms += [f"arp.op == {packet.get('nw_proto', 1)}",
                  f"arp.spa == {ipaddress.IPv4Address(packet.get('nw_src', 0))}",
                  f"arp.tpa == {ipaddress.IPv4Address(packet.get('nw_dst', 0))}",
                  f"arp.sha == {format_mac(packet.get('arp_sha', 0))}",
                  f"arp.tha == {format_mac(packet.get('arp_tha', 0))}"]
        return " && ".join(terms)
    if dl_type == 0x0800:
        terms += [f"ip4.src == {ipaddress.IPv4Address(packet.get('nw_src', 0))}",
                  f"ip4.dst == {ipaddress.IPv4Address(packet.get('nw_dst', 0))}"]
    elif dl_type == 0x86DD:
        terms += [f"ip6.src == {ipaddress.IPv6Address(packet.get('ipv6_src', 0))}",
                  f"ip6.dst == {ipaddress.IPv6Address(packet.get('ipv6_dst', 0))}"]
    else:
        return " && ".join(terms)
    terms.append(f"ip.ttl == {packet.get('nw_ttl', 64)}")
    proto = packet.get("nw_proto", 0)
    names = {6: "tcp", 17: "udp", 132: "sctp", 1: "icmp4", 58: "icmp6"}
    name = names.get(proto)
    if name in ("tcp", "udp", "sctp"):
        terms += [f"{name}.src == {packet.get('tp_src', 0)}",
                  f"{name}.dst == {packet.get('tp_dst', 0)}"]
        if name == "tcp":
            terms.append(f"tcp.flags == {packet.get('tcp_flags', 0)}")
    elif name in ("icmp4", "icmp6"):
        terms += [f"{name}.type == {packet.get('tp_src', 0)}",
                  f"{name}.code == {packet.get('tp_dst', 0)}"]
        if name == "icmp6" and packet.get("tp_src") in (135, 136):
            terms.append(f"nd.target == {ipaddress.IPv6Address(packet.get('nd_target', 0))}")
            if packet.get("arp_sha"):
                terms.append(f"nd.sll == {format_mac(packet['arp_sha'])}")
    elif proto:
        terms.append(f"ip.proto == {proto}")
    return " && ".join(terms)


@dataclass
class ScenarioCheck:
    """One named scenario's --check-logical answer."""

    label: str
    microflow: str
    answer: dict = field(default_factory=dict)


def _bridge_networks(chassis) -> dict[str, str]:
    """{bridge: provider network} from the chassis' ovn-bridge-mappings."""
    pairs = [m.split(":", 1) for m in
             chassis.external_ids.get("ovn-bridge-mappings", "").split(",") if ":" in m]
    return {bridge.strip(): network.strip() for network, bridge in pairs}


def entry_port(snapshot: Snapshot, names, entry, packet: dict) -> str | None:
    """The logical port a generated packet enters by: the VIF's iface-id, or on an
    uplink the localnet port of the switch whose router port the packet is sent to."""
    chassis = snapshot.chassis.get(entry.chassis)
    if chassis is None:
        return None
    for iface in chassis.interfaces:
        if iface.name == entry.iface and iface.iface_id:
            return iface.iface_id
    network = _bridge_networks(chassis).get(entry.bridge)
    wanted_mac = packet.get("dl_dst")
    wanted_ip = packet.get("nw_dst") if packet.get("dl_type") == 0x0806 else None
    for pb in names.rows("Port_Binding"):
        if pb.get("type") != "localnet" or \
                (pb.get("options") or {}).get("network_name") != network:
            continue
        for other in names.rows("Port_Binding"):
            if other["datapath"] != pb["datapath"]:
                continue
            peer = names.ports_by_name.get((other.get("options") or {}).get("peer", ""))
            if peer is None:
                continue
            mac, v4, _ = port_addresses(peer)
            if mac == wanted_mac or (wanted_ip is not None
                                     and any(int(a.ip) == wanted_ip for a in v4)):
                return pb["logical_port"]
    return None


def scenario_traces(snapshot: Snapshot, only: set[str] | None = None
                    ) -> Iterator[tuple[str, str, TraceResult]]:
    """(label, microflow, ofrace's trace) for every step of every conversation the
    generator makes on ``snapshot`` (the named scenarios), as each is traced: the steps
    of one conversation on one conntrack, as the sweep sends them; a reply built from
    the request as delivered (so after NAT), entering where the request left.  ``only``:
    the labels of the conversations wanted (all by default); a repeat of a label is
    named "#2", …."""
    names = SouthboundIndex(snapshot)
    seen: dict[str, int] = {}
    for conv in generate(snapshot):
        if only is not None and conv.label not in only:
            continue
        # a conversation repeated as a new connection keeps its label: number the repeats
        seen[conv.label] = seen.get(conv.label, 0) + 1
        name = conv.label if seen[conv.label] == 1 else f"{conv.label} #{seen[conv.label]}"
        tracer = ClusterTracer(snapshot)
        annotator = Annotator(tracer.names, snapshot)
        delivered = None
        for step in conv.steps:
            packet, entry = step.packet, step.entry or conv.entry
            if step.reply:
                entry = conv.reply_entry
                if packet is None:
                    entry = entry_of(snapshot, delivered) if delivered else None
                    if entry is None:
                        break
                    flags, icmp = REPLY_FLAGS.get(step.name, (None, None))
                    if icmp is not None and dict(delivered.fields).get("nw_proto") == 58:
                        icmp = 129
                    packet = reply_to(delivered, flags, icmp)
            inport = entry_port(snapshot, names, entry, packet) if entry else None
            if inport is None:
                break
            start = TraceStart(entry.chassis, entry.bridge, {"in_port": entry.ofport, **packet},
                               f"{entry.iface} on {entry.chassis}", logical_port=inport)
            microflow = logical_microflow(packet, inport)
            forward = tracer.trace(start)
            yield (f"{name}: {step.name}", microflow,
                   TraceResult(forward, annotator.trace(forward), start,
                               {"expression": microflow}))
            if not step.reply:
                sent = [v for v in forward.verdicts() if v.exit is not None
                        and v.exit.kind == ExitKind.OUTPUT and v.port
                        and (v.chassis, v.port) != (entry.chassis, entry.iface)]
                delivered = WirePacket.of(sent[0].chassis, sent[0].port, sent[0].packet) \
                    if sent else None


def check_scenarios(snapshot: Snapshot, timeout: float = 600, only: set[str] | None = None
                    ) -> list[ScenarioCheck]:
    """--check-logical on every named scenario, with one private server for them all."""
    missing = missing_tools()
    if missing:
        raise ToolError(f"--check-logical needs {', '.join(missing)}, not installed here")
    checks = []
    other_release = release_mismatch(ovn_trace_version(), snapshot)
    with PrivateSouthbound(snapshot.southbound, timeout) as private:
        # ovn-trace runs (a process each, reading the whole SB) on the other cores while
        # ofrace traces the next steps here: about half the time on two cores
        pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1))
        try:
            pending = [(label, microflow, result, pool.submit(
                lambda m, o: run_ovn_trace(private.remote, m, o, private.seconds_left()),
                microflow, ovn_trace_options(result)))
                for label, microflow, result in scenario_traces(snapshot, only)]
            runs = [(label, microflow, result, future.result())
                    for label, microflow, result, future in pending]
        finally:
            pool.shutdown(cancel_futures=True)
        for label, microflow, result, run in runs:
            failure = run.stderr if run.returncode else None
            answer = compare_logical(snapshot, result, run.stdout, shown_command(run.argv),
                                     private.notes, failure, other_release)
            answer["ovn_trace"] = run.stdout
            answer["ovn_trace_failure"] = failure
            answer["options"] = ovn_trace_options(result)
            checks.append(ScenarioCheck(label, microflow, answer))
    return checks
