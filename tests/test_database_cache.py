"""The database cache: update2 changes applied to cached rows, the monitor's decoding
equal to ovsdb_select's, and a cache that is corrupt, foreign or unsafe ignored."""

from __future__ import annotations

import copy
import json
import os
import stat

import pytest

from ofrace.agents import ofrace_agent
from ofrace.collect import database_cache
from ofrace.collect.database_cache import apply_changes, read_database
from ofrace.errors import InputError

U1 = "11111111-1111-1111-1111-111111111111"
U2 = "22222222-2222-2222-2222-222222222222"
U3 = "33333333-3333-3333-3333-333333333333"
V1 = "aaaaaaaa-0000-0000-0000-000000000001"
V2 = "aaaaaaaa-0000-0000-0000-000000000002"
TXN1 = "bbbbbbbb-0000-0000-0000-000000000001"
TXN2 = "bbbbbbbb-0000-0000-0000-000000000002"

SCHEMA = {"name": "T", "version": "1.0.0", "cksum": "1 2", "tables": {"Thing": {"columns": {
    "name": {"type": "string"},
    "count": {"type": "integer"},
    "weight": {"type": "real"},
    "up": {"type": "boolean"},
    "peer": {"type": {"key": {"type": "uuid"}, "min": 0, "max": 1}},
    "owner": {"type": {"key": {"type": "uuid"}}},
    "tag": {"type": {"key": "integer", "min": 0, "max": 1}},
    "addresses": {"type": {"key": "string", "min": 0, "max": "unlimited"}},
    "ports": {"type": {"key": {"type": "uuid"}, "min": 0, "max": "unlimited"}},
    "options": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}},
    "refs": {"type": {"key": "string", "value": {"type": "uuid"}, "min": 0,
                      "max": "unlimited"}},
}}}}

# One row as ovsdb-client query prints it (every column), and as an update2 "initial"
# sends it (default values left out: ovsdb/monitor.c).
WIRE_FULL = {"_uuid": ["uuid", U1], "_version": ["uuid", V1], "addresses": ["set", ["b", "a"]],
             "count": 0, "name": "one", "options": ["map", [["k", "v"]]], "owner": ["uuid", U2],
             "peer": ["set", []], "ports": ["uuid", U3], "refs": ["map", []], "tag": 7,
             "up": False, "weight": 0}
WIRE_INITIAL = {"_version": ["uuid", V1], "addresses": ["set", ["b", "a"]], "name": "one",
                "options": ["map", [["k", "v"]]], "owner": ["uuid", U2], "ports": ["uuid", U3],
                "tag": 7}


def selected_rows(rows):
    """What ovsdb_select decodes from a query's rows (the reference decoding)."""
    return ofrace_agent._decode_rows({"rows": rows}, ofrace_agent.column_decoders(
        SCHEMA["tables"]["Thing"]))


def monitor_rows(updates):
    decoded = ofrace_agent.decode_monitor_updates(SCHEMA, {"Thing": updates})
    return {uuid: cells for uuid, (_, cells) in decoded["Thing"].items()}


def test_monitor_decoding_equals_select_decoding_key_order_included():
    selected = selected_rows([WIRE_FULL])[0]
    monitored = monitor_rows({U1: {"initial": WIRE_INITIAL}})[U1]
    assert json.dumps(monitored) == json.dumps(selected)
    # a control: a row whose defaults were not filled in differs
    bare = dict(monitored)
    del bare["count"]
    assert json.dumps(bare) != json.dumps(selected)


def cached(**changes):
    row = selected_rows([WIRE_FULL])[0]
    row.update(changes)
    return {"Thing": {U1: row}}


def modify(cells):
    return ofrace_agent.decode_monitor_updates(SCHEMA, {"Thing": {U1: {"modify": cells}}})


