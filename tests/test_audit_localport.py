"""Audit false alarms ovn-controller explains: localports and logical flows that share a match.

The fixture (tests/fixtures/localport) was recorded from the basic lab after
(integration/test_audit_cms.py does the same live):

    ovn-nbctl lsp-add sw0 sw0-meta -- lsp-set-type sw0-meta localport \\
        -- lsp-set-addresses sw0-meta "50:54:00:00:00:fe 10.0.0.254"
    hv1# ovs-vsctl add-port br-int tapmeta -- set Interface tapmeta \\
        external_ids:iface-id=sw0-meta ofport_request=20        (hv2 gets no tap)
    ovn-nbctl acl-add sw0 from-lport 1001 'inport == "sw0-port1" && tcp.dst == 8080' \\
        allow-related
    ovn-nbctl pg-add pg_web sw0-port1
    ovn-nbctl --type=port-group --log --name=web-8080 acl-add pg_web from-lport 1001 \\
        'inport == "sw0-port1" && tcp.dst == 8080' allow-related
    ovn-nbctl set Logical_Switch_Port sw0-port1 external_ids:"neutron:port_name"=web-1 …
    ofrace collect -i inventory.toml -o snapshot.ofr

northd then emits two pairs of ls_in_acl flows with the same table, priority and match
but different actions (one logs); ovn-controller installs one OpenFlow flow per match.
Before: BROKEN "sw0-meta … bound to no chassis" and MISSING on hv1 (the losing pair) and
on hv2 (the localport's ARP responder, hv2 having no tap).
"""

from __future__ import annotations

from conftest import FIXTURES
from rich.console import Console

from ofrace.audit.cluster import audit_snapshot
from ofrace.audit.logical import LOCALPORT, SAME_MATCH
from ofrace.openflow.flowtext import line_cookie
from ofrace.render.audit import audit_json, render_audit
from ofrace.snapshot import Snapshot

LOCALPORT_LFLOW = "8a6c22f3"   # ls_in_arp_rsp ... inport == "sw0-meta"


def snapshot() -> Snapshot:
    return Snapshot.load(FIXTURES / "localport" / "snapshot.ofr")


def _by_chassis(audit):
    return {c.chassis: c for c in audit.chassis}


def _status(audit, chassis: str, prefix: str):
    return next(s for s in _by_chassis(audit)[chassis].logical.lflows
                if s.uuid.startswith(prefix))


def _same_match(audit, chassis: str):
    return [s for s in _by_chassis(audit)[chassis].logical.lflows
            if s.reason and s.reason.startswith(SAME_MATCH.split("{")[0])]


def test_recorded_lab_is_clean_and_says_why():
    audit = audit_snapshot(snapshot())
    assert audit.clean, [(c.chassis, [m.uuid for m in c.logical.missing], c.health)
                         for c in audit.chassis]
    # the localport's flows: installed where its tap is, expected (not MISSING) elsewhere
    assert _status(audit, "hv1", LOCALPORT_LFLOW).status == "installed"
    there = _status(audit, "hv2", LOCALPORT_LFLOW)
    assert there.status == "expected"
    assert there.reason == LOCALPORT.format(port="sw0-meta")
    # the losers of the two same-match pairs, each naming the lflow that won
    losers = _same_match(audit, "hv1")
    assert len(losers) == 2
    winners = {s.uuid[:8]: s for s in _by_chassis(audit)["hv1"].logical.lflows
               if s.status == "installed"}
    for loser in losers:
        winner = winners[loser.reason.split("lflow ")[1][:8]]
        assert (winner.match, winner.priority, winner.table_id) == (
            loser.match, loser.priority, loser.table_id)
        assert winner.actions != loser.actions


def test_a_localport_is_never_broken_for_being_unbound():
    audit = audit_snapshot(snapshot())
    assert not [p for c in audit.chassis for p in c.health if "sw0-meta" in p.message]


def _drop_cookie(snap: Snapshot, chassis: str, prefix: str) -> None:
    bridge = snap.chassis[chassis].bridges["br-int"]
    cookie = int(prefix, 16)
    kept = [line for line in bridge.flows if line_cookie(line) != cookie]
    assert len(kept) < len(bridge.flows)
    bridge.flows = kept


def test_localport_flows_lost_where_its_tap_is_are_missing():
    """Negative control: where ovn-controller does install them, their loss is found."""
    snap = snapshot()
    _drop_cookie(snap, "hv1", LOCALPORT_LFLOW)
    audit = audit_snapshot(snap)
    assert [m.uuid[:8] for m in _by_chassis(audit)["hv1"].logical.missing] == [LOCALPORT_LFLOW]
    # and a chassis that gets a tap for it needs its flows too
    snap = snapshot()
    hv1, hv2 = snap.chassis["hv1"], snap.chassis["hv2"]
    hv2.interfaces.append(next(i for i in hv1.interfaces if i.iface_id == "sw0-meta"))
    audit = audit_snapshot(snap)
    assert [m.uuid[:8] for m in _by_chassis(audit)["hv2"].logical.missing] == [LOCALPORT_LFLOW]


def test_same_match_flows_lost_altogether_are_missing():
    """Negative control: when the installed flow of a same-match pair is gone, both the
    winner and the loser are MISSING (no flow for that match is left)."""
    audit = audit_snapshot(snapshot())
    loser = _same_match(audit, "hv1")[0]
    winner = loser.reason.split("lflow ")[1][:8]
    snap = snapshot()
    _drop_cookie(snap, "hv1", winner)
    found = {m.uuid[:8] for m in _by_chassis(audit_snapshot(snap))["hv1"].logical.missing}
    assert {winner, loser.uuid[:8]} <= found


def test_missing_flows_name_the_network_as_neutron_does():
    """The fixture's sw0 has neutron:network_name=private: a MISSING lflow says so."""
    snap = snapshot()
    _drop_cookie(snap, "hv1", LOCALPORT_LFLOW)
    audit = audit_snapshot(snap)
    missing = audit_json(audit)["chassis"]["hv1"]["missing"]
    assert missing[0]["datapath_cms"] == {"sw0": 'Neutron network "private"'}
    console = Console(record=True, width=200)
    render_audit(audit, console)
    assert 'on sw0 [Neutron network "private"], lflow 8a6c22f3' in console.export_text()
