"""Garbage-collector policy while big structures are built.

A snapshot, a 200k-flow index or a Southbound read is millions of small
acyclic objects (strings, tuples, dicts).  CPython's cyclic collector walks
the young ones every 700 allocations and, as the heap grows, everything
again and again: on the scale lab it tripled the time of decoding the SB's
Logical_Flow JSON (3.2 s against 1.2 s).  ``building()`` pauses it for the
build and then freezes what exists, so later collections skip it; objects
still die by reference counting, and none of these structures hold cycles.
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager

_lock = threading.Lock()
_builds = 0            # builds running now, in any thread
_resume = False        # the collector ran before the first of them


@contextmanager
def building():
    """Pause the cyclic GC around a bulk build.  Builds nest and run in threads at once
    (the databases and the nodes of a live read): the collector resumes when the last
    one ends, not when the first does, which would leave the others to it."""
    global _builds, _resume
    with _lock:
        if _builds == 0:
            _resume = gc.isenabled()
            gc.disable()
        _builds += 1
    try:
        yield
    finally:
        with _lock:
            _builds -= 1
            if _builds == 0 and _resume:
                gc.freeze()
                gc.enable()
