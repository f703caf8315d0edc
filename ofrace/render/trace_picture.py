"""The path as a picture: ``ofrace trace --html FILE`` and ``--svg FILE``.

Built from the ``--json`` document (``trace_json``), so the picture, the JSON and
``--detailed`` tell one story.  Hand-built inline SVG, no library: the layout is a
list of rows (one per logical datapath visit, verdict, hop) in the lanes of the chassis,
which needs no graph layout engine, and a page that must open from a ``file://`` URL in
an air-gapped support case must fetch nothing (no CDN, no font, no script from elsewhere).

Every string from a node or a database is untrusted: it goes through
``escape(markup=False)`` (control characters made visible) and ``html.escape`` (``<``,
``&``, quotes), and the page's script never builds markup from text: the details of each
hop are rendered here, hidden, and the script only shows and hides them.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from ofrace.render.escape import escape

LANE_WIDTH = 350
BOX_X = 26            # a box's left edge inside its lane
BOX_WIDTH = 230
BOX_HEIGHT = 40
TRUNK_X = 44          # where arrows leave and enter a box, inside its lane
GUTTER_X = 10         # where an arrow that skips rows runs down its lane
LINE = 14             # one line of an edge's label
LABEL_CHARS = 46
TOP = 56              # room for the lane headers
CHANGES_SHOWN = 4

VERDICT_MARK = {"delivered": "✔", "left": "↗", "host": "↗", "controller": "⚙",
                 "dropped": "✘", "error": "!", "loop": "↻", "unknown": "?"}


def text(value: object) -> str:
    """Untrusted text as HTML/SVG character data or an attribute value."""
    return html.escape(escape("" if value is None else value, markup=False), quote=True)


def _short(value: str, limit: int = LABEL_CHARS) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


@dataclass
class Station:
    """One place on the path: a bridge's own flows, or one visit of a logical datapath."""

    name: str
    cms: str | None
    bridge: str
    events: list[dict] = field(default_factory=list)

    @property
    def flows(self) -> list[dict]:
        return [e for e in self.events if e["kind"] == "flow"]

    @property
    def unused(self) -> int:
        return sum(1 for e in self.flows if (e.get("counters") or {}).get("unused"))

    def port(self, role: str, first: bool) -> str | None:
        """The logical port the packet entered by (``inport``, the first flow's) or left
        by (``outport``, the last flow's), with the CMS's name beside it."""
        flows = [e for e in self.flows if e.get(role)]
        if not flows:
            return None
        ev = flows[0] if first else flows[-1]
        cms = _cms_label((ev.get("cms") or {}).get(role))
        return f"{ev[role]} [{cms}]" if cms else ev[role]

    def changes(self) -> list[str]:
        """The header changes made here, NAT first (with its direction), as edge lines."""
        nat, other = [], []
        for ev in self.events:
            for c in ev.get("changes") or []:
                line = f"{c['field']} {c['before']} → {c['after']}"
                if ev["kind"] == "ct":
                    nat.append(f"{_nat_kind(ev['text'])} {line}")
                else:
                    other.append(line)
        return nat + other


def _nat_kind(ct_text: str) -> str:
    """DNAT, SNAT or un-NAT, as the ct() event's text says (ofrace.simulate.conntrack)."""
    if "dst-NAT" in ct_text:
        return "DNAT"
    if "src-NAT" in ct_text:
        return "SNAT"
    return "un-NAT"


def stations(hop: dict) -> list[Station]:
    """A hop's events cut where the logical datapath (or, outside OVN's pipeline, the
    bridge) changes: the boxes of the picture, in the order the packet visited them."""
    out: list[Station] = []
    key = None
    for ev in hop["events"]:
        if ev["kind"] == "flow":
            here = ("dp", ev["datapath"]) if ev["datapath"] else ("bridge", ev["bridge"])
            # a physical flow between logical stages (table 0, the tunnel tables) belongs
            # to the datapath visit around it, on the same bridge
            keep = out and (here == key or here[0] == "bridge" and key[0] == "dp"
                            and out[-1].bridge == ev["bridge"])
            if not keep:
                cms = (ev.get("cms") or {}).get("datapath")
                out.append(Station(ev["datapath"] or ev["bridge"], _cms_label(cms),
                                   ev["bridge"]))
                key = here
        elif not out:
            out.append(Station(ev["bridge"], None, ev["bridge"]))
            key = ("bridge", ev["bridge"])
        out[-1].events.append(ev)
    return out or [Station(hop["bridge"], None, hop["bridge"])]


