"""``ofrace import`` of an OpenShift network must-gather of the kind-ic lab (recorded by
scripts/record_mustgather.py: every zone's clustered NB/SB copied from the lab's own
ovsdb-servers into ``ovnk_database_store.tar.gz``, the nodes' real sosreports, the
IC-SB, and live.ofr collected at the same moment)."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_import_sos import normalize

from ofrace.audit.cluster import audit_snapshot
from ofrace.cli import main
from ofrace.collect import archive
from ofrace.collect.importer import import_snapshot
from ofrace.errors import InputError

MG = Path(__file__).parent / "fixtures" / "mustgather"
SOS = Path(__file__).parent / "fixtures" / "sos" / "sos-4.12"
NODES = ["ovn-control-plane", "ovn-worker", "ovn-worker2"]
_PACKETS = json.loads((MG / "cross_zone_packets.json").read_text())
CROSS_ZONE = [_PACKETS["pod-to-pod"], _PACKETS["pod-to-clusterip"]]
pytestmark = pytest.mark.skipif(not (MG / "must-gather.tar.gz").is_file(),
                                reason="no recorded must-gather")


def _sosreports() -> list[str]:
    return [str(p) for p in sorted(MG.glob("sosreport-*.tar.xz"))]


def _all() -> list[str]:
    return [str(MG / "must-gather.tar.gz"), *_sosreports(), str(MG / "ovn_ic_sb_db.db")]


def _ofrace(*args: str, codes=(0, 1)):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code in codes, result.output
    return result


def _extracted(tmp_path: Path) -> Path:
    """The must-gather as ``oc adm must-gather`` leaves it (a directory)."""
    with tarfile.open(MG / "must-gather.tar.gz") as tar:
        tar.extractall(tmp_path / "mg", filter="data")
    return next((tmp_path / "mg").iterdir())


def _store(top: Path) -> Path:
    return next(top.glob("*/network_logs/ovnk_database_store.tar.gz"))


def test_each_pod_is_a_zone_and_each_sosreport_joins_its_own():
    snapshot, report = import_snapshot(_all())
    assert list(snapshot.zones) == NODES
    assert snapshot.southbound is None and snapshot.northbound is None
    for name, zone in snapshot.zones.items():
        assert zone.chassis == [name]
        assert zone.northbound.tables["NB_Global"][0]["name"] == name
        assert zone.southbound.tables["Logical_Flow"]
        assert zone.southbound.via == "import" and "_sbdb" in zone.southbound.remote
    nodes = [s for s in report.sources if s.kind == "node sosreport"]
    assert sorted(s.chassis for s in nodes) == NODES
    for source in nodes:     # by system-id, to the zone where that Chassis is local
        system_id = snapshot.chassis[source.chassis].system_id
        assert f"system-id {system_id} = SB Chassis {system_id} of zone {source.chassis}" \
            in source.matched
    assert len(snapshot.interconnect.tables["Port_Binding"]) == 3
    assert snapshot.complete, snapshot.all_problems()


def test_zones_are_the_live_collects():
    """Each zone's tables from the must-gather's files are the rows the live collect
    read through the node's ovsdb-server at the same moment."""
    from ofrace.snapshot import Snapshot
    snapshot, _ = import_snapshot(_all())
    live = Snapshot.load(MG / "live.ofr")
    assert list(live.zones) == list(snapshot.zones)
    for name, zone in live.zones.items():
        for which in ("northbound", "southbound"):
            want, got = getattr(zone, which).tables, getattr(snapshot.zones[name], which).tables
            assert want.keys() == got.keys()
            for table in want:
                strip = lambda rows: sorted(  # noqa: E731  (_version is not in files)
                    json.dumps({k: v for k, v in r.items() if k != "_version"},
                               sort_keys=True) for r in rows)
                assert strip(got[table]) == strip(want[table]), (name, which, table)


@pytest.mark.parametrize("expression", CROSS_ZONE, ids=["pod-to-pod", "pod-to-clusterip"])
def test_cross_zone_trace_is_the_live_collects(expression, tmp_path):
    snapshot, _ = import_snapshot(_all())
    snapshot.save(tmp_path / "imported.ofr")
    want = json.loads(_ofrace("trace", "--snapshot", str(MG / "live.ofr"), "--json",
                              expression).output)
    got = json.loads(_ofrace("trace", "--snapshot", str(tmp_path / "imported.ofr"), "--json",
                             expression).output)
    zones = [want["trace"]["zone"], *(h["zone"] for h in want["trace"]["next_hops"])]
    assert len(set(zones)) == 2 and "delivered" in json.dumps(want["verdicts"])
    assert normalize(got) == normalize(want)


