"""`--check-logical` on the live lab: every disagreement with ovn-trace is explained.

The named scenarios are the generator's conversations (every step, on one conntrack per
conversation, as the sweep sends them).  ovn-trace runs against the snapshot's SB in a
private ovsdb-server.  On a healthy lab every place where the two part must be one of
ovn-trace's named limitations: a "real divergence" here is a misclassification (or a lab
whose tables do not implement its logical flows, which `ofrace audit` would report).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest
from lab_inventory import local_inventory

from ofrace.collect.cluster import collect_cluster
from ofrace.compare.ovn_trace import LIMITATIONS, REAL_DIVERGENCE, check_scenarios
from ofrace.lab.traffic import warm_up
from ofrace.openflow.flowtext import line_cookie, without_stats


@pytest.mark.parametrize("topology", ["kind", "acl"])
def test_every_disagreement_on_the_named_scenarios_is_classified(lab_slot, topology):
    lab = lab_slot.ensure(topology)
    snapshot = collect_cluster(local_inventory(lab))
    assert snapshot.southbound.schema, "collect keeps the schema the SB served"
    checks = check_scenarios(snapshot)
    assert len(checks) >= 100
    causes = Counter((c.answer.get("cause") or {}).get("name", "agree") for c in checks)
    print(topology, dict(causes))
    real = [f"{c.label}: {c.answer['detail']}" for c in checks
            if (c.answer.get("cause") or {}).get("name") == REAL_DIVERGENCE]
    assert not real, "\n".join(real[:5])
    assert set(causes) - {"agree"} <= set(LIMITATIONS)
    assert causes["agree"] >= len(checks) // 2
    assert all(not c.answer["notes"] for c in checks), checks[0].answer["notes"]


NGINX = "default_nginx-deployment-9456bbbf9-x6pc6"
# The seed's traces (README; integration/test_trace.py), as `ofrace trace` takes them.
SEED_TRACES = {
    "nodeport": ('inport == "breth0_ovn-worker" && eth.src == 02:42:7a:79:82:ca && '
                 'eth.dst == 02:42:ac:12:00:04 && ip4.src == 172.18.0.1 && '
                 'ip4.dst == 172.18.0.4 && ip.ttl == 64 && tcp.src == 12345 && '
                 'tcp.dst == 30007 && tcp.flags == 2', ["--reply"]),
    "nodeport over the tunnel": (
        'inport == "breth0_ovn-worker2" && eth.src == 02:42:7a:79:82:ca && '
        'eth.dst == 02:42:ac:12:00:02 && ip4.src == 172.18.0.1 && ip4.dst == 172.18.0.2 && '
        'ip.ttl == 64 && tcp.src == 23456 && tcp.dst == 30007 && tcp.flags == 2', []),
    "arp for the gateway": (
        f'inport == "{NGINX}" && eth.src == 0a:58:0a:f4:01:03 && '
        'eth.dst == ff:ff:ff:ff:ff:ff && arp.op == 1 && arp.spa == 10.244.1.3 && '
        'arp.tpa == 10.244.1.1 && arp.sha == 0a:58:0a:f4:01:03', []),
    "unknown destination mac": (
        f'inport == "{NGINX}" && eth.src == 0a:58:0a:f4:01:03 && '
        'eth.dst == 0a:00:00:fe:fe:fe && ip4.src == 10.244.1.3 && ip4.dst == 10.244.1.99 && '
        'ip.ttl == 64 && udp.src == 5000 && udp.dst == 5001', []),
}


@pytest.fixture(scope="module")
def warm_kind_lab(lab_slot):
    """The kind lab as a cluster that has seen traffic (neighbours resolved), as the seed's
    traces were taken."""
    lab = lab_slot.up("kind")
    warm_up(lab)
    return lab


@pytest.mark.parametrize("name", sorted(SEED_TRACES))
def test_the_seeds_traces_agree_or_name_the_limitation(warm_kind_lab, name):
    """What the issue measured ("disagree" on every trace of a healthy lab) through the
    command a user runs: each seed trace agrees with ovn-trace or names why not."""
    lab = warm_kind_lab
    expr, extra = SEED_TRACES[name]
    run = subprocess.run([sys.executable, "-m", "ofrace", "trace", "-i",
                          str(lab.dir / "inventory.toml"), "--check-logical", "--json",
                          *extra, expr], capture_output=True, text=True, timeout=180)
    check = json.loads(run.stdout)["check_logical"]
    print(name, check["summary"])
    assert check["agree"] or check["cause"]["name"] in LIMITATIONS, check
    assert not check["notes"], check["notes"]


def test_check_logical_reads_the_snapshots_sb_not_the_live_one(lab_slot, tmp_path):
    """The trace on a saved snapshot, after the live SB lost the port it starts from: with
    ovn-trace on the live SB this fails ("unknown logical port"); on the snapshot's it
    agrees."""
    lab = lab_slot.ensure("kind")
    snapshot = collect_cluster(local_inventory(lab))
    path = tmp_path / "kind.ofr"
    snapshot.save(path)
    port = "default_nginx-deployment-9456bbbf9-x6pc6"
    lab.nbctl("--wait=sb", "lsp-del", port)
    try:
        run = subprocess.run([sys.executable, "-m", "ofrace", "trace", "--snapshot", str(path),
                              "--from", port, "--to", "10.244.2.5:53", "--udp",
                              "--check-logical", "--json"],
                             capture_output=True, text=True, timeout=120)
        check = json.loads(run.stdout)["check_logical"]
        assert check["agree"], check
        assert "private ovsdb-server" in " ".join(check["command"])
    finally:
        lab_slot.up("kind")     # the port is gone from the live lab: start afresh


def test_flows_deleted_behind_ovn_controllers_back_are_a_real_divergence(lab_slot):
    """Negative control on the live lab: the OpenFlow flows of one logical flow deleted on
    a chassis; the trace through it parts from ovn-trace, and no limitation takes the
    blame: a real divergence, with the real tables on ofrace's side."""
    lab = lab_slot.up("kind")
    snapshot = collect_cluster(local_inventory(lab))
    worker = "ovn-worker"
    lflow = next(lf for lf in snapshot.southbound.tables["Logical_Flow"]
                 if (lf.get("external_ids") or {}).get("stage-name") == "lr_in_dnat"
                 and "30007" in lf["match"] and "172.18.0.4" in lf["match"])
    cookie = int(lflow["_uuid"][:8], 16)
    for line in snapshot.chassis[worker].bridges["br-int"].flows:
        if line_cookie(line) == cookie:
            text = without_stats(line).split(" actions=")[0]
            match = ",".join(item for item in text.replace(", ", ",").split(",")
                             if not item.startswith("cookie="))
            lab.run_on(worker, ["ovs-ofctl", "--strict", "del-flows", "br-int", match])
    expr = ('inport == "breth0_ovn-worker" && eth.src == 02:42:7a:79:82:ca && '
            'eth.dst == 02:42:ac:12:00:04 && ip4.src == 172.18.0.1 && ip4.dst == 172.18.0.4 && '
            'ip.ttl == 64 && tcp.src == 12345 && tcp.dst == 30007 && tcp.flags == 2')
    try:
        run = subprocess.run([sys.executable, "-m", "ofrace", "trace", "-i",
                              str(lab.dir / "inventory.toml"), "--check-logical", "--json",
                              expr], capture_output=True, text=True, timeout=120)
        check = json.loads(run.stdout)["check_logical"]
        assert check["agree"] is False
        assert lflow["_uuid"][:8] in check["logical"]
        assert check["cause"]["name"] == REAL_DIVERGENCE, check
        assert "audit finding" in check["cause"]["follows"]
    finally:
        lab_slot.up("kind")
