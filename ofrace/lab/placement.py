"""Where one lab sits on the host, so labs of different directories run side by side.

Everything a lab makes outside its directory is named after a short lab id,
a few hex digits of a hash of the directory's resolved path: the network
namespaces ``ofr-<id>-<chassis>``, the veths ``ofr-<id>-v<n>`` and the
management bridge ``ofr-<id>-mgmt`` (Linux link names stay within 15
characters).  Its management network is a free subnet of 198.18.0.0/15
(RFC 2544's benchmarking range, so never a network anyone uses); the
topology's management addresses are only a template whose host parts the lab
keeps, so a lone lab still gets the topology's own addresses.  OVSDB TCP
ports and sshd listen on those per-lab addresses, so they cannot collide
either; everything else lives in the directory.

:func:`claim` picks the id and the subnet and creates the bridge -- with the
owning directory as its alias, so that bridge *is* the claim -- under a lock,
so two ``lab up`` at once cannot pick the same.  ``lab.json`` records what was
chosen, so ``status`` and ``down`` use exactly what ``up`` used.
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import json
from dataclasses import dataclass, replace
from pathlib import Path

from ofrace.errors import LabError
from ofrace.lab import network
from ofrace.lab.command import run
from ofrace.lab.topology import Network, Topology

MANAGEMENT_RANGE = ipaddress.ip_network("198.18.0.0/15")
LOCK_FILE = Path("/run/ofrace-lab.lock")
ID_DIGITS = 4
# Linux limits link names to 15 characters: "ofr-" + id + "-v" leaves 5 digits.
MAX_VETHS = 10**5
# Ids tried for one directory before giving up (another lab holds each).
ID_ATTEMPTS = 64


@dataclass(frozen=True)
class Placement:
    """A lab's id and management network (the central address, as a CIDR)."""

    lab_id: str
    management: str

    @property
    def bridge(self) -> str:
        return f"ofr-{self.lab_id}-mgmt"

    @property
    def namespace_prefix(self) -> str:
        return f"ofr-{self.lab_id}-"

    def netns(self, chassis: str) -> str:
        return f"{self.namespace_prefix}{chassis}"

    def veth(self, index: int) -> str:
        if not 0 <= index < MAX_VETHS:
            raise LabError(f"a lab has at most {MAX_VETHS} chassis")
        return f"ofr-{self.lab_id}-v{index}"

    def place(self, topology: Topology) -> Topology:
        """``topology`` with its management addresses moved into this lab's subnet."""
        return replace(
            topology,
            network=replace(topology.network, management=self.management),
            chassis=[replace(c, address=move_address(c.address, topology.network,
                                                     self.management))
                     for c in topology.chassis],
        )

    def to_json(self) -> dict:
        return {"lab_id": self.lab_id, "management": self.management, "bridge": self.bridge}


def lab_id(owner: Path, attempt: int = 0) -> str:
    """The id for ``owner`` (a resolved directory); ``attempt`` > 0 when another lab holds it."""
    seed = str(owner) if attempt == 0 else f"{owner}\0{attempt}"
    return hashlib.sha256(seed.encode()).hexdigest()[:ID_DIGITS]


def move_address(address: str, template: Network, management: str) -> str:
    """``address`` of the template's management network, at the same host part of ours."""
    source = ipaddress.ip_interface(template.management).network
    target = ipaddress.ip_interface(management).network
    host = ipaddress.ip_address(address)
    if host not in source:
        raise LabError(f"chassis address {address} is outside the topology's management "
                       f"network {source}")
    return str(target.network_address + (int(host) - int(source.network_address)))


def subnet_candidates(template: Network) -> list[ipaddress.IPv4Network]:
    """Subnets of the template's size in 198.18.0.0/15, the template's own first."""
    own = ipaddress.ip_interface(template.management).network
    if own.version != 4 or own.prefixlen < MANAGEMENT_RANGE.prefixlen:
        raise LabError(f"management network {own} must be IPv4 and at most "
                       f"/{MANAGEMENT_RANGE.prefixlen} wide")
    subnets = list(MANAGEMENT_RANGE.subnets(new_prefix=own.prefixlen))
    return ([own] if own in subnets else []) + [s for s in subnets if s != own]


def free_subnet(template: Network, taken: list[ipaddress.IPv4Network]) -> str:
    """The first candidate subnet overlapping nothing ``taken``, as the central address CIDR."""
    central = ipaddress.ip_interface(template.management)
    offset = int(central.ip) - int(central.network.network_address)
    for subnet in subnet_candidates(template):
        if not any(subnet.overlaps(t) for t in taken):
            return f"{subnet.network_address + offset}/{subnet.prefixlen}"
    raise LabError(f"no free /{central.network.prefixlen} left in {MANAGEMENT_RANGE} for "
                   "another lab's management network: take a lab down first")


def host_networks() -> list[ipaddress.IPv4Network]:
    """IPv4 networks of this host's root namespace: its addresses and routes."""
    taken = []
    addresses = json.loads(run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]")
    for link in addresses:
        for info in link.get("addr_info", []):
            taken.append(ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}",
                                              strict=False))
    routes = json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]")
    for route in routes:
        dst = route.get("dst", "default")
        if dst != "default":
            try:
                taken.append(ipaddress.ip_network(dst, strict=False))
            except ValueError:
                continue
    return taken


def claim(owner: Path, template: Network) -> Placement:
    """Choose an id and subnet for the lab of ``owner`` and create its management bridge."""
    owner = owner.resolve()
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            chosen = _free_id(owner)
            placement = Placement(chosen, free_subnet(template, host_networks()))
            network.create_management_bridge(placement.bridge, placement.management,
                                              owner=str(owner))
            return placement
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _free_id(owner: Path) -> str:
    """The first id of ``owner`` no other lab's bridge or namespaces use.

    A bridge of this very directory left behind (a ``lab.json`` lost) is ours to remove.
    """
    namespaces = network.namespaces()
    for attempt in range(ID_ATTEMPTS):
        candidate = lab_id(owner, attempt)
        placement = Placement(candidate, "")
        if network.link_exists(placement.bridge):
            if network.link_alias(placement.bridge) != str(owner):
                continue
            network.delete_link(placement.bridge)
        if any(n.startswith(placement.namespace_prefix) for n in namespaces):
            continue
        return candidate
    raise LabError(f"no free lab id for {owner}: {ID_ATTEMPTS} ids are taken by other labs")