def test_audit_is_the_live_collects(tmp_path):
    """Per zone, lflows against OpenFlow and the IC-SB check, as from the live collect
    (1042 lflows installed, 6 expected absent); without the IC-SB file it differs (the
    control)."""
    want = json.loads(_ofrace("audit", "--snapshot", str(MG / "live.ofr"), "--json").output)
    assert sum(c["counts"]["installed"] for c in want["chassis"].values()) > 1000
    for inputs, same in ((_all(), True), (_all()[:-1], False)):
        snapshot, _ = import_snapshot(inputs)
        snapshot.save(tmp_path / "imported.ofr")
        got = json.loads(_ofrace("audit", "--snapshot", str(tmp_path / "imported.ofr"),
                                 "--json").output)
        assert (normalize(got) == normalize(want)) is same


def test_without_the_backends_sosreport_the_trace_differs(tmp_path):
    """Negative control: ovn-worker's sosreport left out, its chassis is unread (still in
    its zone, from the must-gather) and the trace cannot know."""
    inputs = [p for p in _all() if "sosreport-ovn-worker-" not in p]
    snapshot, _ = import_snapshot(inputs)
    assert snapshot.zones["ovn-worker"].chassis == ["ovn-worker"]
    assert not snapshot.chassis["ovn-worker"].reachable
    snapshot.save(tmp_path / "imported.ofr")
    result = _ofrace("trace", "--snapshot", str(tmp_path / "imported.ofr"), CROSS_ZONE[0],
                     codes=(4,))
    text = " ".join(result.output.split())      # the renderer wraps long lines
    assert "ovn-worker was not collected: no sosreport of this chassis" in text


def test_must_gather_alone_says_what_is_missing_in_one_line(tmp_path):
    out = tmp_path / "alone.ofr"
    result = _ofrace("import", str(MG / "must-gather.tar.gz"), "-o", str(out), codes=(1,))
    missing = [line for line in result.output.splitlines() if line.startswith("missing")]
    assert len(missing) == 1, result.output
    assert "no OpenFlow tables" in missing[0] and "audit" in missing[0]
    assert not any("missing:" in line for line in result.output.splitlines()[1:]
                   if not line.startswith("missing"))
    assert "3 zones (ovn-control-plane, ovn-worker, ovn-worker2)" in result.output
    trace = _ofrace("trace", "--snapshot", str(out), CROSS_ZONE[0], codes=(4,))
    assert "was not collected" in trace.output


def test_must_gather_alone_audit_checks_the_zones_against_the_ic_sb():
    """No OpenFlow tables, yet the audit's logical side answers: each zone's transit
    ports against the IC-SB.  The control: with one transit port's IC-SB row gone,
    the zone that uses it as a remote port is found broken."""
    snapshot, _ = import_snapshot([str(MG / "must-gather.tar.gz"), str(MG / "ovn_ic_sb_db.db")])
    audit = audit_snapshot(snapshot)
    assert not audit.complete and not audit.found
    assert all(c.unreadable and not c.notices for c in audit.chassis)
    rows = snapshot.interconnect.tables["Port_Binding"]
    gone = next(r for r in rows if r["logical_port"] == "tstor-ovn-worker")
    snapshot.interconnect.tables["Port_Binding"] = [r for r in rows if r is not gone]
    found = {c.chassis: [p.message for p in c.health] for c in audit_snapshot(snapshot).chassis}
    assert found["ovn-control-plane"] and found["ovn-worker2"], found
    assert all("tstor-ovn-worker" in m for m in found["ovn-control-plane"])


def test_a_directory_and_the_archive_import_the_same(tmp_path):
    top = _extracted(tmp_path)
    from_dir, _ = import_snapshot([str(top), *_sosreports()])
    from_archive, _ = import_snapshot([str(MG / "must-gather.tar.gz"), *_sosreports()])
    for snap in (from_dir, from_archive):
        snap.created = 0
        for chassis in snap.chassis.values():
            chassis.started = chassis.finished = 0     # when the sosreport was read
        for zone in snap.zones.values():
            for db in (zone.northbound, zone.southbound):
                db.remote = "file"
    assert from_dir.to_dict() == from_archive.to_dict()


def test_a_truncated_zone_database_is_one_line_and_the_others_still_import(tmp_path):
    top = _extracted(tmp_path)
    store = _store(top)
    unpacked = tmp_path / "store"
    with tarfile.open(store) as tar:
        tar.extractall(unpacked, filter="data")
    cut = sorted((unpacked / "ovnk_database_store").glob("*_sbdb"))[1]
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size * 2 // 3])
    with tarfile.open(store, "w:gz") as tar:
        tar.add(unpacked / "ovnk_database_store", arcname="ovnk_database_store")
    snapshot, report = import_snapshot([str(top)])
    broken = [(what, why) for what, why in report.missing if cut.name in what]
    assert len(broken) == 1 and "\n" not in broken[0][1]
    assert broken[0][0].endswith(f"ovnk_database_store.tar.gz:ovnk_database_store/{cut.name}")
    whole = [z for z in snapshot.zones.values() if z.southbound.error is None]
    assert len(whole) == 2 and all(z.chassis and z.southbound.tables for z in whole)
    [hurt] = [z for z in snapshot.zones.values() if z.southbound.error]
    assert cut.name in hurt.southbound.error and hurt.northbound.error is None
    assert not snapshot.complete
    # its node is known only as the others' remote chassis: there, unread, saying why
    assert hurt.chassis == [] and not snapshot.chassis[hurt.name].reachable
    assert "its own zone's databases were not read" in \
        snapshot.chassis[hurt.name].problems[0].error
    # with the sosreports: that node's is matched through the remote copies
    snapshot, report = import_snapshot([str(top), *_sosreports()])
    source = next(s for s in report.sources if s.chassis == hurt.name)
    assert "remote chassis in every zone read" in source.matched
    assert sum(len(z.chassis) for z in snapshot.zones.values()) == 2


