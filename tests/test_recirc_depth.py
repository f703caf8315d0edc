"""The userspace datapath drops a packet nested deeper than MAX_RECIRC_DEPTH
recirculations (lib/dpif-netdev.c dp_execute_cb: 6 up to OVS 3.2, 8 from 3.3; a tunnel
pop counts as one level).

Seen on a 26.03.2 lab (OVS 3.7.0, dpif-netdev): a VM's SYN to its own distributed
floating IP needs nine recirculations on its chassis (ct in the switch, the router's
undnat, post-undnat ct_next, SNAT, the egress loop's unsnat and DNAT, the reverse
ct_dnat and ct_commit_to_zone, the switch again); the ninth was dropped (coverage
``datapath_drop_recirc_error``, "Max recirculation depth exceeded") and the wire saw
nothing, where OVN 23.03's flows need fewer and the packet arrived.
"""

import pytest

from ofrace.openflow.bridge import BridgeIndex
from ofrace.simulate.engine import ChassisDatapath, SimulationOptions, userspace_recirc_depth
from ofrace.snapshot import Bridge, Chassis

PACKET = {"in_port": 1, "dl_type": 0x800, "nw_proto": 17, "nw_src": 0x0A000001,
          "nw_dst": 0x0A000002, "tp_src": 1000, "tp_dst": 53}
PORTS_DESC = """OFPST_PORT_DESC reply (xid=0x2):
 1(vm): addr:aa:55:aa:55:00:01
     config:     0
     state:      LIVE
 2(out): addr:aa:55:aa:55:00:02
     config:     0
     state:      LIVE
 3(tun): addr:aa:55:aa:55:00:03
     config:     0
     state:      LIVE
"""


def chain(recirculations: int, kind: str = "userspace", limit: int | None = 8
          ) -> ChassisDatapath:
    """Table i recirculates to table i+1 through ct(); the last table outputs to 2."""
    flows = [f"table={i}, priority=0 actions=ct(table={i + 1},zone=1)"
             for i in range(recirculations)]
    flows.append(f"table={recirculations}, priority=0 actions=output:2")
    chassis = Chassis("hv", "local", ovsdb={
        "Bridge": [{"_uuid": "b", "name": "br0", "ports": ["p1", "p2", "p3"]}],
        "Port": [{"_uuid": f"p{n}", "name": name, "interfaces": [f"i{n}"]}
                 for n, name in ((1, "vm"), (2, "out"), (3, "tun"))],
        "Interface": [{"_uuid": "i1", "name": "vm", "ofport": 1, "type": ""},
                      {"_uuid": "i2", "name": "out", "ofport": 2, "type": ""},
                      {"_uuid": "i3", "name": "tun", "ofport": 3, "type": "geneve"}]})
    bridge = Bridge(name="br0", flows=flows, ports_desc=PORTS_DESC)
    options = SimulationOptions(datapath_kinds={"br0": kind}, recirc_depth=limit)
    return ChassisDatapath("hv", {"br0": BridgeIndex(bridge, chassis.interfaces)},
                           options=options)


def outcome(datapath: ChassisDatapath, in_port: int = 1) -> list[str]:
    _, exits = datapath.inject("br0", {**PACKET, "in_port": in_port})
    return [e.kind for e in exits]


@pytest.mark.parametrize(("version", "limit"), [("3.1.0", 6), ("3.2.2", 6), ("3.3.0", 8),
                                                ("3.7.0", 8), ("", 8)])
def test_the_limit_follows_the_ovs_release(version, limit):
    assert userspace_recirc_depth(version) == limit


def test_eight_recirculations_pass_the_ninth_is_dropped():
    assert outcome(chain(8)) == ["output"]
    _, exits = chain(9).inject("br0", dict(PACKET))
    assert [e.kind for e in exits] == ["drop"]
    assert "Max recirculation depth exceeded" in exits[0].reason


def test_a_packet_from_a_tunnel_has_one_level_less():
    assert outcome(chain(7), in_port=3) == ["output"]
    assert outcome(chain(8), in_port=3) == ["drop"]


def test_the_kernel_datapath_is_not_limited_here():
    """Negative control: the same chain on a kernel bridge, or with no limit known,
    goes through."""
    assert outcome(chain(9, kind="kernel")) == ["output"]
    assert outcome(chain(9, limit=None)) == ["output"]
