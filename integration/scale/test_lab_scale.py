"""The scale lab: generated from size parameters, its flows land on every chassis and grow with it.

This test brings two small ones up (about 30 s on two cores); the full-size
lab is for ``benchmarks/run.py``, whose own test (test_benchmark.py) runs it on
a small one.
"""

from __future__ import annotations

import re

import pytest

from ofrace.lab.lab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.scale]

# Small enough to come up in seconds (about 40k flows per chassis), big
# enough that every kind of generated object is there more than once.
SMALL = {"chassis": "3", "switches": "100", "ports_per_switch": "3", "port_groups": "10",
         "acls_per_port_group": "2", "address_sets": "10", "address_set_size": "20",
         "load_balancers": "5", "backends_per_load_balancer": "2"}


def br_int_flows(lab: Lab, chassis: str) -> list[str]:
    dump = lab.run_on(chassis, ["ovs-ofctl", "dump-flows", "br-int", "--no-stats"],
                      timeout=300).stdout
    return [line for line in dump.splitlines() if "actions=" in line]


def logical_flow_count(lab: Lab) -> int:
    return len(lab.sbctl("--bare", "--columns=_uuid", "list", "Logical_Flow").split())


def test_scale_lab_flows_land_on_every_chassis_and_grow_with_size(lab_slot):
    lab = lab_slot.lab
    per_chassis = {}
    logical = {}
    for switches in (200, 100):     # SMALL last: test_benchmark.py runs on it
        state = lab.up("scale", sizes={**SMALL, "switches": str(switches)})
        assert state["scale"]["switches"] == switches
        chassis = [c["name"] for c in state["chassis"]]
        assert chassis == ["hv1", "hv2", "hv3"]
        counts = {}
        for name in chassis:
            flows = br_int_flows(lab, name)
            counts[name] = len(flows)
            # Every switch, and the router, is local on every chassis: each
            # datapath's tunnel key shows up as the metadata of some flow.
            datapaths = {int(key, 16) for flow in flows
                         for key in re.findall(r"metadata=(0x[0-9a-f]+)\b", flow)}
            assert set(range(1, switches + 2)) <= datapaths, name
            assert any("conjunction(" in flow for flow in flows), f"no conjunctions on {name}"
            assert any("group:" in flow for flow in flows), f"no load balancer groups on {name}"
        # VIFs are spread evenly, so the chassis carry about the same.
        assert max(counts.values()) < 1.2 * min(counts.values()), counts
        per_chassis[switches] = min(counts.values())
        logical[switches] = logical_flow_count(lab)
    # Twice the switches (and so ports, ACL and load balancer attachments):
    # about twice the flows, on every chassis and in the southbound.
    assert 1.7 * per_chassis[100] < per_chassis[200] < 2.3 * per_chassis[100], per_chassis
    assert 1.7 * logical[100] < logical[200] < 2.3 * logical[100], logical