def _cms_label(cms: dict | None) -> str | None:
    if not cms:
        return None
    who = "Neutron " if cms.get("cms") == "neutron" else ""
    return f'{who}{cms.get("kind", "")} "{cms["name"]}"' if cms.get("name") else \
        f"{who}{cms.get('kind', '')}"


def crossing(hop: dict) -> list[str]:
    """How the packet reached a hop: its entry, and for a tunnel the keys it carried
    (VNI in tun_id; OVN's Geneve option: ingress port key in bits 30..16, egress in 15..0,
    ovn-org/ovn controller/physical.c put_encapsulation)."""
    cms = _cms_label(hop.get("cms"))
    lines = [f"{hop['entry']} [{cms}]" if cms else hop["entry"]]
    fields = hop["packet_in"]["fields"]
    if "tun_id" in fields or "tun_dst" in fields:
        tunnel = f"VNI {fields.get('tun_id', 0)}"
        if fields.get("tun_src"):
            tunnel += f", {fields['tun_src']} → {fields.get('tun_dst', '?')}"
        lines.append(tunnel)
        for name, value in sorted(fields.items()):
            if name.startswith("tun_metadata") and isinstance(value, int):
                lines.append(f"{name} {value:#x}: port keys {value >> 16 & 0x7fff} → "
                             f"{value & 0xffff}")
    return lines


# --- the model as rows -------------------------------------------------------------------

@dataclass
class Row:
    kind: str                 # station | verdict
    part: str                 # request | reply
    hop: int                  # the hop's number, in the JSON's order
    lane: int
    station: Station | None = None
    index: int = 0            # the station's number in its hop
    verdict: dict | None = None
    label_in: list[str] = field(default_factory=list)    # how it was reached
    label_class: str = "crossing"                         # a hop's entry, or "port"
    sources: list[tuple[int, str]] = field(default_factory=list)   # (row, style) into it
    y: int = 0


@dataclass
class Picture:
    rows: list[Row]
    lanes: list[str]
    hops: list[tuple[str, dict]]      # (part, hop) in the JSON's order


def picture(doc: dict) -> Picture:
    """The rows of a trace document (and its reply), in the JSON's hop order."""
    lanes: list[str] = []
    rows: list[Row] = []
    hops: list[tuple[str, dict]] = []

    def lane(chassis: str) -> int:
        if chassis not in lanes:
            lanes.append(chassis)
        return lanes.index(chassis)

    def add_hop(hop: dict, part: str, source: int | None, style: str,
                label: list[str]) -> None:
        number = len(hops)
        hops.append((part, hop))
        for k, st in enumerate(stations(hop)):
            row = Row("station", part, number, lane(hop["chassis"]), st, k)
            if k == 0:
                row.label_in = label
                if source is not None:
                    row.sources.append((source, style))
            else:
                row.sources.append((len(rows) - 1, part))
                left, entered = rows[-1].station.port("outport", False), st.port("inport", True)
                if left or entered:     # a patch between logical datapaths, or a bridge's
                    row.label_in = [f"{left} → {entered}" if left and entered
                                    else f"in by {entered}" if entered else f"out by {left}"]
                    row.label_class = "port"
            rows.append(row)
        last = len(rows) - 1
        for verdict in hop["verdicts"]:
            rows.append(Row("verdict", part, number, lane(verdict["chassis"] or hop["chassis"]),
                            verdict=verdict, sources=[(last, part)]))
        for child in hop["next_hops"]:
            add_hop(child, part, last, part, crossing(child))

    add_hop(doc["trace"], "request", None, "request", crossing(doc["trace"]))
    reply = doc.get("reply") or {}
    if reply.get("run"):
        delivered = [i for i, r in enumerate(rows)
                     if r.kind == "verdict" and r.verdict["kind"] == "delivered"]
        add_hop(reply["trace"], "reply", delivered[0] if delivered else None, "answer",
                ["reply: " + reply["trace"]["entry"]] + crossing(reply["trace"])[1:])
    return Picture(rows, lanes, hops)


# --- drawing ------------------------------------------------------------------------------

def _lane_x(lane: int) -> int:
    return 20 + lane * LANE_WIDTH


def _layout(pic: Picture) -> int:
    """Each row's y: the gap above a row holds the changes made in the row before and
    the label of how this row was reached."""
    y = TOP
    previous: Row | None = None
    for row in pic.rows:
        lines = len(_change_lines(previous)) if previous else 0
        lines += len(row.label_in)
        y += max(26, LINE * lines + 18) if previous or row.label_in else 0
        row.y = y
        y += BOX_HEIGHT
        previous = row
    return y + 30


