"""`ofrace collect` against the real kind lab: SSH, exec and local transports, faults."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from lab_inventory import exec_inventory, local_inventory

from ofrace.collect import database_cache
from ofrace.collect.cluster import collect_cluster, make_transport
from ofrace.collect.inventory import DatabaseSpec, Inventory, NodeSpec, load_inventory
from ofrace.collect.transport import Budget, SSHTransport
from ofrace.snapshot import Snapshot

OFRACE = [sys.executable, "-m", "ofrace"]


def unused_lab_address(lab) -> str:
    """.250 of the lab's management network: inside the lab, and no chassis has it."""
    network = ipaddress.ip_interface(lab.state["placement"]["management"]).network
    unused = str(network[250])
    assert unused not in {c["address"] for c in lab.state["chassis"]}
    return unused


def vsctl_ofports(lab, chassis: str) -> dict[str, int]:
    out = lab.run_on(chassis, ["ovs-vsctl", "--format=json", "--columns=name,ofport",
                               "list", "Interface"]).stdout
    return {row[0]: row[1] for row in json.loads(out)["data"]}


def dump_count(lab, chassis: str, bridge: str = "br-int") -> int:
    out = lab.run_on(chassis, ["ovs-ofctl", "dump-flows", bridge]).stdout
    return sum(1 for line in out.splitlines() if line.startswith(" "))


def check_against_node(lab, snapshot: Snapshot) -> None:
    """Flow counts and ofports in the snapshot are what the chassis shows now."""
    assert sorted(snapshot.chassis) == sorted(c["name"] for c in lab.state["chassis"])
    for info in lab.state["chassis"]:
        ch = snapshot.chassis[info["name"]]
        assert ch.reachable, ch.problems
        assert ch.system_id == info["system_id"]
        assert len(ch.bridges["br-int"].flows) == dump_count(lab, info["name"])
        assert "breth0" in ch.bridges  # patched to br-int through the localnet port
        ofports = vsctl_ofports(lab, info["name"])
        seen = {i.name: i.ofport for i in ch.interfaces}
        vifs = list(info["vifs"].values())
        tunnels = [name for name in ofports if name.startswith("ovn-")]
        assert vifs and tunnels
        for name in vifs + tunnels:
            assert seen[name] == ofports[name], name
    sb = snapshot.southbound
    assert sb is not None and sb.error is None
    assert len(sb.tables["Chassis"]) == len(lab.state["chassis"])
    assert sb.tables["Logical_Flow"]


