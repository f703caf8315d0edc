"""The audit on recorded lab snapshots: healthy is clean, each injected fault is named."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
from conftest import recorded

from ofrace.audit.cluster import audit_snapshot
from ofrace.audit.logical import NOT_LOCAL
from ofrace.openflow.flowtext import line_cookie


@pytest.mark.parametrize("topology", ["kind", "acl", "basic", "kind-ic"])
def test_healthy_labs_are_clean_and_every_gap_has_a_reason(topology):
    snapshot, _ = recorded(topology)
    audit = audit_snapshot(snapshot)
    assert audit.clean, [(c.chassis, [m.match for m in c.logical.missing][:3],
                          [s.why for s in c.logical.stale][:3], c.health[:3])
                         for c in audit.chassis]
    for ch in audit.chassis:
        assert ch.logical.count("installed") > 50
        for status in ch.logical.lflows:
            assert status.status in ("installed", "expected")
            if status.status == "expected":
                assert status.reason


def _fresh(topology="kind"):
    return copy.deepcopy(recorded(topology)[0])


def test_deleted_flows_of_one_lflow_are_missing():
    snapshot = _fresh()
    worker = snapshot.chassis["ovn-worker"]
    sb = snapshot.southbound.tables
    lflow = next(lf for lf in sb["Logical_Flow"]
                 if (lf.get("external_ids") or {}).get("stage-name") == "lr_in_dnat"
                 and "30007" in lf["match"] and "172.18.0.4" in lf["match"])
    cookie = int(lflow["_uuid"][:8], 16)
    bridge = worker.bridges["br-int"]
    kept = [line for line in bridge.flows if line_cookie(line) != cookie]
    assert len(kept) < len(bridge.flows)
    worker.bridges["br-int"] = replace(bridge, flows=kept)
    audit = audit_snapshot(snapshot)
    by_name = {c.chassis: c for c in audit.chassis}
    missing = by_name["ovn-worker"].logical.missing
    assert [m.uuid for m in missing] == [lflow["_uuid"]]
    assert missing[0].stage == "lr_in_dnat" and missing[0].datapaths == ["GR_ovn-worker"]
    assert by_name["ovn-control-plane"].clean and by_name["ovn-worker2"].clean
    assert not audit.clean


def test_a_flow_with_an_unknown_cookie_is_stale():
    snapshot = _fresh()
    worker = snapshot.chassis["ovn-worker"]
    bridge = worker.bridges["br-int"]
    stray = ("cookie=0xdeadbeef, duration=1.0s, table=12, n_packets=0, n_bytes=0, idle_age=1, "
             "priority=999,ip,metadata=0x1 actions=drop")
    worker.bridges["br-int"] = replace(bridge, flows=bridge.flows + [stray])
    ch = next(c for c in audit_snapshot(snapshot).chassis if c.chassis == "ovn-worker")
    assert [s.cookie for s in ch.logical.stale] == [0xDEADBEEF]
    assert "matches no Southbound row" in ch.logical.stale[0].why
    assert not ch.logical.missing and not ch.health


def test_binding_on_the_wrong_chassis_is_broken():
    snapshot = _fresh()
    sb = snapshot.southbound.tables
    nginx = next(pb for pb in sb["Port_Binding"]
                 if pb["logical_port"] == "default_nginx-deployment-9456bbbf9-x6pc6")
    other = next(c for c in sb["Chassis"] if c["hostname"] == "ovn-worker2")
    nginx["chassis"] = other["_uuid"]
    audit = {c.chassis: c for c in audit_snapshot(snapshot).chassis}
    messages = [p.message for p in audit["ovn-worker"].health]
    assert any("is bound to ovn-worker2" in m for m in messages), messages
    assert any("bound here but no interface" in p.message for p in audit["ovn-worker2"].health)


def test_interface_without_ofport_and_missing_tunnel_are_broken():
    snapshot = _fresh()
    worker = snapshot.chassis["ovn-worker"]
    for row in worker.ovsdb["Interface"]:
        if row["name"] == "nginx-x6pc6":
            row["ofport"] = -1
            row["error"] = "could not open network device nginx-x6pc6 (No such device)"
    tunnel = next(r for r in worker.ovsdb["Interface"] if r.get("type") == "geneve")
    worker.ovsdb["Interface"] = [r for r in worker.ovsdb["Interface"] if r is not tunnel]
    worker.__dict__.pop("interfaces", None)  # derived view, recomputed
    ch = next(c for c in audit_snapshot(snapshot).chassis if c.chassis == "ovn-worker")
    kinds = sorted(p.kind for p in ch.health)
    assert kinds == ["interface", "tunnel"], ch.health
    assert "No such device" in next(p.message for p in ch.health if p.kind == "interface")


def test_lagging_chassis_is_reported():
    snapshot = _fresh()
    sb = snapshot.southbound.tables
    sb["SB_Global"][0]["nb_cfg"] += 3
    behind = sb["Chassis_Private"][0]["name"]
    for row in sb["Chassis_Private"][1:]:
        row["nb_cfg"] += 3
    audit = {c.chassis: c for c in audit_snapshot(snapshot).chassis}
    lagging = [name for name, c in audit.items() if any(p.kind == "sync" for p in c.health)]
    assert len(lagging) == 1
    assert snapshot.chassis[lagging[0]].system_id == behind


def test_not_local_is_the_common_reason():
    snapshot, _ = recorded("kind")
    ch = audit_snapshot(snapshot).chassis[0]
    assert ch.logical.reasons().most_common(1)[0][0] == NOT_LOCAL
