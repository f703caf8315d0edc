"""The trace page in a real browser (issue 18): headless Chromium opens the file with the
network off, the DOM holds every hop of the ``--json`` trace in order, a click on a hop
shows its flows, and nothing was requested but the file itself.

Screenshots: ``OFRACE_RECORD_PICTURES=docs/pictures pytest tests/test_trace_html_browser.py``
rewrites the ones the README shows; otherwise they go to a temporary directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from browser import Browser, find_chromium
from trace_pages import CASES, case, hops_in_order

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on this machine (scripts/setup.sh installs "
                             "Debian's chromium; these tests need nothing else)")

# The box each screenshot shows the details of: the seed's DNAT, the switch whose ACL
# drops the SSH SYN, the first chassis the flood reached through a tunnel.
SHOWN = {"seed-nodeport": "#st-0-3", "acl-drop": "#st-1-1", "flood-branch": "#st-1-0"}


@pytest.fixture(scope="module")
def browser():
    b = Browser(CHROMIUM, width=1800, height=1200)
    yield b
    b.close()


def _shots(tmp_path: Path) -> Path:
    where = os.environ.get("OFRACE_RECORD_PICTURES")
    path = Path(where) if where else tmp_path
    path.mkdir(parents=True, exist_ok=True)
    return path


def _shown_sections(browser) -> list[str]:
    return browser.evaluate("Array.from(document.querySelectorAll('section.detail'))"
                            ".filter(s => !s.hidden && s.offsetHeight > 0).map(s => s.id)")


@pytest.mark.parametrize("name", list(CASES))
def test_page_in_a_browser(name, browser, tmp_path):
    doc, page = case(name)
    path = tmp_path / f"{name}.html"
    path.write_text(page)
    browser.requests.clear()
    browser.open(path.as_uri())
    hops = hops_in_order(doc)
    drawn = browser.evaluate("Array.from(document.querySelectorAll('g.hop'),"
                             " g => [g.dataset.chassis, g.dataset.entry])")
    assert drawn == [[h["chassis"], h["entry"]] for h in hops]
    # laid out, not only parsed: every box has a size and the boxes go down the page
    boxes = browser.evaluate("Array.from(document.querySelectorAll('g.station, g.verdict'),"
                             " g => { var r = g.getBoundingClientRect();"
                             " return [r.width, r.height, r.y]; })")
    assert boxes and all(w > 100 and h > 20 for w, h, _ in boxes)
    assert [y for _, _, y in boxes] == sorted(y for _, _, y in boxes)
    assert _shown_sections(browser) == []
    for number, hop in enumerate(hops):
        browser.click(f"#st-{number}-0")
        assert _shown_sections(browser) == [f"detail-{number}"]
        shown = browser.evaluate(f"document.getElementById('detail-{number}').innerText")
        flows = [ev for ev in hop["events"] if ev["kind"] == "flow"]
        assert flows
        for ev in flows:
            assert ev["flow"] in shown
            assert f"n_packets={ev['counters']['n_packets']} " in shown
            if ev["logical_flow"]:
                assert ev["logical_flow"]["stage"] in shown
        assert browser.evaluate("document.querySelector('.station.current').id") == \
            f"st-{number}-0"
    browser.click(SHOWN[name])
    browser.evaluate("window.scrollTo(0, 0)")
    shot = _shots(tmp_path) / f"trace-{name}.png"
    browser.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    # the network: nothing asked for but the page itself
    assert browser.requests == [path.as_uri()]


def test_the_request_check_sees_a_page_that_fetches(browser, tmp_path):
    """The negative control: a page that loads an image is seen asking for it (and the
    proxy on a closed port keeps it from getting anywhere)."""
    path = tmp_path / "fetching.html"
    path.write_text('<!DOCTYPE html><img src="http://192.0.2.1/x.png"><p>x</p>')
    browser.requests.clear()
    browser.open(path.as_uri())
    assert browser.requests == [path.as_uri(), "http://192.0.2.1/x.png"]
    assert browser.evaluate("document.querySelector('img').naturalWidth") == 0


def test_audit_page_in_a_browser(browser, tmp_path):
    """``ofrace audit --html``: the MISSING flow and its NB row are on the page, the
    expected reasons open on a click, nothing is requested."""
    from test_audit_html import _faulty

    from ofrace.audit.cluster import audit_snapshot
    from ofrace.render.audit import audit_json
    from ofrace.render.audit_html import audit_page

    snapshot, lflow = _faulty()
    path = tmp_path / "audit.html"
    path.write_text(audit_page(audit_json(audit_snapshot(snapshot))))
    browser.requests.clear()
    browser.open(path.as_uri())
    body = browser.evaluate("document.body.innerText")
    assert "MISSING lr_in_dnat" in body and lflow["_uuid"] in body
    assert "from NB: load balancer" in body
    closed = browser.evaluate("document.querySelector('details').open")
    browser.click("details summary")
    assert closed is False and browser.evaluate("document.querySelector('details').open")
    browser.screenshot(_shots(tmp_path) / "audit.png")
    assert browser.requests == [path.as_uri()]
