"""Run ``ofproto/trace`` on a node and compare it with ofrace's simulation of the same packet.

Only the flow form of ofproto/trace is used (a flow string, no packet), which
has no side effects on the node: no learning, no packet-ins.

ofproto/trace answers from the node's state *now*, ofrace from its snapshot.
What both depend on -- flows, groups, ports and the MAC tables NORMAL
consults -- is read (:func:`read_node_state`) just before and after the
ofproto/trace calls and checked against the snapshot (:func:`state_changes`):
a MAC learned in between (a GARP right after a node came up) makes NORMAL
forward differently, and that is "the state changed during the comparison",
not a divergence of the engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ofrace.collect.agent import AgentError, blob_json, run_agent_mode
from ofrace.collect.transport import Budget, TransportError
from ofrace.compare.ofproto_trace import (
    Comparison,
    compare_passes,
    parse_dpif_show,
    parse_ofproto_trace,
    simulated_passes,
)
from ofrace.errors import ToolError
from ofrace.openflow.bridge import BridgeIndex, parse_fdb
from ofrace.openflow.fields import FIELDS, PROTOCOLS, format_value
from ofrace.simulate.conntrack import ForcedConntrack, parse_ct_state
from ofrace.simulate.engine import ChassisDatapath, SimulationOptions
from ofrace.snapshot import Chassis

# Fields in the order ofproto/trace would print them; only non-zero ones are given.
# (L4 before ND fields: ovs-ofctl checks prerequisites left to right.)
_ORDER = ("in_port", "tun_id", "tun_src", "tun_dst", "tun_flags", "metadata", "pkt_mark",
          "dl_src", "dl_dst", "vlan_tci", "dl_type", "nw_src", "nw_dst", "ipv6_src", "ipv6_dst",
          "ipv6_label", "nw_proto", "nw_tos", "nw_ecn", "nw_ttl", "nw_frag", "tp_src",
          "tp_dst", "tcp_flags", "nd_target", "arp_sha", "arp_tha")
_KEYWORDS = {(dl, proto): name for name, pairs in PROTOCOLS.items()
             if name not in ("ipv4", "mplsm")
             for dl, proto in [(dict(pairs)["dl_type"], dict(pairs).get("nw_proto"))]}
_WITH_PROTO = {name for name, pairs in PROTOCOLS.items() if len(pairs) == 2}
_L4_PREFIX = {6: "tcp", 17: "udp", 132: "sctp", 1: "icmp", 58: "icmpv6"}
_ARP_NAMES = {"nw_src": "arp_spa", "nw_dst": "arp_tpa", "nw_proto": "arp_op"}


def format_microflow(packet: dict) -> str:
    """A packet as an OVS flow string that ofproto/trace (and ofrace) read back exactly."""
    arp = packet.get("dl_type") in (0x0806, 0x8035)
    items = []
    # ovs-ofctl wants the protocol keyword (tcp, udp6, arp, …) before L4 fields.
    keyword = _KEYWORDS.get((packet.get("dl_type"), packet.get("nw_proto"))) or _KEYWORDS.get(
        (packet.get("dl_type"), None))
    skip = {"dl_type", "nw_proto"} if keyword in _WITH_PROTO else {"dl_type"} if keyword else set()
    if keyword:
        items.append(keyword)
    names = list(_ORDER) + sorted(k for k in packet if k.startswith(("reg", "tun_metadata"))
                                  and k not in _ORDER)
    for name in names:
        value = packet.get(name)
        if name in skip or value is None or (value == 0 and name not in ("in_port", "dl_type")):
            continue
        field = FIELDS.get(name)
        if field is None:
            continue
        label = _ARP_NAMES.get(name, name) if arp else name
        if packet.get("dl_type") == 0x86DD and name in ("arp_sha", "arp_tha"):
            label = "nd_sll" if name == "arp_sha" else "nd_tll"
        if name in ("tp_src", "tp_dst") and not arp:
            # ofproto/trace reads tp_src as tcp_src: name L4 fields by protocol.
            prefix = _L4_PREFIX.get(packet.get("nw_proto"), "tp")
            if prefix.startswith("icmp"):
                label = f"{prefix}_{'type' if name == 'tp_src' else 'code'}"
            else:
                label = f"{prefix}_{'src' if name == 'tp_src' else 'dst'}"
        if field.kind in ("mac", "ipv4", "ipv6"):
            items.append(f"{label}={format_value(field, value)}")
        elif name == "nw_frag":
            items.append(f"nw_frag={'later' if value & 2 else 'first'}")
        elif name == "dl_type" or value > 0xFFFF:
            items.append(f"{label}={value:#x}")
        else:
            items.append(f"{label}={value}")
    return ",".join(items)


@dataclass
class LiveComparison:
    flow: str
    comparison: Comparison
    ofproto_trace: str


def ofproto_trace_call(bridge: str, packet: dict, ct_next=()) -> list[str]:
    """ofproto/trace and its arguments for ``packet`` (as ovs-appctl takes them)."""
    call = ["ofproto/trace", bridge, format_microflow(packet)]
    for state in ct_next:
        call += ["--ct-next", state]
    return call


# The most bytes of calls sent in one agent command line (Linux: 128 KiB per argument).
BATCH_BYTES = 64_000


def run_ofproto_traces(transport, calls: list[list[str]], node: str, timeout: float = 600
                       ) -> list[str | ToolError]:
    """What ofproto/trace prints for each of ``calls`` on one node, or the ToolError of
    the ones that failed.

    Sent through the agent's "appctl" mode in batches, each one process and one unixctl
    connection for hundreds of traces (ovs-appctl per trace cost 10-15 ms of process
    start, and a command channel over SSH); a node without python3, or where the agent
    cannot reach ovs-vswitchd's socket, gets one ``ovs-appctl`` per trace instead."""
    answers: list[str | ToolError] = []
    batch: list[list[str]] = []
    size = 0
    batched = True

    def flush():
        nonlocal batched
        if batched:
            try:
                doc, blobs = run_agent_mode(transport, {"appctl": {"calls": batch,
                                                                   "timeout": timeout}},
                                            Budget(timeout + 30))
                got = None if doc.get("error") else blob_json(doc, blobs, "appctl")
            except (AgentError, TransportError):
                got = None
            if isinstance(got, list) and len(got) == len(batch) and \
                    all(isinstance(a, dict) for a in got):
                answers.extend(
                    str(a["output"]) if "output" in a else
                    ToolError(f"ofproto/trace failed on {node}: {str(a.get('error'))[:500]}")
                    for a in got)
                return
            batched = False       # and from now on, one ovs-appctl per trace
        for call in batch:
            out = transport.run(["ovs-appctl", *call], timeout=timeout)
            answers.append(out.stdout.decode(errors="replace") if out.rc == 0 else ToolError(
                f"ofproto/trace failed on {node}: "
                f"{out.stderr.decode(errors='replace').strip()[:500]}"))

    for call in calls:
        length = sum(len(a) + 4 for a in call)
        if batch and size + length > BATCH_BYTES:
            flush()
            batch, size = [], 0
        batch.append(call)
        size += length
    if batch:
        flush()
    return answers