def test_collect_over_ssh_with_strict_host_keys(kind_lab, tmp_path):
    inventory_file = kind_lab.dir / "inventory.toml"
    out = tmp_path / "kind.ofr"
    run = subprocess.run([*OFRACE, "collect", "-i", str(inventory_file), "-o", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr + run.stdout
    snapshot = Snapshot.load(out)
    check_against_node(kind_lab, snapshot)
    assert all(ch.transport.startswith("ssh://") for ch in snapshot.chassis.values())
    assert snapshot.northbound is not None and snapshot.northbound.tables["Logical_Switch"]


def test_collect_over_exec_template(kind_lab):
    snapshot = collect_cluster(exec_inventory(kind_lab))
    check_against_node(kind_lab, snapshot)
    assert snapshot.complete, snapshot.all_problems()


def test_collect_locally(kind_lab):
    snapshot = collect_cluster(local_inventory(kind_lab))
    check_against_node(kind_lab, snapshot)


def test_southbound_through_a_node(kind_lab):
    """The SB read with the node's own ovsdb-client, over the node's transport."""
    inventory = load_inventory(kind_lab.dir / "inventory.toml")
    inventory.southbound = DatabaseSpec(remote=kind_lab.state["sb_tcp"], via="ovn-worker")
    inventory.northbound = None
    snapshot = collect_cluster(inventory)
    assert snapshot.southbound.error is None
    assert snapshot.southbound.via == "ovn-worker"
    names = {row["name"] for row in snapshot.southbound.tables["Chassis"]}
    assert names == {c["system_id"] for c in kind_lab.state["chassis"]}


def test_logical_flows_listed_through_a_node_equal_those_listed_here(kind_lab, tmp_path,
                                                                     monkeypatch):
    """A live trace's listing of the logical flows of a datapath, as monitors through a
    node's agent, is what a read from here gives, and is kept for the next."""
    monkeypatch.setenv("OFRACE_CACHE_DIR", str(tmp_path / "cache"))
    inventory = load_inventory(kind_lab.dir / "inventory.toml")
    datapath = json.loads(kind_lab.sbctl("--format=json", "--columns=_uuid", "list",
                                         "Datapath_Binding"))["data"][0][0][1]
    clauses = [["logical_datapath", "==", ["uuid", datapath]]]
    columns = ["logical_datapath"]
    spec = next(n for n in inventory.nodes if n.name == "ovn-worker")
    remote = kind_lab.state["sb_tcp"]
    via = make_transport(spec)
    try:
        through = database_cache.read_matching(
            database_cache.agent_fetch_many(via, Budget(60), {
                "remote": remote, "database": "OVN_Southbound", "table": "Logical_Flow",
                "timeout": 60}), remote, "ovn-worker", "OVN_Southbound", "Logical_Flow",
            clauses, columns)
    finally:
        via.close()
    here = database_cache.read_matching(
        database_cache.local_fetch_many(remote, "OVN_Southbound", "Logical_Flow", None, 60,
                                        1 << 30), remote, "local", "OVN_Southbound",
        "Logical_Flow", clauses, columns, use_cache=False)
    database_cache.finish_writes()
    assert through and through == here
    assert all(r["logical_datapath"] == datapath for r in through)
    # kept only when the server names transactions (a clustered database)
    model = json.loads(subprocess.run(
        ["ovsdb-client", "query", remote, json.dumps(["_Server", {
            "op": "select", "table": "Database", "where": [["name", "==", "OVN_Southbound"]],
            "columns": ["model"]}])], capture_output=True, text=True, check=True,
        timeout=60).stdout)[0]["rows"][0]["model"]
    kept = list((tmp_path / "cache").glob("where-*.json"))
    assert len(kept) == (1 if model == "clustered" else 0), model


def test_round_trip_gives_an_identical_model(kind_lab, tmp_path):
    snapshot = collect_cluster(exec_inventory(kind_lab))
    path = tmp_path / "rt.ofr"
    snapshot.save(path)
    loaded = Snapshot.load(path)
    assert loaded == snapshot
    assert loaded.to_dict() == snapshot.to_dict()


def test_unknown_host_key_is_refused(kind_lab, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    ssh = kind_lab.state["ssh"]
    info = kind_lab.chassis("ovn-worker")
    node = NodeSpec(name="ovn-worker", host=info["address"], user="root",
                    identity=ssh["identity"], known_hosts=str(empty))
    snapshot = collect_cluster(Inventory(nodes=[node]))
    ch = snapshot.chassis["ovn-worker"]
    assert not ch.reachable
    assert "host key unknown" in ch.problems[0].error
    assert "--insecure-host-keys" in ch.problems[0].error
    # ... and accepted when the user opts out explicitly
    snapshot = collect_cluster(Inventory(nodes=[node]), strict_host_keys=False)
    assert snapshot.chassis["ovn-worker"].reachable


def test_wrong_key_and_wrong_user(kind_lab, tmp_path):
    ssh = kind_lab.state["ssh"]
    info = kind_lab.chassis("ovn-worker")
    other_key = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)],
                   check=True)
    nodes = [
        NodeSpec(name="wrong-key", host=info["address"], user="root", identity=str(other_key),
                 known_hosts=ssh["known_hosts"]),
        NodeSpec(name="wrong-user", host=info["address"], user="nobody",
                 identity=ssh["identity"], known_hosts=ssh["known_hosts"]),
        NodeSpec(name="good", host=info["address"], user="root", identity=ssh["identity"],
                 known_hosts=ssh["known_hosts"]),
    ]
    snapshot = collect_cluster(Inventory(nodes=nodes))
    assert "authentication failed" in snapshot.chassis["wrong-key"].problems[0].error
    assert "nobody@" in snapshot.chassis["wrong-user"].problems[0].error
    assert snapshot.chassis["good"].reachable
    assert not snapshot.complete


