"""``ofrace import``'s inputs: sos's file names, the text listings sos keeps (recorded
from a real ``ovsdb-client -f list dump``), and archives as untrusted input."""

from __future__ import annotations

import io
import json
import lzma
import tarfile
import zipfile
from pathlib import Path

import pytest

from ofrace.agents.ofrace_agent import column_decoders
from ofrace.collect.archive import extract
from ofrace.collect.importer import import_snapshot
from ofrace.collect.ovsdb_file import read_ovsdb_file
from ofrace.collect.sosreport import _schema_of, mangle, parse_cell, parse_listing
from ofrace.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "ovsdb"


@pytest.mark.parametrize("command, name", [
    ("ovs-ofctl -O OpenFlow13 dump-flows br-int", "ovs-ofctl_-O_OpenFlow13_dump-flows_br-int"),
    ("ovs-appctl dpctl/dump-conntrack -m system@ovs-system",
     "ovs-appctl_dpctl.dump-conntrack_-m_system_ovs-system"),
    ("ovs-vsctl -t 5 list Open_vSwitch", "ovs-vsctl_-t_5_list_Open_vSwitch"),
    ("/usr/bin/ovsdb-client -f list dump", "ovsdb-client_-f_list_dump"),
    ("ovs-appctl fdb/show br-int", "ovs-appctl_fdb.show_br-int"),
])
def test_sos_file_names(command, name):
    assert mangle(command) == name


@pytest.mark.parametrize("text, value", [
    ('{a="b c", d=e}', ["map", [["a", "b c"], ["d", "e"]]]),
    ("[]", ["set", []]),
    ("{}", ["map", []]),
    ('"3"', "3"),
    ("3", 3),
    ("br-int", "br-int"),
    ("11111111-2222-3333-4444-555555555555", ["uuid", "11111111-2222-3333-4444-555555555555"]),
    ('["a\\"b", x]', ["set", ['a"b', "x"]]),
    ("false", False),
])
def test_cells(text, value):
    assert parse_cell(text) == value


def _decoded(rows, table_schema):
    decode = column_decoders(table_schema)
    return sorted(({c: decode[c](v) for c, v in row.items() if c in decode} for row in rows),
                  key=lambda r: r["_uuid"])


@pytest.mark.parametrize("kind", ["standalone", "clustered"])
def test_listing_reads_as_the_json_dump(kind):
    """The text a sosreport keeps decodes to the rows the JSON dump of the same server
    gives, with the real schema and with the one inferred from the text alone."""
    listing = parse_listing((FIXTURES / f"{kind}.list.txt").read_text())
    dump = {t["caption"].removesuffix(" table"): [dict(zip(t["headings"], r, strict=True))
                                                  for r in t["data"]]
            for t in json.loads((FIXTURES / f"{kind}.dump.json").read_text())}
    schema = read_ovsdb_file(FIXTURES / f"{kind}.db").schema
    inferred = _schema_of(listing)
    assert set(listing) == set(dump)
    rows = 0
    for table, want in dump.items():
        truth = _decoded(want, schema["tables"][table])
        assert _decoded(listing[table], schema["tables"][table]) == truth, table
        assert _decoded(listing[table], inferred["tables"][table]) == truth, table
        rows += len(want)
    assert rows >= 9


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]], mode="w:xz") -> Path:
    with tarfile.open(path, mode) as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def _link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


@pytest.mark.parametrize("member, words", [
    (_file("sos/../../etc/evil"), "leaves the archive"),
    (_file("/etc/evil"), "absolute path"),
    (_link("sos/sos_commands/openvswitch/x", "../../../../etc/passwd"), "points outside"),
    (_link("sos/x", "/etc/passwd"), "points outside"),
])
def test_hostile_tar_members_refuse_the_archive(tmp_path, member, words):
    archive = _tar(tmp_path / "sosreport-x.tar.xz", [(member, b"x")])
    into = tmp_path / "out"
    into.mkdir()
    with pytest.raises(InputError, match=words) as exc:
        extract(archive, into, lambda name: True)
    assert str(archive) in str(exc.value) and "\n" not in str(exc.value)
    assert not (tmp_path / "etc").exists()


