"""The audit's paths over the same data give the same JSON: each lflow's columns from the
projection a version-3 file stores beside the SB Logical_Flow rows, or from the rows
(older files); flow heads from the stored bytes or from the lines; chassis audited in
forked workers or one by one.  A changed file must change the answer (negative
controls), and a projection that does not fit its columns is refused, not believed."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
from test_audit_fast_paths import FIXTURES, TOPOLOGIES, _audit_doc

from ofrace.audit import cluster
from ofrace.audit.cluster import audit_snapshot
from ofrace.audit.logical import LogicalAuditor
from ofrace.errors import InputError
from ofrace.snapshot import Snapshot


def _audit_text(snapshot: Snapshot) -> str:
    """Everything the audit found, every lflow's status and the exit code included."""
    audit, doc = _audit_doc(snapshot)
    doc["exit"] = int(audit.exit_code)
    return json.dumps(doc, sort_keys=True)


def _without_projection(path: Path, out: Path) -> None:
    """``path`` rewritten as the version-3 files written before the stored columns."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        doc = json.loads(src.read("snapshot.json"))
        for db in [doc.get("southbound"), *[z.get("southbound")
                                            for z in (doc.get("zones") or {}).values()]]:
            for spec in ((db or {}).get("stored_tables") or {}).values():
                spec.pop("columns", None)
        dst.writestr("snapshot.json", json.dumps(doc))
        for info in src.infolist():
            if info.filename != "snapshot.json" and not info.filename.endswith(".columns"):
                dst.writestr(info, src.read(info.filename))


def _lflows_read(snapshot: Snapshot) -> bool:
    """Whether the audit decoded the Logical_Flow rows (the projection path does not)."""
    dbs = [snapshot.southbound, *[z.southbound for z in snapshot.zones.values()]]
    return any("Logical_Flow" in db.tables._loaded for db in dbs if db is not None)


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_projection_and_rows_agree(topology, tmp_path):
    original = FIXTURES / topology / "snapshot.ofr"
    Snapshot.load(original).save(tmp_path / "v3.ofr")
    _without_projection(tmp_path / "v3.ofr", tmp_path / "old.ofr")
    projected = Snapshot.load(tmp_path / "v3.ofr")
    old = Snapshot.load(tmp_path / "old.ofr")
    with_columns = _audit_text(projected)
    assert not _lflows_read(projected)      # the rows were not decoded: the projection was
    from_rows = _audit_text(old)
    assert _lflows_read(old)
    assert with_columns == from_rows == _audit_text(Snapshot.load(original))


def test_a_changed_projection_changes_the_audit(tmp_path):
    """Negative control: the audit reads the projection (one lflow's priority changed in
    it, not in the rows, shows in the JSON)."""
    Snapshot.load(FIXTURES / "kind" / "snapshot.ofr").save(tmp_path / "v3.ofr")
    snapshot = Snapshot.load(tmp_path / "v3.ofr")
    before = _audit_text(snapshot)
    changed = Snapshot.load(tmp_path / "v3.ofr")
    changed.southbound.tables.projection("Logical_Flow")["priority"][0] += 1
    assert _audit_text(changed) != before


def test_a_plain_projection_reads_as_an_encoded_one(tmp_path):
    """A column's values written as they are, or as distinct values and codes: the same
    columns (and the saved file does encode some)."""
    Snapshot.load(FIXTURES / "kind" / "snapshot.ofr").save(tmp_path / "v3.ofr")
    with zipfile.ZipFile(tmp_path / "v3.ofr") as archive:
        member = next(n for n in archive.namelist() if n.endswith(".columns"))
        assert any(type(v) is dict for v in json.loads(archive.read(member))["values"])
    encoded = Snapshot.load(tmp_path / "v3.ofr").southbound.tables.projection("Logical_Flow")
    _rewrite_member(tmp_path / "v3.ofr", tmp_path / "plain.ofr", member,
                    lambda data: json.dumps(_plain(json.loads(data))).encode())
    _declare_size(tmp_path / "plain.ofr", tmp_path / "plain2.ofr", member)
    plain = Snapshot.load(tmp_path / "plain2.ofr").southbound.tables.projection("Logical_Flow")
    assert plain == encoded


def _rewrite_member(path: Path, out: Path, name: str, change) -> None:
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == name:
                data = change(data)
            dst.writestr(info, data)


def _plain(doc: dict) -> dict:
    """The projection with every column as its values (none as distinct values and
    codes), as a reader accepts it too."""
    doc["values"] = [[v["distinct"][c] for c in v["codes"]] if type(v) is dict else v
                     for v in doc["values"]]
    return doc


def _bad_codes(doc: dict) -> None:
    encoded = next(v for v in doc["values"] if type(v) is dict)
    encoded["codes"][0] = len(encoded["distinct"])


def _declare_size(path: Path, out: Path, member: str) -> None:
    """The document declares the member's size: made right again, so that what is
    checked is the values."""
    with zipfile.ZipFile(path) as archive:
        size = archive.getinfo(member).file_size
    _rewrite_member(path, out, "snapshot.json", lambda data: data.replace(
        f'"member":"{member}","bytes":'.encode(),
        f'"member":"{member}","bytes":{size},"was":'.encode()))


@pytest.mark.parametrize("change", [
    _bad_codes,                                                  # a code past the values
    lambda doc: _plain(doc)["values"][2].__setitem__(0, "12"),   # table_id not an integer
    lambda doc: _plain(doc)["values"][2].__setitem__(0, True),
    lambda doc: _plain(doc)["values"][0].__setitem__(0, "not-a-uuid"),
    lambda doc: _plain(doc)["values"][4].pop(),                  # one value short
    lambda doc: doc["columns"].reverse(),
    lambda doc: _plain(doc)["values"][6].__setitem__(0, ["a", "b"]),   # two in an optional
])
def test_a_projection_that_does_not_fit_is_refused(change, tmp_path):
    Snapshot.load(FIXTURES / "kind" / "snapshot.ofr").save(tmp_path / "v3.ofr")
    with zipfile.ZipFile(tmp_path / "v3.ofr") as archive:
        member = next(n for n in archive.namelist() if n.endswith(".columns"))

    def rewrite(data: bytes) -> bytes:
        doc = json.loads(data)
        change(doc)
        return json.dumps(doc).encode()
    _rewrite_member(tmp_path / "v3.ofr", tmp_path / "bad.ofr", member, rewrite)
    _declare_size(tmp_path / "bad.ofr", tmp_path / "bad2.ofr", member)
    snapshot = Snapshot.load(tmp_path / "bad2.ofr")
    with pytest.raises(InputError,
                       match=r"Logical_Flow\.columns.*(form|values|are not|codes)"):
        audit_snapshot(snapshot)


def _stray_flows(snapshot: Snapshot) -> None:
    """A stale flow, one of a Port_Binding's in a pipeline table, a garbled line."""
    name = next(n for n, c in snapshot.chassis.items() if c.integration_bridge in c.bridges)
    bridge = snapshot.chassis[name].bridges[snapshot.chassis[name].integration_bridge]
    pb = snapshot.southbound.tables["Port_Binding"][0]["_uuid"][:8]
    bridge.flows = list(bridge.flows) + [
        "cookie=0xdeadbeef, duration=1.0s, table=12, n_packets=0, n_bytes=0, "
        "priority=999,ip,metadata=0x1 actions=drop",
        f"cookie=0x{pb}, duration=1.0s, table=12, n_packets=0, n_bytes=0, "
        "priority=998,ip,metadata=0x1 actions=drop"]


