"""One way to obtain a snapshot, for every command: a snapshot file, or the cluster
an inventory names, read now.

The command line's ``--snapshot FILE`` / ``-i INVENTORY`` / ``--lab`` become one
``SnapshotSource`` (``--lab`` is the lab's inventory); each command asks it for a
snapshot, and ``compare`` also for the inventory, to reach the nodes again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ofrace.errors import EnvironmentFailure, Exit, InputError
from ofrace.snapshot import Snapshot

if TYPE_CHECKING:  # reading the cluster (SSH) is imported only by what reads it
    from ofrace.collect.cluster import Limits, Progress
    from ofrace.collect.inventory import Inventory

Warn = Callable[[str], None]


@dataclass(frozen=True)
class SnapshotSource:
    """Where a command's snapshot comes from: a file, or an inventory read now."""

    snapshot_file: str | None = None
    inventory_file: str | Path | None = None

    def inventory(self, why: str = "give --inventory FILE or --lab") -> Inventory:
        if not self.inventory_file:
            raise InputError(why)
        from ofrace.collect.inventory import load_inventory

        return load_inventory(self.inventory_file)


def obtain_snapshot(source: SnapshotSource, warn: Warn | None = None,
                    entry_port: str | None = None, progress: Progress | None = None, *,
                    on_demand: bool = False, path_key: str | None = None) -> Snapshot:
    """The snapshot file, or the cluster of the inventory read now (its problems told
    through ``warn``, one line each): whole, or with ``on_demand`` the databases now and
    each node when first asked for (a trace reads only the chassis it crosses; the one of
    ``entry_port`` with the databases, and those the last trace of ``path_key`` needed;
    ``progress`` sees each read)."""
    if source.snapshot_file:
        return Snapshot.load(source.snapshot_file)
    inventory = source.inventory("give --snapshot FILE, or --inventory FILE / --lab to read "
                                 "the cluster now")
    # every command that reads live traces or audits; zones: each node names its own
    if inventory.southbound is None and not any(n.southbound for n in inventory.nodes):
        raise InputError("tracing needs the Southbound DB: add [southbound] to the inventory")
    from ofrace.collect.cluster import collect_cluster, collect_on_demand

    if on_demand:
        return collect_on_demand(inventory, warn=warn, entry_port=entry_port,
                                 progress=progress, path_key=path_key)
    snapshot = collect_cluster(inventory)
    for problem in snapshot.all_problems():
        if warn:
            warn(f"{problem.where} {problem.what}: {problem.error}")
    return snapshot


@contextmanager
def snapshot_for_trace(source: SnapshotSource, warn: Warn | None, progress: Progress | None,
                       request) -> Iterator[Snapshot]:
    """The snapshot a trace of ``request`` runs on: the file, or the cluster read as the
    trace needs it (the node of its entry port with the databases, and the nodes the
    last trace of the same request needed: ``path_cache``).  Once the trace is done,
    what it needed is kept for its next run, and a node read ahead for nothing is said."""
    snapshot = obtain_snapshot(source, warn, request.entry_port, progress, on_demand=True,
                               path_key=repr(request))
    yield snapshot
    if not source.snapshot_file:
        from ofrace.collect.path_cache import remember

        for name in remember(snapshot):
            if warn:
                warn(f"{name}: read ahead, as the last trace of this packet reached it; "
                     "this one did not")


def obtain_nodes(source: SnapshotSource, inventory: Inventory, nodes: list[str],
                 with_databases: bool) -> Snapshot:
    """The snapshot file, or just ``nodes`` (and the databases) read now; a node that
    cannot be read is an error of the environment (exit 5): the command is about it."""
    if source.snapshot_file:
        return Snapshot.load(source.snapshot_file)
    from ofrace.collect.cluster import collect_cluster
    from ofrace.collect.inventory import Inventory

    wanted = Inventory(nodes=[inventory.node(n) for n in nodes],
                       southbound=inventory.southbound if with_databases else None,
                       northbound=inventory.northbound if with_databases else None,
                       interconnect=inventory.interconnect if with_databases else None)
    snapshot = collect_cluster(wanted)
    for name in nodes:
        chassis = snapshot.chassis[name]
        if not chassis.reachable:
            raise EnvironmentFailure(f"cannot read {name}: {chassis.problems[0].error}")
    return snapshot


def collect_to_file(inventory: Inventory, output: str | Path, *, strict_host_keys: bool,
                    jobs: int, limits: Limits, progress: Progress | None,
                    flow_index=None) -> Snapshot:
    """Read the cluster and save it at ``output`` (checked before anything is read);
    ``flow_index``: what ``Snapshot.save`` stores beside each bridge's lines."""
    if not output:
        raise InputError("give the snapshot file to write: -o FILE")
    path = Path(output)
    if not path.parent.is_dir():
        raise InputError(f"cannot write {output}: directory {path.parent} does not exist")
    from ofrace.collect.cluster import collect_cluster

    snapshot = collect_cluster(inventory, strict_host_keys=strict_host_keys, jobs=jobs,
                               progress=progress, limits=limits)
    try:
        snapshot.save(path, flow_index)
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror}") from None
    return snapshot


def save_snapshot(snapshot: Snapshot, output: str | Path, flow_index=None) -> None:
    """Write ``snapshot`` at ``output`` (its directory must exist)."""
    path = Path(output)
    if not path.parent.is_dir():
        raise InputError(f"cannot write {output}: directory {path.parent} does not exist")
    try:
        snapshot.save(path, flow_index)
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror}") from None


def collected_exit_code(snapshot: Snapshot) -> Exit:
    """``collect``: 0 when everything was read, 1 when the snapshot is partial."""
    return Exit.OK if snapshot.complete else Exit.FOUND
