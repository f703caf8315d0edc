"""Which nodes the same live trace needed last time, so that a next one reads them at once.

A live trace reads the node the packet enters, traces it there, and only then reads the
node the packet reaches next: each read waits for the trace of the node before, and the
logical flows that name the hops are read once the hops are known.  Asked again (a user
checking a fix, a script polling a path), the same packet most likely takes the same
way, so the nodes it needed last time are read together, with the databases, and the
logical flows of the datapaths it crossed as soon as the Southbound is read.  The trace
still asks for each node when it reaches it and takes the read made ahead (and reads
what else it needs); the command says when a node read ahead was not reached this time
(it was read for nothing), and what is kept is replaced by what this trace needed.
Everything read ahead is read now, so the answer is what a first trace would give.

The key is a digest of the inventory's nodes (how each is reached) and of the request,
so nothing of either is written in clear; the file (``paths.json``, 0600, at most
``MAX_PATHS`` paths, the oldest go) lives in the user's cache directory, beside the
databases' and the flows' (``database_cache.cache_dir``).  A file that cannot be read
is an empty memory, never an error.  ``--no-cache``: nothing is read ahead or kept.
"""

from __future__ import annotations

import hashlib
import json

from ofrace.collect import database_cache
from ofrace.collect.inventory import NodeSpec

CACHE_FORMAT = 1
FILE_NAME = "paths.json"
MAX_PATHS = 64
MAX_FILE = 4 << 20       # 64 paths of MAX_KEPT datapaths and cookies fit
MAX_KEPT = 1024          # datapaths, and cookies, kept per path (a trace reads the rest)


class PathCache:
    """The nodes one request needed on one inventory, as the last trace of it found."""

    def __init__(self, nodes: list[NodeSpec], request: str, directory=None):
        self._names = {spec.name for spec in nodes}
        who = sorted([spec.name, spec.transport, spec.host or "", spec.port or 0,
                      spec.user or "", spec.template or ""] for spec in nodes)
        self._key = hashlib.sha256(json.dumps([who, request]).encode()).hexdigest()[:32]
        self._path = (directory or database_cache.cache_dir()) / FILE_NAME

    @classmethod
    def for_request(cls, nodes: list[NodeSpec], request: str | None) -> PathCache | None:
        if request is None or not database_cache.cache_enabled():
            return None
        return cls(nodes, request)

    def recall(self) -> list[str]:
        """The nodes of the inventory the last trace of this request needed, in the order
        it reached them; [] when none is kept."""
        found = self._kept().get("nodes")
        if not isinstance(found, list):
            return []
        names = [name for name in found if isinstance(name, str) and name in self._names]
        return list(dict.fromkeys(names))

    def recall_logical(self) -> tuple[list[str], list[int]]:
        """The Datapath_Binding UUIDs whose logical flows the last trace read, and the
        cookies it read of them."""
        kept = self._kept()
        datapaths, cookies = kept.get("datapaths"), kept.get("cookies")
        datapaths = [d for d in datapaths if isinstance(d, str)] \
            if isinstance(datapaths, list) else []
        cookies = [c for c in cookies if type(c) is int and 0 <= c < 1 << 32] \
            if isinstance(cookies, list) else []
        return datapaths[:MAX_KEPT], cookies[:MAX_KEPT]

    def remember(self, needed: list[str], datapaths: list[str] = (),
                 cookies: list[int] = ()) -> None:
        """Keep ``needed`` (and the logical flows read) for this request (the newest
        last, the oldest dropped)."""
        paths = self._load()
        paths.pop(self._key, None)
        paths[self._key] = {"nodes": [name for name in needed if name in self._names],
                            "datapaths": list(datapaths)[:MAX_KEPT],
                            "cookies": list(cookies)[:MAX_KEPT]}
        while len(paths) > MAX_PATHS:
            paths.pop(next(iter(paths)))
        data = json.dumps({"format": CACHE_FORMAT, "paths": paths}).encode()
        database_cache.write_private(self._path, data)

    def _kept(self) -> dict:
        found = self._load().get(self._key)
        return found if isinstance(found, dict) else {}

    def _load(self) -> dict:
        try:
            with database_cache.open_private(self._path) as handle:
                doc = json.loads(handle.read(MAX_FILE + 1)[:MAX_FILE])
        except (OSError, ValueError, RecursionError):
            return {}
        if not isinstance(doc, dict) or doc.get("format") != CACHE_FORMAT:
            return {}
        paths = doc.get("paths")
        return dict(paths) if isinstance(paths, dict) else {}


def remember(snapshot) -> list[str]:
    """After a live trace: keep what it needed for its next run (and the tables it cut
    by metadata: ``FlowCache.keep_splits``), and return the nodes read ahead that it
    did not reach."""
    nodes = snapshot.chassis
    for flow_cache in getattr(nodes, "flow_caches", ()):
        flow_cache.keep_splits()
    paths = getattr(nodes, "paths", None)
    if paths is None:
        return []
    sb = snapshot.southbound.tables if snapshot.southbound is not None else None
    fetched = sb.fetched() if hasattr(sb, "fetched") else ([], [])
    if nodes.needed:
        paths.remember(nodes.needed, *fetched)
    return nodes.read_for_nothing()