@pytest.mark.parametrize("cells, column, expected", [
    ({"name": "two"}, "name", "two"),                                 # scalar: the new value
    ({"count": 5}, "count", 5),
    ({"up": True}, "up", True),
    ({"peer": ["uuid", U3]}, "peer", U3),                             # optional: new value
    ({"tag": ["set", []]}, "tag", []),                                # optional cleared
    ({"addresses": "a"}, "addresses", ["b"]),                         # set: one removed
    ({"addresses": ["set", ["c", "a"]]}, "addresses", ["b", "c"]),   # removed and added
    ({"ports": ["set", [["uuid", U2], ["uuid", U3]]]}, "ports", [U2]),
    ({"options": ["map", [["k", "v"]]]}, "options", {}),             # map: same pair → gone
    ({"options": ["map", [["k", "w"]]]}, "options", {"k": "w"}),     # new value → replaced
    ({"options": ["map", [["a", "1"]]]}, "options", {"a": "1", "k": "v"}),  # added, sorted
    ({"refs": ["map", [["x", ["uuid", U2]]]]}, "refs", {"x": U2}),
])
def test_modify_applies_update2_diffs(cells, column, expected):
    rows = cached()
    assert apply_changes(rows, modify(cells), SCHEMA) == 1
    assert rows["Thing"][U1][column] == expected
    assert list(rows["Thing"][U1]) == list(cached()["Thing"][U1])   # key order kept


def test_modified_set_and_map_keep_ovsdb_order():
    rows = cached()
    apply_changes(rows, modify({"addresses": ["set", ["0", "z"]],
                                "options": ["map", [["0", "x"]]]}), SCHEMA)
    assert rows["Thing"][U1]["addresses"] == ["0", "a", "b", "z"]
    assert list(rows["Thing"][U1]["options"]) == ["0", "k"]


def test_insert_and_delete():
    rows = cached()
    changes = ofrace_agent.decode_monitor_updates(SCHEMA, {"Thing": {
        U1: {"delete": None}, U2: {"insert": {"_version": ["uuid", V2], "name": "new",
                                              "owner": ["uuid", U1]}}}})
    assert apply_changes(rows, changes, SCHEMA) == 2
    assert list(rows["Thing"]) == [U2]
    assert rows["Thing"][U2]["addresses"] == [] and rows["Thing"][U2]["options"] == {}
    assert rows["Thing"][U2]["_uuid"] == U2 and rows["Thing"][U2]["weight"] == 0


@pytest.mark.parametrize("change", [{U2: {"delete": None}}, {U2: {"modify": {"name": "x"}}},
                                    {U1: {"insert": {"name": "again"}}}])
def test_a_change_that_does_not_fit_the_cache_is_a_mismatch(change):
    changes = ofrace_agent.decode_monitor_updates(SCHEMA, {"Thing": change})
    with pytest.raises(database_cache.CacheMismatch):
        apply_changes(cached(), changes, SCHEMA)