def test_stored_bytes_and_lines_agree_on_stray_flows(tmp_path):
    """The heads read from a version-3 file's bytes, and from the lines (after something
    read them), find the same stale flows; without the strays the answer differs."""
    snapshot = Snapshot.load(FIXTURES / "kind" / "snapshot.ofr")
    _stray_flows(snapshot)
    snapshot.save(tmp_path / "strays.ofr")
    from_bytes = Snapshot.load(tmp_path / "strays.ofr")
    name = next(n for n, c in from_bytes.chassis.items() if c.integration_bridge in c.bridges)
    bridge = from_bytes.chassis[name].bridges[from_bytes.chassis[name].integration_bridge]
    assert bridge.encoded_lines() is not None
    bytes_text = _audit_text(from_bytes)
    from_lines = Snapshot.load(tmp_path / "strays.ofr")
    for ch in from_lines.chassis.values():
        for b in ch.bridges.values():
            assert b.flows is not None  # read as text: encoded_lines() is None now
    assert from_lines.chassis[name].bridges[bridge.name].encoded_lines() is None
    assert bytes_text == _audit_text(from_lines)
    stale = [s["cookie"] for c in json.loads(bytes_text)["chassis"].values()
             for s in c.get("stale", [])]
    assert "0xdeadbeef" in stale and len(stale) == 2
    assert bytes_text != _audit_text(Snapshot.load(FIXTURES / "kind" / "snapshot.ofr"))


