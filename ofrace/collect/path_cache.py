"""Which nodes the same live trace needed last time, so that a next one reads them at once.

A live trace reads the node the packet enters, traces it there, and only then reads the
node the packet reaches next: each read waits for the trace of the node before.  Asked
again (a user checking a fix, a script polling a path), the same packet most likely
takes the same way, so the nodes it needed last time are read together, with the
databases.  The trace still asks for each node when it reaches it and takes the read
made ahead; the command says when a node read ahead was not reached this time (it was
read for nothing), and what is kept is replaced by what this trace needed.

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
MAX_PATHS = 256
MAX_FILE = 1 << 20


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
        found = self._load().get(self._key)
        if not isinstance(found, list):
            return []
        names = [name for name in found if isinstance(name, str) and name in self._names]
        return list(dict.fromkeys(names))

    def remember(self, needed: list[str]) -> None:
        """Keep ``needed`` for this request (the newest last, the oldest dropped)."""
        paths = self._load()
        paths.pop(self._key, None)
        paths[self._key] = [name for name in needed if name in self._names]
        while len(paths) > MAX_PATHS:
            paths.pop(next(iter(paths)))
        data = json.dumps({"format": CACHE_FORMAT, "paths": paths}).encode()
        database_cache.write_private(self._path, data)

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
