"""`ofrace audit` on the live lab: clean when healthy, and each injected fault found precisely.

The faults are what users hit in production (FIELD-NOTES §6): OpenFlow flows
lost behind ovn-controller's back, a stray flow, an iface-id pointing at a
port bound elsewhere, an interface with no OpenFlow port, an ovn-controller
that stopped following the SB, a tunnel port gone.  Each test starts from a
fresh lab, injects one fault with ordinary OVS/OVN commands, and checks the
audit names it — and nothing else.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from lab_inventory import local_inventory

from ofrace.audit.cluster import audit_snapshot
from ofrace.collect.cluster import collect_cluster
from ofrace.openflow.flowtext import line_cookie, without_stats

WORKER = "ovn-worker"


def snapshot_of(lab):
    return collect_cluster(local_inventory(lab))


def problems(audit) -> dict:
    """{chassis: (missing lflow uuids, stale cookies, health kinds)} for unclean chassis."""
    found = {}
    for ch in audit.chassis:
        if not ch.clean:
            found[ch.chassis] = ([m.uuid for m in ch.logical.missing],
                                 [s.cookie for s in ch.logical.stale],
                                 sorted(p.kind for p in ch.health))
    return found


def test_healthy_lab_is_clean_cli(lab_slot):
    lab = lab_slot.up("kind")
    run = subprocess.run([sys.executable, "-m", "ofrace", "audit", "-i",
                          str(lab.dir / "inventory.toml"), "--json"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr
    doc = json.loads(run.stdout)
    assert doc["clean"] is True
    for name, entry in doc["chassis"].items():
        assert entry["counts"]["missing"] == 0, name
        assert entry["counts"]["installed"] > 300
        assert sum(entry["expected_reasons"].values()) == entry["counts"]["expected"]


def test_deleted_flows_of_one_lflow_are_missing_and_trace_shows_where(lab_slot):
    lab = lab_slot.up("kind")
    snap = snapshot_of(lab)
    lflow = next(lf for lf in snap.southbound.tables["Logical_Flow"]
                 if (lf.get("external_ids") or {}).get("stage-name") == "lr_in_dnat"
                 and "30007" in lf["match"] and "172.18.0.4" in lf["match"])
    cookie = int(lflow["_uuid"][:8], 16)
    flows = [line for line in snap.chassis[WORKER].bridges["br-int"].flows
             if line_cookie(line) == cookie]
    assert flows
    for line in flows:
        # "cookie=…, table=N, priority=P,match actions=…" → "table=N,priority=P,match"
        text = without_stats(line).split(" actions=")[0]
        match = ",".join(item for item in text.replace(", ", ",").split(",")
                         if not item.startswith("cookie="))
        lab.run_on(WORKER, ["ovs-ofctl", "--strict", "del-flows", "br-int", match])
    audit = audit_snapshot(snapshot_of(lab))
    assert problems(audit) == {WORKER: ([lflow["_uuid"]], [], [])}
    # The trace through that chassis: the logical view goes on where the physical one stops.
    expr = ('inport == "breth0_ovn-worker" && eth.src == 02:42:7a:79:82:ca && '
            'eth.dst == 02:42:ac:12:00:04 && ip4.src == 172.18.0.1 && ip4.dst == 172.18.0.4 && '
            'ip.ttl == 64 && tcp.src == 12345 && tcp.dst == 30007 && tcp.flags == 2')
    run = subprocess.run([sys.executable, "-m", "ofrace", "trace", "-i",
                          str(lab.dir / "inventory.toml"), "--check-logical", "--json", expr],
                         capture_output=True, text=True, timeout=120)
    doc = json.loads(run.stdout)
    check = doc["check_logical"]
    assert check["agree"] is False
    assert "lr_in_dnat" in check["logical"]
    assert lflow["_uuid"][:8] in check["logical"]


def test_a_stray_flow_is_stale(lab_slot):
    lab = lab_slot.up("kind")
    lab.run_on(WORKER, ["ovs-ofctl", "add-flow", "br-int",
                        "cookie=0xdeadbeef,table=12,priority=999,ip,metadata=0x1,actions=drop"])
    audit = audit_snapshot(snapshot_of(lab))
    assert problems(audit) == {WORKER: ([], [0xDEADBEEF], [])}


def test_iface_id_pointing_at_a_port_bound_elsewhere(lab_slot):
    lab = lab_slot.up("kind")
    other = "kube-system_coredns-64897985d-wdvs9"   # bound on ovn-control-plane
    lab.run_on(WORKER, ["ovs-vsctl", "add-port", "br-int", "stray0", "--", "set", "Interface",
                        "stray0", f"external_ids:iface-id={other}", "ofport_request=40"])
    time.sleep(1.0)
    audit = audit_snapshot(snapshot_of(lab))
    found = problems(audit)
    assert set(found) <= {WORKER, "ovn-control-plane"} and found
    messages = [p.message for ch in audit.chassis for p in ch.health]
    assert any(other in m for m in messages), messages
    for ch in audit.chassis:
        assert all(p.kind == "binding" for p in ch.health), ch.health


def test_interface_without_openflow_port(lab_slot):
    lab = lab_slot.up("kind")
    # The VIF's dummy port is taken away: its interface turns into one OVS cannot open
    # (a patch port with no peer), so it gets ofport -1 and an error.
    lab.run_on(WORKER, ["ovs-vsctl", "set", "Interface", "nginx-x6pc6", "type=patch"])
    time.sleep(1.0)
    audit = audit_snapshot(snapshot_of(lab))
    worker = next(c for c in audit.chassis if c.chassis == WORKER)
    kinds = sorted(p.kind for p in worker.health)
    assert "interface" in kinds, worker.health
    assert any("nginx-x6pc6" in p.message for p in worker.health)


def test_stopped_controller_is_reported_lagging(lab_slot):
    lab = lab_slot.up("kind")
    lab.run_on(WORKER, ["ovn-appctl", "-t", "ovn-controller", "exit", "--restart"])
    lab.nbctl("--wait=sb", "ls-add", "audit-test-switch")
    # --wait=sb returns once northd has written the SB; the running controllers
    # catch up moments later.  Until they do they are lagging too (really), so
    # the snapshot waits for them -- and only them.
    lab._wait_until(lambda: others_caught_up(lab), "the running ovn-controllers to catch up")
    audit = audit_snapshot(snapshot_of(lab))
    found = problems(audit)
    assert list(found) == [WORKER] and found[WORKER][2] == ["sync"], found


def others_caught_up(lab) -> bool:
    """Every chassis but WORKER reports the SB's nb_cfg (WORKER, stopped, must not)."""
    target = int(lab.sbctl("--bare", "--columns=nb_cfg", "list", "SB_Global").strip())
    seen = {}
    for row in lab.sbctl("--format=csv", "--data=bare", "--no-headings",
                         "--columns=name,nb_cfg", "list", "Chassis_Private").split():
        name, _, cfg = row.partition(",")
        seen[name] = int(cfg or 0)
    worker_id = next(c["system_id"] for c in lab.state["chassis"] if c["name"] == WORKER)
    assert seen.get(worker_id, 0) < target, seen
    others = [cfg for name, cfg in seen.items() if name != worker_id]
    return bool(others) and all(cfg == target for cfg in others)