def test_the_store_directory_itself_is_a_must_gather(tmp_path):
    """``ovnk_database_store/`` as one unpacks it: its pods' files are zones."""
    with tarfile.open(_store(_extracted(tmp_path))) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    snapshot, _ = import_snapshot([str(tmp_path / "unpacked" / "ovnk_database_store")])
    assert list(snapshot.zones) == NODES


@pytest.mark.parametrize("member", ["../evil_sbdb", "/tmp/evil_sbdb",
                                    "ovnk_database_store/../../x_sbdb"])
def test_store_archive_members_leaving_it_are_refused(member, tmp_path):
    top = _extracted(tmp_path)
    store = _store(top)
    with tarfile.open(store, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = 5
        tar.addfile(info, io.BytesIO(b"OVSDB"))
    with pytest.raises(InputError) as exc:
        import_snapshot([str(top)])
    assert "ovnk_database_store.tar.gz" in str(exc.value) and "refused" in str(exc.value)
    assert not (tmp_path / "evil_sbdb").exists() and not Path("/tmp/evil_sbdb").exists()


def test_a_gzip_file_over_the_bound_is_refused(tmp_path, monkeypatch):
    """Single .gz files (legacy mode's leader_sbdb.gz) are held to the archive bound."""
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 1 << 16)
    logs = tmp_path / "network_logs"
    logs.mkdir()
    with gzip.open(logs / "leader_sbdb.gz", "wb") as fh:
        fh.write(b"\0" * (1 << 20))
    with pytest.raises(InputError) as exc:
        import_snapshot([str(tmp_path)])
    assert "leader_sbdb.gz" in str(exc.value) and "refused" in str(exc.value)


def test_legacy_mode_leader_files_are_the_central_pair(tmp_path):
    """``leader_{n,s}bdb.gz`` (the Raft leader's files, gzip'd): here the kind lab's
    central files from its sosreport, as the script copies and compresses them."""
    central = next(SOS.glob("sosreport-central-*.tar.xz"))
    raw = tmp_path / "raw"
    raw.mkdir()
    archive.extract(central, raw, lambda name: name.endswith(("ovnnb_db.db", "ovnsb_db.db")))
    logs = tmp_path / "must-gather.local.1" / "image" / "network_logs"
    logs.mkdir(parents=True)
    for db in ("nb", "sb"):
        source = next(raw.rglob(f"ovn{db}_db.db"))
        with open(source, "rb") as src, gzip.open(logs / f"leader_{db}db.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
    snapshot, report = import_snapshot([str(tmp_path / "must-gather.local.1"),
                                        *map(str, sorted(SOS.glob("sosreport-ovn-*")))])
    assert not snapshot.zones
    assert report.databases["southbound"].endswith("network_logs/leader_sbdb.gz")
    assert {s.chassis for s in report.sources if s.kind == "node sosreport"} == set(NODES)


def test_openstack_shape_extracted_sosreports_and_raw_databases(tmp_path):
    """openstack-must-gather keeps sosreports extracted in sos-reports/_all_nodes/ (links
    to them under sos-reports/nova/, not followed) beside raw NB/SB files."""
    top = tmp_path / "must-gather.local.2" / "image"
    nodes = top / "sos-reports" / "_all_nodes"
    for path in sorted(SOS.glob("sosreport-*.tar.xz")):
        dest = tmp_path / "x" / path.name
        dest.mkdir(parents=True)
        archive.extract(path, dest, lambda name: True)
        shutil.move(str(next(dest.iterdir())), nodes / path.name.split("-2026")[0])
    (top / "sos-reports" / "nova").mkdir()
    for node in nodes.iterdir():
        (top / "sos-reports" / "nova" / f"sos-report-{node.name}").symlink_to(
            Path("../_all_nodes") / node.name)
    snapshot, report = import_snapshot([str(tmp_path / "must-gather.local.2")])
    nodes_found = [s for s in report.sources if s.kind == "node sosreport"]
    assert sorted(s.chassis for s in nodes_found) == NODES
    assert snapshot.southbound is not None and snapshot.southbound.tables["Logical_Flow"]
