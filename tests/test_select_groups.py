"""Select groups choose the bucket real OVS chooses (tests/fixtures/select_groups.json,
recorded from ovs-vswitchd 3.1.0 by scripts/record_select_groups.py: ofproto/trace's
"using bucket" and the port each packet really left by, on the userspace datapath)."""

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from ofrace.openflow.bridge import BridgeIndex, parse_groups
from ofrace.simulate import hashing
from ofrace.simulate.engine import ChassisDatapath, SimulationOptions
from ofrace.simulate.groups import (
    datapath_kind,
    dp_hash_table,
    parse_select_group,
)
from ofrace.snapshot import Bridge, Interface

FIXTURE = json.loads((Path(__file__).parent / "fixtures/select_groups.json").read_text())
RECORDS = FIXTURE["records"]
PORTS = FIXTURE["ports"]


def _datapath(kind: str = "userspace", buckets=None) -> ChassisDatapath:
    ports = [Interface(name=name, bridge="br0", type="dummy", ofport=n, options={},
                       external_ids={}, error=None, mac_in_use=None) for name, n in PORTS.items()]
    bridge = Bridge(name="br0", flows=FIXTURE["flows"], groups=FIXTURE["groups"])
    options = SimulationOptions(select_buckets=buckets or {}, datapath_kinds={"br0": kind})
    return ChassisDatapath("hv", {"br0": BridgeIndex(bridge, ports)}, options=options)


def _ofrace_port(datapath: ChassisDatapath, packet: dict) -> list[int]:
    _, exits = datapath.inject("br0", dict(packet))
    return [e.port for e in exits if e.kind == "output"]


def _group(gid: int):
    return next(g for g in parse_groups(FIXTURE["groups"]) if g.group_id == gid)


def test_the_fixture_is_a_real_recording():
    assert FIXTURE["ovs_version"].endswith("3.1.0")
    assert "(dummy" in FIXTURE["dpif"]
    assert all(len(r["wire_ports"]) == 1 for r in RECORDS)
    methods = Counter(("hash" if "selection_method=hash" in _group(r["group"]).raw else "dp")
                      for r in RECORDS)
    assert methods["hash"] >= 32 and methods["dp"] >= 32
    # every group spreads its packets over more than one bucket: agreement is not luck
    for gid in {r["group"] for r in RECORDS}:
        assert len({r["wire_ports"][0] for r in RECORDS if r["group"] == gid}) > 1, gid


def test_hash_of_the_fields_matches_ofproto_trace_and_the_wire():
    datapath = _datapath()
    hashed = [r for r in RECORDS if r["trace_bucket_id"] is not None]
    assert len(hashed) >= 32
    agree_trace = agree_wire = 0
    for r in hashed:
        select = parse_select_group(_group(r["group"]))
        port = _ofrace_port(datapath, r["packet"])
        index = select.bucket_ids.index(r["trace_bucket_id"])
        agree_trace += port == [2 + index]
        agree_wire += port == r["wire_ports"]
    assert (agree_trace, agree_wire) == (len(hashed), len(hashed))


def test_userspace_dp_hash_matches_the_wire():
    datapath = _datapath()
    dp = [r for r in RECORDS if r["trace_bucket_id"] is None]
    assert len(dp) >= 32
    agree = sum(_ofrace_port(datapath, r["packet"]) == r["wire_ports"] for r in dp)
    assert agree == len(dp)


def test_negative_control_another_basis_disagrees():
    """The same packets hashed with basis 1 instead of the group's: many mismatches."""
    r_group1 = [r for r in RECORDS if r["group"] == 1]
    select = parse_select_group(_group(1))
    select.param = 1
    from ofrace.simulate.groups import best_bucket, hash_fields_basis
    wrong = sum(2 + best_bucket(select, hash_fields_basis(select, r["packet"]))[0]
                != r["wire_ports"][0] for r in r_group1)
    assert wrong >= len(r_group1) // 2


