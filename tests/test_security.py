"""Secrets never reach a snapshot or a message; what was removed is listed by place."""

import json
import sys
import zipfile

import pytest
from click.testing import CliRunner

from ofrace.cli import main
from ofrace.collect import secrets
from ofrace.snapshot import Database, Snapshot

PEM = ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n"
       "-----END PRIVATE KEY-----\n")
TOKEN = "SECRET-TOKEN-7f3a9c"
PSK = "swordfish-psk-0xC0FFEE"


def test_secret_map_entries_are_redacted_and_useful_ones_kept():
    rows = {"Interface": [{
        "_uuid": "u1", "name": "ipsec0", "type": "geneve",
        "options": {"psk": PSK, "remote_ip": "192.0.2.7", "key": "flow", "in_key": "77",
                    "remote_name": "hv2", "remote_cert": "/etc/ipsec/hv2.pem"},
        "external_ids": {"iface-id": "lsp1", "api-token": "t0k3n", "db_password": "pw1",
                         "ssl_key": "inline-key-material", "sort-key": "",
                         "private_key": "/etc/ssl/key.pem"},
    }]}
    places = secrets.redact_rows(rows, "hv1")
    row = rows["Interface"][0]
    assert row["options"] == {"psk": "<redacted>", "remote_ip": "192.0.2.7", "key": "flow",
                              "in_key": "77", "remote_name": "hv2",
                              "remote_cert": "/etc/ipsec/hv2.pem"}
    assert row["external_ids"] == {"iface-id": "lsp1", "api-token": "<redacted>",
                                   "db_password": "<redacted>", "ssl_key": "<redacted>",
                                   "sort-key": "", "private_key": "/etc/ssl/key.pem"}
    assert sorted(places) == sorted(f"hv1: Interface 'ipsec0' {c}" for c in (
        "options:psk", "external_ids:api-token", "external_ids:db_password",
        "external_ids:ssl_key"))
    assert secrets.redact_rows(rows, "hv1") == []    # already clean: nothing more to say


def test_pem_contents_and_remote_passwords_are_redacted_anywhere():
    tables = {
        "SSL": [{"_uuid": "abcdef0123", "private_key": PEM, "certificate": "/etc/c.pem",
                 "ca_cert": PEM.replace("PRIVATE KEY", "CERTIFICATE")}],
        "Manager": [{"_uuid": "m1", "target": "tcp:admin:hunter2@192.0.2.1:6640"}],
        "Connection": [{"_uuid": "c1", "target": "ptcp:6641", "other_config": {}}],
        "Open_vSwitch": [{"_uuid": "o", "external_ids": {
            "ovn-remote": "ssl:ovn:pa55@192.0.2.1:6642,tcp:192.0.2.2:6642"},
            "manager_options": ["https://u:p4ss@example.invalid/x"]}],
        "Logical_Flow": [{"_uuid": "l", "match": "outport == @pg1 && eth.src == 0a:58:0a:f4:02:01",
                          "actions": "next;", "external_ids": {"stage-name": "x"}}],
    }
    before_lflow = json.dumps(tables["Logical_Flow"])
    places = secrets.redact_rows(tables, "southbound")
    text = json.dumps(tables)
    for secret in ("MIIEvQ", "hunter2", "pa55", "p4ss"):
        assert secret not in text
    assert tables["SSL"][0]["certificate"] == "/etc/c.pem"
    assert tables["Manager"][0]["target"] == "tcp:admin:<redacted>@192.0.2.1:6640"
    assert tables["Open_vSwitch"][0]["external_ids"]["ovn-remote"] == (
        "ssl:ovn:<redacted>@192.0.2.1:6642,tcp:192.0.2.2:6642")
    assert json.dumps(tables["Logical_Flow"]) == before_lflow   # '@pg1' and MACs untouched
    assert "southbound: SSL 'abcdef01' private_key" in places
    assert len(places) == 5


def test_template_secrets_and_scrub():
    found = secrets.template_secrets(
        f"kubectl --token={TOKEN} --password hunter2 -H 'Authorization: Bearer abcd1234' "
        "exec {node} --", {"API_TOKEN": "envsecret", "OVS_RUNDIR": "/var/run/openvswitch"})
    assert set(found) == {TOKEN, "hunter2", "abcd1234", "envsecret"}
    assert secrets.scrub(f"error: token {TOKEN} rejected", found) == (
        "error: token <redacted> rejected")
    # a path in an env value is not a secret and stays in messages
    assert secrets.scrub("cannot open /var/run/openvswitch/db.sock", found) == (
        "cannot open /var/run/openvswitch/db.sock")


def test_redact_database_remote_and_error():
    db = Database(name="northbound", remote="ssl:nb:s3cr3t@192.0.2.9:6641",
                  error="ssl:nb:s3cr3t@192.0.2.9:6641: connection refused",
                  tables={"NB_Global": [{"_uuid": "n", "options": {"ipsec_psk": "x"}}]})
    record = []
    secrets.redact_database(db, record)
    assert "s3cr3t" not in json.dumps([db.remote, db.error, db.tables])
    assert record == ["northbound: NB_Global 'n' options:ipsec_psk",
                      "northbound: remote (password)",
                      "northbound: error text (PEM or URL password)"]


