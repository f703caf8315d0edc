"""Real sosreports of a lab's chassis and central, made by the real ``sos report``.

A lab chassis keeps its run directory (conf.db, db.sock, the daemons' control
sockets, pid files and logs) under the lab directory; sos looks at the standard
paths.  Each report runs in the chassis' network namespace and in a private mount
(and UTS) namespace of its own (``unshare``): a tmpfs over /run, the chassis' run
directory bound at /run/openvswitch, /run/ovn, /etc/openvswitch, /var/log/openvswitch
and /var/log/ovn, and the hostname set to the chassis'.  sos then finds the node
as on a real host (its pid files, database, sockets, logs); nothing on the host
changes (the mounts die with the namespace).  Central gets the same with the NB and
SB files and sockets, in the root network namespace.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ofrace.errors import LabError

# Where OVS/OVN tools and sos look on a host (Debian; /var/run is /run).
STANDARD_DIRS = ("/run/openvswitch", "/run/ovn", "/etc/openvswitch", "/etc/ovn",
                 "/var/lib/openvswitch", "/var/log/openvswitch", "/var/log/ovn")
NODE_PLUGINS = "openvswitch,ovn_host"
CENTRAL_PLUGINS = "ovn_central"
SOS_TIMEOUT = 600


def _script(rundir: Path, hostname: str, sos: list[str]) -> str:
    binds = []
    for directory in STANDARD_DIRS:
        if directory.startswith("/run/"):    # on the private tmpfs: nothing made on the host
            binds.append(f"mkdir -p {directory}")
        binds.append(f"[ -d {directory} ] && mount --bind {shlex.quote(str(rundir))} "
                     f"{directory}")
    return "\n".join([
        "set -e",
        "mount --make-rprivate /",
        "mount -t tmpfs ofrace-sos /run",
        f"hostname {shlex.quote(hostname)}",
        *binds,
        "exec " + " ".join(shlex.quote(a) for a in sos),
    ])


def sos_report(rundir: Path, hostname: str, plugins: str, out: Path, sos: list[str],
               netns: str | None = None) -> Path:
    """Run ``sos report`` for one node; returns the archive it wrote into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.glob("sosreport-*.tar.*"))
    command = [*sos, "report", "--batch", "--only-plugins", plugins, "--tmp-dir", str(out),
               "-z", "xz"]
    argv = ["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c",
            _script(rundir, hostname, command)]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OVS_", "OVN_"))}   # the tools must find the standard paths
    result = subprocess.run(argv, env=env, capture_output=True, text=True,
                            timeout=SOS_TIMEOUT)
    made = sorted(p for p in set(out.glob("sosreport-*.tar.*")) - before
                  if p.suffix in (".xz", ".gz", ".bz2"))   # not its .md5 / .sha256
    if result.returncode != 0 or not made:
        tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-3:]
        raise LabError(f"sos report for {hostname} failed: {' | '.join(tail)[:400]}")
    return made[-1]


def lab_sosreports(lab, out: Path, sos: list[str]) -> list[Path]:
    """One sosreport per chassis of ``lab`` (an ``ofrace.lab.lab.Lab`` that is up),
    and one of central; ``sos`` is how to run sos (``["sos"]``, or a checkout's)."""
    jobs = [(lab.layout.chassis(c["name"]), c.get("hostname") or c["name"], NODE_PLUGINS,
             c["netns"]) for c in lab.state["chassis"]]
    jobs.append((lab.layout.central, "central", CENTRAL_PLUGINS, None))
    # All at once, so the reports show one moment (as sos on every node of a cluster).
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(sos_report, rundir, hostname, plugins, out / hostname, sos,
                               netns) for rundir, hostname, plugins, netns in jobs]
        return [future.result() for future in futures]
