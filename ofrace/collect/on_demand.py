"""Nodes read when a command first needs them: a live trace reads the chassis where the
packet enters, then each chassis it reaches, not the whole cluster.

``NodesOnDemand`` is a snapshot's ``chassis`` mapping whose keys are the inventory's
nodes and whose values are read on first access, each with the collect's own
``collect_node`` (same limits, redaction and problems as a full collect), so a chassis
read here is the chassis a full collect gives.  Asking for every value (an audit, a
frame flooded on a provider network) reads the rest in parallel: correct, only slower.

A chassis is named in the Southbound by its system-id, which only its node can tell.
The node to read for a system-id is guessed from the SB's own Chassis row (hostname,
encapsulation IPs) against the inventory (node name, host), and the guess is checked
against what the node says; when no node matches, every node is read.

``read_ahead`` reads nodes before they are asked for (``path_cache``: the ones the
same trace needed last time), each in a thread of its own; a node asked for while its
read ahead runs waits for that read.  ``needed`` is what the command asked for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor

from ofrace.collect.inventory import NodeSpec
from ofrace.snapshot import Chassis

ReadNode = Callable[[NodeSpec], Chassis]


class NodesOnDemand(Mapping):
    """name → Chassis, each node read the first time it is asked for."""

    def __init__(self, specs: list[NodeSpec], read_node: ReadNode, jobs: int = 16):
        self._specs = {spec.name: spec for spec in sorted(specs, key=lambda s: s.name)}
        self._read_node = read_node
        self._jobs = jobs
        self._read: dict[str, Chassis] = {}
        self._lock = threading.Lock()
        self._node_locks = {name: threading.Lock() for name in self._specs}
        # system-id → node names that may be it, from the SB (``hint_from_southbound``)
        self._hints: dict[str, list[str]] = {}
        self.order: list[str] = []          # nodes in the order they were read
        self.needed: list[str] = []         # nodes the command asked for, in that order
        self.ahead: list[str] = []          # nodes read ahead (``read_ahead``)
        self.paths = None                   # the request's PathCache, if any
        self.flow_caches: list = []         # the FlowCache of each node read

    # --- the Mapping ------------------------------------------------------

    def __getitem__(self, name: str) -> Chassis:
        if name not in self._specs:
            raise KeyError(name)
        self._mark(name)
        return self._read_once(name)

    def _mark(self, name: str) -> None:
        with self._lock:
            if name not in self.needed:
                self.needed.append(name)

    def _read_once(self, name: str) -> Chassis:
        found = self._read.get(name)
        if found is not None:
            return found
        with self._node_locks[name]:    # one read per node, whoever asks first
            found = self._read.get(name)
            if found is None:
                found = self._read_node(self._specs[name])
                with self._lock:
                    self._read[name] = found
                    self.order.append(name)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def values(self):
        self.read_all()
        return [self._read[name] for name in self._specs]

    def items(self):
        self.read_all()
        return [(name, self._read[name]) for name in self._specs]

    # --- reading ----------------------------------------------------------

    def read_all(self) -> None:
        """Every node not read yet, in parallel."""
        for name in self._specs:
            self._mark(name)
        missing = [name for name in self._specs if name not in self._read]
        if not missing:
            return
        with ThreadPoolExecutor(max_workers=max(1, min(self._jobs, len(missing)))) as pool:
            list(pool.map(self.__getitem__, missing))

    def read_ahead(self, names: list[str]) -> None:
        """Start reading ``names`` (those of the inventory not read yet), each in its own
        thread.  A read the command never asks for is left behind when it ends (a node
        read ahead that is down must not hold the answer up to the node's deadline)."""
        for name in names:
            if name in self._specs and name not in self._read and name not in self.ahead:
                self.ahead.append(name)
                threading.Thread(target=self._read_quietly, args=(name,), daemon=True,
                                 name=f"read ahead {name}").start()

    def _read_quietly(self, name: str) -> None:
        try:
            self._read_once(name)
        except Exception:  # noqa: BLE001 - unread, so the command's own read says why
            pass

    def read_for_nothing(self) -> list[str]:
        """Nodes read ahead that the command did not ask for."""
        return [name for name in self.ahead if name not in self.needed]

    def already_read(self) -> dict[str, Chassis]:
        """The nodes read so far (nothing is read)."""
        with self._lock:
            return {name: self._read[name] for name in self._specs if name in self._read}

    def hint_from_southbound(self, chassis_rows: list[dict], encap_rows: list[dict]) -> None:
        """Which inventory nodes each SB Chassis row may be: a node named as the row's
        system-id or hostname, or whose host is the hostname or one of its encap IPs."""
        encap_ips = {row.get("_uuid"): row.get("ip") for row in encap_rows}
        for row in chassis_rows:
            system_id = row.get("name")
            if not isinstance(system_id, str):
                continue
            hostname = row.get("hostname")
            encaps = row.get("encaps") or []
            addresses = {encap_ips.get(u) for u in (encaps if isinstance(encaps, list)
                                                      else [encaps])} - {None}
            names = {system_id, hostname} - {None, ""}
            self._hints[system_id] = [
                spec.name for spec in self._specs.values()
                if spec.name in names or (spec.host and (spec.host in names
                                                         or spec.host in addresses))]

    def find(self, key: str, read: bool = True) -> Chassis | None:
        """The chassis named ``key`` or whose system-id ``key`` is; ``read``: read the
        nodes it may be (the SB's hints first, then every node) until one says so."""
        if key in self._specs and read:
            return self[key]
        if key in self._specs and key in self._read:
            return self._read[key]
        found = _with_system_id(self.already_read().values(), key)
        if found is not None and read:
            self._mark(found.name)
        if found is not None or not read:
            return found
        for name in self._hints.get(key, []):
            chassis = self._read_once(name)     # a wrong guess is not what was needed
            if chassis.system_id == key:
                self._mark(name)
                return chassis
        self.read_all()
        return _with_system_id(self._read.values(), key)


def _with_system_id(chassis: object, system_id: str) -> Chassis | None:
    """As a full snapshot answers: the last chassis with that system-id."""
    found = None
    for ch in chassis:
        if ch.system_id == system_id:
            found = ch
    return found
