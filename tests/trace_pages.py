"""The three traces the pictures are tested on, run through ``ofrace trace`` itself on
recorded snapshots: the seed's NodePort SYN with its reply (kind), an SSH SYN an ACL
drops (acl), an ARP broadcast flooded to two other chassis (acl).  Each gives the
``--json`` document and the ``--html`` page of the same run."""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path

from click.testing import CliRunner
from conftest import FIXTURES

from ofrace.cli import main

SEED = ('inport == "breth0_ovn-worker" && eth.src == 02:42:7a:79:82:ca && '
        "eth.dst == 02:42:ac:12:00:04 && ip4.src == 172.18.0.1 && ip4.dst == 172.18.0.4 && "
        "ip.ttl == 64 && tcp.src == 12345 && tcp.dst == 30007 && tcp.flags == 2")
ARP_FLOOD = ('inport == "vm3" && eth.src == 50:54:00:00:01:13 && eth.dst == ff:ff:ff:ff:ff:ff '
             "&& arp.op == 1 && arp.sha == 50:54:00:00:01:13 && arp.spa == 10.0.1.13 && "
             "arp.tpa == 10.0.1.99")

CASES = {
    "seed-nodeport": ("kind", [SEED, "--reply"]),
    "acl-drop": ("acl", ["--from", "vm3", "--to", "10.0.1.11:22", "--tcp"]),
    "flood-branch": ("acl", [ARP_FLOOD]),
}


def run_trace(topology: str, args: list[str], *extra: str):
    """``ofrace trace`` in process on a recorded snapshot."""
    return CliRunner().invoke(main, ["trace", "--snapshot",
                                     str(FIXTURES / topology / "snapshot.ofr"), *args, *extra])


@functools.cache
def case(name: str) -> tuple[dict, str]:
    """(the --json document, the --html page) of one run."""
    topology, args = CASES[name]
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "trace.html"
        run = run_trace(topology, args, "--json", "--html", str(page))
        assert run.exit_code in (0, 1), run.output
        return json.loads(run.stdout), page.read_text()


def hops_in_order(doc: dict) -> list[dict]:
    """Every hop of the document, request then reply, each before the hops it reached."""
    out = []

    def walk(hop):
        out.append(hop)
        for child in hop["next_hops"]:
            walk(child)

    walk(doc["trace"])
    if (doc.get("reply") or {}).get("run"):
        walk(doc["reply"]["trace"])
    return out
