"""--check-logical's classification against ovn-trace's real output.

The outputs in tests/fixtures/{kind,acl,openstack}/check_logical were recorded with the
real ovn-trace
against the recorded snapshot's SB (scripts/record_check_logical.py, a private
ovsdb-server); here ofrace's trace is run offline on that snapshot and compared with
them.  Each named ovn-trace limitation seen on kind has a scenario; the negative
control injects a real divergence into the snapshot's OpenFlow flows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ofrace.compare.ovn_trace import (
    LIMITATIONS,
    REAL_DIVERGENCE,
    compare_logical,
    ovn_trace_options,
    release_mismatch,
    scenario_traces,
)
from ofrace.errors import ToolError
from ofrace.openflow.flowtext import line_cookie
from ofrace.snapshot import Snapshot

FIXTURES = Path(__file__).parent / "fixtures"
RECORDED = {topology: json.loads((FIXTURES / topology / "check_logical" / "ovn_trace.json")
                                 .read_text()) for topology in ("kind", "acl", "openstack")}

OPENSTACK_FIP = ("022a5b11-e761-56a1-bc0b-16e5467bbd48 -> dnat_and_snat "
                 "neutron-932d5e81-2005-5e39-9158-0a794a8116ad external address icmp")
UNBOUND_ECHO = ("dcf069ee-8880-5376-8532-9ca4302f7882 -> 0cd67ba9-4bf0-5357-9cb3-aa90a1ef6742 "
                "icmp: echo request")

# recorded step → the ovn-trace limitation that explains where the two part (None: agree);
# one or more per limitation seen on the labs.  Every other recorded step must agree or be
# a named limitation.
EXPECTED = {
    ("kind", "default_nginx-deployment-9456bbbf9-x6pc6 -> k8s-ovn-worker icmp: "
             "echo request"): None,
    ("kind", "default_nginx-deployment-9456bbbf9-x6pc6 -> VIP Service_default/kubernetes_TCP_"
             "node_router+switch_ovn-worker :443 tcp: SYN"): "controller-packet-inline",
    # ofrace follows the ICMP error pinctrl builds (its own hop); ovn-trace runs icmp4{}
    # inline: the same logical flows
    ("kind", "default_nginx-deployment-9456bbbf9-x6pc6: ttl 1 towards ovn_cluster_router "
             "(icmp time exceeded): echo request, ttl 1"): None,
    # the connection's DNAT given as --lb-dst: ovn-trace then follows the backend too
    ("kind", "k8s-ovn-control-plane -> VIP Service_default/nginx-np_TCP_cluster :80 tcp: "
             "ACK"): None,
    ("kind", "outside -> snat external address of GR_ovn-control-plane tcp: SYN"):
        "ct-snat-gateway-router",
    # a reply un-SNATed by a gateway router's ct_snat
    ("kind", "default_nginx-deployment-9456bbbf9-x6pc6 -> outside via ovn_cluster_router "
             "icmp: echo reply"): "ct-snat-gateway-router",
    ("kind", "outside: arp who-has rtoe-GR_ovn-control-plane: ARP request"):
        "same-priority-overlap",
    # the seed's NodePort: lr_out_chk_dnat_local matches ct_mark.natted == 1
    ("kind", "outside -> VIP Service_default/nginx-np_TCP_node_router+switch_ovn-worker "
             ":30007 tcp: SYN"): "ct-mark-not-carried",
    # the DHCP offer is resumed after put_dhcp_opts as ovn-trace runs it: the same flows
    ("acl", "vm1: dhcp discover: DHCPDISCOVER"): None,
    ("acl", "vm1: nd ns for lr1-ls1: NS"): "nd-na-router-abort",
    ("acl", "vm1: router solicitation: RS"): "put-nd-ra-opts-abort",
    ("acl", "vm1: nd ns for vm2: NS"): "same-priority-overlap",
    ("acl", "vm1 -> router lr1-ls1 icmp: echo request"): "ct-commit-keeps-state",
    # ovn-trace picks the backend at random (lb-backend-random); recorded when it picked
    # ofrace's, so the two part later, at the ct_commit
    ("acl", "vm1 -> VIP lb-web6 :80 tcp: SYN"): "ct-commit-keeps-state",
    ("acl", "vm1 -> VIP lb-web6 :80 tcp: SYN-ACK"): "ct-mark-not-carried",
    # the first vm1 -> vm2 connection is dropped by ACL web-deny in the egress pipeline, so
    # vm2's zone never commits it: the ACK is new there, but ovn-trace ORs the egress
    # ct_lb's state into the one it carried from the ingress pipeline
    ("acl", "vm1 -> vm2 tcp: ACK"): "ct-state-carried",
    ("acl", "vm1 -> vm2 tcp #2: ACK"): None,
    # Neutron's security groups: the VM is in two port groups whose allow-related ACLs
    # have the same priority (found once ovn-trace's datapath names, name2 first, are
    # mapped to ofrace's)
    ("openstack", "022a5b11-e761-56a1-bc0b-16e5467bbd48 -> 0cd67ba9-4bf0-5357-9cb3-"
                  "aa90a1ef6742 icmp: echo request"): "same-priority-overlap",
    # the reply to a FIP's SNAT, un-SNATed by a bare ct_snat: ovn-trace keeps the FIP
    ("openstack", "022a5b11-e761-56a1-bc0b-16e5467bbd48 -> outside via neutron-932d5e81-"
                  "2005-5e39-9158-0a794a8116ad icmp: echo reply"): "un-nat-not-applied",
    # sent from the allowed address pair (a second port_security entry, same MAC)
    ("openstack", OPENSTACK_FIP + " #2: echo reply"): "port-security-first-entry",
    # the router's gateway-port flows, on a compute chassis
    ("openstack", OPENSTACK_FIP + " #3: echo reply"): "chassis-resident-everywhere",
    # to the LB VIP's Neutron port, bound to no chassis
    ("openstack", UNBOUND_ECHO): "unbound-port-egress",
}
ALL = sorted((topology, label) for topology, steps in RECORDED.items() for label in steps)
AGREEING = ("kind", "default_nginx-deployment-9456bbbf9-x6pc6 -> k8s-ovn-worker icmp: "
                    "echo request")


def _conversations(labels) -> set[str]:
    """The generator's conversation labels behind recorded step names ("… #2: ACK")."""
    return {re.sub(r" #\d+$", "", label.rsplit(": ", 1)[0]) for label in labels}


