"""Labs of different directories run side by side, and `down` stops only its own.

The session's lab (kind) stays up while two more labs come up in their own
directories: every name and address differs, each one collects over SSH and
carries packets through its tunnels, and taking one down leaves the others
exactly as they were.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys

import pytest

from ofrace.lab.daemons import ProcessRecord
from ofrace.lab.lab import Lab
from ofrace.lab.network import link_alias, link_exists, namespace_exists
from ofrace.lab.placement import MANAGEMENT_RANGE

pytestmark = pytest.mark.lab

UDP = ("eth(src=50:54:00:00:00:01,dst=50:54:00:00:00:02),eth_type(0x0800),"
       "ipv4(src=10.0.0.1,dst=10.0.0.2,proto=17,tos=0,ttl=64,frag=no),udp(src=5000,dst={dport})")


def created_names(lab: Lab) -> set[str]:
    """Every name the lab made outside its directory."""
    return {*lab.state["namespaces"], *lab.state["links"]}


def intact(lab: Lab) -> None:
    """Everything the lab started still runs and everything it made still exists."""
    assert all(ProcessRecord.from_json(p).alive() for p in lab.state["processes"])
    assert all(namespace_exists(n) for n in lab.state["namespaces"])
    assert all(link_exists(link) for link in lab.state["links"])
    assert link_alias(lab.state["placement"]["bridge"]) == str(lab.dir)


def usable(lab: Lab, tmp_path, dport: int) -> None:
    """Collect every chassis over SSH, and send a packet from hv1 to hv2 through the tunnel."""
    out = tmp_path / f"{lab.state['placement']['lab_id']}-{dport}.ofr"
    run = subprocess.run([sys.executable, "-m", "ofrace", "collect", "-i",
                          str(lab.dir / "inventory.toml"), "-o", str(out), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads(run.stdout)
    assert all(node["reachable"] for node in summary["nodes"].values()), summary
    before = len(lab.pcap_packets("hv2", "vif2"))
    lab.inject("hv1", "vif1", UDP.format(dport=dport))
    arrived = lab.wait_for_packets("hv2", "vif2", before + 1)[before:]
    assert len(arrived) == 1 and f"tp_dst={dport}" in arrived[0], arrived


@pytest.fixture
def two_more_labs(tmp_path_factory):
    labs = [Lab(tmp_path_factory.mktemp("side")) for _ in range(2)]
    yield labs
    for lab in labs:
        lab.down()


def test_two_labs_side_by_side_and_down_stops_only_its_own(kind_lab, two_more_labs, tmp_path):
    first, second = two_more_labs
    for lab in (first, second):
        lab.up("basic")
    labs = [kind_lab, first, second]
    placements = [lab.state["placement"] for lab in labs]
    assert len({p["lab_id"] for p in placements}) == 3
    subnets = [ipaddress.ip_interface(p["management"]).network for p in placements]
    assert all(s.subnet_of(MANAGEMENT_RANGE) for s in subnets)
    assert not any(a.overlaps(b) for i, a in enumerate(subnets) for b in subnets[i + 1:])
    names = [created_names(lab) for lab in labs]
    assert not any(a & b for i, a in enumerate(names) for b in names[i + 1:])
    assert all(len(link) <= 15 for lab in labs for link in lab.state["links"])
    for lab in labs:
        intact(lab)
    usable(first, tmp_path, 6001)
    usable(second, tmp_path, 6002)

    kind_state = json.loads((kind_lab.dir / "lab.json").read_text())
    report = first.down()
    assert len(report["stopped"]) == 3 + 2 + 2 * 4  # central, hub, two chassis
    assert not any(namespace_exists(n) or link_exists(n) for n in names[1])
    intact(second)
    intact(kind_lab)
    usable(second, tmp_path, 6003)
    assert json.loads((kind_lab.dir / "lab.json").read_text()) == kind_state

    second.down()
    assert not any(namespace_exists(n) or link_exists(n) for n in names[2])
    intact(kind_lab)


def test_up_again_in_the_same_directory_replaces_that_lab_only(kind_lab, two_more_labs):
    first, _ = two_more_labs
    first.up("basic")
    old = [ProcessRecord.from_json(p) for p in first.state["processes"]]
    placement = first.state["placement"]
    first.up("basic")
    assert not any(r.alive() for r in old)
    assert first.state["placement"] == placement, "the same directory keeps its id and subnet"
    intact(first)
    intact(kind_lab)