def _change_lines(row: Row | None) -> list[str]:
    if row is None or row.station is None:
        return []
    changes = row.station.changes()
    if len(changes) > CHANGES_SHOWN:
        more = len(changes) - CHANGES_SHOWN
        changes = changes[:CHANGES_SHOWN] + [f"+{more} more (click the box)"]
    return changes


def _edge(pic: Picture, source: int, target: int, style: str) -> str:
    a, b = pic.rows[source], pic.rows[target]
    x1, y1 = _lane_x(a.lane) + TRUNK_X, a.y + BOX_HEIGHT
    x2, y2 = _lane_x(b.lane) + TRUNK_X, b.y
    if a.lane == b.lane and target == source + 1:
        d = f"M{x1},{y1} V{y2}"
    elif target == source + 1:
        d = f"M{x1},{y1} V{y2 - 8} H{x2} V{y2}"
    else:   # skips rows: down the lane's gutter, so it crosses no box
        gutter = _lane_x(a.lane) + GUTTER_X
        d = f"M{x1},{y1} V{y1 + 6} H{gutter} V{y2 - 8} H{x2} V{y2}"
    return f'<path class="edge {style}" d="{d}" marker-end="url(#arrow)"/>'


def _label(x: int, y: int, lines: list[str], cls: str) -> str:
    out = []
    for n, line in enumerate(lines):
        out.append(f'<text class="{cls}" x="{x}" y="{y + n * LINE}">'
                   f'<title>{text(line)}</title>{text(_short(line))}</text>')
    return "".join(out)


def _station_svg(row: Row) -> str:
    st = row.station
    x = _lane_x(row.lane) + BOX_X
    logical = sum(1 for e in st.flows if e.get("logical_flow"))
    sub = f"{logical} logical · {len(st.flows)} OpenFlow"
    if st.cms:
        sub = f"{st.cms} · {sub}"
    warn = f'<text class="unused" x="{x + BOX_WIDTH - 6}" y="{row.y + 15}" ' \
           f'text-anchor="end">⚠ {st.unused} never hit</text>' if st.unused else ""
    return (f'<g class="station {row.part}" id="st-{row.hop}-{row.index}" '
            f'data-hop="{row.hop}" data-station="{row.index}" tabindex="0">'
            f'<title>{text(st.name)}{" — " + text(st.cms) if st.cms else ""}</title>'
            f'<rect x="{x}" y="{row.y}" width="{BOX_WIDTH}" height="{BOX_HEIGHT}" rx="5"/>'
            f'<text class="name" x="{x + 8}" y="{row.y + 16}">{text(_short(st.name, 30))}'
            f'</text>{warn}'
            f'<text class="sub" x="{x + 8}" y="{row.y + 32}">{text(_short(sub, 44))}</text>'
            "</g>")


def verdict_lines(verdict: dict) -> tuple[str, str]:
    """A verdict box's two lines: what happened where ("dropped on hv1"), then why (a
    drop's cause, "by ACL …", before the engine's words) or, with no why, the packet."""
    what, _, why = verdict["text"].partition(": ")
    if " — " in why:
        why = why.split(" — ", 1)[1]
    return what, why or verdict["packet"]["summary"]


def _verdict_svg(row: Row) -> str:
    v = row.verdict
    x = _lane_x(row.lane) + BOX_X
    mark = VERDICT_MARK.get(v["kind"], "•")
    what, why = verdict_lines(v)
    return (f'<g class="verdict {text(v["kind"])}" data-hop="{row.hop}" tabindex="0">'
            f'<title>{text(v["text"])}\n{text(v["packet"]["summary"])}</title>'
            f'<rect x="{x}" y="{row.y}" width="{LANE_WIDTH - BOX_X - 14}" '
            f'height="{BOX_HEIGHT}" rx="18"/>'
            f'<text class="name" x="{x + 10}" y="{row.y + 16}">{mark} '
            f'{text(_short(what, 38))}</text>'
            f'<text class="sub" x="{x + 10}" y="{row.y + 32}">'
            f'{text(_short(why, 50))}</text></g>')