def _traces(snapshot: Snapshot, topology: str) -> dict:
    return {label: (microflow, result) for label, microflow, result
            in scenario_traces(snapshot, _conversations(RECORDED[topology]))}


def _snapshot(topology: str) -> Snapshot:
    return Snapshot.load(FIXTURES / topology / "check_logical" / "snapshot.ofr")


@pytest.fixture(scope="module")
def traces() -> dict:
    out = {}
    for topology in RECORDED:
        snapshot = _snapshot(topology)
        out[topology] = (snapshot, _traces(snapshot, topology))
    return out


def _answer(traces, topology: str, label: str) -> dict:
    snapshot, steps = traces[topology]
    recorded = RECORDED[topology][label]
    return compare_logical(snapshot, steps[label][1], recorded["ovn_trace"], [], [],
                           recorded["ovn_trace_failure"])


def test_every_expected_step_was_recorded():
    assert set(EXPECTED) <= set(ALL)


@pytest.mark.parametrize(("topology", "label"), ALL)
def test_ofrace_asks_ovn_trace_what_was_recorded(traces, topology, label):
    """The microflow and options ofrace gives ovn-trace are those the recording used:
    otherwise the recorded output would answer another question."""
    microflow, result = traces[topology][1][label]
    assert microflow == RECORDED[topology][label]["microflow"]
    assert ovn_trace_options(result) == RECORDED[topology][label]["options"]


@pytest.mark.parametrize(("topology", "label"), sorted(EXPECTED))
def test_each_disagreement_is_the_named_limitation(traces, topology, label):
    answer = _answer(traces, topology, label)
    expected = EXPECTED[(topology, label)]
    if expected is None:
        assert answer["agree"], answer.get("detail")
        return
    assert not answer["agree"]
    cause = answer["cause"]
    assert cause["name"] == expected, answer["detail"]
    assert cause["kind"] == "ovn-trace limitation"
    assert "utilities/ovn-trace.c" in cause["source"]
    assert "follow ofrace's trace" in cause["follows"]


@pytest.mark.parametrize(("topology", "label"), ALL)
def test_no_recorded_step_is_left_unexplained(traces, topology, label):
    answer = _answer(traces, topology, label)
    assert answer["agree"] or answer["cause"]["name"] in LIMITATIONS, answer.get("detail")


