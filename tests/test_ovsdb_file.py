"""OVSDB files read directly (ofrace.collect.ovsdb_file) against what a real
ovsdb-server served from the same files (scripts/record_ovsdb_files.py recorded both:
real ovsdb-tool create / create-cluster, real ovn-nbctl changes, ovsdb-client dump)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ofrace.agents.ofrace_agent import column_decoders
from ofrace.collect import ovsdb_file
from ofrace.collect.ovsdb_file import read_ovsdb_file
from ofrace.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "ovsdb"
KINDS = ("standalone", "clustered")


def _dump(kind: str) -> dict[str, tuple[list[str], list[list]]]:
    tables = json.loads((FIXTURES / f"{kind}.dump.json").read_text())
    return {t["caption"].removesuffix(" table"): (t["headings"], t["data"]) for t in tables}


def _by_uuid(rows):
    return sorted(rows, key=lambda row: row["_uuid"][1])


@pytest.mark.parametrize("kind", KINDS)
def test_every_table_replays_to_what_the_server_dumped(kind):
    db = read_ovsdb_file(FIXTURES / f"{kind}.db")
    assert db.format == kind and db.name == "OVN_Northbound"
    dump = _dump(kind)
    assert set(dump) == set(db.schema["tables"])
    compared = 0
    for table, (headings, data) in dump.items():
        want = [dict(zip(headings, row, strict=True)) for row in data]
        assert _by_uuid(db.select(table, headings)) == _by_uuid(want), table
        compared += len(want)
    assert compared >= 9   # the fixture holds rows, so equality means something


@pytest.mark.parametrize("kind", KINDS)
def test_decoded_rows_are_the_collectors(kind):
    db = read_ovsdb_file(FIXTURES / f"{kind}.db")
    headings, data = _dump(kind)["Logical_Switch_Port"]
    decode = column_decoders(db.schema["tables"]["Logical_Switch_Port"])
    want = [{c: decode[c](v) for c, v in zip(headings, row, strict=True)} for row in data]
    got = db.tables(["Logical_Switch_Port"])["Logical_Switch_Port"]
    assert sorted(got, key=lambda r: r["_uuid"]) == sorted(want, key=lambda r: r["_uuid"])
    p1 = next(r for r in got if r["name"] == "p1")
    assert p1["external_ids"] == {"a": "3"} and p1["addresses"] == ["00:00:00:00:00:01 10.0.0.1"]


def test_column_diffs_matter(monkeypatch):
    """Negative control: the files hold column diffs, and replacing instead of applying
    them gives other rows than the server's."""
    raw = (FIXTURES / "standalone.db").read_bytes()
    assert b'"_is_diff":true' in raw
    monkeypatch.setattr(ovsdb_file, "_apply_diff", lambda old, diff, column: diff)
    db = read_ovsdb_file(FIXTURES / "standalone.db")
    headings, data = _dump("standalone")["Address_Set"]
    assert db.select("Address_Set", headings) != [dict(zip(headings, r, strict=True)) for r in data]


def _record(magic: str, value: dict) -> bytes:
    body = json.dumps(value, separators=(",", ":")).encode() + b"\n"
    return b"OVSDB %s %d %s\n" % (magic.encode(), len(body), hashlib.sha1(body).hexdigest()
                                   .encode()) + body


def _last_index(raw: bytes) -> int:
    records = [json.loads(line) for line in raw.splitlines() if line.startswith(b"{")]
    return max(r["index"] for r in records if "index" in r)


def test_clustered_entries_apply_only_once_committed(tmp_path):
    raw = (FIXTURES / "clustered.db").read_bytes()
    index = _last_index(raw) + 1
    uuid = "11111111-2222-3333-4444-555555555555"
    entry = _record("CLUSTER", {"term": 1, "index": index, "eid": uuid, "data": [
        None, {"Logical_Switch": {uuid: {"name": "late"}}, "_date": 1}]})
    path = tmp_path / "nb.db"
    path.write_bytes(raw + entry)
    db = read_ovsdb_file(path)
    assert db.uncommitted == 1
    assert "late" not in {r["name"] for r in db.rows("Logical_Switch")}
    path.write_bytes(raw + entry + _record("CLUSTER", {"commit_index": index}))
    db = read_ovsdb_file(path)
    assert db.uncommitted == 0
    assert "late" in {r["name"] for r in db.rows("Logical_Switch")}


