"""A node's flow text kept between live reads, used again while its tables are unchanged.

Printing a 250k-flow ``dump-flows`` costs a node seconds; the same flows in binary cost
it a fraction.  So a live read asks the agent for each table's digest (``FlowStats``:
everything of its flows but the counters and ages, in the switch's order), keeps the text
with the digests of the read that preceded it, and the next read sends those digests:
when every table of a bridge is unchanged the agent sends only the counters of that
read, in the same order as the kept lines, and the lines are taken from here.

The digests come from a read the switch answered before the text dump started, so a
change during the dump makes the next read's digests differ (the bridge is read
again); only a change made and undone while the first dump ran goes unseen.  Files
live in the user's cache directory (``database_cache.cache_dir``), 0600, at most
``MAX_FILES`` of them (the oldest go); nothing is written on nodes.  A file that
cannot be read, or whose line count disagrees with the node's, is a whole read.

Beside the text, the tables a trace cut by metadata (``Bridge.table_splits``: 0.1 s of
a 261k-flow bridge's trace, on the path after the node answers) are kept under the same
digests (``keep_splits``), and given back with the kept lines when the node's tables
are still those.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import time
import zlib
from array import array
from pathlib import Path
from threading import Thread

from ofrace.agents import ofrace_agent
from ofrace.collect import database_cache

CACHE_FORMAT = 1
MAX_FILES = 64
PREFIX = "flows-"
SPLITS = ".splits"           # beside a kept text: its tables cut by metadata
MAX_TEXT = 1 << 30           # the most a kept dump may inflate to


class FlowCache:
    """The kept flow text of one node's bridges."""

    def __init__(self, node: str, transport: str, directory: Path | None = None):
        self.node = node
        self.directory = directory or database_cache.cache_dir()
        self._key = hashlib.sha256(json.dumps([node, transport]).encode()).hexdigest()[:24]
        self.used: list[str] = []      # bridges whose lines came from here (tests)
        self._loading: dict[str, Thread] = {}
        self._loaded: dict[str, tuple] = {}   # bridge → (digests, lines, path)
        self._digests: dict[str, dict] = {}   # bridge → the digests the node gave now
        # bridge → (digests, line count, its table_splits(), how many came from here)
        self._watched: dict[str, tuple] = {}

    @classmethod
    def for_node(cls, node: str, transport: str) -> FlowCache | None:
        return cls(node, transport) if database_cache.cache_enabled() else None

    def _path(self, bridge: str) -> Path:
        name = hashlib.sha256(bridge.encode()).hexdigest()[:12]
        return self.directory / f"{PREFIX}{self._key}-{name}.bin"

    def known(self) -> dict[str, dict]:
        """bridge → the digests of its kept text, for the bridges kept."""
        found = {}
        for path in sorted(self.directory.glob(f"{PREFIX}{self._key}-*.bin")):
            try:
                with database_cache.open_private(path) as handle:
                    head = json.loads(handle.readline(1 << 20))
            except (OSError, ValueError, RecursionError):
                continue
            bridge = head.get("bridge") if isinstance(head, dict) else None
            if (isinstance(bridge, str) and head.get("format") == CACHE_FORMAT
                    and _fits(head.get("digests")) and path == self._path(bridge)):
                found[bridge] = head["digests"]
        return found

    def settle(self, doc: dict) -> dict[str, tuple] | None:
        """Put the kept lines into the bridges of the agent's ``doc`` that it says are
        unchanged, and keep the text of those read whole (in the background: the process
        waits for it at exit).  bridge → (its counters from the node for the lines taken
        from here, or None; how many flows each table has, or None; its tables kept cut
        by metadata, or None); None when a kept file no longer fits (then read the node
        again, whole)."""
        found = {}
        for name, bridge in doc.get("bridges", {}).items():
            tables = bridge.pop("flow_tables", None) or {}
            fresh = splits = None
            if _fits(tables.get("digests")) and not bridge.get("errors", {}).get("flows"):
                self._digests[name] = tables["digests"]
            if bridge.pop("flows_unchanged", False):
                lines = self.lines(name, tables.get("digests") or {})
                # as many counters as kept lines, checked before they are inflated
                fresh = (counters(tables.get("counters") or {}, len(lines))
                         if lines is not None else None)
                if fresh is None:
                    return None
                self.used.append(name)
                bridge["flows"] = lines
                splits = self._splits(name, tables["digests"], len(lines))
            elif _fits(tables.get("digests")) and not bridge.get("errors", {}).get("flows"):
                Thread(target=self.keep, args=(name, tables["digests"], bridge["flows"]),
                       name=f"keep flows of {name}").start()
            found[name] = (fresh, layout(tables), splits)
        return found

    def watch(self, name: str, bridge) -> None:
        """The ``snapshot.Bridge`` read as ``name`` (its lines those of the digests the
        node gave): ``keep_splits`` keeps the tables a trace cuts in it."""
        digests = self._digests.get(name)
        if digests is not None:
            splits = bridge.table_splits()
            self._watched[name] = (digests, len(bridge.flows), splits, len(splits))

    def keep_splits(self) -> None:
        """Keep the tables cut since the read (in the background: the process waits
        for it at exit), beside the text of the same digests."""
        for bridge, (digests, count, splits, known) in self._watched.items():
            if len(splits) > known:
                Thread(target=self._write_splits, args=(bridge, digests, count, dict(splits)),
                       name=f"keep splits of {bridge}").start()

    def _write_splits(self, bridge: str, digests: dict, count: int, splits: dict) -> None:
        tables, body = [], array("I")
        for number, split in sorted(splits.items()):
            if split is False:
                tables.append([number, None, None])
                continue
            by_value, rest = split
            values = sorted(by_value)
            for value in values:
                body.extend(by_value[value])
            body.extend(rest)
            tables.append([number, values, [len(by_value[v]) for v in values] + [len(rest)]])
        head = json.dumps({"format": CACHE_FORMAT, "digests": digests, "count": count,
                           "tables": tables}).encode()
        database_cache.write_private(self._path(bridge).with_suffix(SPLITS),
                                     head + b"\n" + zlib.compress(body.tobytes(), 1))

    def _splits(self, bridge: str, digests: dict, count: int) -> dict | None:
        """The kept splits of the ``count`` lines ``digests`` describe, or None."""
        try:
            with database_cache.open_private(self._path(bridge).with_suffix(SPLITS)) as handle:
                head = json.loads(handle.readline(16 << 20))
                unzip = zlib.decompressobj()
                raw = unzip.decompress(handle.read(), 4 * count * 8 + 1)
            if (head.get("digests") != digests or head.get("count") != count
                    or not unzip.eof or len(raw) % 4):
                return None
            body = array("I")
            body.frombytes(raw)
            if body and max(body) >= count:
                return None
            found, at = {}, 0
            for number, values, sizes in head["tables"]:
                if values is None:
                    found[int(number)] = False
                    continue
                if len(sizes) != len(values) + 1:
                    return None
                by_value = {}
                for value, size in zip(values, sizes, strict=False):
                    by_value[int(value)] = body[at:at + size]
                    at += size
                found[int(number)] = (by_value, body[at:at + sizes[-1]])
                at += sizes[-1]
            return found if at == len(body) else None
        except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError,
                RecursionError, zlib.error):
            return None

    def preload(self, bridges) -> None:
        """Start reading the kept text of ``bridges`` now, while the node is asked."""
        for bridge in bridges:
            if bridge not in self._loading:
                thread = Thread(target=self._load, args=(bridge,), daemon=True,
                                name=f"load flows of {bridge}")
                self._loading[bridge] = thread
                thread.start()

    def _load(self, bridge: str) -> None:
        path = self._path(bridge)
        try:
            with database_cache.open_private(path) as handle:
                head = json.loads(handle.readline(1 << 20))
                body = handle.read()
            count = head.get("count")
            unzip = zlib.decompressobj()
            text = unzip.decompress(body, MAX_TEXT)
            if unzip.unconsumed_tail or not unzip.eof or not isinstance(count, int):
                return
        except (OSError, ValueError, AttributeError, RecursionError, zlib.error):
            return
        lines = text.decode("utf-8", "surrogateescape").split("\n") if count else []
        if len(lines) == count:
            self._loaded[bridge] = (head.get("digests"), lines, path)

    def lines(self, bridge: str, digests: dict) -> list[str] | None:
        """The kept lines of ``bridge`` when they are the ones ``digests`` name."""
        self.preload([bridge])
        self._loading[bridge].join()
        found = self._loaded.get(bridge)
        if found is None or found[0] != digests:
            return None
        try:
            os.utime(found[2])
        except OSError:
            pass
        return found[1]

    def keep(self, bridge: str, digests: dict, lines: list[str]) -> bool:
        """Keep ``lines`` as the text of the tables ``digests`` describe."""
        self._loading.pop(bridge, None)
        self._loaded.pop(bridge, None)
        if any("\n" in line for line in lines):
            return False
        head = json.dumps({"format": CACHE_FORMAT, "bridge": bridge, "digests": digests,
                           "count": len(lines), "kept": time.time()}).encode()
        body = zlib.compress("\n".join(lines).encode("utf-8", "surrogateescape"), 1)
        if not database_cache.write_private(self._path(bridge), head + b"\n" + body):
            return False
        database_cache.forget_cache(self._path(bridge).with_suffix(SPLITS))  # of old lines
        _trim(self.directory)
        return True