def test_every_limitation_seen_on_the_labs_has_a_recorded_case():
    seen = {name for name in EXPECTED.values() if name}
    assert seen <= set(LIMITATIONS)
    # lb-backend-random has none fixed: whether it shows depends on ovn-trace's random
    # pick at recording time (the last recording picked ofrace's backend)
    assert len(seen) >= 12


def test_an_unknown_ovn_trace_failure_is_the_environment(traces):
    with pytest.raises(ToolError, match="ovn-trace failed: ovn-trace: cannot connect"):
        compare_logical(traces["kind"][0], traces["kind"][1][AGREEING[1]][1], "", [], [],
                        "ovn-trace: cannot connect\n")


def test_a_divergence_injected_into_the_flows_is_reported_as_real():
    """Negative control: the flows of a logical flow the agreeing packet crosses are
    removed from the entry chassis; the recorded ovn-trace output (the intact SB) no
    longer matches, and no ovn-trace limitation may take the blame."""
    topology, label = AGREEING
    recorded = RECORDED[topology][label]["ovn_trace"]
    snapshot = _snapshot(topology)
    _, result = _traces(snapshot, topology)[label]
    assert compare_logical(snapshot, result, recorded, [])["agree"]
    rows = {row["_uuid"][:8]: row for row in snapshot.southbound.tables["Logical_Flow"]}
    l2 = next(s for s in result.annotated.root.events
              if s.stage == "ls_in_l2_lkup" and s.cookie is not None)
    assert "ct" not in rows[f"{l2.cookie:08x}"]["match"]
    broken = _snapshot(topology)
    bridge = broken.chassis[result.start.chassis].bridges["br-int"]
    kept = [line for line in bridge.flows if line_cookie(line) != l2.cookie]
    assert len(kept) < len(bridge.flows)
    bridge.flows = kept
    _, rerun = _traces(broken, topology)[label]
    answer = compare_logical(broken, rerun, recorded, [])
    assert not answer["agree"]
    assert answer["cause"]["name"] == REAL_DIVERGENCE
    assert answer["cause"]["kind"] == "real divergence"
    assert "audit finding" in answer["cause"]["follows"]
    assert "ls_in_l2_lkup" in answer["logical"]
    # the same divergence seen by another release's ovn-trace cannot be told from that
    # release's own differences: could not know, never "real"
    mismatch = release_mismatch("ovn-trace 24.03.9", broken)
    assert mismatch and "ovn-trace is OVN 24.03, the nodes run OVN 23.03" in mismatch
    other = compare_logical(broken, rerun, recorded, [], other_release=mismatch)
    assert other["cause"]["name"] == "ovn-trace-other-release"
    assert other["cause"]["kind"] == "could not know" and other["notes"] == []
    agreeing = compare_logical(snapshot, result, recorded, [], other_release=mismatch)
    assert agreeing["agree"] and agreeing["notes"] == [mismatch]


def test_ovn_trace_of_the_nodes_release_is_no_mismatch():
    snapshot = _snapshot(AGREEING[0])
    assert release_mismatch("ovn-trace 23.03.1", snapshot) is None
    assert release_mismatch("", snapshot) is None
    assert release_mismatch("ovn-trace (Open vSwitch) garbage", snapshot) is None


