"""Rows matching a condition, each clause a monitor kept in its own cache file
(``database_cache.read_matching``): the next read is the changes since, rows move in and
out of a clause as ovsdb-server says, and whatever the cache holds the answer equals a
read without it."""

from __future__ import annotations

import copy
import json

import pytest

from ofrace.agents import ofrace_agent
from ofrace.collect import database_cache
from ofrace.collect.database_cache import read_matching

SCHEMA = {"name": "S", "version": "1.0.0", "cksum": "9 9", "tables": {"Flow": {"columns": {
    "datapath": {"type": {"key": {"type": "uuid"}, "min": 0, "max": 1}},
    "group": {"type": {"key": {"type": "uuid"}, "min": 0, "max": 1}},
    "actions": {"type": "string"},
}}}}
D1, D2 = "d1000000-0000-0000-0000-000000000000", "d2000000-0000-0000-0000-000000000000"
G1 = "a1000000-0000-0000-0000-000000000000"
COLUMNS = ["datapath", "group"]
CLAUSES = [["datapath", "==", ["uuid", D1]], ["group", "==", ["uuid", G1]]]


def uuid(n: int) -> str:
    return f"{n:08x}-0000-0000-0000-000000000000"


class Server:
    """A database with a transaction history: a monitor since a remembered id gets the
    changes of the rows matching its clause (a row that stops matching is deleted, one
    that starts is inserted), else every row that matches ("initial")."""

    def __init__(self):
        self.rows = {uuid(1): {"datapath": D1, "actions": "a"},
                     uuid(2): {"datapath": D2, "actions": "b"},
                     uuid(3): {"group": G1, "actions": "c"}}
        self.history = {"t0": copy.deepcopy(self.rows)}
        self.txn = "t0"
        self.asked = []
        self.sent = 0

    def commit(self, txn: str, rows: dict) -> None:
        self.rows = rows
        self.history[txn] = copy.deepcopy(rows)
        self.txn = txn

    @staticmethod
    def _matches(row: dict, clause: list) -> bool:
        return row.get(clause[0]) == clause[2][1]

    @staticmethod
    def _wire(row: dict, columns: list[str]) -> dict:
        return {c: ["uuid", row[c]] for c in columns if c in row}

    def __call__(self, monitors):
        answers = []
        for where, columns, last_id in monitors:
            self.asked.append(last_id)
            clause = where[0]
            now = {u: r for u, r in self.rows.items() if self._matches(r, clause)}
            if last_id in self.history:
                before = {u: r for u, r in self.history[last_id].items()
                          if self._matches(r, clause)}
                updates = {u: {"delete": None} for u in before.keys() - now.keys()}
                updates.update({u: {"insert": self._wire(now[u], columns)}
                                for u in now.keys() - before.keys()})
                answers.append({"found": True, "last_id": self.txn, "updates": {
                    "Flow": updates}})
            else:
                updates = {u: {"initial": self._wire(r, columns)} for u, r in now.items()}
                answers.append({"found": False, "last_id": self.txn,
                                "updates": {"Flow": updates}})
            self.sent += len(updates)
        return {"schema": SCHEMA, "server": {"cid": "c1"}, "monitors": answers}


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("OFRACE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("OFRACE_NO_CACHE", raising=False)
    return tmp_path / "cache"


def read(server, clauses=CLAUSES, **kw):
    rows = read_matching(server, "unix:/s.sock", "local", "S", "Flow", clauses, COLUMNS, **kw)
    database_cache.finish_writes()
    return rows


def uuids(rows):
    return [r["_uuid"] for r in rows]


def test_the_next_read_is_the_changes_and_equals_a_read_without_cache(cache_home):
    server = Server()
    first = read(server)
    assert uuids(first) == [uuid(1), uuid(3)]
    assert first[0] == {"_uuid": uuid(1), "datapath": D1, "group": []}
    assert server.asked == [None, None]
    assert len(list(cache_home.glob("where-*.json"))) == 2     # one file per clause
    rows = copy.deepcopy(server.rows)
    rows[uuid(2)]["datapath"] = D1                 # moves into the first clause
    rows[uuid(3)] = {"datapath": D2}               # leaves the second
    rows[uuid(4)] = {"group": G1}                  # a new one in the second
    server.commit("t1", rows)
    server.sent = 0
    again = read(server)
    assert server.asked[2:] == ["t0", "t0"]
    assert server.sent == 3                        # the changes only, not the 3 rows
    assert uuids(again) == [uuid(1), uuid(2), uuid(4)]
    assert again == read(server, use_cache=False)
    # negative control: the rows before the change are not what the server has now
    assert uuids(first) != uuids(again)


def test_a_forgotten_id_reads_the_clause_whole(cache_home):
    server = Server()
    read(server)
    server.history.clear()                         # the server's history moved on
    server.commit("t1", copy.deepcopy(server.rows))
    assert uuids(read(server)) == [uuid(1), uuid(3)]
    assert server.asked[2:] == ["t0", "t0"] and server.sent == 4


def test_rows_that_do_not_fit_the_changes_are_read_again(cache_home):
    server = Server()
    read(server)
    path = database_cache.where_path("unix:/s.sock", "local", "S", "Flow", CLAUSES[0],
                                     COLUMNS)
    doc = json.loads(path.read_text())             # rows not of this database
    doc["tables"]["Flow"] = []
    path.write_text(json.dumps(doc))
    rows = copy.deepcopy(server.rows)
    del rows[uuid(1)]
    server.commit("t1", rows)                      # deletes a row the cache lacks
    assert uuids(read(server)) == [uuid(3)]
    assert server.asked[2:] == ["t0", "t0", None]  # the clause that did not fit, again


def test_another_database_s_rows_are_not_taken(cache_home):
    server = Server()
    read(server)
    for path in cache_home.glob("where-*.json"):
        doc = json.loads(path.read_text())
        doc["identity"]["cksum"] = "0 0"
        path.write_text(json.dumps(doc))
    assert uuids(read(server)) == [uuid(1), uuid(3)]
    assert server.asked[2:] == ["t0", "t0", None, None]
    read(server)                                   # the files were replaced: this one's
    assert server.asked[6:] == ["t0", "t0"]


def test_a_clause_is_shared_by_reads_that_name_it(cache_home):
    server = Server()
    read(server, [CLAUSES[1]])
    read(server, CLAUSES)
    assert server.asked == [None, None, "t0"]      # the group's file was kept


def test_no_cache_keeps_nothing_and_a_standalone_database_is_not_kept(cache_home):
    server = Server()
    read(server, use_cache=False)
    assert not cache_home.exists() or not list(cache_home.glob("where-*.json"))
    server.txn = ofrace_agent.ZERO_UUID            # no transaction history: nothing to ask
    read(server)
    assert not list(cache_home.glob("where-*.json"))


def test_only_uuids_are_taken_and_files_are_bounded(cache_home, monkeypatch):
    server = Server()
    server.rows["not-a-uuid"] = {"datapath": D1}
    assert uuids(read(server)) == [uuid(1), uuid(3)]
    monkeypatch.setattr(database_cache, "MAX_WHERE_FILES", 3)
    for n in range(5):
        read(server, [["datapath", "==", ["uuid", uuid(100 + n)]]])
    assert len(list(cache_home.glob("where-*.json"))) == 3


def test_a_clause_read_again_replaces_its_file_even_when_nothing_matches(cache_home):
    server = Server()
    nothing = [["datapath", "==", ["uuid", "d9000000-0000-0000-0000-000000000000"]]]
    assert read(server, nothing) == []
    path = database_cache.where_path("unix:/s.sock", "local", "S", "Flow", nothing[0],
                                     COLUMNS)
    doc = json.loads(path.read_text())
    doc["identity"]["cksum"] = "0 0"               # not this database's
    path.write_text(json.dumps(doc))
    assert read(server, nothing) == [] and server.asked[1:] == ["t0", None]
    assert read(server, nothing) == [] and server.asked[3:] == ["t0"]   # not read twice


@pytest.mark.parametrize("doc, blobs", [
    ("not a document", {}),
    ({"monitor": [1]}, {}),
    ({"monitor": {"blob": [1]}}, {}),
    ({"monitor": {"blob": 1}}, {1: "[1, 2]"}),
    ({"monitor": {"blob": 1}}, {1: "[" * 100_000}),
    ({"monitor": {"blob": 2}}, {1: "{}"}),
])
def test_a_node_s_answer_that_is_not_a_monitor_s_is_an_agent_error(monkeypatch, doc, blobs):
    """Through a node, the monitors' answer is whatever its agent sent: anything not an
    answer is an AgentError (the caller then lists the flows with a query), never a
    traceback."""
    from ofrace.collect import agent
    from ofrace.collect.agent import AgentError
    from ofrace.collect.transport import Budget

    monkeypatch.setattr(agent, "run_agent_mode", lambda *_: (doc, blobs))
    fetch_many = database_cache.agent_fetch_many(None, Budget(5), {"table": "Flow"})
    with pytest.raises(AgentError):
        fetch_many([(CLAUSES[:1], COLUMNS, None)])
