"""``building()``: the cyclic collector stays paused while any build runs, in any
thread, and resumes only after the last one (it was resumed by the first to end)."""

from __future__ import annotations

import gc
import threading

from ofrace.memory import building


def test_the_collector_resumes_when_the_last_build_ends():
    assert gc.isenabled()
    second_in, first_out = threading.Event(), threading.Event()
    seen = {}

    def second():
        with building():
            second_in.set()
            first_out.wait(10)
            seen["after the first ended"] = gc.isenabled()

    with building():
        worker = threading.Thread(target=second)
        worker.start()
        second_in.wait(10)
    first_out.set()
    worker.join(10)
    assert seen == {"after the first ended": False}
    assert gc.isenabled()


def test_a_collector_paused_before_stays_paused():
    gc.disable()
    try:
        with building():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