def test_without_ovn_trace_or_ovsdb_server_one_line_says_so(tmp_path):
    """No ovn-trace, ovsdb-server or ovsdb-tool on PATH: exit 5 (the environment) with one
    line naming what is missing, after the trace itself was made."""
    import os
    import subprocess
    import sys

    from ofrace.errors import Exit

    env = {**os.environ, "PATH": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "ofrace", "trace", "--snapshot",
                          str(FIXTURES / "kind" / "check_logical" / "snapshot.ofr"),
                          "--from", "default_nginx-deployment-9456bbbf9-x6pc6",
                          "--to", "10.244.2.5:53", "--udp", "--check-logical"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == Exit.ENVIRONMENT, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "ovn-trace, ovsdb-server, ovsdb-tool, not installed here" in run.stderr


# -- negative controls of the rules found on openstack: the symptom without its cause ------

def _reclassified(traces, label: str, change) -> dict:
    """The openstack step's answer on a copy of its snapshot changed by ``change``."""
    recorded = RECORDED["openstack"][label]
    snapshot = _snapshot("openstack")
    change(snapshot)
    return compare_logical(snapshot, traces["openstack"][1][label][1], recorded["ovn_trace"],
                           [], [], recorded["ovn_trace_failure"])


def _port_binding(snapshot: Snapshot, name: str) -> dict:
    return next(r for r in snapshot.southbound.tables["Port_Binding"]
                if r["logical_port"] == name)


def test_without_the_later_port_security_entry_the_drop_is_real(traces):
    """The SB allowing only the first entry: ovn-trace's drop is then what the SB says,
    and the tables passing the packet are a real divergence."""
    label = OPENSTACK_FIP + " #2: echo reply"
    inport = traces["openstack"][1][label][1].start.logical_port

    def first_only(snapshot):
        row = _port_binding(snapshot, inport)
        row["port_security"] = row["port_security"][:1]

    assert _answer(traces, "openstack", label)["cause"]["name"] == "port-security-first-entry"
    assert _reclassified(traces, label, first_only)["cause"]["name"] == REAL_DIVERGENCE


def test_a_bound_port_is_given_its_egress_pipeline(traces):
    """The VIP's port bound to a chassis: the egress ovn-trace runs is then the real
    tables' too, so ofrace's trace ending before it is a real divergence."""
    lflow = next(r for r in _snapshot("openstack").southbound.tables["Logical_Flow"]
                 if r["_uuid"].startswith("9bb95d20"))
    port = re.search(r'outport = "([^"]+)"', lflow["actions"]).group(1)

    def bound(snapshot):
        _port_binding(snapshot, port)["chassis"] = ["a-chassis"]

    assert _answer(traces, "openstack", UNBOUND_ECHO)["cause"]["name"] == \
        "unbound-port-egress"
    assert _reclassified(traces, UNBOUND_ECHO, bound)["cause"]["name"] == REAL_DIVERGENCE


def test_without_is_chassis_resident_the_other_flow_is_real(traces):
    """The flow ovn-trace took not depending on where the packet is: the tables taking
    another one is a real divergence."""
    label = OPENSTACK_FIP + " #3: echo reply"
    logical = _answer(traces, "openstack", label)["logical"]
    uuid8 = re.search(r"lflow (\w{8})", logical).group(1)

    def everywhere(snapshot):
        row = next(r for r in snapshot.southbound.tables["Logical_Flow"]
                   if r["_uuid"].startswith(uuid8))
        row["match"] = re.sub(r"\s*&&\s*is_chassis_resident\([^)]*\)", "", row["match"])

    assert "is_chassis_resident" not in str(_reclassified(traces, label, everywhere))
    assert _reclassified(traces, label, everywhere)["cause"]["name"] == REAL_DIVERGENCE


def test_without_a_nat_in_ofraces_trace_the_un_nat_rule_does_not_apply(traces):
    """ofrace's ct() rewriting no address: ovn-trace's "no un-NAT entry" is not what
    parted them, so the rule must not name it."""
    import copy

    label = ("022a5b11-e761-56a1-bc0b-16e5467bbd48 -> outside via neutron-932d5e81-2005-"
             "5e39-9158-0a794a8116ad icmp: echo reply")
    snapshot, steps = traces["openstack"]
    result = copy.deepcopy(steps[label][1])

    def clear(hop):
        for ev in hop.events:
            ev.changes = [c for c in ev.changes if not c.field.startswith("ip")]
        for child in hop.children:
            clear(child)

    clear(result.annotated.root)
    recorded = RECORDED["openstack"][label]
    answer = compare_logical(snapshot, result, recorded["ovn_trace"], [], [], None)
    assert _answer(traces, "openstack", label)["cause"]["name"] == "un-nat-not-applied"
    assert answer["cause"]["name"] != "un-nat-not-applied"


def test_ovn_trace_datapath_names_are_mapped_to_ofraces():
    """ovn-trace prints name2 before name and cuts a trailing UUID to 6 digits
    (read_datapaths, shorten_uuid); ofrace names a datapath by its name."""
    from ofrace.compare.ovn_trace import ovn_trace_datapath_names
    from ofrace.ovn.southbound import SouthboundIndex

    snapshot = _snapshot("openstack")
    names = SouthboundIndex(snapshot)
    mapping = ovn_trace_datapath_names(names)
    rows = snapshot.southbound.tables["Datapath_Binding"]
    with_name2 = next(r for r in rows if r["external_ids"].get("name2"))
    assert mapping[with_name2["external_ids"]["name2"]] == with_name2["external_ids"]["name"]
    for row in rows:
        row["external_ids"].pop("name2", None)
    cut = ovn_trace_datapath_names(SouthboundIndex(snapshot))
    name = with_name2["external_ids"]["name"]
    assert cut[name[:len(name) - 30]] == name
