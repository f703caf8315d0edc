"""On the live basic lab: a Neutron-style port name set with ovn-nbctl starts a trace, and
the audit stays clean with a localport (its tap on one chassis) and two ACLs whose logical
flows share a match — the cases ovn-controller explains (binding.c consider_localport;
ofctrl.c one installed flow per match), which the audit used to report BROKEN/MISSING."""

from __future__ import annotations

import json
import subprocess
import sys

from lab_inventory import local_inventory

from ofrace.audit.cluster import audit_snapshot
from ofrace.audit.logical import LOCALPORT, SAME_MATCH
from ofrace.collect.cluster import collect_cluster

MATCH = 'inport == "sw0-port1" && tcp.dst == 8080'


def _ofrace(lab, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ofrace", *args, "-i",
                           str(lab.dir / "inventory.toml")], capture_output=True, text=True,
                          timeout=120)


def test_trace_from_a_neutron_port_name(lab_slot):
    lab = lab_slot.up("basic")
    lab.nbctl("set", "Logical_Switch_Port", "sw0-port1", 'external_ids:"neutron:port_name"=web-1',
              'external_ids:"neutron:device_id"=vm-web-1')
    lab.nbctl("set", "Logical_Switch", "sw0", 'external_ids:"neutron:network_name"=private')
    lab.nbctl("--wait=hv", "sync")
    run = _ofrace(lab, "trace", "--from", "web-1", "--to", "10.0.0.2:80", "--json")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr
    doc = json.loads(run.stdout)
    assert doc["request"]["ports"] == {"web-1": "sw0-port1"}
    assert doc["trace"]["cms"]["name"] == "web-1"
    assert [v["kind"] for v in doc["verdicts"]] == ["delivered"]
    assert any(e.get("cms", {}).get("datapath", {}).get("name") == "private"
               for e in doc["trace"]["events"])
    # negative control: a name nobody gave is unknown, with the closest names suggested
    run = _ofrace(lab, "trace", "--from", "web-2", "--to", "10.0.0.2:80")
    assert run.returncode == 2 and "'web-1'" in run.stderr, run.stderr


def test_localport_and_same_match_acls_are_explained(lab_slot):
    lab = lab_slot.up("basic")
    lab.nbctl("lsp-add", "sw0", "sw0-meta", "--", "lsp-set-type", "sw0-meta", "localport",
              "--", "lsp-set-addresses", "sw0-meta", "50:54:00:00:00:fe 10.0.0.254")
    lab.run_on("hv1", ["ovs-vsctl", "add-port", "br-int", "tapmeta", "--", "set", "Interface",
                       "tapmeta", "external_ids:iface-id=sw0-meta", "ofport_request=20"])
    lab.nbctl("acl-add", "sw0", "from-lport", "1001", MATCH, "allow-related")
    lab.nbctl("pg-add", "pg_web", "sw0-port1")
    lab.nbctl("--type=port-group", "--log", "--name=web-8080", "acl-add", "pg_web",
              "from-lport", "1001", MATCH, "allow-related")
    lab.nbctl("--wait=hv", "sync")
    audit = audit_snapshot(collect_cluster(local_inventory(lab)))
    found = {c.chassis: ([m.uuid for m in c.logical.missing], [p.message for p in c.health])
             for c in audit.chassis if not c.clean}
    assert found == {}
    reasons = {c.chassis: {s.reason for s in c.logical.lflows if s.reason}
               for c in audit.chassis}
    assert LOCALPORT.format(port="sw0-meta") in reasons["hv2"]
    assert any(r.startswith(SAME_MATCH.split("{")[0]) for r in reasons["hv1"])
    lab_slot.up("basic")  # later tests get a whole lab
