"""Inventories for the lab's chassis, the ways ofrace can reach them without SSH."""

from __future__ import annotations

from ofrace.collect.inventory import DatabaseSpec, Inventory, NodeSpec


def local_inventory(lab) -> Inventory:
    """ofrace on the node itself: the lab's chassis share this host's filesystem, so the
    chassis' OVS_RUNDIR is all the local transport needs."""
    return Inventory(
        nodes=[NodeSpec(name=c["name"], transport="local", env=c["env"])
               for c in lab.state["chassis"]],
        southbound=DatabaseSpec(remote=lab.state["sb_remote"]),
        northbound=DatabaseSpec(remote=lab.state["nb_remote"]))


def exec_inventory(lab) -> Inventory:
    """Each chassis through `ip netns exec` into its namespace."""
    return Inventory(
        nodes=[NodeSpec(name=c["name"], transport="exec",
                        template=f"ip netns exec {c['netns']}", env=c["env"])
               for c in lab.state["chassis"]],
        southbound=DatabaseSpec(remote=lab.state["sb_remote"]),
        northbound=DatabaseSpec(remote=lab.state["nb_remote"]))
