"""Run ``ofproto/trace`` on a node and compare it with ofrace's simulation of the same packet.

Only the flow form of ofproto/trace is used (a flow string, no packet), which
has no side effects on the node: no learning, no packet-ins.
"""

from __future__ import annotations

from dataclasses import dataclass

from ofrace.compare.ofproto_trace import (
    Comparison,
    compare_passes,
    parse_dpif_show,
    parse_ofproto_trace,
    simulated_passes,
)
from ofrace.errors import ToolError
from ofrace.openflow.bridge import BridgeIndex
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


def compare_with_ofproto_trace(chassis: Chassis, transport, bridge: str, packet: dict,
                               ct_next: list[str] = (), indexes: dict | None = None,
                               timeout: float = 60) -> LiveComparison:
    """Trace ``packet`` with ofproto/trace on the node and with ofrace on its snapshot."""
    flow = format_microflow(packet)
    argv = ["ovs-appctl", "ofproto/trace", bridge, flow]
    for state in ct_next:
        argv += ["--ct-next", state]
    out = transport.run(argv, timeout=timeout)
    if out.rc != 0:
        raise ToolError(f"ofproto/trace failed on {chassis.name}: "
                           f"{out.stderr.decode(errors='replace').strip()}")
    text = out.stdout.decode(errors="replace")
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
