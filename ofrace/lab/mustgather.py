"""An OpenShift network must-gather–shaped tree made from a zoned lab's own files.

What openshift/must-gather's ``gather_network_logs_basics`` does in interconnect
mode (see ofrace.collect.mustgather): per ovnkube-node pod, ``oc cp`` of the
nbdb/sbdb containers' ``/etc/ovn/ovn{n,s}b_db.db`` into
``network_logs/ovnk_database_store/<pod>_{n,s}bdb``, then the real ``tar -zcf
… --remove-files`` of that directory.  Here each zone's NB and SB are the clustered
files its ovsdb-servers write in the host chassis' run directory
(ofrace.lab.interconnect), copied as they are -- nothing is written by hand.  A
copy is taken while the server may be appending (as ``oc cp`` does); one that ends
inside a record is taken again.  Node sosreports come from the real ``sos report``
(ofrace.lab.sosreport), run at the same time.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ofrace.collect.ovsdb_file import read_ovsdb_file
from ofrace.errors import InputError, LabError
from ofrace.lab.sosreport import NODE_PLUGINS, sos_report

# oc adm must-gather's directory: must-gather.local.<n>/<the image, mangled>/
IMAGE_DIR = "quay-io-openshift-release-dev-ocp-v4-0-art-dev-sha256-ofrace-lab"
COPY_ATTEMPTS = 5


def pod_name(node: str) -> str:
    """An ovnkube-node pod's name for ``node``: the DaemonSet's prefix and five
    characters, as Kubernetes makes them (here from the node's name, so a tree made
    twice names its pods the same)."""
    digest = hashlib.sha256(node.encode()).hexdigest()
    return "ovnkube-node-" + "".join("bcdfghjklmnpqrstvwxz2456789"[int(c, 16)]
                                     for c in digest[:5])


def _copy_whole(source: Path, dest: Path) -> None:
    for _ in range(COPY_ATTEMPTS):
        shutil.copyfile(source, dest)
        try:
            read_ovsdb_file(dest)
            return
        except InputError:
            time.sleep(0.2)          # caught mid-append: copy again
    raise LabError(f"{source}: no whole copy in {COPY_ATTEMPTS} attempts")


def must_gather(lab, out: Path, stamp: int | None = None) -> Path:
    """The tree ``must-gather.local.<stamp>/`` of ``lab`` (an ``ofrace.lab.lab.Lab``
    up with zones) under ``out``; returns its top directory."""
    zones = lab.state.get("zones") or []
    if not zones:
        raise LabError("the lab has no zones: a network must-gather in interconnect mode "
                       "needs a zoned topology (kind-ic)")
    top = out / f"must-gather.local.{stamp if stamp is not None else time.time_ns()}"
    logs = top / IMAGE_DIR / "network_logs"
    store = logs / "ovnk_database_store"
    store.mkdir(parents=True)
    for zone in zones:
        rundir = lab.layout.chassis(zone["host"])
        pod = pod_name(zone["host"])
        for db in ("n", "s"):
            _copy_whole(rundir / f"ovn{db}b_db.db", store / f"{pod}_{db}bdb")
    subprocess.run(["tar", "-zcf", str(logs / "ovnk_database_store.tar.gz"), "-C",
                    str(logs), "ovnk_database_store", "--remove-files"], check=True,
                   capture_output=True)
    return top


def interconnect_database(lab, out: Path) -> Path:
    """A copy of the lab's IC-SB file (central's ``ovn_ic_sb_db.db``), as one would
    take it from the host ovn-ic's databases run on; a must-gather has none."""
    out.mkdir(parents=True, exist_ok=True)
    dest = out / "ovn_ic_sb_db.db"
    _copy_whole(lab.layout.central / "ovn_ic_sb_db.db", dest)
    return dest


def node_sosreports(lab, out: Path, sos: list[str]) -> list[Path]:
    """The real ``sos report`` (openvswitch, ovn_host) of every chassis, all at once."""
    jobs = [(lab.layout.chassis(c["name"]), c.get("hostname") or c["name"], c["netns"])
            for c in lab.state["chassis"]]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(sos_report, rundir, hostname, NODE_PLUGINS, out / hostname,
                               sos, netns) for rundir, hostname, netns in jobs]
        return [future.result() for future in futures]