def test_kernel_dp_hash_traces_every_bucket_as_a_branch_and_bucket_overrides():
    dp_record = next(r for r in RECORDS if r["group"] == 10)
    datapath = _datapath("kernel")
    root, exits = datapath.inject("br0", dict(dp_record["packet"]))
    assert [e.port for e in exits] == [2, 3, 4]  # one exit per bucket, none assumed
    assert datapath.unknown_choices and "--bucket 10=N" in datapath.unknown_choices[0][1]
    assert any(s.data.get("unknown_choice") for s in root.walk())
    labels = [s.data["branch"] for s in root.walk() if "branch" in s.data]
    assert labels == [f"bucket {n} of group 10 (the kernel datapath's dp_hash picks one; "
                      f"--bucket 10={n} picks)" for n in range(3)]
    forced = _datapath("kernel", buckets={10: 2})
    _, exits = forced.inject("br0", dict(dp_record["packet"]))
    assert [e.port for e in exits] == [4] and not forced.unknown_choices


def test_hash_groups_need_no_datapath_knowledge():
    r = next(r for r in RECORDS if r["group"] == 1)
    datapath = _datapath("kernel")
    assert _ofrace_port(datapath, r["packet"]) == r["wire_ports"]
    assert not datapath.unknown_choices


def test_group_properties_are_parsed():
    select = parse_select_group(_group(2))
    assert (select.method, select.param) == ("hash", 12345)
    assert [f.name for f in select.fields] == ["eth_src", "ip_dst", "tcp_src", "udp_dst"]
    assert select.fields[1].mask == 0xFFFF0000
    assert (select.bucket_ids, select.weights) == ([5, 2, 9], [1, 7, 3])
    default = parse_select_group(_group(12))
    assert default.method == "" and default.weights == [100, 100, 100]


@pytest.mark.parametrize("weights, expected", [
    ([100, 100, 100], [0, 1, 2] * 5 + [0]),
    ([100, 50, 25, 25], [0, 1, 0, 2, 3, 0, 1, 0, 0, 1, 0, 2, 3, 0, 1, 0]),  # worked by hand
    ([0, 0], None),
])
def test_dp_hash_table_by_webster(weights, expected):
    assert dp_hash_table(weights) == expected


def test_dp_hash_table_sizes():
    assert len(dp_hash_table([1] * 17)) == 32  # ROUND_UP_POW2(17)
    assert dp_hash_table([1] * 300) is None     # more than 256 hash values: OVS falls back


def test_scores_equal_the_ones_ofproto_trace_printed():
    """ofproto/trace of tcp 10.0.0.1:1234 through fields(ip_src,tcp_src), 4 buckets of
    weight 100, printed "bucket 0: score 4074500" ... "bucket 3: score 1851300"."""
    basis = hashing.hash_bytes((1234).to_bytes(2, "big"),
                               hashing.hash_bytes(bytes([10, 0, 0, 1]), hashing.hash_uint64(0)))
    assert [(hashing.hash_int(b, basis) & 0xFFFF) * 100 for b in range(4)] == \
        [4074500, 1338400, 3025200, 1851300]


def test_datapath_kind():
    assert datapath_kind("system@ovs-system:\n  br-int 65534/1: (dummy-internal)\n",
                         "system") == "userspace"
    assert datapath_kind("netdev@ovs-netdev:\n", "netdev") == "userspace"
    assert datapath_kind("system@ovs-system:\n  br-int 65534/1: (internal)\n", "") == "kernel"


def _acl_lb_trace(kernel: bool, buckets=None):
    from conftest import FIXTURES

    from ofrace.snapshot import Snapshot
    from ofrace.trace.cluster import ClusterTracer, TraceOptions
    from ofrace.trace.request import start_from_short_form

    snapshot = Snapshot.load(FIXTURES / "acl" / "snapshot.ofr")  # changed below: not cached
    if kernel:
        for ch in snapshot.chassis.values():
            ch.dpif = ch.dpif.replace("(dummy-internal)", "(internal)").replace("(dummy)",
                                                                                "(system)")
    tracer = ClusterTracer(snapshot, TraceOptions(select_buckets=buckets or {}))
    return tracer.trace(start_from_short_form(tracer, "vm3", "172.16.0.10:80", "tcp"))


