"""bundle, bundle_load, multipath and select groups whose buckets watch ports take the
member (link, bucket) real OVS takes
(tests/fixtures/bundles.json, recorded from ovs-vswitchd 3.1.0 by scripts/record_bundles.py:
BFD forced per port, real packets sent, the port each left by read from its tx pcap)."""

import json
from collections import Counter
from pathlib import Path
from unittest import mock

import pytest

from ofrace.openflow.bridge import BridgeIndex
from ofrace.simulate.engine import ChassisDatapath, SimulationOptions
from ofrace.snapshot import Bridge, Chassis

FIXTURE = json.loads((Path(__file__).parent / "fixtures/bundles.json").read_text())
SCENARIOS = FIXTURE["scenarios"]
AB_DST = 0x0A090001   # bundle(eth_src,0,active_backup,ofport,members:2,3,4)
LOAD_DST = 0x0A090003  # bundle_load(…hrw…) then output to reg0
GROUP_DSTS = (0x0A090004, 0x0A090005)  # select dp_hash / hash fields, buckets watch 2, 3, 4


def _datapath(scenario: str, drop_columns=()) -> ChassisDatapath:
    """The scenario's bridge as a collected snapshot would hold it: the OVSDB rows go
    through ``Chassis.interfaces`` as the agent's would."""
    rows = [{"_uuid": f"i-{r['name']}", **{k: v for k, v in r.items() if k not in drop_columns}}
            for r in SCENARIOS[scenario]["interfaces"]]
    chassis = Chassis("hv", "local", ovsdb={
        "Bridge": [{"_uuid": "b", "name": "br0", "ports": [f"p-{r['name']}" for r in rows]}],
        "Port": [{"_uuid": f"p-{r['name']}", "name": r["name"], "interfaces": [r["_uuid"]]}
                 for r in rows],
        "Interface": rows})
    bridge = Bridge(name="br0", flows=FIXTURE["flows"], groups=FIXTURE["groups"],
                    ports_desc=SCENARIOS[scenario]["ports_desc"])
    options = SimulationOptions(datapath_kinds={"br0": "userspace"})
    return ChassisDatapath("hv", {"br0": BridgeIndex(bridge, chassis.interfaces)},
                           options=options)


def _ports(datapath: ChassisDatapath, packet: dict) -> list[int]:
    _, exits = datapath.inject("br0", dict(packet))
    return sorted(e.port for e in exits if e.kind == "output")


def test_the_fixture_is_a_real_recording():
    assert FIXTURE["ovs_version"].endswith("3.1.0") and "(dummy" in FIXTURE["dpif"]
    records = [r for s in SCENARIOS.values() for r in s["records"]]
    assert len(records) + len(FIXTURE["multipath"]) >= 400
    # BFD decided: the active-backup member differs between scenarios, and with every
    # BFD member down the packet was dropped on the wire
    chosen = {name: Counter(tuple(r["wire_ports"]) for r in s["records"]
                            if r["packet"]["nw_dst"] == AB_DST) for name, s in SCENARIOS.items()}
    assert len({c.most_common(1)[0][0] for c in chosen.values()}) == 4
    assert chosen["all-bfd-down"] == Counter({(): 24})


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_bundles_take_the_member_the_wire_took(scenario):
    datapath = _datapath(scenario)
    records = SCENARIOS[scenario]["records"]
    agree = sum(_ports(datapath, r["packet"]) == r["wire_ports"] for r in records)
    assert agree == len(records)


def test_multipath_links_equal_the_wire():
    datapath = _datapath("all-up")
    records = FIXTURE["multipath"]
    assert len({tuple(r["wire_ports"]) for r in records}) == 4  # every link was taken
    assert sum(_ports(datapath, r["packet"]) == r["wire_ports"] for r in records) == len(records)


def test_negative_control_liveness_ignored_takes_the_wrong_member():
    """Every member counted live: active_backup always takes the first, wrongly in
    three of the four scenarios; the watched select groups go wrong too."""
    wrong = Counter()
    with mock.patch("ofrace.simulate.engine.port_may_enable", return_value=(True, "up")):
        for scenario in SCENARIOS:
            datapath = _datapath(scenario)
            for r in SCENARIOS[scenario]["records"]:
                if _ports(datapath, r["packet"]) != r["wire_ports"]:
                    wrong[r["packet"]["nw_dst"]] += 1
    assert wrong[AB_DST] >= 3 * 24
    assert all(wrong[dst] >= 24 for dst in GROUP_DSTS)


def test_watched_select_groups_were_exercised():
    """The recording holds what makes the group test able to fail: buckets skipped
    for liveness, and a drop when no bucket is live."""
    only = Counter(tuple(r["wire_ports"]) for r in SCENARIOS["only-p3"]["records"]
                   if r["packet"]["nw_dst"] in GROUP_DSTS)
    down = Counter(tuple(r["wire_ports"]) for r in SCENARIOS["all-bfd-down"]["records"]
                   if r["packet"]["nw_dst"] in GROUP_DSTS)
    assert only == Counter({(4,): 48}) and down == Counter({(): 48})


def test_liveness_not_in_the_snapshot_branches_over_every_member_it_may_take():
    """A snapshot from before BFD's columns were read: each member OVS may take is a
    branch, and so is "none live"; bundle_load (whose register the rest of the
    translation reads) ends unknown, never a gap."""
    datapath = _datapath("first-down", drop_columns=("bfd", "bfd_status"))
    record = next(r for r in SCENARIOS["first-down"]["records"]
                  if r["packet"]["nw_dst"] == AB_DST)
    root, exits = datapath.inject("br0", dict(record["packet"]))
    assert sorted(e.port for e in exits) == [2, 3, 4]
    labels = [s.data["branch"] for s in root.walk() if "branch" in s.data]
    assert labels[0].startswith("bundle member p1 (2), taken if it is live (p1's BFD/CFM")
    assert labels[1].startswith("bundle member p2 (3), taken if p1 (2) is not live")
    assert labels[3].startswith("no bundle member live")
    load = next(r for r in SCENARIOS["first-down"]["records"]
                if r["packet"]["nw_dst"] == LOAD_DST)
    _, exits = datapath.inject("br0", dict(load["packet"]))
    assert [e.kind for e in exits] == ["unknown"] and "bundle_load" in exits[0].reason


def test_negative_control_multipath_with_another_basis_disagrees():
    from ofrace.simulate import hashing

    datapath = _datapath("all-up")
    real = hashing.flow_hash_fields
    with mock.patch("ofrace.simulate.engine.flow_hash_fields",
                    lambda packet, fields, basis: real(packet, fields, basis + 1)):
        wrong = sum(_ports(datapath, r["packet"]) != r["wire_ports"]
                    for r in FIXTURE["multipath"])
    assert wrong >= len(FIXTURE["multipath"]) // 3


def test_watched_buckets_with_liveness_not_in_the_snapshot_are_branches():
    datapath = _datapath("only-p3", drop_columns=("bfd", "bfd_status"))
    record = next(r for r in SCENARIOS["only-p3"]["records"]
                  if r["packet"]["nw_dst"] == GROUP_DSTS[0])
    root, exits = datapath.inject("br0", dict(record["packet"]))
    assert sorted(e.port for e in exits) == [2, 3, 4]   # the wire's (4) among them
    labels = [s.data["branch"] for s in root.walk() if "branch" in s.data]
    assert len(labels) == 3 and all("watch_port" in label for label in labels)