class FlowCounters:
    """Each flow's counters as the agent sent them (``ofrace_agent.COUNTERS`` each, in
    the switch's order), read one flow at a time."""

    def __init__(self, raw: bytes):
        self._raw = raw

    def __len__(self) -> int:
        return len(self._raw) // ofrace_agent.COUNTERS.size

    def __getitem__(self, index: int) -> dict:
        seconds, nanoseconds, packets, octets = ofrace_agent.COUNTERS.unpack_from(
            self._raw, index * ofrace_agent.COUNTERS.size)
        return {"n_packets": packets, "n_bytes": octets,
                "duration": round(seconds + nanoseconds / 1e9, 3)}


def counters(found: dict, count: int) -> FlowCounters | None:
    """The agent's counters (``FlowStats.counters``) of ``count`` flows; None when they
    are not that many or do not decode (never inflated past ``count`` flows' worth)."""
    size = ofrace_agent.COUNTERS.size
    if found.get("count") != count:
        return None
    try:
        data = zlib.decompressobj()
        raw = data.decompress(base64.b64decode(found["data"], validate=True), size * count + 1)
    except (KeyError, TypeError, ValueError, binascii.Error, zlib.error):
        return None
    if len(raw) != size * count or not data.eof:
        return None
    return FlowCounters(raw)


def layout(tables: dict) -> list[tuple[int, int]] | None:
    """How many flows each table has, in the switch's order (``FlowStats.sizes``)."""
    sizes = tables.get("sizes")
    if not sizes or not all(len(pair) == 2 for pair in sizes):
        return None
    return [(table, count) for table, count in sizes]


def _fits(digests) -> bool:
    """Digests as a switch has them: one per OpenFlow table (0-254), each a SHA-1 in
    hex; they go back to the node on its command line, so nothing bigger is kept."""
    return (isinstance(digests, dict) and 0 < len(digests) <= 255
            and all(len(k) <= 3 and isinstance(v, str) and len(v) == 40
                    for k, v in digests.items()))


def _trim(directory: Path) -> None:
    """At most MAX_FILES kept dumps (and their splits): the least recently used go."""
    for path in database_cache.least_recently_used(directory, f"{PREFIX}*.bin", MAX_FILES):
        database_cache.forget_cache(path)
        database_cache.forget_cache(path.with_suffix(SPLITS))
