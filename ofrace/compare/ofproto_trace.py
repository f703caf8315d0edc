"""Read ``ovs-appctl ofproto/trace`` output, and line it up with an ofrace simulation.

ofproto/trace prints, per datapath pass, the flows it hit (``N. match,
priority P, cookie C``, nested resubmits indented) and ends each pass with
``Datapath actions: …``; a ct() recirculation starts a new pass
(``recirc(0xN) - resume conntrack …``).  It stops at recirculations that
are not conntrack (a ``dp_hash`` select group: ``hash(l4(0)),recirc``).

The comparison takes, pass by pass, the (table, priority, cookie) sequence
and the datapath outputs (port, tunnel, controller, with the header fields
the datapath rewrites before each), and reports the first divergence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ofrace.openflow.fields import FIELDS, format_value
from ofrace.openflow.flowtext import split_top_level
from ofrace.ovn.versions import facts_for
from ofrace.simulate.steps import Exit, ExitKind, Step, StepKind

# OVN's Geneve option (class, type, length): the same in every release ofrace knows.
_GENEVE = facts_for(None).geneve
_OVN_OPTION = (_GENEVE.opt_class, _GENEVE.opt_type, _GENEVE.length)
_OVN_OPTION_TEXT = re.compile(r"options\(\{class=%#x,type=%#x,len=%d,(0x[0-9a-f]+)\}"  # noqa: UP031
                              % _OVN_OPTION)
_HIT = re.compile(r"^\s*(\d+)\. (?:(.*?),? )?priority (\d+)(?:, cookie (0x[0-9a-f]+))?$")
_MISS = re.compile(r"^\s*(\d+)\. No match\.$")
_BRIDGE = re.compile(r'^(\s*)bridge\("([^"]+)"\)$')
_DPIF_PORT = re.compile(r"^\s+(\S+) (\d+)/(\d+|none):")
_DPIF_BRIDGE = re.compile(r"^  (\S+):$")


@dataclass
class Hit:
    bridge: str
    table: int
    priority: int | None   # None: no flow matched in that table
    cookie: int

    def key(self) -> tuple:
        return (self.table, self.priority, self.cookie)

    def __str__(self) -> str:
        if self.priority is None:
            return f"{self.bridge} table {self.table}: no match"
        return (f"{self.bridge} table {self.table}, priority {self.priority}, "
                f"cookie {self.cookie:#x}")


@dataclass
class DatapathOutput:
    """One output in a pass' datapath actions, with the header rewrites before it."""

    kind: str                   # port | tunnel | controller
    port: str = ""              # datapath port number (as text), for kind=port
    tunnel: tuple = ()          # (vni, remote ip, geneve option value)
    headers: dict = field(default_factory=dict)

    def key(self, base: dict | None = None) -> tuple:
        """What must agree; ``base`` drops rewrites to a field's unchanged value
        (the datapath's set() writes whole headers, e.g. ICMP type and code)."""
        base = base or {}
        headers = {k: v for k, v in self.headers.items() if base.get(k, 0) != v}
        return (self.kind, self.port, self.tunnel, tuple(sorted(headers.items())))

    def __str__(self) -> str:
        where = {"port": f"port {self.port}", "controller": "controller",
                 "tunnel": "tunnel vni={:#x} dst={} opt={:#x}".format(*self.tunnel)
                 if self.tunnel else "tunnel"}[self.kind]
        sets = ",".join(f"{k}={format_value(FIELDS[k], v)}"
                        for k, v in sorted(self.headers.items()))
        return f"{where}{' after set ' + sets if sets else ''}"


@dataclass
class TracePass:
    flow: str
    hits: list[Hit] = field(default_factory=list)
    start: dict = field(default_factory=dict)   # the packet entering the pass (ofrace side)
    actions: str = ""
    outputs: list[DatapathOutput] = field(default_factory=list)
    stops_at_hash: bool = False   # ends in hash(...),recirc: ofproto/trace goes no further


# OVS's internal table-miss rules (ofproto-dpif.c add_internal_flows).  When the
# lookup ran in another bridge than the one the trace started on, ofproto/trace
# prints such a rule's match instead of "No match.".
_INTERNAL_MISS = {"reg0=0x1", "reg0=0x2", "reg0=0x3"}