def test_only_wanted_members_are_written(tmp_path):
    archive = _tar(tmp_path / "a.tar.gz", [(_file("s/keep"), b"1"), (_file("s/skip"), b"2"),
                                           (_link("s/alias", "keep"), b"")], "w:gz")
    into = tmp_path / "out"
    into.mkdir()
    names = extract(archive, into, lambda name: name.endswith("keep"))
    assert sorted(names) == ["s/alias", "s/keep", "s/skip"]
    assert (into / "s" / "keep").read_bytes() == b"1" and not (into / "s" / "skip").exists()
    assert not (into / "s" / "alias").is_symlink()   # links are never materialised


def test_cut_and_corrupt_archives_are_one_line(tmp_path):
    good = _tar(tmp_path / "good.tar.xz", [(_file(f"s/f{i}"), bytes(range(256)) * 400)
                                           for i in range(4)])
    cut = tmp_path / "cut.tar.xz"
    cut.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    bad_zip = tmp_path / "bad.zip"
    bad_zip.write_bytes(b"PK\x03\x04 not really")
    for archive in (cut, bad_zip):
        into = tmp_path / f"out-{archive.name}"
        into.mkdir()
        with pytest.raises(InputError) as exc:
            extract(archive, into, lambda name: True)
        assert str(archive) in str(exc.value) and "\n" not in str(exc.value)
    assert lzma.decompress(good.read_bytes())   # the control: the whole file is readable


def test_zip_member_leaving_the_archive(tmp_path):
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../evil", b"x")
    with pytest.raises(InputError, match="leaves the archive"):
        extract(archive, tmp_path, lambda name: True)


def test_import_refuses_an_archive_holding_nothing_it_reads(tmp_path):
    archive = _tar(tmp_path / "empty.tar.xz", [(_file("s/readme"), b"x")])
    with pytest.raises(InputError, match="no sosreport"):
        import_snapshot([str(archive)])


def test_raw_northbound_alone_says_what_is_missing():
    snapshot, report = import_snapshot([str(FIXTURES / "clustered.db")])
    assert snapshot.southbound is None and snapshot.northbound is not None
    assert {r["name"] for r in snapshot.northbound.tables["Logical_Switch"]} == {"sw0"}
    missing = dict(report.missing)
    assert "Southbound database" in missing and "node sosreports" in missing


def test_an_output_sos_cut_is_named_not_taken(tmp_path):
    """sos keeps only the tail of an output over its size limit (sos_strings/…tailed,
    the usual path a link to it): import says so instead of reading a cut dump."""
    top = "sosreport-n-2026-12-02-abc"
    archive = _tar(tmp_path / f"{top}.tar.xz", [
        (_file(f"{top}/sos_commands/openvswitch/ovs-vsctl_-t_5_list-br"), b"br-int\n"),
        (_file(f"{top}/sos_strings/openvswitch/ovs-ofctl_dump-flows_br-int.tailed"),
         b" cookie=0x1, table=9, priority=1 actions=drop\n"),
        (_link(f"{top}/sos_commands/openvswitch/ovs-ofctl_dump-flows_br-int",
               "../../sos_strings/openvswitch/ovs-ofctl_dump-flows_br-int.tailed"), b""),
    ])
    from ofrace.collect.sosreport import NodeFiles, SosReport, cut_member, wanted_member
    into = tmp_path / "out"
    into.mkdir()
    extract(archive, into, wanted_member, cut_member)
    files = NodeFiles(SosReport(into / top, archive.name))
    answer = files.run(["ovs-ofctl", "dump-flows", "--no-names", "br-int"])
    assert answer["error"] and "size limit" in answer["error"] and not answer["stdout"]
