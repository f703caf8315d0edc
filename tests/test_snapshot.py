"""Snapshot files: round trip, versioning, and one-line errors for bad files."""

import gzip
import json
import subprocess
import sys

import pytest
from conftest import FIXTURES

from ofrace.errors import InputError
from ofrace.snapshot import SNAPSHOT_VERSION, Snapshot


def test_round_trip_is_identical(kind_snapshot, tmp_path):
    path = tmp_path / "copy.ofr"
    kind_snapshot.save(path)
    again = Snapshot.load(path)
    assert again == kind_snapshot
    assert again.to_dict() == kind_snapshot.to_dict()


def test_derived_facts(kind_snapshot):
    worker = kind_snapshot.chassis["ovn-worker"]
    assert worker.system_id == "4da007a6-ed1d-45ff-bcf4-62ae8914bbbc"
    assert worker.bridge_mappings == {"physnet": "breth0"}
    assert worker.encap_types == ["geneve"]
    nginx = next(i for i in worker.interfaces
                 if i.iface_id == "default_nginx-deployment-9456bbbf9-x6pc6")
    assert nginx.bridge == "br-int" and nginx.ofport > 0


@pytest.mark.parametrize("content, message", [
    (b"not gzip at all", "cannot read snapshot"),
    (gzip.compress(b"{}"), "not an ofrace snapshot"),
    (gzip.compress(json.dumps({"format": "ofrace-snapshot",
                               "version": SNAPSHOT_VERSION + 1}).encode()), "not supported"),
])
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.ofr"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        Snapshot.load(path)


def test_show_cli(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "ofrace", "show", "--json",
                         str(FIXTURES / "kind" / "snapshot.ofr")], capture_output=True,
                        text=True)
    assert ok.returncode == 0, ok.stderr
    summary = json.loads(ok.stdout)
    assert summary["complete"] is True
    assert summary["nodes"]["ovn-worker"]["bridges"]["br-int"] > 500
    missing = subprocess.run([sys.executable, "-m", "ofrace", "show", str(tmp_path / "no.ofr")],
                             capture_output=True, text=True)
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "not found" in missing.stderr