def compare_with_ofproto_trace(chassis: Chassis, transport, bridge: str, packet: dict,
                               ct_next: list[str] = (), indexes: dict | None = None,
                               timeout: float = 60, text: str | None = None
                               ) -> LiveComparison:
    """Trace ``packet`` with ofproto/trace on the node (or take its output, ``text``)
    and with ofrace on its snapshot."""
    flow = format_microflow(packet)
    if text is None:
        [text] = run_ofproto_traces(transport, [ofproto_trace_call(bridge, packet, ct_next)],
                                    chassis.name, timeout)
        if isinstance(text, ToolError):
            raise text
    if indexes is None:
        indexes = {n: BridgeIndex(b, chassis.interfaces, chassis.name)
                   for n, b in chassis.bridges.items()}
    conntrack = ForcedConntrack([parse_ct_state(s) for s in ct_next])
    datapath = ChassisDatapath(chassis.name, indexes, conntrack,
                               SimulationOptions(learn=False))
    root, exits = datapath.inject(bridge, packet)
    ours = simulated_passes(root, exits, packet, parse_dpif_show(chassis.dpif))
    theirs = parse_ofproto_trace(text, set(indexes))
    return LiveComparison(flow, compare_passes(ours, theirs), text)


# What a node's answer depends on besides the packet, per bridge, read as collect reads it.
STATE_READS = (
    ("flows", ["ovs-ofctl", "dump-flows", "--no-names"]),
    ("groups", ["ovs-ofctl", "-O", "OpenFlow15", "dump-groups", "--no-names"]),
    ("ports", ["ovs-ofctl", "dump-ports-desc"]),
    ("fdb", ["ovs-appctl", "fdb/show"]),
)
# Flow statistics change with every packet and mean nothing to forwarding.
_FLOW_STATS = re.compile(r"\b(?:duration|n_packets|n_bytes|idle_age|hard_age)=[^,\s]*,?\s*")
_PORT_HEADER = re.compile(r"^\s*(\S+\(.*\)):")
_PORT_FIELD = re.compile(r"^\s*(config|state):\s*(.*?)\s*$")


