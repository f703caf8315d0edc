"""``ofrace trace --html/--svg`` (issue 18), without a browser: the page is drawn from
the ``--json`` document of the same run, hop for hop; the seed's NAT is on its edges;
nothing in it points outside the file; every string from a node is escaped; every flow
of the path carries its counters (JSON, ``--detailed``, page)."""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner
from trace_pages import SEED, case, hops_in_order, run_trace

from ofrace.cli import main
from ofrace.openflow.flowtext import line_counters
from ofrace.render.trace_html import trace_page
from ofrace.render.trace_picture import stations, trace_svg


class _Elements(HTMLParser):
    """Start tags with their attributes and the text under them, in document order."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.texts: list[tuple[str, str]] = []     # (class of the enclosing <text>, data)
        self._text_class: list[str] = []
        self._in_title = False     # a <text>'s <title>: its full text, as a tooltip

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "text":
            self._text_class.append(attrs.get("class", ""))
        self._in_title = self._in_title or tag == "title"

    def handle_endtag(self, tag):
        if tag == "text" and self._text_class:
            self._text_class.pop()
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._text_class and not self._in_title:
            self.texts.append((self._text_class[-1], data))


def _parse(page: str) -> _Elements:
    parser = _Elements()
    parser.feed(page)
    return parser


def _classes(attrs: dict) -> set[str]:
    return set((attrs.get("class") or "").split())


@pytest.mark.parametrize("name", ["seed-nodeport", "acl-drop", "flood-branch"])
def test_page_holds_every_hop_of_the_json_in_order(name):
    doc, page = case(name)
    tags = _parse(page).tags
    hops = [a for t, a in tags if t == "g" and "hop" in _classes(a)]
    expected = hops_in_order(doc)
    assert [(h["data-chassis"], h["data-entry"]) for h in hops] == \
        [(h["chassis"], h["entry"]) for h in expected]
    assert [int(h["data-hop"]) for h in hops] == list(range(len(expected)))
    # each hop's boxes, in order, and one details section per hop
    boxes = [a["id"] for t, a in tags if t == "g" and "station" in _classes(a)]
    assert boxes == [f"st-{n}-{k}" for n, hop in enumerate(expected)
                     for k in range(len(stations(hop)))]
    sections = [a["id"] for t, a in tags if t == "section"]
    assert sections == [f"detail-{n}" for n in range(len(expected))]


def test_seed_nodeport_has_both_nats_and_their_undoing_on_its_edges():
    doc, page = case("seed-nodeport")
    assert doc["reply"]["run"] and len(hops_in_order(doc)) == 7
    nat = [data for cls, data in _parse(page).texts if "nat" in cls.split()]
    assert nat == ["DNAT ip4.dst 172.18.0.4 → 10.244.1.3", "DNAT tcp.dst 30007 → 80",
                   "SNAT tcp.src 12345 → 12346", "SNAT ip4.src 172.18.0.1 → 100.64.0.3",
                   "un-NAT ip4.dst 100.64.0.3 → 172.18.0.1"]
    # the reply is drawn below the request, in its own colour
    parts = [a["data-part"] for t, a in _parse(page).tags if t == "g" and "hop" in _classes(a)]
    assert parts == ["request"] * 3 + ["reply"] * 4


def test_acl_drop_and_flood_branches_are_marked():
    _, page = case("acl-drop")
    verdicts = [a for t, a in _parse(page).tags if t == "g" and "verdict" in _classes(a)]
    assert [sorted(_classes(v) - {"verdict"}) for v in verdicts] == [["dropped"]]
    assert 'by ACL &quot;web-deny&quot; to-lport' in page
    # the box says where and why, the cause before the engine's words
    box = [d for c, d in _parse(page).texts if c in ("name", "sub")][-2:]
    assert box[0] == "✘ dropped on hv1" and box[1].startswith('by ACL "web-deny" to-lport')
    doc, page = case("flood-branch")
    verdicts = [a for t, a in _parse(page).tags if t == "g" and "verdict" in _classes(a)]
    kinds = [sorted(_classes(v) - {"verdict"})[0] for v in verdicts]
    assert kinds == ["controller", "delivered", "delivered", "delivered", "delivered"]
    lanes = [d for c, d in _parse(page).texts if c == "lane-name"]
    assert lanes == ["hv2", "hv1", "hv3"]
    # the tunnels' edges say what they carried: the datapath's VNI and the port keys
    crossings = [d for c, d in _parse(page).texts if c == "crossing"]
    assert any(re.fullmatch(r"VNI \d+, [\d.]+ → [\d.]+", c) for c in crossings), crossings
    assert any(re.fullmatch(r"tun_metadata\d+ 0x[0-9a-f]+: port keys \d+ → \d+", c)
               for c in crossings), crossings


# Anything that could make a browser fetch: a URL anywhere (text included), a CSS
# import or url() other than a fragment, a script's network calls; and, in the markup,
# an attribute or an element that loads something.
EXTERNAL = re.compile(r"https?:|//[\w.-]+\.\w|@import|url\((?!#)|\bfetch\(|XMLHttpRequest|"
                      r"WebSocket|\bimport\(|sendBeacon", re.IGNORECASE)
LOADING_ATTRIBUTES = {"src", "href", "xlink:href", "srcset", "action", "data", "poster",
                      "background", "formaction", "ping"}
LOADING_ELEMENTS = {"link", "img", "iframe", "object", "embed", "base", "audio", "video",
                    "source", "image", "use", "feimage", "form"}


def external_references(page: str) -> list[str]:
    found = EXTERNAL.findall(page)
    for tag, attrs in _parse(page).tags:
        found += [f"<{tag}>"] if tag in LOADING_ELEMENTS else []
        found += [f"{tag} {name}=" for name in attrs if name in LOADING_ATTRIBUTES]
    return found


@pytest.mark.parametrize("name", ["seed-nodeport", "acl-drop", "flood-branch"])
def test_page_points_nowhere_outside_itself(name):
    _, page = case(name)
    assert external_references(page) == []
    assert "default-src 'none'" in page     # and the browser is told to fetch nothing


@pytest.mark.parametrize("bad", ['<script src="x.js"></script>', '<img src="x.png">',
                                 "<style>@import 'a.css';</style>", '<a href="#top">',
                                 "fetch('/x')", '<rect fill="url(x.svg#a)"/>',
                                 "<link rel=stylesheet>", "see //example.org/a"])
def test_the_external_url_check_catches_what_it_is_for(bad):
    _, page = case("acl-drop")
    assert external_references(page.replace("</body>", bad + "</body>"))


HOSTILE = '<script>alert(1)</script>" onclick="x'


def _renamed(value, old: str, new: str):
    """Every string of a document with ``old`` replaced: a node whose names are hostile."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [_renamed(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _renamed(v, old, new) for k, v in value.items()}
    return value