def test_a_later_entry_at_the_same_index_replaces_the_uncommitted_one(tmp_path):
    raw = (FIXTURES / "clustered.db").read_bytes()
    index = _last_index(raw) + 1
    uuid = "11111111-2222-3333-4444-555555555555"

    def entry(name):
        return _record("CLUSTER", {"term": 2, "index": index, "eid": uuid, "data": [
            None, {"Logical_Switch": {uuid: {"name": name}}}]})
    path = tmp_path / "nb.db"
    path.write_bytes(raw + entry("lost") + entry("kept")
                     + _record("CLUSTER", {"commit_index": index}))
    names = {r["name"] for r in read_ovsdb_file(path).rows("Logical_Switch")}
    assert "kept" in names and "lost" not in names


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cut", [10, 300, -40, -1])
def test_cut_files_are_one_line_naming_file_and_offset(tmp_path, kind, cut):
    raw = (FIXTURES / f"{kind}.db").read_bytes()
    path = tmp_path / "cut.db"
    path.write_bytes(raw[:cut])
    with pytest.raises(InputError) as exc:
        read_ovsdb_file(path)
    message = str(exc.value)
    assert str(path) in message and "offset" in message and "\n" not in message


@pytest.mark.parametrize("damage, words", [
    (lambda raw: raw.replace(b"sw0", b"sw9", 1), "SHA-1"),
    (lambda raw: b"garbage\n" + raw, "not an OVSDB record header"),
    (lambda raw: raw.replace(b"OVSDB JSON", b"OVSDB JSON 99999999999", 1), "offset 0"),
])
def test_damaged_files(tmp_path, damage, words):
    path = tmp_path / "bad.db"
    path.write_bytes(damage((FIXTURES / "standalone.db").read_bytes()))
    with pytest.raises(InputError, match=words):
        read_ovsdb_file(path)


def test_a_huge_claimed_record_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.db"
    path.write_bytes(b"OVSDB JSON 999999999999 " + b"0" * 40 + b"\n{}")
    with pytest.raises(InputError, match="claims 999999999999 bytes"):
        read_ovsdb_file(path)


def test_join_cluster_file_says_it_holds_nothing(tmp_path):
    path = tmp_path / "join.db"
    path.write_bytes(_record("CLUSTER", {
        "server_id": "11111111-2222-3333-4444-555555555555", "local_address": "tcp:1.2.3.4:1",
        "name": "OVN_Northbound", "remote_addresses": ["tcp:1.2.3.5:1"]}))
    with pytest.raises(InputError, match="not joined"):
        read_ovsdb_file(path)


def test_deleting_a_missing_row_is_an_error(tmp_path):
    raw = (FIXTURES / "standalone.db").read_bytes()
    path = tmp_path / "del.db"
    path.write_bytes(raw + _record("JSON", {
        "Logical_Switch": {"11111111-2222-3333-4444-555555555555": None}}))
    with pytest.raises(InputError, match="does not exist"):
        read_ovsdb_file(path)


def test_an_online_conversion_starts_the_database_afresh_from_its_schema():
    """ovsdb-client convert wrote an entry carrying the new schema and the whole
    database: rows written after it have the new column."""
    db = read_ovsdb_file(FIXTURES / "converted.db")
    assert "ofrace_note" in db.schema["tables"]["Logical_Switch"]["columns"]
    switches = {r["name"]: r for r in db.rows("Logical_Switch")}
    assert switches["sw0"]["ofrace_note"] == "after" and "sw2" in switches
    assert "sw1" not in switches      # deleted before the conversion, not brought back