def test_lab_snapshot_is_userspace_and_its_lb_choice_is_computed():
    result = _acl_lb_trace(kernel=False)
    assert [v.kind for v in result.verdicts()] == ["delivered"]
    assert not any(hop.assumed for hop in result.hops)
    steps = [s for hop in result.hops for s in hop.root.walk() if s.data.get("dp_hash")]
    assert steps, "the dp_hash was computed"


def test_kernel_lb_choice_is_one_branch_per_backend_until_bucket_chooses():
    result = _acl_lb_trace(kernel=True)
    verdicts = result.verdicts()
    group = next(s.data["group"] for hop in result.hops for s in hop.root.walk()
                 if s.data.get("unknown_choice"))
    assert [(v.kind, v.logical_port) for v in verdicts] == [("delivered", "vm1"),
                                                            ("delivered", "vm2")]
    for n, verdict in enumerate(verdicts):
        assert verdict.text.endswith(
            f"(branch: bucket {n} of group {group} (the kernel datapath's dp_hash picks one; "
            f"--bucket {group}={n} picks))"), verdict.text
    assert any("kernel datapath" in n for hop in result.hops for n in hop.notes)
    chosen = _acl_lb_trace(kernel=True, buckets={group: 1})
    (verdict,) = chosen.verdicts()
    assert verdict.logical_port == "vm2" and "branch" not in verdict.text


def test_bucket_naming_an_unknown_group_or_bucket_is_a_one_line_input_error():
    from conftest import FIXTURES

    from ofrace.errors import InputError
    from ofrace.snapshot import Snapshot
    from ofrace.trace.choices import check_buckets

    snapshot = Snapshot.load(FIXTURES / "acl" / "snapshot.ofr")
    group = next(g for ch in snapshot.chassis.values() for b in ch.bridges.values()
                 for g in parse_groups(b.groups))
    check_buckets(snapshot, {group.group_id: len(group.buckets) - 1})  # valid: no error
    with pytest.raises(InputError) as bad_bucket:
        check_buckets(snapshot, {group.group_id: len(group.buckets)})
    assert f"(0-{len(group.buckets) - 1})" in str(bad_bucket.value)
    with pytest.raises(InputError) as bad_group:
        check_buckets(snapshot, {4242: 0})
    assert f"groups: {group.group_id}" in str(bad_group.value)
    assert bad_group.value.exit_code == bad_bucket.value.exit_code == 2
    assert "\n" not in str(bad_group.value) + str(bad_bucket.value)


def test_userspace_dp_hash_of_a_packet_from_a_tunnel_is_unknown():
    """Its RSS hash is the outer header's (tunnel pop keeps it): not in the trace."""
    dp_record = next(r for r in RECORDS if r["group"] == 10)
    datapath = _datapath("userspace")
    datapath.bridges["br0"].ports[1].type = "geneve"
    datapath.inject("br0", dict(dp_record["packet"]))
    assert datapath.unknown_choices and "tunnel" in datapath.unknown_choices[0][1]


def test_fast_failover_takes_the_first_bucket_whose_watch_port_is_up():
    ports_desc = ("OFPST_PORT_DESC reply (xid=0x2):\n"
                  " 2(p1): addr:aa:55:aa:55:00:01\n     config:     0\n     state:      LINK_DOWN\n"
                  " 3(p2): addr:aa:55:aa:55:00:02\n     config:     0\n     state:      0\n")
    ports = [Interface(name=name, bridge="br0", type="", ofport=n, options={}, external_ids={},
                       error=None, mac_in_use=None) for name, n in PORTS.items()]
    group = ("group_id=7,type=ff,bucket=bucket_id:0,watch_port:2,actions=output:2,"
             "bucket=bucket_id:1,watch_port:3,actions=output:3")
    flows = ["priority=1,in_port=1 actions=group:7"]
    index = BridgeIndex(Bridge(name="br0", flows=flows, groups=[group], ports_desc=ports_desc),
                        ports)
    _, exits = ChassisDatapath("hv", {"br0": index}).inject("br0", {"in_port": 1})
    assert [e.port for e in exits] == [3]
    index.ports[3].state = frozenset({"LINK_DOWN"})
    _, exits = ChassisDatapath("hv", {"br0": index}).inject("br0", {"in_port": 1})
    assert exits == [] or all(e.kind == "drop" for e in exits)