def test_every_node_string_is_escaped():
    doc, _ = case("flood-branch")
    hostile = _renamed(copy.deepcopy(doc), "vm3", "vm3" + HOSTILE + "\x1b]0;t\x07")
    hostile = _renamed(hostile, "hv1", "hv1&<marquee>")
    page = trace_page(hostile)
    assert page.count("<script") == 1 and "alert(1)</script>" not in page
    assert 'onclick="' not in page and "onclick=&quot;" in page   # text, not an attribute
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot; onclick=&quot;x\\e]0;t\\x07" in page
    assert "<marquee>" not in page and "hv1&amp;&lt;marquee&gt;" in page
    assert "\x1b" not in page and "\x07" not in page
    # the hostile names are there, as text: in the lanes, the boxes and the details
    tags = _parse(page).tags
    assert [a["data-chassis"] for t, a in tags if t == "g" and "hop" in _classes(a)] == \
        ["hv2", "hv1&<marquee>", "hv3"]
    # the drawing is well-formed XML whatever the names were
    svg = page[page.index("<svg"):page.index("</svg>") + 6]
    ET.fromstring(svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))
    ET.fromstring(trace_svg(hostile, standalone=True))


def test_svg_file_is_standalone_and_html_and_svg_agree(tmp_path):
    run = run_trace("kind", [SEED, "--reply"], "--summary", "--svg", str(tmp_path / "p.svg"))
    assert run.exit_code == 1, run.output     # the reply is held for ARP: not delivered
    svg = (tmp_path / "p.svg").read_text()
    root = ET.fromstring(svg.split("\n", 1)[1])
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "<script" not in svg
    _, page = case("seed-nodeport")
    assert trace_svg(case("seed-nodeport")[0]) in page


