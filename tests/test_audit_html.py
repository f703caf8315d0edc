"""``ofrace audit --html FILE`` (issue 18): per chassis what is MISSING, stale and broken,
each MISSING logical flow with the NB row behind it, the expected reasons; escaped, and
pointing nowhere outside itself."""

from __future__ import annotations

import copy
from dataclasses import replace

from click.testing import CliRunner
from conftest import FIXTURES, recorded
from test_trace_html import external_references

from ofrace.audit.cluster import audit_snapshot
from ofrace.cli import main
from ofrace.openflow.flowtext import line_cookie
from ofrace.render.audit import audit_json
from ofrace.render.audit_html import audit_page

STRAY = ("cookie=0xdeadbeef, duration=1.0s, table=12, n_packets=0, n_bytes=0, idle_age=1, "
         "priority=999,ip,metadata=0x1 actions=drop")


def _faulty():
    """kind with the NodePort's DNAT flows gone from ovn-worker and a stray flow there."""
    snapshot = copy.deepcopy(recorded("kind")[0])
    lflow = next(lf for lf in snapshot.southbound.tables["Logical_Flow"]
                 if (lf.get("external_ids") or {}).get("stage-name") == "lr_in_dnat"
                 and "30007" in lf["match"] and "172.18.0.4" in lf["match"])
    worker = snapshot.chassis["ovn-worker"]
    bridge = worker.bridges["br-int"]
    kept = [line for line in bridge.flows if line_cookie(line) != int(lflow["_uuid"][:8], 16)]
    worker.bridges["br-int"] = replace(bridge, flows=kept + [STRAY])
    return snapshot, lflow


def _page_without_fragment_links(page: str) -> str:
    """The summary table links to each chassis' section: a fragment, not a fetch."""
    return page.replace('href="#chassis-', 'data-x="#chassis-')


def test_missing_lflow_is_shown_with_its_northbound_row():
    snapshot, lflow = _faulty()
    doc = audit_json(audit_snapshot(snapshot))
    (missing,) = doc["chassis"]["ovn-worker"]["missing"]
    assert missing["uuid"] == lflow["_uuid"]
    # the NB object behind it: the NodePort's load balancer, with the service's name
    assert any(nb.startswith("load balancer") and "172.18.0.4:30007" in nb
               for nb in missing["northbound"]), missing["northbound"]
    page = audit_page(doc)
    assert page.count('<span class="bad">MISSING</span>') == 1
    assert page.count('<span class="bad">STALE</span>') == 1
    assert f"lflow {lflow['_uuid']}" in page
    for nb in missing["northbound"]:
        assert "from NB: " + nb.replace('"', "&quot;") in page
    # every chassis in the table, each expected reason with its count
    for name, ch in doc["chassis"].items():
        assert f'id="chassis-{name}"' in page
        for reason, count in ch["expected_reasons"].items():
            assert f"<td>{reason}</td><td>{count}</td>" in page.replace("&#x27;", "'")
    assert external_references(_page_without_fragment_links(page)) == []


def test_audit_page_escapes_node_text():
    snapshot, _ = _faulty()
    doc = audit_json(audit_snapshot(snapshot))
    doc["chassis"]["ovn-worker"]["stale"][0]["flow"] += '<script>alert(1)</script>'
    doc["chassis"]['a"><img src=x>'] = {"clean": False, "unreadable": "<b>x</b>",
                                         "notices": []}
    page = audit_page(doc)
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'id="chassis-a&quot;&gt;&lt;img src=x&gt;"' in page


def test_audit_cli_writes_the_page(tmp_path):
    run = CliRunner().invoke(main, ["audit", "--snapshot", str(FIXTURES / "acl" / "snapshot.ofr"),
                                    "--html", str(tmp_path / "audit.html")])
    assert run.exit_code == 0, run.output
    page = (tmp_path / "audit.html").read_text()
    assert "clean: every logical flow" in page and "hv1" in page
    assert external_references(_page_without_fragment_links(page)) == []
