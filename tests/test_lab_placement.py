"""Where a lab sits on the host: ids, Linux names and management subnets (no daemons)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from ofrace.errors import LabError
from ofrace.lab.catalog import load
from ofrace.lab.placement import (
    MANAGEMENT_RANGE,
    MAX_VETHS,
    Placement,
    free_subnet,
    lab_id,
    move_address,
)
from ofrace.lab.topology import Network


def test_ids_follow_the_directory():
    user, tests = Path("/var/tmp/ofrace-lab"), Path("/tmp/pytest-of-root/lab0")
    assert lab_id(user) == lab_id(Path("/var/tmp/ofrace-lab"))
    assert lab_id(user) != lab_id(tests)
    assert lab_id(user, 1) != lab_id(user), "a taken id has a next one"
    assert len(lab_id(user)) == 4 and int(lab_id(user), 16) >= 0


def test_link_names_fit_linux():
    place = Placement("abcd", "198.18.3.1/24")
    assert place.bridge == "ofr-abcd-mgmt"
    assert place.netns("ovn-worker") == "ofr-abcd-ovn-worker"
    assert max(len(place.bridge), len(place.veth(MAX_VETHS - 1))) <= 15
    with pytest.raises(LabError):
        place.veth(MAX_VETHS)


def test_a_lone_lab_keeps_the_topologys_subnet_and_others_get_free_ones():
    template = Network()
    assert free_subnet(template, []) == "198.18.0.1/24"
    taken = [ipaddress.ip_network("198.18.0.0/24"), ipaddress.ip_network("198.18.1.0/25"),
             ipaddress.ip_network("10.0.0.0/8")]
    assert free_subnet(template, taken) == "198.18.2.1/24"
    # Negative control: a network covering the whole range leaves nothing.
    with pytest.raises(LabError, match="no free /24"):
        free_subnet(template, [ipaddress.ip_network("198.16.0.0/12")])


def test_subnets_stay_in_the_benchmarking_range():
    every = [ipaddress.ip_network(f"198.18.{i}.0/24") for i in range(256)]
    every += [ipaddress.ip_network(f"198.19.{i}.0/24") for i in range(255)]
    last = ipaddress.ip_interface(free_subnet(Network(), every)).network
    assert last == ipaddress.ip_network("198.19.255.0/24") and last.subnet_of(MANAGEMENT_RANGE)
    with pytest.raises(LabError, match="IPv4 and at most /15"):
        free_subnet(Network(management="10.0.0.1/8"), [])


def test_topology_addresses_move_with_the_subnet():
    kind = load("kind")
    placed = Placement("abcd", "198.18.7.1/24").place(kind)
    assert placed.network.central_address == "198.18.7.1"
    assert {c.name: c.address for c in placed.chassis} == {
        c.name: c.address.replace("198.18.0.", "198.18.7.") for c in kind.chassis}
    assert [c.encap_ip for c in placed.chassis] == [c.encap_ip for c in kind.chassis]
    with pytest.raises(LabError, match="outside the topology's management network"):
        move_address("10.1.2.3", Network(), "198.18.7.1/24")