SVG_STYLE = """
.lane-bg { fill: #f6f8fa; } .lane-bg.odd { fill: #eef1f4; }
.lane-name { font: bold 14px sans-serif; fill: #24292f; }
.station rect { fill: #fff; stroke: #1f6feb; stroke-width: 1.5; cursor: pointer; }
.station.reply rect { stroke: #d9480f; }
.station.current rect { stroke-width: 3.5; fill: #fff8c5; }
.station .name { font: bold 12px sans-serif; fill: #24292f; }
.station .sub, .verdict .sub { font: 11px sans-serif; fill: #57606a; }
.station .unused { font: 11px sans-serif; fill: #9a6700; }
.verdict rect { fill: #fff; stroke-width: 2; }
.verdict .name { font: bold 12px sans-serif; }
.verdict.delivered rect { stroke: #1a7f37; } .verdict.delivered .name { fill: #1a7f37; }
.verdict.dropped rect, .verdict.error rect, .verdict.loop rect { stroke: #cf222e; }
.verdict.dropped .name, .verdict.error .name, .verdict.loop .name { fill: #cf222e; }
.verdict.controller rect, .verdict.unknown rect { stroke: #9a6700; }
.verdict.controller .name, .verdict.unknown .name { fill: #9a6700; }
.verdict.left rect, .verdict.host rect { stroke: #0969da; }
.verdict.left .name, .verdict.host .name { fill: #0969da; }
.edge { fill: none; stroke: #1f6feb; stroke-width: 1.6; }
.edge.reply { stroke: #d9480f; }
.edge.answer { stroke: #d9480f; stroke-dasharray: 6 4; }
.change { font: 10px monospace; fill: #1a7f37; }
.change.nat { font-weight: bold; fill: #8250df; }
.crossing { font: italic 11px sans-serif; fill: #57606a; }
.port { font: 10px sans-serif; fill: #6e7781; }
.part-label { font: bold 13px sans-serif; fill: #d9480f; }
"""


def trace_svg(doc: dict, standalone: bool = False) -> str:
    """The picture of a trace document: lanes, boxes, arrows, labels."""
    pic = picture(doc)
    height = _layout(pic)
    width = 40 + LANE_WIDTH * max(1, len(pic.lanes))
    # The namespace is a name, not a fetch; a browser parsing HTML needs none.
    namespace = 'xmlns="http://www.w3.org/2000/svg" ' if standalone else ""
    out = [f'<svg {namespace}id="path" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" '
           f'role="img" aria-label="the packet\'s path">',
           f"<style>{SVG_STYLE}</style>",
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
           'fill="#57606a"/></marker></defs>']
    for n, chassis in enumerate(pic.lanes):
        x = _lane_x(n)
        out.append(f'<rect class="lane-bg{" odd" if n % 2 else ""}" x="{x}" y="0" '
                   f'width="{LANE_WIDTH - 4}" height="{height}"/>'
                   f'<text class="lane-name" x="{x + 10}" y="24" data-chassis="{text(chassis)}">'
                   f'{text(_short(chassis, 40))}</text>')
    reply_start = next((r for r in pic.rows if r.part == "reply"), None)
    if reply_start is not None:
        y = reply_start.y - LINE * len(reply_start.label_in) - 14
        out.append(f'<line x1="0" x2="{width}" y1="{y}" y2="{y}" stroke="#d9480f" '
                   f'stroke-dasharray="2 4"/><text class="part-label" x="{width - 10}" '
                   f'y="{y - 4}" text-anchor="end">reply ↓</text>')
    for target, row in enumerate(pic.rows):
        for source, style in row.sources:
            out.append(_edge(pic, source, target, style))
    previous = None
    for row in pic.rows:
        if previous is not None:
            changes = _change_lines(previous)
            x = _lane_x(previous.lane) + TRUNK_X + 8
            y0 = previous.y + BOX_HEIGHT + 13
            for n, line in enumerate(changes):
                cls = "change nat" if line.startswith(("DNAT", "SNAT", "un-NAT")) else "change"
                out.append(_label(x, y0 + n * LINE, [line], cls))
        if row.label_in:
            x = _lane_x(row.lane) + TRUNK_X + 8
            y0 = row.y - 12 - LINE * (len(row.label_in) - 1)
            out.append(_label(x, y0, row.label_in, row.label_class))
        previous = row
    hop_open = None
    for row in pic.rows:
        if row.hop != hop_open:
            if hop_open is not None:
                out.append("</g>")
            part, hop = pic.hops[row.hop]
            out.append(f'<g class="hop {part}" id="hop-{row.hop}" data-hop="{row.hop}" '
                       f'data-part="{part}" data-chassis="{text(hop["chassis"])}" '
                       f'data-entry="{text(hop["entry"])}">')
            hop_open = row.hop
        out.append(_station_svg(row) if row.kind == "station" else _verdict_svg(row))
    if hop_open is not None:
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)