FAKE_NODE = r'''
import json, sys, time
node = sys.argv[-1] if not sys.argv[-1].startswith("python") else "?"
if "--fail" in sys.argv:
    sys.stderr.write("auth failed for token %s\n" % sys.argv[1].split("=", 1)[1])
    sys.exit(3)
now = time.time()
doc = {
  "agent_version": 2, "hostname": "hv1", "system_id": "id-hv1", "integration_bridge": "br-int",
  "ovs_version": "3.3.0", "ovn_version": "24.03.0", "dpif": "", "bridges": {},
  "ovsdb": {
    "Open_vSwitch": [{"_uuid": "o1", "external_ids": {"system-id": "id-hv1",
                      "ovn-remote": "tcp:192.0.2.1:6642"}, "other_config": {}}],
    "Bridge": [], "Port": [],
    "Interface": [{"_uuid": "i1", "name": "ipsec0", "type": "geneve", "ofport": 5,
                   "options": {"psk": "PSKVALUE", "remote_ip": "192.0.2.7", "key": "flow"},
                   "external_ids": {"iface-id": "lsp-kept"}, "error": [], "mac_in_use": []}],
    "SSL": [{"_uuid": "s1", "private_key": "PEMVALUE", "certificate": "/etc/ssl/c.pem",
             "ca_cert": "/etc/ssl/ca.pem"}]},
  "commands": [{"argv": ["ovs-vsctl", "show"], "rc": 1, "started": now, "elapsed": 0.1,
                "error": "wrapper echoed TOKENVALUE"}],
  "errors": [{"what": "ovs-appctl", "error": "rejected TOKENVALUE"}],
  "started": now, "finished": now,
}
data = json.dumps(doc).encode()
sys.stdout.buffer.write(b"D 0 %d\n" % len(data) + data)
'''


@pytest.fixture
def fake_nodes(tmp_path):
    script = tmp_path / "fake_node.py"
    script.write_text(FAKE_NODE.replace("PSKVALUE", PSK).replace("TOKENVALUE", TOKEN)
                      .replace("PEMVALUE", PEM.replace("\n", "\\n")))
    good = f"hv1=exec:{sys.executable} {script} --token={TOKEN} {{node}}"
    bad = f"hv2=exec:{sys.executable} {script} --token={TOKEN} --fail {{node}}"
    return good, bad


def _all_text(path) -> str:
    with zipfile.ZipFile(path) as archive:
        return "".join(archive.read(name).decode() for name in archive.namelist())


def test_collect_keeps_secrets_out_of_the_snapshot_and_every_message(fake_nodes, tmp_path):
    good, bad = fake_nodes
    out = tmp_path / "s.ofr"
    runner = CliRunner()
    result = runner.invoke(main, ["collect", "--node", good, "--node", bad, "-o", str(out)])
    assert result.exit_code == 1, result.output       # partial: hv2 failed
    saved = _all_text(out)
    shown = runner.invoke(main, ["show", str(out)])
    as_json = runner.invoke(main, ["show", "--json", str(out)])
    for secret in (TOKEN, PSK, "MIIEvQ", "--token"):
        for where, text in (("snapshot", saved), ("collect output", result.output),
                            ("show", shown.output), ("show --json", as_json.output)):
            assert secret not in text, f"{secret!r} in {where}"
    # the useful values are still there (not everything was blanked)
    snapshot = Snapshot.load(out)
    iface = snapshot.chassis["hv1"].ovsdb["Interface"][0]
    assert iface["options"] == {"psk": "<redacted>", "remote_ip": "192.0.2.7", "key": "flow"}
    assert iface["external_ids"] == {"iface-id": "lsp-kept"}
    assert snapshot.chassis["hv1"].ovsdb["SSL"][0]["certificate"] == "/etc/ssl/c.pem"
    assert snapshot.chassis["hv1"].transport.startswith("exec:python")
    assert "auth failed for token <redacted>" in snapshot.chassis["hv2"].problems[0].error
    # ... and `show` says where something was removed, without the values
    assert "hv1: Interface 'ipsec0' options:psk" in shown.output
    assert "hv1: SSL 's1' private_key" in shown.output
    assert "hv1: Interface 'ipsec0' options:psk" in json.loads(as_json.output)["redacted"]
    assert snapshot.redacted == Snapshot.load(out).redacted


def test_snapshot_without_redacted_list_still_loads(tmp_path):
    snapshot = Snapshot()
    path = tmp_path / "old.ofr"
    snapshot.save(path)
    with zipfile.ZipFile(path) as archive:
        doc = json.loads(archive.read("snapshot.json"))
    del doc["redacted"]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("snapshot.json", json.dumps(doc))
    assert Snapshot.load(path).redacted == []


@pytest.mark.parametrize("topology", ["kind", "basic", "acl"])
def test_real_lab_data_has_nothing_to_redact(topology):
    """No false positives: every OVSDB row of the recorded labs comes through unchanged."""
    import copy

    from conftest import FIXTURES, recorded

    if not (FIXTURES / topology).is_dir():
        pytest.skip(f"no recorded {topology} snapshot")
    snapshot, _ = recorded(topology)
    sources = [(name, ch.ovsdb) for name, ch in snapshot.chassis.items()]
    sources += [(db.name, db.tables) for db in (snapshot.southbound, snapshot.northbound) if db]
    rows = sum(len(r) for _, tables in sources for r in tables.values())
    assert rows > 100
    for where, tables in sources:
        before = copy.deepcopy(tables)
        assert secrets.redact_rows(tables, where) == []
        assert tables == before