def parse_ofproto_trace(text: str, bridges: set[str] | None = None) -> list[TracePass]:
    """Passes of an ofproto/trace output; hits in bridges outside ``bridges``
    (the tunnel underlay, e.g. br-phys) are left out."""
    passes: list[TracePass] = []
    # Nested bridge sections (a patch port or tunnel underlay inside a resubmit)
    # are indented; a line back at or left of the header's indent leaves it.
    stack: list[tuple[int, str]] = []
    current: TracePass | None = None
    for line in text.splitlines():
        if line.startswith("Flow: "):
            current = TracePass(line[6:])
            passes.append(current)
            stack = []
            continue
        if current is None or not line.strip() or set(line.strip()) == {"-"}:
            continue
        indent = len(line) - len(line.lstrip())
        m = _BRIDGE.match(line)
        if m:
            while stack and (stack[-1][0] >= indent):
                stack.pop()
            stack.append((indent, m.group(2)))
            continue
        while len(stack) > 1 and stack[-1][0] >= indent:
            stack.pop()
        bridge = stack[-1][1] if stack else ""
        if bridges is not None and bridge not in bridges and bridge:
            if line.startswith("Datapath actions: "):
                pass
            else:
                continue
        m = _MISS.match(line)
        if m:
            current.hits.append(Hit(bridge, int(m.group(1)), None, 0))
            continue
        m = _HIT.match(line)
        if m:
            if (m.group(2) or "") in _INTERNAL_MISS and m.group(4) is None:
                current.hits.append(Hit(bridge, int(m.group(1)), None, 0))
            else:
                current.hits.append(Hit(bridge, int(m.group(1)), int(m.group(3)),
                                        int(m.group(4), 16) if m.group(4) else 0))
            continue
        if line.startswith("Datapath actions: "):
            current.actions = line[len("Datapath actions: "):].strip()
            current.outputs, current.stops_at_hash = parse_datapath_actions(current.actions)
    return passes


# datapath set(proto(field=…)) → our canonical field
_ODP_FIELDS = {
    ("eth", "src"): "dl_src", ("eth", "dst"): "dl_dst",
    ("ipv4", "src"): "nw_src", ("ipv4", "dst"): "nw_dst", ("ipv4", "ttl"): "nw_ttl",
    ("ipv6", "src"): "ipv6_src", ("ipv6", "dst"): "ipv6_dst", ("ipv6", "hlimit"): "nw_ttl",
    ("tcp", "src"): "tp_src", ("tcp", "dst"): "tp_dst", ("udp", "src"): "tp_src",
    ("udp", "dst"): "tp_dst", ("sctp", "src"): "tp_src", ("sctp", "dst"): "tp_dst",
    ("icmp", "type"): "tp_src", ("icmp", "code"): "tp_dst", ("icmpv6", "type"): "tp_src",
    ("icmpv6", "code"): "tp_dst",
    ("arp", "sip"): "nw_src", ("arp", "tip"): "nw_dst", ("arp", "op"): "nw_proto",
    ("arp", "sha"): "arp_sha", ("arp", "tha"): "arp_tha",
    ("nd", "target"): "nd_target", ("nd", "sll"): "arp_sha", ("nd", "tll"): "arp_tha",
}
COMPARED_FIELDS = sorted(set(_ODP_FIELDS.values()))


def _odp_value(name: str, text: str) -> int:
    text = text.split("/")[0]
    kind = FIELDS[name].kind
    if kind == "mac":
        return int(text.replace(":", ""), 16)
    if kind in ("ipv4", "ipv6"):
        import ipaddress
        return int(ipaddress.ip_address(text))
    return int(text, 0)