def test_a_bucket_of_weight_0_is_never_chosen_by_hash():
    select = parse_select_group(_group(1))
    select.weights = [0, 100, 0, 0]
    from ofrace.simulate.groups import best_bucket
    assert {best_bucket(select, basis)[0] for basis in range(64)} == {1}
    select.weights = [0, 0, 0, 0]
    assert best_bucket(select, 5)[0] is None


# ---- an OVN load balancer, recorded on the wire (scripts/record_lb_backends.py, acl lab)

LB = json.loads((Path(__file__).parent / "fixtures/lb_backends.json").read_text())


def _lb_backends(phase: str) -> tuple[int, int]:
    """(agreeing, total): the backend ofrace delivers each recorded SYN to, against the VIF
    that really received it.  The recorded acl snapshot holds the dp_hash groups; for the
    hash phase its lb-web group gets the hash group OVN made (same buckets, new id)."""
    from conftest import FIXTURES

    from ofrace.snapshot import Snapshot
    from ofrace.trace.cluster import ClusterTracer
    from ofrace.trace.request import start_from_short_form

    snapshot = Snapshot.load(FIXTURES / "acl" / "snapshot.ofr")  # changed below: not cached
    bridge = snapshot.chassis[LB["client_chassis"]].bridges["br-int"]
    ours = {g.group_id: g for g in parse_groups(bridge.groups)}
    recorded = {g.group_id: g for g in parse_groups(LB["dp_hash"]["groups"])}
    assert {i: g.buckets for i, g in ours.items()} == \
        {i: g.buckets for i, g in recorded.items()}, "the snapshot has the recorded groups"
    if phase == "hash":
        (hashed,) = [g for g in parse_groups(LB["hash"]["groups"])
                     if "selection_method=hash" in g.raw]
        assert hashed.buckets == ours[1].buckets
        bridge.groups = [line if not line.startswith("group_id=1,") else
                         line.split(",bucket=", 1)[0].replace("selection_method=dp_hash",
                                                               "selection_method=hash,fields("
                                                               "ip_src,tcp_src)")
                         + ",bucket=" + ",bucket=".join(hashed.buckets)
                         for line in bridge.groups]
    tracer = ClusterTracer(snapshot)
    start = start_from_short_form(tracer, LB["client"], "172.16.0.10:80", "tcp")
    agree = 0
    for row in LB[phase]["records"]:
        packet = dict(start.packet, **{k: v for k, v in row["packet"].items()
                                       if k in ("tp_src", "dl_src", "nw_src", "tcp_flags")})
        result = tracer.trace(replace(start, packet=packet))
        agree += [v.logical_port for v in result.verdicts()] == row["backends"]
    return agree, len(LB[phase]["records"])


def test_ovn_load_balancer_dp_hash_backends_equal_the_wire():
    rows = LB["dp_hash"]["records"]
    assert {b for r in rows for b in r["backends"]} == {"vm1", "vm2"}
    assert _lb_backends("dp_hash") == (len(rows), len(rows))


def test_ovn_load_balancer_selection_fields_backends_equal_the_wire():
    rows = LB["hash"]["records"]
    assert {b for r in rows for b in r["backends"]} == {"vm1", "vm2"}
    assert _lb_backends("hash") == (len(rows), len(rows))


def test_userspace_dp_hash_of_a_packet_from_a_dpdk_nic_is_unknown():
    """The NIC's RSS hash replaces the 5-tuple hash for l4 (not for sym_l4)."""
    datapath = _datapath("userspace")
    datapath.bridges["br0"].ports[1].type = "dpdk"
    datapath.inject("br0", dict(next(r for r in RECORDS if r["group"] == 10)["packet"]))
    assert datapath.unknown_choices and "RSS" in datapath.unknown_choices[0][1]
    sym = next(r for r in RECORDS if r["group"] == 12)  # no method: sym_l4
    datapath = _datapath("userspace")
    datapath.bridges["br0"].ports[1].type = "dpdk"
    assert _ofrace_port(datapath, sym["packet"]) == sym["wire_ports"]
    assert not datapath.unknown_choices
