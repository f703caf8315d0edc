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
    (gzip.compress(b"{}", mtime=0), "not an ofrace snapshot"),
    (gzip.compress(json.dumps({"format": "ofrace-snapshot",
                               "version": SNAPSHOT_VERSION + 1}).encode(), mtime=0),
     "not supported"),
], ids=["not gzip", "not a snapshot", "newer version"])
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


def test_version_2_files_read_flow_lines_when_first_needed(kind_snapshot, tmp_path):
    path = tmp_path / "lazy.ofr"
    kind_snapshot.save(path)
    assert path.read_bytes()[:4] == b"PK\x03\x04"
    assert (FIXTURES / "kind" / "snapshot.ofr").read_bytes()[:2] == b"\x1f\x8b"  # version 1
    again = Snapshot.load(path)
    bridge = again.chassis["ovn-worker"].bridges["br-int"]
    original = kind_snapshot.chassis["ovn-worker"].bridges["br-int"]
    assert "flows" not in bridge.__dict__
    assert bridge.flow_count == len(original.flows) > 500
    assert "flows" not in bridge.__dict__
    assert bridge.flows == original.flows
    assert "flows" in bridge.__dict__


def test_a_flow_line_with_a_newline_stays_inline(kind_snapshot, tmp_path):
    from ofrace.snapshot import Bridge, Chassis
    odd = Snapshot(chassis={"n": Chassis(name="n", transport="local", bridges={
        "br0": Bridge(name="br0", flows=["a\nb", "c"]), "br1": Bridge(name="br1")})})
    path = tmp_path / "odd.ofr"
    odd.save(path)
    again = Snapshot.load(path)
    assert again.chassis["n"].bridges["br0"].flows == ["a\nb", "c"]
    assert again.chassis["n"].bridges["br1"].flows == []


def test_a_damaged_file_is_one_error(kind_snapshot, tmp_path):
    import zipfile
    path = tmp_path / "lazy.ofr"
    kind_snapshot.save(path)
    broken = tmp_path / "broken.ofr"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(broken, "w") as dst:
        dst.writestr("snapshot.json", src.read("snapshot.json"))
    with pytest.raises(InputError, match="flows_store.member: 'flows/0.rows' is not in the file"):
        Snapshot.load(broken)  # found at load, not in the middle of a trace
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(InputError, match="cannot read snapshot"):
        Snapshot.load(path)