def test_conversation_has_no_single_picture(tmp_path):
    run = run_trace("kind", [SEED, "--conversation"], "--html", str(tmp_path / "p.html"))
    assert run.exit_code == 2 and "--step" in run.output
    assert not (tmp_path / "p.html").exists()


def test_unwritable_page_is_an_environment_failure(tmp_path):
    run = run_trace("acl", ["--from", "vm3", "--to", "10.0.1.11:22"], "--summary",
                    "--html", str(tmp_path / "no" / "such" / "dir.html"))
    assert run.exit_code == 5 and "cannot write" in run.output


# --- counters ----------------------------------------------------------------------------

def test_line_counters():
    line = ("cookie=0x5f2e1810, duration=5184.167s, table=43, n_packets=7, n_bytes=518, "
            "idle_age=3, priority=100,ip,metadata=0x3 actions=resubmit(,44)")
    assert line_counters(line) == {"n_packets": 7, "n_bytes": 518, "duration": 5184.167}
    assert line_counters("table=43, priority=100,ip actions=drop") is None
    # a match on a field named like a counter is not one
    assert line_counters("priority=1,n_packets=3 actions=drop") is None


def _flows(doc):
    return [ev for hop in hops_in_order(doc) for ev in hop["events"] if ev["kind"] == "flow"]


def test_every_flow_on_the_path_carries_its_counters():
    doc, page = case("seed-nodeport")
    flows = _flows(doc)
    assert flows and all(ev["counters"] is not None for ev in flows)
    assert all(ev["counters"]["unused"] == (ev["counters"]["n_packets"] == 0) for ev in flows)
    hit = [ev for ev in flows if ev["counters"]["n_packets"]]
    assert hit and len(hit) < len(flows)     # both kinds on this path
    # the first flow of the path: breth0's NORMAL, which the node had used 3 times
    first = flows[0]
    assert (first["bridge"], first["table"], first["counters"]["n_packets"]) == ("breth0", 0, 3)
    assert f'n_packets=3 n_bytes={first["counters"]["n_bytes"]}</span>' in page
    assert page.count("never hit</span>") == \
        sum(ev["counters"]["unused"] for ev in flows)


def test_detailed_text_shows_counters_and_flags_flows_never_hit():
    run = run_trace("kind", [SEED], "--detailed")
    doc, _ = case("seed-nodeport")
    request_flows = _flows({"trace": doc["trace"]})
    out = " ".join(run.output.split())     # the lines as rich wrapped them, joined
    assert out.count("n_packets=") == out.count(" cookie 0x") == len(request_flows)
    assert out.count("never hit") == sum(ev["counters"]["unused"] for ev in request_flows)
    assert "actions=NORMAL n_packets=3 n_bytes=126 " in out


def test_names_users_know_are_on_the_picture(tmp_path):
    """Neutron's names (tests/test_cms_names.py's snapshot) beside OVN's: the port it
    entered by, the networks and router of the boxes, the ports between them."""
    from test_cms_names import neutron_acl

    path = tmp_path / "neutron.ofr"
    neutron_acl().save(path)
    page_file = tmp_path / "p.html"
    run = CliRunner().invoke(main, ["trace", "--snapshot", str(path), "--from", "client-port",
                                    "--to", "web-1-port:80", "--html", str(page_file)])
    assert run.exit_code == 0, run.output
    texts = _parse(page_file.read_text()).texts
    entry = next(d for c, d in texts if c == "crossing")
    assert entry.endswith('[Neutron port "client-port"]'), entry
    boxes = [d for c, d in texts if c == "sub"]
    assert any(d.startswith('Neutron router "edge"') for d in boxes), boxes
    assert any(d.startswith('Neutron network "net-') for d in boxes), boxes
    ports = [d for c, d in texts if c == "port"]
    assert any("lr1-ls2 [Neutron router interface" in d for d in ports), ports


def test_ports_between_datapaths_are_on_the_seed_edges():
    _, page = case("seed-nodeport")
    ports = [d for c, d in _parse(page).texts if c == "port"]
    assert "rtoj-GR_ovn-worker → jtor-GR_ovn-worker" in ports
    assert "rtos-ovn-worker → stor-ovn-worker" in ports