def parse_datapath_actions(text: str, headers: dict | None = None
                           ) -> tuple[list[DatapathOutput], bool]:
    """Outputs of a datapath action list; ``clone(…)`` is read in place, with its own
    copy of the header rewrites (the datapath undoes them after the clone)."""
    outputs: list[DatapathOutput] = []
    headers = dict(headers or {})
    items = split_top_level(text)
    stops = any(i.startswith("hash(") for i in items) and any(
        i.startswith("recirc(") for i in items)
    skip_underlay = False
    for item in items:
        if item.startswith("set(") or item.startswith("set_masked("):
            inner = item[item.index("(") + 1:-1]
            proto, _, body = inner.partition("(")
            for part in split_top_level(body.rstrip(")")):
                key, _, value = part.partition("=")
                name = _ODP_FIELDS.get((proto, key))
                if name:
                    headers[name] = _odp_value(name, value)
            skip_underlay = False
        elif item.startswith("tnl_push("):
            vni = re.search(r"vni=(0x[0-9a-f]+)", item)
            dst = re.search(r"ipv4\(src=[^,]+,dst=([^,]+)", item)
            opt = _OVN_OPTION_TEXT.search(item)
            outputs.append(DatapathOutput(
                "tunnel", tunnel=(int(vni.group(1), 16) if vni else 0,
                                  dst.group(1) if dst else "",
                                  int(opt.group(1), 16) if opt else 0),
                headers=dict(headers)))
            skip_underlay = True   # what follows is the encapsulated packet's own output
        elif item.startswith("clone("):
            inner, inner_stops = parse_datapath_actions(item[6:-1], headers)
            outputs += inner
            stops = stops or inner_stops
        elif item.startswith("userspace("):
            outputs.append(DatapathOutput("controller", headers=dict(headers)))
        elif item.isdigit():
            if not skip_underlay:
                outputs.append(DatapathOutput("port", port=item, headers=dict(headers)))
    return outputs, stops


def parse_dpif_show(text: str) -> dict[tuple[str, int], str]:
    """``dpif/show`` → {(bridge, ofport): datapath port}."""
    result = {}
    bridge = ""
    for line in text.splitlines():
        m = _DPIF_BRIDGE.match(line)
        if m:
            bridge = m.group(1)
            continue
        m = _DPIF_PORT.match(line)
        if m and bridge:
            result[(bridge, int(m.group(2)))] = m.group(3)
    return result


# ---------------------------------------------------------------- our side

def simulated_passes(root: Step, exits: list[Exit], start: dict,
                     dpif: dict[tuple[str, int], str]) -> list[TracePass]:
    """The same shape as ``parse_ofproto_trace``, from an ofrace simulation."""
    passes: dict[int, TracePass] = {}
    starts: dict[int, dict] = {0: start}
    for step in root.walk():
        if step.kind in (StepKind.FLOW, StepKind.MISS):
            n = step.data.get("pass", 0)
            tp = passes.setdefault(n, TracePass(""))
            tp.hits.append(Hit(step.bridge, step.table, step.priority if step.kind == StepKind.FLOW
                               else None, step.cookie or 0))
        elif step.kind == StepKind.RECIRC:
            starts[step.data["pass"]] = step.data.get("packet", {})
    for n, tp in passes.items():
        tp.start = starts.get(n, start)
    for exit_ in exits:
        n = exit_.data.get("pass", 0)
        tp = passes.setdefault(n, TracePass("", start=starts.get(n, start)))
        base = tp.start
        headers = {f: exit_.packet.get(f, 0) for f in COMPARED_FIELDS
                   if exit_.packet.get(f, 0) != base.get(f, 0)}
        if exit_.kind == ExitKind.OUTPUT:
            port = dpif.get((exit_.bridge, exit_.port), "?")
            tp.outputs.append(DatapathOutput("port", port=port, headers=headers))
        elif exit_.kind == ExitKind.TUNNEL:
            d = exit_.data
            # OVN's option, by (class, type) as the wire carries it (any tun_metadataN)
            opt = d.get("geneve", {}).get((_OVN_OPTION[0], _OVN_OPTION[1]),
                                          d.get("options", {}).get("tun_metadata0", 0))
            tp.outputs.append(DatapathOutput(
                "tunnel", tunnel=(d.get("tun_id", 0), d.get("remote_ip") or "", opt),
                headers=headers))
        elif exit_.kind == ExitKind.CONTROLLER and not exit_.data.get("pause"):
            # ofproto/trace without a packet emits nothing for controller(pause)
            tp.outputs.append(DatapathOutput("controller", headers=headers))
    return [passes[k] for k in sorted(passes)]


