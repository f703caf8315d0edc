"""The ``learn`` action: build the flow it would install and add it to the simulated table.

The learned flow joins the bridge's index for the rest of the trace (and of
the reply trace), and the trace reports it, as ``ofproto/trace`` does.
"""

from __future__ import annotations

from ofrace.openflow.actions import FieldRef, Learn, field_width, parse_field_ref
from ofrace.openflow.bridge import BridgeIndex
from ofrace.openflow.classifier import FlowTable
from ofrace.openflow.fields import COMPOSITES, FIELDS, canonical, parse_value, split_composite
from ofrace.simulate.packet import Packet, read_ref

_OPTIONS = {"table", "priority", "cookie", "idle_timeout", "hard_timeout", "fin_idle_timeout",
            "fin_hard_timeout", "delete_learned", "limit", "result_dst", "send_flow_rem"}


def _parse_ref(text: str) -> FieldRef:
    ref = parse_field_ref(text)
    if ref is None:
        name = canonical(text)
        return FieldRef(name, 0, field_width(name) - 1)
    return ref


def _ref_of(spec: dict) -> FieldRef:
    name = canonical(spec["field"])
    return FieldRef(name, spec.get("start", 0), spec.get("end", field_width(name) - 1))


def learn_flow(bridge: BridgeIndex, action: Learn, packet: Packet) -> str:
    """Install the learned flow in ``bridge``; returns its text for the trace."""
    options = {"table": 0, "priority": 32768, "cookie": 0}
    match: dict[str, list[int]] = {}
    acts: list[str] = []

    def add_match(name: str, value: int, mask: int) -> None:
        items = split_composite(name, value, mask) if name in COMPOSITES else [
            (name, value, mask)]
        for n, v, m in items:
            cur = match.setdefault(n, [0, 0])
            cur[0] = (cur[0] & ~m) | (v & m)
            cur[1] |= m

    for item in action.spec:
        (key, value), = item.items()
        if key in _OPTIONS:
            options[key] = value
        elif key == "load":
            dst = _ref_of(value["dst"])
            val = read_ref(packet, _ref_of(value["src"])) if "src" in value else value["value"]
            acts.append(f"load:{val:#x}->{dst.name}[{dst.start}..{dst.end}]")
        elif key == "output":
            # ovs.flow gives {"port": "NXM_OF_IN_PORT[]"} (or a number) for output:FIELD
            port = value.get("port", value) if isinstance(value, dict) else value
            src = (_ref_of(value) if isinstance(value, dict) and "field" in value
                   else parse_field_ref(str(port)))
            acts.append(f"output:{read_ref(packet, src)}" if src else f"output:{port}")
        else:
            dst = _parse_ref(key)
            mask = ((1 << dst.width) - 1) << dst.start
            if isinstance(value, dict) and "field" in value:
                val = read_ref(packet, _ref_of(value)) << dst.start
            else:
                name = dst.name
                if name in FIELDS:
                    val, mask = parse_value(FIELDS[name], str(value))
                else:
                    val = int(str(value), 0) << dst.start
            add_match(dst.name, val, mask)
    items = tuple(sorted((n, v & m, m) for n, (v, m) in match.items()))
    text_match = ",".join(f"{n}={v:#x}/{m:#x}" for n, v, m in items)
    actions_text = ",".join(acts) or "drop"
    line = (f"cookie={int(options['cookie']):#x}, table={options['table']}, "
            f"priority={options['priority']}{',' + text_match if text_match else ''} "
            f"actions={actions_text}")
    index = len(bridge.flows)
    bridge.flows.append(line)
    table = bridge.table(options["table"])
    if table is None:
        table = bridge.tables[options["table"]] = FlowTable(options["table"])
    table.add(tuple((n, m) for n, _, m in items), tuple(v for _, v, _ in items),
              int(options["priority"]), index)
    bridge.learned.append(index)
    return line