@dataclass(frozen=True)
class BridgeState:
    """One bridge's forwarding state, without counters, ages or random addresses."""

    flows: frozenset[str]
    groups: frozenset[str]
    ports: tuple[str, ...]
    fdb: frozenset[tuple[int, int, int]]  # (vlan, mac, ofport)


def bridge_state(flows: list[str], groups: list[str], ports_desc: str, fdb: str) -> BridgeState:
    """A :class:`BridgeState` from the texts collect and :func:`read_node_state` read."""
    ports = []
    for line in ports_desc.splitlines():
        header, field = _PORT_HEADER.match(line), _PORT_FIELD.match(line)
        if header:
            ports.append(header.group(1))
        elif field and ports:
            ports.append(f"{ports[-1].split(' ')[0]} {field.group(1)} {field.group(2)}")
    return BridgeState(
        flows=frozenset(_FLOW_STATS.sub("", line).strip() for line in flows
                        if "actions=" in line),
        groups=frozenset(line.strip() for line in groups if line.strip().startswith("group_id")),
        ports=tuple(ports),
        fdb=frozenset((vlan, mac, port) for (vlan, mac), port in parse_fdb(fdb).items()),
    )


def snapshot_state(chassis: Chassis) -> dict[str, BridgeState]:
    """What the snapshot says each bridge of ``chassis`` looked like."""
    return {name: bridge_state(b.flows, b.groups, b.ports_desc, b.fdb)
            for name, b in chassis.bridges.items()}


def read_node_state(transport, bridges, timeout: float = 60) -> dict[str, BridgeState]:
    """Read the same state from the node now (read-only commands); ToolError if it cannot."""
    state = {}
    for bridge in bridges:
        texts = {}
        for key, argv in STATE_READS:
            out = transport.run([*argv, bridge], timeout=timeout)
            if out.rc != 0:
                raise ToolError(f"{' '.join(argv)} {bridge} failed: "
                                   f"{out.stderr.decode(errors='replace').strip()}")
            texts[key] = out.stdout.decode(errors="replace")
        state[bridge] = bridge_state(texts["flows"].splitlines(), texts["groups"].splitlines(),
                                     texts["ports"], texts["fdb"])
    return state


def state_changes(before: dict[str, BridgeState], after: dict[str, BridgeState]) -> list[str]:
    """What differs between two readings of a node's state, one line per bridge and kind."""
    changes = []
    for bridge in sorted(before.keys() | after.keys()):
        old, new = before.get(bridge), after.get(bridge)
        if old is None or new is None:
            changes.append(f"{bridge}: bridge {'appeared' if old is None else 'disappeared'}")
            continue
        if old.fdb != new.fdb:
            changes.append(f"{bridge} MAC table: {_fdb_difference(old.fdb, new.fdb)}")
        for what, label in (("flows", "flows"), ("groups", "groups")):
            gone, came = getattr(old, what) - getattr(new, what), \
                getattr(new, what) - getattr(old, what)
            if gone or came:
                changes.append(f"{bridge} {label}: {len(came)} added, {len(gone)} removed")
        if old.ports != new.ports:
            changes.append(f"{bridge} ports changed")
    return changes


def _fdb_difference(old: frozenset, new: frozenset) -> str:
    old_ports = {(vlan, mac): port for vlan, mac, port in old}
    new_ports = {(vlan, mac): port for vlan, mac, port in new}
    parts = []
    for key in sorted(old_ports.keys() | new_ports.keys()):
        mac = ":".join(f"{key[1]:012x}"[i:i + 2] for i in range(0, 12, 2))
        was, now = old_ports.get(key), new_ports.get(key)
        if was is None:
            parts.append(f"{mac} learned on port {now}")
        elif now is None:
            parts.append(f"{mac} (port {was}) forgotten")
        elif was != now:
            parts.append(f"{mac} moved from port {was} to {now}")
    shown = parts[:3] + ([f"{len(parts) - 3} more"] if len(parts) > 3 else [])
    return ", ".join(shown)
