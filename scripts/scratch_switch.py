"""A throwaway ovsdb-server + ovs-vswitchd (``--enable-dummy=system``: the userspace
datapath with dummy ports, as in ofrace's lab) for recording what real OVS does."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ofrace.lab.daemons import start_ovs_daemon, stop

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


def run(env: dict, *argv: str) -> str:
    """Run an OVS command against the scratch switch; its stdout, or exit with its error."""
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


@contextmanager
def scratch_switch(rundir: Path) -> Iterator[dict]:
    """Start the two daemons in ``rundir`` (emptied first); yield the environment that
    points OVS's tools at them; stop exactly those two daemons afterwards."""
    shutil.rmtree(rundir, ignore_errors=True)
    rundir.mkdir(parents=True)
    env = dict(os.environ)
    for var in ("OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"):
        env[var] = str(rundir)
    run(env, "ovsdb-tool", "create", str(rundir / "conf.db"), SCHEMA)
    records = [start_ovs_daemon("ovsdb-server", [str(rundir / "conf.db"),
                                                 f"--remote=punix:{rundir / 'db.sock'}"],
                                what="ovsdb-server", chassis="scratch", rundir=rundir, env=env)]
    try:
        run(env, "ovs-vsctl", "--no-wait", "init")
        records.append(start_ovs_daemon("ovs-vswitchd", ["--enable-dummy=system",
                                                         f"unix:{rundir / 'db.sock'}"],
                                        what="ovs-vswitchd", chassis="scratch", rundir=rundir,
                                        env=env))
        yield env
    finally:
        stop(records)


def tx_packets(env: dict, bridge: str) -> dict[str, int]:
    """Packets each port of ``bridge`` sent (``dump-ports`` tx pkts), by port number or
    name as dump-ports prints it: the recorders' ground truth for where packets left."""
    text = run(env, "ovs-ofctl", "dump-ports", bridge)
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"port\s+(\w+):.*?tx pkts=(\d+)", text, re.S)}
