"""Run ``-m MODULE ARGS…`` or ``-c CODE`` and, at exit, write this process's own peak
resident memory (VmHWM, KiB) to the file named first.

A child's ``ru_maxrss`` also counts the memory it shared with its parent at fork, so
a child of a big pytest process would report pytest's size; VmHWM starts afresh at exec.
"""

import atexit
import runpy
import sys


def _write_peak(path: str) -> None:
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(path, "w") as out:
        out.write(peak)


def main() -> None:
    path, how, what, *rest = sys.argv[1:]
    atexit.register(_write_peak, path)
    if how == "-m":
        sys.argv = [what, *rest]
        runpy.run_module(what, run_name="__main__", alter_sys=True)
    else:
        sys.argv = ["-c", *rest]
        exec(compile(what, "<string>", "exec"), {"__name__": "__main__"})


if __name__ == "__main__":
    main()
