"""NORMAL learns source MACs during the translation and honours port config as OVS does,
checked step by step against tests/fixtures/normal_learning.json (a real ovs-vswitchd
3.1.0 on dummy ports, recorded by scripts/record_normal_learning.py: which ports'
tx counters moved, and by how much, for each packet of a sequence)."""

import json
from collections import Counter
from pathlib import Path

import pytest

from ofrace.openflow.bridge import BridgeIndex
from ofrace.simulate.engine import ChassisDatapath, SimulationOptions
from ofrace.snapshot import Bridge, Interface

FIXTURE = json.loads((Path(__file__).parent / "fixtures/normal_learning.json").read_text())
STEPS = FIXTURE["steps"]


def _index(ports_desc: str, fdb: str = "") -> BridgeIndex:
    ifaces = [Interface(name=name, bridge="br0", type="dummy", ofport=n, options={},
                        external_ids={}, error=None, mac_in_use=None)
              for name, n in FIXTURE["ports"].items()]
    flows = FIXTURE["flows"]
    return BridgeIndex(Bridge(name="br0", flows=flows, ports_desc=ports_desc, fdb=fdb), ifaces)


def _replay(learn: bool = True) -> list[tuple[dict, dict]]:
    """Every step through one datapath (its MAC table carries over, as the bridge's
    does), port config and state as the bridge had them before the packet."""
    index = _index(STEPS[0]["ports_desc"], STEPS[0]["fdb"])
    datapath = ChassisDatapath("hv", {"br0": index}, options=SimulationOptions(learn=learn))
    results = []
    for step in STEPS:
        now = _index(step["ports_desc"])
        for number, port in index.ports.items():
            port.config, port.state = now.ports[number].config, now.ports[number].state
        _, exits = datapath.inject("br0", dict(step["packet"]))
        sent = Counter("LOCAL" if e.port == 0xFFFE else str(e.port)
                       for e in exits if e.kind == "output")
        results.append((dict(sent), step["tx"]))
    return results


def test_the_fixture_is_a_real_recording():
    assert FIXTURE["ovs_version"].endswith("3.1.0")
    assert STEPS[0]["fdb"].count(":") == 0  # an empty MAC table to start from
    assert "NO_FLOOD" in STEPS[4]["ports_desc"] and "NO_FWD" in STEPS[6]["ports_desc"]
    assert "LINK_DOWN" in STEPS[-1]["ports_desc"]


@pytest.mark.parametrize("i", range(len(STEPS)), ids=[s["what"] for s in STEPS])
def test_each_step_leaves_by_the_ports_ovs_used(i):
    ours, wire = _replay()[i]
    assert ours == wire, STEPS[i]["what"]


def test_without_learning_several_steps_disagree():
    """Negative control: the same replay with NORMAL not learning (as before) floods
    the reply and the ARP reply and runs the second NORMAL of a translation as a flood."""
    wrong = [STEPS[i]["what"] for i, (ours, wire) in enumerate(_replay(learn=False))
             if ours != wire]
    assert len(wrong) >= 3, wrong


def test_learning_is_shown_and_a_down_link_is_said():
    index = _index(STEPS[-1]["ports_desc"])
    datapath = ChassisDatapath("hv", {"br0": index})
    root, exits = datapath.inject("br0", dict(STEPS[0]["packet"]))
    assert any(s.kind == "normal" and "learned 0a:00:00:00:0a:01 on p1" in s.text
               for s in root.walk())
    down = [e for e in exits if e.port == 3]
    assert down and "link is down" in down[0].reason and down[0].data["port_down"]


def test_a_controller_packet_floods_and_teaches_nothing():
    index = _index(STEPS[0]["ports_desc"], STEPS[0]["fdb"])
    packet = dict(STEPS[0]["packet"], in_port=0xFFFD)
    _, exits = ChassisDatapath("hv", {"br0": index}).inject("br0", packet)
    assert sorted(e.port for e in exits) == [1, 2, 3, 0xFFFE]
    assert index.fdb == {}


def test_an_input_port_not_on_the_bridge_drops():
    index = _index(STEPS[0]["ports_desc"], STEPS[0]["fdb"])
    root, exits = ChassisDatapath("hv", {"br0": index}).inject(
        "br0", dict(STEPS[0]["packet"], in_port=77))
    assert all(e.kind != "output" for e in exits)
    assert any("no input bundle" in s.text for s in root.walk())
