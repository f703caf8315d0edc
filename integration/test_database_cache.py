"""The database cache on a real lab with clustered NB/SB: a second read gets only the
changes (monitor_cond_since found the last transaction id), its tables equal a whole
read, and a trace with the cache equals one without it; a stale cache differs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ofrace.collect import database_cache
from ofrace.collect.cluster import NORTHBOUND_TABLES, SOUTHBOUND_TABLES, collect_database
from ofrace.collect.inventory import DatabaseSpec
from ofrace.render.trace_json import without_counters
from ofrace.snapshot import Snapshot

TRACE = ["--from", "sw0-port1", "--to", "10.0.0.2:80", "--tcp"]


@pytest.fixture(scope="module")
def clustered_lab(lab_slot):
    """The basic topology with central's NB and SB clustered (Raft of one); taken down
    after, so no later test gets it in place of the standard one."""
    lab = lab_slot.lab
    lab.up("basic", clustered_databases=True)
    lab_slot.ups += 1
    # ovsdb-server keeps no more history (in atoms) than the database holds
    # (ovsdb/transaction.c ovsdb_txn_history_run): 20,000 addresses in the NB and the SB
    # (northd copies address sets) keep the few transactions this test makes
    for n in range(8):
        addresses = ",".join(f"10.{100 + n}.{i // 250}.{i % 250 + 1}" for i in range(2500))
        lab.nbctl("--wait=sb", "create", "Address_Set", f"name=cache_test_{n}",
                  f"addresses={addresses}")
    yield lab
    lab.down()


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("OFRACE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("OFRACE_NO_CACHE", raising=False)
    return tmp_path / "cache"


def read(lab, which, use_cache=True):
    name, tables, sock = {
        "sb": ("southbound", SOUTHBOUND_TABLES, lab.layout.sb_socket),
        "nb": ("northbound", NORTHBOUND_TABLES, lab.layout.nb_socket)}[which]
    if not use_cache:
        database_cache.disable()
    try:
        return collect_database(name, tables, DatabaseSpec(remote=f"unix:{sock}"), {},
                                Snapshot())
    finally:
        database_cache._disabled = False


def rows_by_uuid(db):
    return {(table, row["_uuid"]): json.dumps(row) for table, rows in db.tables.items()
            for row in rows}


def trace(lab, *extra):
    run = subprocess.run([sys.executable, "-m", "ofrace", "trace", "-i",
                          str(lab.dir / "inventory.toml"), "--json", *extra, *TRACE],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode in (0, 1), run.stderr
    return without_counters(json.loads(run.stdout))


def test_second_read_is_the_changes_and_equals_a_whole_read(clustered_lab, cache_dir):
    lab = clustered_lab
    first = {which: read(lab, which) for which in ("sb", "nb")}
    assert all(db.read_as == "full" and db.error is None for db in first.values())
    lab.nbctl("--wait=sb", "ls-add", "cache-sw")
    lab.nbctl("--wait=sb", "lsp-add", "cache-sw", "cache-p1", "--",
              "lsp-set-addresses", "cache-p1", "02:00:00:00:07:01 10.78.0.1")
    lab.nbctl("--wait=hv", "acl-add", "cache-sw", "to-lport", "1001",
              "ip4.src == 10.78.0.9", "drop")
    for which in ("sb", "nb"):
        again, whole = read(lab, which), read(lab, which, use_cache=False)
        assert again.read_as.startswith("changes since "), (which, again.read_as)
        changed = int(again.read_as.rsplit("(", 1)[1].split()[0])
        # only the changed rows came: as many as differ between the first read and now
        # (the switch's flows move into a datapath group: most of a small SB changes)
        before, now = rows_by_uuid(first[which]), rows_by_uuid(whole)
        differ = [k for k in before.keys() | now.keys() if before.get(k) != now.get(k)]
        assert 0 < changed == len(differ) < len(now), (which, changed, len(differ))
        assert whole.read_as == "full"
        assert json.dumps(again.tables) == json.dumps(whole.tables)
        # a control: the change is there, so the comparison is not vacuous
        assert json.dumps(first[which].tables) != json.dumps(whole.tables)


# the databases' rows (paths.json, the trace's path, lives beside them), and the lists
# of the logical flows of each datapath the trace crossed
@pytest.mark.parametrize("kept", ["OVN_*.json", "where-*.json"])
def test_trace_with_the_cache_equals_without_and_a_stale_cache_differs(clustered_lab,
                                                                      cache_dir, kept):
    lab = clustered_lab
    trace(lab)                                   # fills the cache
    stale = {p.name: json.loads(p.read_text()) for p in cache_dir.glob(kept)}
    assert stale, f"the first trace kept no {kept}"
    lab.nbctl("--wait=hv", "acl-add", "sw0", "to-lport", "1002",
              "ip4.src == 10.0.0.1 && tcp.dst == 80", "drop")
    try:
        cached, whole = trace(lab), trace(lab, "--no-cache")
        assert cached == whole
        assert whole["verdicts"][0]["kind"] != "delivered"
        # negative control: the files before the change, presented as current (the
        # newest transaction id, so the server sends no changes), trace differently
        # (with stale lists, the ACL's flow goes unnamed)
        for name, doc in stale.items():
            current = json.loads((cache_dir / name).read_text())
            (cache_dir / name).write_text(json.dumps(dict(doc, last_id=current["last_id"])))
        assert trace(lab) != whole
    finally:
        lab.nbctl("--wait=hv", "acl-del", "sw0")


def listed(lab, clauses, use_cache=True):
    """The logical flows matching ``clauses`` as a live trace lists them, and what the
    server sent for each clause: (found, how many updates)."""
    sent = []
    fetch = database_cache.local_fetch_many(f"unix:{lab.layout.sb_socket}", "OVN_Southbound",
                                            "Logical_Flow", None, 60, 1 << 30)

    def recorded(monitors):
        answer = fetch(monitors)
        sent.extend((m["found"], len(m["updates"].get("Logical_Flow", {})))
                    for m in answer["monitors"])
        return answer
    rows = database_cache.read_matching(recorded, f"unix:{lab.layout.sb_socket}", "local",
                                        "OVN_Southbound", "Logical_Flow", clauses,
                                        ["logical_datapath", "logical_dp_group"],
                                        use_cache=use_cache)
    database_cache.finish_writes()
    return [r["_uuid"] for r in rows], sent


def test_logical_flows_listed_by_datapath_are_kept_and_read_as_changes(clustered_lab,
                                                                       cache_dir):
    lab = clustered_lab
    sb = read(lab, "sb")
    sw0 = [d["_uuid"] for d in sb.tables["Datapath_Binding"]
           if d["external_ids"].get("name") == "sw0"]
    groups = [g["_uuid"] for g in sb.tables.get("Logical_DP_Group", [])
              if sw0[0] in g["datapaths"]]
    clauses = ([["logical_datapath", "==", ["uuid", sw0[0]]]]
               + [["logical_dp_group", "==", ["uuid", g]] for g in groups])
    first, sent = listed(lab, clauses)
    assert first and all(found is False for found, _ in sent)
    # what `select` finds, clause by clause (the reference)
    selected = set()
    for clause in clauses:
        out = subprocess.run(["ovsdb-client", "query", f"unix:{lab.layout.sb_socket}",
                              json.dumps(["OVN_Southbound", {
                                  "op": "select", "table": "Logical_Flow",
                                  "where": [clause], "columns": ["_uuid"]}])],
                             capture_output=True, text=True, check=True, timeout=60)
        selected |= {row["_uuid"][1] for row in json.loads(out.stdout)[0]["rows"]}
    assert set(first) == selected
    again, sent = listed(lab, clauses)
    assert again == first and sent == [(True, 0)] * len(clauses)
    lab.nbctl("--wait=sb", "acl-add", "sw0", "to-lport", "1003", "ip4.src == 10.0.0.99",
              "drop")
    try:
        changed, sent = listed(lab, clauses)
        assert all(found for found, _ in sent) and 0 < sum(n for _, n in sent) < len(first)
        assert changed == listed(lab, clauses, use_cache=False)[0]
        assert changed != first           # the control: the ACL's flows are there
    finally:
        lab.nbctl("--wait=sb", "acl-del", "sw0", "to-lport", "1003", "ip4.src == 10.0.0.99")
