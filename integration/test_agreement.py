"""The engine agrees with ofproto/trace on the live lab, packet for packet.

For each topology the cluster is collected, then every generated packet
(every VIF, tunnel and uplink of every chassis; see ofrace.compare.packets)
is traced with each --ct-next variant both by the node's own
``ovs-appctl ofproto/trace`` and by ofrace on the snapshot.  Agreement must
be 100%: same (table, priority, cookie) per datapath pass, same outputs
with the same header rewrites.  ``ofrace compare --all -i INVENTORY`` runs
the same check by hand.
"""

from __future__ import annotations

import subprocess
import sys

from lab_inventory import local_inventory

from ofrace.collect.cluster import collect_cluster
from ofrace.compare.agreement import reread_node, run_agreement

TOPOLOGIES = ("basic", "kind", "acl")


def test_full_agreement_with_ofproto_trace(lab_slot, capsys):
    totals, details = {}, []
    for topology in TOPOLOGIES:
        lab = lab_slot.ensure(topology)
        inventory = local_inventory(lab)
        snapshot = collect_cluster(inventory)
        assert snapshot.complete, snapshot.all_problems()
        report = run_agreement(snapshot, inventory, every_variant=True, reread=reread_node)
        totals[topology] = report.total
        with capsys.disabled():
            print(f"\n[agreement] {topology}: {report.agreed}/{report.total} packets agree "
                  f"with ofproto/trace in {report.seconds:.1f}s; notes {report.notes}; "
                  f"read again {report.reread}; changed during {report.changes}")
        details += [f"{topology}/{d.chassis} {d.label} ct-next={d.ct_next}\n  "
                    f"{d.result.flow}\n  {d.result.comparison.divergence}"
                    for d in report.disagreements] + report.refused
        details += [f"{topology}/{label}: state changed during the comparison"
                    for label in report.state_changed]
        assert report.total >= 100, (topology, report.total)
    with capsys.disabled():
        print(f"[agreement] total: {sum(totals.values())} packets, "
              f"{len(details)} disagreements")
    assert details == [], "\n".join(details[:8])
    assert sum(totals.values()) >= 1000, totals


def test_compare_cli_single_packet(kind_lab):
    flow = ("in_port=1,tcp,dl_src=02:42:7a:79:82:ca,dl_dst=02:42:ac:12:00:04,"
            "nw_src=172.18.0.1,nw_dst=172.18.0.4,nw_ttl=64,tcp_src=12345,tcp_dst=30007")
    run = subprocess.run([sys.executable, "-m", "ofrace", "compare", "-i",
                          str(kind_lab.dir / "inventory.toml"), "--node", "ovn-worker",
                          "--bridge", "breth0", flow], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "agree" in run.stdout
    assert "dp_hash" in run.stdout  # ofproto/trace stops at the LB's select group


def test_compare_cli_reports_a_divergence(kind_lab, tmp_path):
    """A snapshot whose table 0 lost a flow diverges, and the CLI names the step."""
    from dataclasses import replace

    from ofrace.snapshot import Snapshot

    inventory = local_inventory(kind_lab)
    snapshot = collect_cluster(inventory)
    chassis = snapshot.chassis["ovn-worker"]
    bridge = chassis.bridges["breth0"]
    chassis.bridges["breth0"] = replace(bridge, flows=[])
    path = tmp_path / "edited.ofr"
    snapshot.save(path)
    assert Snapshot.load(path).chassis["ovn-worker"].bridges["breth0"].flows == []
    flow = ("in_port=1,tcp,dl_src=02:42:7a:79:82:ca,dl_dst=02:42:ac:12:00:04,"
            "nw_src=172.18.0.1,nw_dst=172.18.0.4,nw_ttl=64,tcp_src=12345,tcp_dst=30007")
    run = subprocess.run([sys.executable, "-m", "ofrace", "compare", "-i",
                          str(kind_lab.dir / "inventory.toml"), "--node", "ovn-worker",
                          "--bridge", "breth0", "--snapshot", str(path), flow],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "first divergence" in run.stdout
    assert "pass 0" in run.stdout


def test_a_mac_learned_after_the_snapshot_is_noticed(kind_lab):
    """The node's MAC table moves on after the snapshot: compare notices and reads it again."""
    worker = local_inventory(kind_lab)
    worker.nodes = [worker.node("ovn-worker")]
    snapshot = collect_cluster(worker)
    stranger = "02:00:00:00:00:99"
    # Any frame from a new source MAC teaches breth0's NORMAL; this one no one answers.
    kind_lab.inject("ovn-worker", "eth0",
                    f"eth(src={stranger},dst=ff:ff:ff:ff:ff:ff),eth_type(0x88b5)")
    learned = f"breth0 MAC table: {stranger} learned on port 1"
    noted = run_agreement(snapshot, worker, limit=8)
    assert any(learned in note for note in noted.notes), noted.notes
    report = run_agreement(snapshot, worker, limit=8, reread=reread_node)
    assert len(report.reread) == 1 and learned in report.reread[0], report.reread
    assert (report.agreed, report.disagreements, report.state_changed) == (8, [], [])