class FakeServer:
    """monitor_cond_since as ovsdb-server answers it, over rows it holds in wire form."""

    def __init__(self, clustered=True):
        self.rows = {U1: dict(WIRE_INITIAL)}
        self.txn = TXN1 if clustered else ofrace_agent.ZERO_UUID
        self.pending = {}       # the changes since self.known
        self.known = self.txn
        self.asked = []

    def change(self, uuid, update, txn):
        self.pending[uuid] = update
        if "delete" in update:
            self.rows.pop(uuid)
        elif "insert" in update:
            self.rows[uuid] = update["insert"]
        self.txn = txn

    def __call__(self, last_id):
        self.asked.append(last_id)
        found = last_id is not None and last_id == self.known and self.txn != ofrace_agent.ZERO_UUID
        updates = self.pending if found else {u: {"initial": r} for u, r in self.rows.items()}
        return {"schema": SCHEMA, "server": {"cid": "c1", "model": "clustered"},
                "found": found, "last_id": self.txn, "updates": {"Thing": updates}}


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("OFRACE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("OFRACE_NO_CACHE", raising=False)
    return tmp_path / "cache"


def read(server, **kw):
    found = read_database(server, "unix:/x.sock", "local", "T", ("Thing",), **kw)
    database_cache.finish_writes()     # the file is written in the background
    return found


def test_second_read_asks_for_changes_and_equals_a_full_read(cache_home):
    server = FakeServer()
    first = read(server)
    assert first.read_as == "full" and server.asked == [None]
    server.change(U1, {"modify": {"name": "renamed", "_version": ["uuid", V2]}}, TXN2)
    server.change(U2, {"insert": {"_version": ["uuid", V1], "owner": ["uuid", U1]}}, TXN2)
    second = read(server)
    assert server.asked[-1] == TXN1
    assert second.read_as == f"changes since {TXN1} (2 rows)"
    server.rows[U1] = dict(server.rows[U1], name="renamed", _version=["uuid", V2])
    fresh = read(server, use_cache=False)
    assert fresh.read_as == "full"
    assert json.dumps(second.tables) == json.dumps(fresh.tables)
    assert [r["_uuid"] for r in fresh.tables["Thing"]] == [U1, U2]


def test_stale_cache_without_the_diff_differs(cache_home):
    """Negative control: the same server state, the change not applied, differs."""
    server = FakeServer()
    read(server)
    server.change(U1, {"modify": {"name": "renamed"}}, TXN2)
    server.rows[U1] = dict(server.rows[U1], name="renamed")
    stale = database_cache.load_cache(
        database_cache.cache_path("unix:/x.sock", "local", "T", ("Thing",)))
    fresh = read(server, use_cache=False)
    assert json.dumps(stale["tables"]) != json.dumps(fresh.tables)


def test_found_false_is_a_full_read(cache_home):
    server = FakeServer()
    read(server)
    server.known = "cccccccc-0000-0000-0000-000000000000"   # the id left the history
    again = read(server)
    assert server.asked[-1] == TXN1 and again.read_as == "full"
    assert [r["name"] for r in again.tables["Thing"]] == ["one"]


def test_standalone_database_is_not_cached(cache_home):
    server = FakeServer(clustered=False)
    read(server)
    read(server)
    assert server.asked == [None, None]
    assert not database_cache.cache_path("unix:/x.sock", "local", "T", ("Thing",)).exists()


def test_other_cluster_id_is_a_full_read(cache_home):
    server = FakeServer()
    read(server)
    path = database_cache.cache_path("unix:/x.sock", "local", "T", ("Thing",))
    doc = json.loads(path.read_text())
    doc["identity"]["cid"] = "another"
    path.write_text(json.dumps(doc))
    assert read(server).read_as == "full"
    assert server.asked == [None, TXN1, None]


@pytest.mark.parametrize("damage", ["", "{", "[]", '{"format": 1}', "\x00\xff"])
def test_corrupt_cache_is_ignored(cache_home, damage):
    server = FakeServer()
    read(server)
    database_cache.cache_path("unix:/x.sock", "local", "T", ("Thing",)).write_text(damage)
    again = read(server)
    assert again.read_as == "full" and server.asked == [None, None]


def test_cache_permissions_and_symlinks(cache_home, tmp_path):
    server = FakeServer()
    read(server)
    path = database_cache.cache_path("unix:/x.sock", "local", "T", ("Thing",))
    assert stat.S_IMODE(os.stat(cache_home).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not [p for p in cache_home.iterdir() if p.name.startswith(".tmp-")]
    # a symlink in the cache's place is never followed
    target = tmp_path / "elsewhere.json"
    target.write_text(path.read_text())
    path.unlink()
    path.symlink_to(target)
    assert read(server).read_as == "full"
    assert server.asked[-1] is None


def test_rows_with_secrets_are_not_cached(cache_home):
    server = FakeServer()
    server.rows[U1] = dict(WIRE_INITIAL, options=["map", [["password", "hunter2"]]])
    read(server)
    assert not database_cache.cache_path("unix:/x.sock", "local", "T", ("Thing",)).exists()
    rows = {"Thing": [{"options": {"psk": "x"}, "ca": "-----BEGIN CERTIFICATE-----",
                       "remotes": ["tcp:u:p@h"]}]}
    assert database_cache.holds_secrets(rows)
    assert rows == {"Thing": [{"options": {"psk": "x"}, "ca": "-----BEGIN CERTIFICATE-----",
                               "remotes": ["tcp:u:p@h"]}]}, "looked at, not changed"
    assert not database_cache.holds_secrets({"Thing": [{"options": {"key": "5"}}]})


def test_other_tables_have_their_own_cache(cache_home):
    server = FakeServer()
    read(server)
    read_database(server, "unix:/x.sock", "local", "T", ("Thing", "Other"))
    assert read(server).read_as.startswith("changes since ")
    assert len(list(cache_home.glob("*.json"))) == 2


def test_no_cache_reads_whole(cache_home, monkeypatch):
    server = FakeServer()
    read(server)
    monkeypatch.setenv("OFRACE_NO_CACHE", "1")
    assert read(server).read_as == "full" and server.asked == [None, None]


def test_holds_secrets_leaves_rows_alone():
    tables = {"Thing": [{"options": {"password": "x"}}]}
    before = copy.deepcopy(tables)
    assert database_cache.holds_secrets(tables)
    assert tables == before


def test_a_change_that_brings_a_secret_drops_the_cache(cache_home):
    server = FakeServer()
    read(server)
    path = database_cache.cache_path("unix:/x.sock", "local", "T", ("Thing",))
    assert path.exists()
    server.change(U1, {"modify": {"options": ["map", [["password", "hunter2"]]]}}, TXN2)
    second = read(server)
    assert second.read_as.startswith("changes since ")
    assert second.tables["Thing"][0]["options"] == {"k": "v", "password": "hunter2"}
    assert not path.exists()


def test_no_home_directory_means_no_cache(monkeypatch):
    for name in ("OFRACE_CACHE_DIR", "XDG_CACHE_HOME", "OFRACE_NO_CACHE"):
        monkeypatch.delenv(name, raising=False)

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(database_cache.Path, "home", no_home)
    server = FakeServer()
    assert read(server).read_as == "full" and read(server).read_as == "full"


def test_kept_rows_were_checked_and_only_the_rows_that_came_are_checked_again(cache_home):
    server = FakeServer()
    checked: list[dict] = []
    first = read(server, check=checked.append)
    assert first.checked and [len(t["Thing"]) for t in checked] == [len(server.rows)]
    server.change(U1, {"modify": {"name": "renamed", "_version": ["uuid", V2]}}, TXN2)
    checked.clear()
    second = read(server, check=checked.append)
    assert second.checked
    assert [[r["_uuid"] for r in t["Thing"]] for t in checked] == [[U1]]   # the change only
    assert not read(server).checked            # no check given: the caller checks
    checked.clear()
    third = read(server, check=checked.append)  # kept unchecked by the read before
    assert third.checked and [len(t["Thing"]) for t in checked] == [len(server.rows)]


def test_a_row_that_fails_the_check_is_not_kept(cache_home):
    server = FakeServer()
    read(server)
    server.change(U1, {"modify": {"name": "bad", "_version": ["uuid", V2]}}, TXN2)

    def refuse(found):
        if any(r.get("name") == "bad" for rows in found.values() for r in rows):
            raise InputError("a bad row")
    with pytest.raises(InputError):
        read(server, check=refuse)
    kept = database_cache.load_cache(
        database_cache.cache_path("unix:/x.sock", "local", "T", ("Thing",)))
    assert kept["last_id"] == TXN1           # still the first read's rows, not the bad one
    assert all(r.get("name") != "bad" for r in kept["tables"]["Thing"])


def test_a_cache_of_the_earlier_format_is_not_used(cache_home):
    server = FakeServer()
    read(server)
    path = database_cache.cache_path("unix:/x.sock", "local", "T", ("Thing",))
    doc = json.loads(path.read_text())
    doc["format"] = 1                          # rows kept before they were checked
    path.write_text(json.dumps(doc))
    assert read(server).read_as == "full"


def test_only_the_rows_that_came_may_hold_secrets_and_they_are_redacted(cache_home):
    """The cache keeps no secret, so a read from it names the rows the server sent as
    the only ones to redact; a secret among them is redacted like any other."""
    from ofrace.collect import secrets
    from ofrace.snapshot import Database

    server = FakeServer()
    first = read(server)
    assert first.came is None                  # read whole: every row may hold one
    server.change(U2, {"insert": {"_version": ["uuid", V1], "owner": ["uuid", U1],
                                  "options": ["map", [["password", "hunter2"]]]}}, TXN2)
    second = read(server)
    assert [r["_uuid"] for r in second.came["Thing"]] == [U2]
    db = Database(name="southbound", remote="unix:/x.sock", tables=second.tables)
    record: list[str] = []
    secrets.redact_database(db, record, second.came)
    assert {r["_uuid"]: r["options"] for r in db.tables["Thing"]}[U2] == {
        "password": secrets.REDACTED}
    assert record == ["southbound: Thing '' options:password"]    # its name is ""
