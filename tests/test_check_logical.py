"""--check-logical's classification against ovn-trace's real output.

The outputs in tests/fixtures/kind/check_logical were recorded with the real ovn-trace
against the recorded snapshot's SB (scripts/record_check_logical.py, a private
ovsdb-server); here ofrace's trace is run offline on that snapshot and compared with
them.  Each named ovn-trace limitation seen on kind has a scenario; the negative
control injects a real divergence into the snapshot's OpenFlow flows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ofrace.compare.ovn_trace import (
    LIMITATIONS,
    REAL_DIVERGENCE,
    compare_logical,
    ct_arguments,
    engine_ct_states,
    scenario_traces,
)
from ofrace.openflow.flowtext import line_cookie
from ofrace.snapshot import Snapshot

FIXTURE = Path(__file__).parent / "fixtures" / "kind" / "check_logical"
RECORDED = json.loads((FIXTURE / "ovn_trace.json").read_text())

# recorded step → the ovn-trace limitation that explains where the two part (None: agree)
EXPECTED = {
    "default_nginx-deployment-9456bbbf9-x6pc6 -> k8s-ovn-worker icmp: echo request": None,
    "default_nginx-deployment-9456bbbf9-x6pc6 -> k8s-ovn-worker icmp: echo reply": None,
    "default_nginx-deployment-9456bbbf9-x6pc6 -> outside via ovn_cluster_router icmp: "
    "echo request": "controller-packet-inline",
    "default_nginx-deployment-9456bbbf9-x6pc6: ttl 1 towards ovn_cluster_router (icmp time "
    "exceeded): echo request, ttl 1": "controller-packet-inline",
    "k8s-ovn-control-plane -> VIP Service_default/nginx-np_TCP_cluster :80 tcp: SYN": None,
    "k8s-ovn-control-plane -> VIP Service_default/nginx-np_TCP_cluster :80 tcp: SYN-ACK": None,
    "k8s-ovn-control-plane -> VIP Service_default/nginx-np_TCP_cluster :80 tcp: ACK":
        "connection-nat-not-replayed",
    "k8s-ovn-control-plane -> VIP Service_default/nginx-np_TCP_cluster :80 tcp: data":
        "connection-nat-not-replayed",
    "k8s-ovn-control-plane -> VIP Service_default/nginx-np_TCP_cluster :80 tcp: FIN":
        "connection-nat-not-replayed",
    "k8s-ovn-control-plane -> VIP Service_default/nginx-np_TCP_cluster :80 tcp: FIN-ACK": None,
    "k8s-ovn-control-plane -> VIP Service_default/nginx-np_TCP_cluster :80 tcp: last ACK":
        "connection-nat-not-replayed",
    "outside -> snat external address of GR_ovn-control-plane tcp: SYN":
        "ct-snat-gateway-router",
    "outside: arp who-has rtoe-GR_ovn-control-plane: ARP request": "same-priority-overlap",
}
AGREEING = "default_nginx-deployment-9456bbbf9-x6pc6 -> k8s-ovn-worker icmp: echo request"


def _conversations(labels) -> set[str]:
    return {label.rsplit(": ", 1)[0] for label in labels}


def _traces(snapshot: Snapshot) -> dict:
    return {label: (microflow, result) for label, microflow, result
            in scenario_traces(snapshot, _conversations(RECORDED))}


@pytest.fixture(scope="module")
def snapshot() -> Snapshot:
    return Snapshot.load(FIXTURE / "snapshot.ofr")


@pytest.fixture(scope="module")
def traces(snapshot) -> dict:
    return _traces(snapshot)


def test_every_recorded_step_is_expected():
    assert set(RECORDED) == set(EXPECTED)


@pytest.mark.parametrize("label", sorted(EXPECTED))
def test_ofrace_asks_ovn_trace_what_was_recorded(traces, label):
    """The microflow and --ct states ofrace gives ovn-trace are those the recording used:
    otherwise the recorded output would answer another question."""
    microflow, result = traces[label]
    assert microflow == RECORDED[label]["microflow"]
    assert ct_arguments(engine_ct_states(result)) == RECORDED[label]["ct"]


@pytest.mark.parametrize("label", sorted(EXPECTED))
def test_each_disagreement_is_the_named_limitation(snapshot, traces, label):
    answer = compare_logical(snapshot, traces[label][1], RECORDED[label]["ovn_trace"], [])
    expected = EXPECTED[label]
    if expected is None:
        assert answer["agree"], answer["detail"] if "detail" in answer else answer
        return
    assert not answer["agree"]
    cause = answer["cause"]
    assert cause["name"] == expected, answer["detail"]
    assert cause["kind"] == "ovn-trace limitation"
    assert "utilities/ovn-trace.c" in cause["source"]
    assert "follow ofrace's trace" in cause["follows"]


def test_every_limitation_seen_on_kind_has_a_recorded_case():
    seen = {name for name in EXPECTED.values() if name}
    assert seen <= set(LIMITATIONS)
    assert len(seen) >= 4


def test_a_divergence_injected_into_the_flows_is_reported_as_real(snapshot):
    """Negative control: the flows of a logical flow the agreeing packet crosses are
    removed from the entry chassis; the recorded ovn-trace output (the intact SB) no
    longer matches, and no ovn-trace limitation may take the blame."""
    microflow, result = _traces(snapshot)[AGREEING]
    agreed = compare_logical(snapshot, result, RECORDED[AGREEING]["ovn_trace"], [])
    assert agreed["agree"]
    rows = {row["_uuid"][:8]: row for row in snapshot.southbound.tables["Logical_Flow"]}
    l2 = next(s for s in result.annotated.root.events
              if s.stage == "ls_in_l2_lkup" and s.cookie is not None)
    assert "ct" not in rows[f"{l2.cookie:08x}"]["match"]
    broken = Snapshot.load(FIXTURE / "snapshot.ofr")
    bridge = broken.chassis[result.start.chassis].bridges["br-int"]
    kept = [line for line in bridge.flows if line_cookie(line) != l2.cookie]
    assert len(kept) < len(bridge.flows)
    bridge.flows = kept
    _, rerun = _traces(broken)[AGREEING]
    answer = compare_logical(broken, rerun, RECORDED[AGREEING]["ovn_trace"], [])
    assert not answer["agree"]
    assert answer["cause"]["name"] == REAL_DIVERGENCE
    assert answer["cause"]["kind"] == "real divergence"
    assert "audit finding" in answer["cause"]["follows"]
    assert "ls_in_l2_lkup" in answer["logical"]
