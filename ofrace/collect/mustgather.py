"""The OVN database files of an OpenShift network must-gather, found by their names.

Layout, as openshift/must-gather's collection-scripts write it (read in that
repository: ``gather_network_logs_basics``, and ``gather_network_logs`` before it):

* interconnect mode (the node's ``k8s.ovn.org/zone-name`` is the node's name):
  for every ``ovnkube-node`` pod, ``oc cp`` of ``/etc/ovn/ovnnb_db.db`` from its
  ``nbdb`` container and ``/etc/ovn/ovnsb_db.db`` from its ``sbdb`` container to
  ``network_logs/ovnk_database_store/<pod>_nbdb`` and ``<pod>_sbdb``, then
  ``tar -zcf network_logs/ovnk_database_store.tar.gz -C network_logs
  ovnk_database_store --remove-files``: one archive of raw (Raft-clustered) files,
  a zone's NB and SB per pod.  No OpenFlow tables, no conntrack: those come from
  the nodes' sosreports.
* legacy mode (one central NB/SB cluster): the Raft leader's files,
  ``network_logs/leader_nbdb.gz`` and ``leader_sbdb.gz`` (gzip of one file each),
  beside ``leader_ovn{n,s}b_status`` (``cluster/status``).

``oc adm must-gather`` puts these under ``must-gather.local.<n>/<image>/``; the whole
directory is often handed on as one .tar.gz.  The OpenStack must-gather
(openstack-k8s-operators/openstack-must-gather ``gather_edpm_sos``) keeps compute
sosreports extracted as ``sos-reports/_all_nodes/sosreport-<node>/`` (links to them
under ``sos-reports/nova/``, not followed); those, and raw ``ovnnb_db.db`` /
``ovnsb_db.db`` files anywhere in the tree, are found by the importer's sosreport and
database search without anything here.

A pod's files are its zone's pair: ``zone_files`` groups them by pod.  Single
``.gz`` files are opened by ``archive.gunzip`` (same bounds as every archive).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

STORE_ARCHIVE = "ovnk_database_store.tar.gz"
STORE_DIR = "ovnk_database_store"
# <pod>_nbdb / <pod>_sbdb in the store (a pod name is a DNS label: [a-z0-9-]).
_ZONE_FILE = re.compile(r"(?P<pod>[A-Za-z0-9][A-Za-z0-9.-]*)_(?P<db>[ns])bdb(?P<gz>\.gz)?\Z")
_LEADER_FILE = re.compile(r"leader_(?P<db>[ns])bdb(?P<gz>\.gz)?\Z")
WHICH = {"n": "northbound", "s": "southbound"}


@dataclass(frozen=True)
class MustGatherFile:
    """One database file of a must-gather: whose (a pod: a zone; None: the central
    cluster's leader) and which database."""

    path: Path
    label: str
    which: str                 # "northbound" / "southbound"
    pod: str | None
    gzipped: bool


def classify(name: str, parents: tuple[str, ...]) -> tuple[str, str | None, bool] | None:
    """(which, pod, gzipped) of a must-gather database file name, or None.  A zone
    file counts only inside the store directory (a pod's ``_nbdb`` elsewhere is not
    the script's); the leader's only under ``network_logs``."""
    found = _ZONE_FILE.match(name)
    if found and STORE_DIR in parents and not name.startswith("leader_"):
        return WHICH[found["db"]], found["pod"], bool(found["gz"])
    found = _LEADER_FILE.match(name)
    if found and "network_logs" in parents:
        return WHICH[found["db"]], None, bool(found["gz"])
    return None


def wanted_member(name: str) -> bool:
    """Archive members a must-gather contributes (the store archive itself, and the
    files in it)."""
    parts = name.split("/")
    if parts[-1] == STORE_ARCHIVE:
        return True
    return classify(parts[-1], tuple(parts[:-1])) is not None


def is_store_archive(path: Path) -> bool:
    return path.name == STORE_ARCHIVE


def find(root: Path, label: str, files) -> list[MustGatherFile]:
    """The must-gather database files among ``files`` (paths under ``root``)."""
    found = []
    for path in files:     # the root's own name counts: it may be the store directory
        kind = classify(path.name, (root.name, *path.relative_to(root).parts[:-1]))
        if kind is not None:
            which, pod, gz = kind
            found.append(MustGatherFile(path, f"{label}:{path.relative_to(root)}", which,
                                        pod, gz))
    return found