def test_malformed_inventory_is_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[node]]\nname = "a"\ntransport = "carrier-pigeon"\n')
    run = subprocess.run([*OFRACE, "collect", "-i", str(bad), "-o", str(tmp_path / "x.ofr")],
                         capture_output=True, text=True)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ofrace: error:")
    assert "carrier-pigeon" in lines[0]
    assert "Traceback" not in run.stderr


def _sshd_pids(lab, chassis: str) -> list[int]:
    """The chassis' sshd listener and every session process under it."""
    listener = next(p["pid"] for p in lab.state["processes"]
                    if p["what"] == "sshd" and p.get("chassis") == chassis)
    pids, frontier = [listener], [listener]
    while frontier:
        parent = frontier.pop()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                pid = int(stat.parent.name)
                pids.append(pid)
                frontier.append(pid)
    return pids


def test_sshd_killed_mid_collection_gives_a_partial_snapshot(lab_slot, monkeypatch, tmp_path):
    lab = lab_slot.ensure("kind")
    victim = "ovn-worker2"
    victim_address = lab.chassis(victim)["address"]
    real_connect = SSHTransport._connect

    def connect_then_kill(self):
        client = real_connect(self)
        if self.host == victim_address:
            # The session is open; now the node's sshd dies under it.
            for pid in _sshd_pids(lab, victim):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        return client

    monkeypatch.setattr(SSHTransport, "_connect", connect_then_kill)
    try:
        snapshot = collect_cluster(load_inventory(lab.dir / "inventory.toml"))
        failed = snapshot.chassis[victim]
        assert not failed.reachable
        assert "connection lost" in failed.problems[0].error or "cannot" in failed.problems[0].error
        for other in ("ovn-worker", "ovn-control-plane"):
            assert snapshot.chassis[other].reachable
        assert snapshot.southbound.error is None
        assert not snapshot.complete
        path = tmp_path / "partial.ofr"
        snapshot.save(path)
        assert Snapshot.load(path).chassis[victim].problems == failed.problems
    finally:
        monkeypatch.undo()
        lab_slot.up("kind")  # later tests get a lab with every sshd running


@pytest.mark.parametrize("node_arg", ["hv=ssh://root@{unused}"])
def test_unreachable_node_cli_exit_code(kind_lab, tmp_path, node_arg):
    # An address of the lab's own management network that no chassis has.
    node_arg = node_arg.format(unused=unused_lab_address(kind_lab))
    out = tmp_path / "p.ofr"
    run = subprocess.run([*OFRACE, "collect", "-i", str(kind_lab.dir / "inventory.toml"),
                          "--node", node_arg, "-o", str(out), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    summary = json.loads(run.stdout)
    assert summary["complete"] is False
    assert not summary["nodes"]["hv"]["reachable"]
    assert summary["nodes"]["ovn-worker"]["reachable"]
    assert out.exists()


def test_nodes_discovered_from_the_southbound_with_a_template(kind_lab, tmp_path):
    """Only the SB and a template: every Chassis row becomes a node."""
    lab_dir = kind_lab.dir
    prefix = kind_lab.state["placement"]["lab_id"]
    template = (f"exec:ip netns exec ofr-{prefix}-{{hostname}} env OVS_RUNDIR=" + str(lab_dir) +
                "/{hostname} OVN_RUNDIR=" + str(lab_dir) + "/{hostname}")
    out = tmp_path / "d.ofr"
    run = subprocess.run([*OFRACE, "collect", "--sb", kind_lab.state["sb_remote"],
                          "--discover", template, "-o", str(out), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr + run.stdout
    snapshot = Snapshot.load(out)
    check_against_node(kind_lab, snapshot)
    # the template is not stored (it may hold credentials): only its program
    assert all(ch.transport.startswith("exec:ip …") for ch in snapshot.chassis.values())