@dataclass
class Divergence:
    pass_no: int
    what: str
    ours: str
    theirs: str
    index: int | None = None

    def __str__(self) -> str:
        at = f" at step {self.index + 1}" if self.index is not None else ""
        return (f"pass {self.pass_no}{at}: {self.what}\n"
                f"    ofrace:        {self.ours}\n    ofproto/trace: {self.theirs}")


@dataclass
class Comparison:
    ours: list[TracePass]
    theirs: list[TracePass]
    divergence: Divergence | None
    compared_passes: int
    notes: list[str] = field(default_factory=list)

    @property
    def agree(self) -> bool:
        return self.divergence is None


def _flood_blocks(hits: list[Hit]) -> tuple | None:
    """A pass' hits with the peer bridges a flood entered put in one order, or None
    when the pass enters no bridge twice from its first one.

    A flood (NORMAL, or ``output:`` of several patch ports) into two patch peers
    of the same bridge walks them in OVS's bundle order -- creation order, ties in
    a hash of pointers (ofproto-dpif-xlate.c ``xlate_normal_flood``) -- which
    ofrace cannot read.  Each entry into a bridge starts at table 0, so the
    pass splits there; the first block (where the packet entered) stays first.
    """
    starts = [i for i, hit in enumerate(hits) if i and hit.table == 0]
    if not starts:
        return None
    entered = [hits[i].bridge for i in starts]
    if len(set(entered)) == len(entered):
        return None
    bounds = [0, *starts, len(hits)]
    blocks = [tuple(h.key() + (h.bridge,) for h in hits[a:b])
              for a, b in zip(bounds, bounds[1:], strict=False)]
    return (blocks[0], *sorted(blocks[1:]))


def compare_passes(ours: list[TracePass], theirs: list[TracePass]) -> Comparison:
    notes = []
    compared = 0
    for n, their in enumerate(theirs):
        if n >= len(ours):
            return Comparison(ours, theirs, Divergence(
                n, "ofproto/trace has a pass that ofrace does not", "(no such pass)",
                their.flow), compared, notes)
        our = ours[n]
        compared += 1
        if [h.key() for h in our.hits] != [h.key() for h in their.hits] and \
                _flood_blocks(our.hits) is not None and \
                _flood_blocks(our.hits) == _flood_blocks(their.hits):
            notes.append(f"pass {n}: the same bridges entered from a flood, in another order "
                         "(OVS floods in the order its bundles were created, which no dump "
                         "shows)")
            our = TracePass(our.flow, their.hits, our.start, our.actions, our.outputs,
                            our.stops_at_hash)
        limit = len(their.hits)
        for i in range(max(len(our.hits), limit)):
            o = our.hits[i] if i < len(our.hits) else None
            t = their.hits[i] if i < limit else None
            if t is None and their.stops_at_hash:
                notes.append(f"pass {n}: ofproto/trace stops at a dp_hash select group; "
                             f"ofrace goes on ({len(our.hits) - limit} more flows)")
                return Comparison(ours, theirs, None, compared, notes)
            if o is None or t is None or o.key() != t.key():
                return Comparison(ours, theirs, Divergence(
                    n, "different flow", str(o) if o else "(trace ended)",
                    str(t) if t else "(trace ended)", i), compared, notes)
        if their.stops_at_hash:
            notes.append(f"pass {n}: ofproto/trace stops at a dp_hash select group")
            return Comparison(ours, theirs, None, compared, notes)
        o_out = sorted(o.key(our.start) for o in our.outputs)
        t_out = sorted(t.key(our.start) for t in their.outputs)
        if o_out != t_out:
            return Comparison(ours, theirs, Divergence(
                n, "different datapath outputs",
                "; ".join(map(str, our.outputs)) or "(none: drop)",
                "; ".join(map(str, their.outputs)) or f"(none: {their.actions})"),
                compared, notes)
    if len(ours) > len(theirs):
        notes.append(f"ofrace has {len(ours) - len(theirs)} more pass(es) than ofproto/trace")
    return Comparison(ours, theirs, None, compared, notes)
