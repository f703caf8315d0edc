"""The lab's Linux networking: one management bridge, one namespace per chassis.

What they are called and which subnet they use is :mod:`ofrace.lab.placement`'s choice.

Only the management plane is real Linux networking (so sshd and OVSDB TCP
have addresses); packets between chassis travel through the userspace dummy
datapath instead (see :mod:`ofrace.lab.chassis`).
"""

from __future__ import annotations

import json
from pathlib import Path

from ofrace.errors import LabError
from ofrace.lab.command import run

# The bridge of labs made before lab ids (ofrace.lab.placement); `down` of such a lab
# still finds it in its lab.json.
LEGACY_MANAGEMENT_BRIDGE = "ofr-mgmt"
# The namespace side of every management veth.
NAMESPACE_LINK = "mgmt0"


def link_exists(name: str, netns: str | None = None) -> bool:
    return run(["ip", "-o", "link", "show", "dev", name], netns=netns, check=False).returncode == 0


def link_alias(name: str) -> str:
    """The alias of a root-namespace link ('' if none or absent)."""
    result = run(["ip", "-j", "link", "show", "dev", name], check=False)
    if result.returncode != 0:
        return ""
    try:
        return json.loads(result.stdout)[0].get("ifalias", "")
    except (ValueError, IndexError):
        return ""


def namespace_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def namespaces() -> list[str]:
    """Names of every network namespace ``ip netns`` knows."""
    try:
        return [entry.name for entry in Path("/run/netns").iterdir()]
    except FileNotFoundError:
        return []


def create_management_bridge(bridge: str, address: str, owner: str) -> None:
    """Create ``bridge`` with ``address`` (CIDR); its alias records which lab dir owns it."""
    if link_exists(bridge):
        holder = link_alias(bridge)
        if holder.startswith("/"):
            raise LabError(f"another lab is up in {holder} ({bridge} exists): "
                           f"run `ofrace lab down --dir {holder}` first")
        raise LabError(f"{bridge} already exists and no lab claims it: "
                       f"remove it with `ip link del {bridge}`")
    run(["ip", "link", "add", bridge, "type", "bridge"])
    run(["ip", "link", "set", bridge, "alias", owner])
    run(["ip", "addr", "add", address, "dev", bridge])
    run(["ip", "link", "set", bridge, "up"])


def create_namespace(name: str) -> None:
    if namespace_exists(name):
        raise LabError(
            f"network namespace {name} already exists and is not part of this lab: remove it "
            f"with `ofrace lab down` in the lab that made it, or `ip netns delete {name}`"
        )
    run(["ip", "netns", "add", name])
    run(["ip", "link", "set", "lo", "up"], netns=name)


def connect_namespace(netns: str, root_link: str, address: str, bridge: str) -> None:
    """A veth from ``bridge`` into ``netns``, where it is called mgmt0 and gets ``address``."""
    run(["ip", "link", "add", root_link, "type", "veth", "peer", "name", NAMESPACE_LINK,
         "netns", netns])
    run(["ip", "link", "set", root_link, "master", bridge, "up"])
    run(["ip", "addr", "add", address, "dev", NAMESPACE_LINK], netns=netns)
    run(["ip", "link", "set", NAMESPACE_LINK, "up"], netns=netns)


def delete_namespace(name: str) -> bool:
    if not namespace_exists(name):
        return False
    run(["ip", "netns", "delete", name], check=False)
    return True


def delete_link(name: str) -> bool:
    if not link_exists(name):
        return False
    run(["ip", "link", "del", name], check=False)
    return True