@pytest.mark.parametrize("topology", ["kind", "openstack", "acl"])
def test_workers_and_serial_agree(topology, monkeypatch, tmp_path):
    """Chassis audited in forked workers give what one process gives, each lflow's
    status included (built in the parent from what the workers sent)."""
    path = FIXTURES / topology / "snapshot.ofr"
    Snapshot.load(path).save(tmp_path / "v3.ofr")
    monkeypatch.setenv("OFRACE_AUDIT_WORKERS", "1")
    serial = _audit_text(Snapshot.load(tmp_path / "v3.ofr"))
    forked = []
    monkeypatch.setattr(cluster, "_in_workers", _counting(cluster._in_workers, forked))
    monkeypatch.setattr(cluster, "PARALLEL_MIN_FLOWS", 0)
    monkeypatch.setenv("OFRACE_AUDIT_WORKERS", "2")
    parallel = _audit_text(Snapshot.load(tmp_path / "v3.ofr"))
    assert forked and all(audit is not None for audit in forked[0])   # workers did it
    assert parallel == serial


def _counting(in_workers, calls: list):
    def counted(*args):
        result = in_workers(*args)
        calls.append(result)
        return result
    return counted


def test_a_failing_worker_is_audited_again_in_the_parent(monkeypatch, tmp_path):
    """What a worker cannot do (here: every worker fails) the parent does, with the same
    answer (or the error the chassis' data raises)."""
    path = FIXTURES / "kind" / "snapshot.ofr"
    monkeypatch.setenv("OFRACE_AUDIT_WORKERS", "1")
    serial = _audit_text(Snapshot.load(path))
    monkeypatch.setattr(cluster, "PARALLEL_MIN_FLOWS", 0)
    monkeypatch.setenv("OFRACE_AUDIT_WORKERS", "2")
    parent = os.getpid()
    real = LogicalAuditor.audit_chassis

    def fails_in_workers(self, chassis):
        if os.getpid() != parent:
            raise InputError("a worker cannot read this")
        return real(self, chassis)
    monkeypatch.setattr(LogicalAuditor, "audit_chassis", fails_in_workers)
    forked = []
    monkeypatch.setattr(cluster, "_in_workers", _counting(cluster._in_workers, forked))
    assert _audit_text(Snapshot.load(path)) == serial
    assert forked and all(audit is None for audit in forked[0])   # every worker failed


def test_workers_only_on_idle_cores(monkeypatch):
    """Serial on busy cores (workers would only add forks), one per idle core, and
    OFRACE_AUDIT_WORKERS above both."""
    monkeypatch.delenv("OFRACE_AUDIT_WORKERS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (5.0, 5.0, 5.0))
    assert cluster.audit_workers() == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    assert cluster.audit_workers() == 2
    monkeypatch.setenv("OFRACE_AUDIT_WORKERS", "3")
    assert cluster.audit_workers() == 3
