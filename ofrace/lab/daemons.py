"""Start the lab's daemons and stop exactly those, by pid.

Every process is recorded with its pid *and* its kernel start time, so that
``down`` never signals a process that merely inherited a recycled pid.
Nothing here looks processes up by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ofrace.errors import LabError
from ofrace.lab.command import find_program, netns_prefix, run


@dataclass
class ProcessRecord:
    """One process the lab started; serialised into lab.json."""

    pid: int
    what: str
    chassis: str  # a chassis name, or "central" / "hub"
    starttime: int
    name: str = ""  # distinguishes two daemons of one program (the NB and SB ovsdb-server)
    netns: str | None = None
    pidfile: str | None = None
    log: str | None = None
    ctl: str | None = None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ProcessRecord:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def alive(self) -> bool:
        """True if this very process (same pid, same start time) still runs."""
        return process_starttime(self.pid) == self.starttime


def process_starttime(pid: int) -> int | None:
    """The process' start time in clock ticks since boot, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # Field 2 (comm) may contain spaces; the fields after it start past the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def start_ovs_daemon(
    program: str,
    args: Sequence[str],
    *,
    what: str,
    chassis: str,
    rundir: Path,
    env: Mapping[str, str],
    netns: str | None = None,
    name: str | None = None,
) -> ProcessRecord:
    """Start an OVS/OVN daemon with ``--detach`` and return its record.

    OVS daemons detach only once they are initialised (listening, or
    connected to their database), so when this returns the daemon is usable.
    ``name`` distinguishes two daemons of one program in one run directory
    (their pid file and control socket take that name); otherwise the
    program's default names are kept, so ``ovs-appctl``/``ovn-appctl`` find
    the daemon from the run directory alone, as on a real node.
    """
    name = name or program
    pidfile = rundir / f"{name}.pid"
    log = rundir / f"{name}.log"
    argv = [program, *args, f"--pidfile={pidfile}", f"--log-file={log}",
            "--detach", "--no-chdir", "-vconsole:off"]
    if name != program:
        argv.append(f"--unixctl={rundir / name}.ctl")
    run(argv, env=env, netns=netns, timeout=30)
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        raise LabError(f"{program} started but wrote no pid file {pidfile}; see {log}") from None
    starttime = process_starttime(pid)
    if starttime is None:
        raise LabError(f"{program} exited right after starting; see {log}")
    ctl = rundir / (f"{name}.ctl" if name != program else f"{program}.{pid}.ctl")
    return ProcessRecord(pid=pid, what=what, chassis=chassis, starttime=starttime, name=name,
                         netns=netns, pidfile=str(pidfile), log=str(log), ctl=str(ctl))


def start_foreground(
    argv: Sequence[str],
    *,
    what: str,
    chassis: str,
    log: Path,
    netns: str | None = None,
) -> ProcessRecord:
    """Start a daemon that stays in the foreground (sshd -D), detached from our session."""
    full = [*netns_prefix(netns), find_program(argv[0]), *argv[1:]]
    with open(log, "ab") as out:
        process = subprocess.Popen(
            full, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )
    # `ip netns exec` execs the program, so the child's pid is the daemon's.
    for _ in range(50):
        starttime = process_starttime(process.pid)
        if starttime is not None:
            break
        time.sleep(0.01)
    if process.poll() is not None or starttime is None:
        raise LabError(f"{argv[0]} exited right after starting; see {log}")
    return ProcessRecord(pid=process.pid, what=what, chassis=chassis, starttime=starttime,
                         netns=netns, log=str(log))


def stop(records: Sequence[ProcessRecord], grace: float = 5.0) -> list[ProcessRecord]:
    """Stop the given processes (SIGTERM, then SIGKILL after ``grace`` s); return those signalled.

    Processes whose pid now belongs to someone else, or that are gone, are skipped.
    """
    signalled = []
    for record in records:
        if record.alive():
            try:
                os.kill(record.pid, signal.SIGTERM)
                signalled.append(record)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(r.alive() for r in signalled):
        time.sleep(0.02)
    for record in signalled:
        if record.alive():
            try:
                os.kill(record.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for record in signalled:
        _reap(record.pid)
    return signalled


def _reap(pid: int) -> None:
    """Collect the exit status of a daemon this very process started (sshd), if it is ours."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
