"""Record real OVSDB database files for tests/test_ovsdb_file.py.

Made by the real tools, once, in a private temporary directory: ``ovsdb-tool create``
(standalone) and ``ovsdb-tool create-cluster`` (a one-server cluster; ``converted``:
then converted online to a schema with one more column), a private
``ovsdb-server`` on a unix socket, ``ovn-nbctl`` changes that insert, modify (maps
and sets, so ovsdb-server writes column diffs), and delete rows, then
``ovsdb-client -f json dump`` of the served database: the rows the file must
replay to (and ``-f list dump``, the text sos keeps).  Writes
tests/fixtures/ovsdb/{standalone,clustered,converted}.{db,dump.json,list.txt}.

    python3 scripts/record_ovsdb_files.py
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCHEMA = "/usr/share/ovn/ovn-nb.ovsschema"
OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "ovsdb"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def _changes(db: str) -> None:
    """Inserts, map and set modifications (diffs), deletions, a comment."""
    nbctl = ["ovn-nbctl", "--no-leader-only", f"--db={db}"]
    steps = [
        ["ls-add", "sw0"], ["ls-add", "sw1"], ["lr-add", "lr0"],
        ["lsp-add", "sw0", "p1"], ["lsp-add", "sw0", "p2"], ["lsp-add", "sw1", "p3"],
        ["lsp-set-addresses", "p1", "00:00:00:00:00:01 10.0.0.1"],
        ["lsp-set-addresses", "p2", "00:00:00:00:00:02 10.0.0.2", "router"],
        ["set", "Logical_Switch_Port", "p1", "external_ids:a=1", "external_ids:b=2"],
        ["set", "Logical_Switch_Port", "p1", "external_ids:a=3"],
        ["remove", "Logical_Switch_Port", "p1", "external_ids", "b"],
        ["lrp-add", "lr0", "lrp0", "00:00:00:00:01:00", "10.0.0.254/24"],
        ["lb-add", "lb0", "30.0.0.1:80", "10.0.0.1:8080,10.0.0.2:8080", "tcp"],
        ["ls-lb-add", "sw0", "lb0"],
        ["acl-add", "sw0", "to-lport", "1000", "ip4.src == 10.0.0.2", "drop"],
        ["lsp-del", "p3"],
        ["lb-add", "lb0", "30.0.0.2:80", "10.0.0.1:8080", "tcp"],
        ["set", "Logical_Router", "lr0", "options:chassis=hv1"],
        ["ls-del", "sw1"],
        ["lsp-set-addresses", "p2", "00:00:00:00:00:02 10.0.0.2"],
        ["--", "--id=@c", "create", "Address_Set", "name=as1",
         "addresses=\"10.0.0.1\",\"10.0.0.2\""],
        ["remove", "Address_Set", "as1", "addresses", "\"10.0.0.1\""],
        ["add", "Address_Set", "as1", "addresses", "\"10.0.0.3\""],
    ]
    for step in steps:
        _run(*nbctl, *step)


def _serve(workdir: Path, dbfile: Path, sock: Path):
    return subprocess.Popen(
        ["ovsdb-server", str(dbfile), f"--remote=punix:{sock}",
         f"--unixctl={workdir / 'ctl'}", "--no-chdir", f"--log-file={workdir / 'log'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait(sock: Path) -> None:
    for _ in range(100):
        if sock.exists():
            try:
                _run("ovsdb-client", "list-dbs", f"unix:{sock}")
                return
            except subprocess.CalledProcessError:
                pass
        time.sleep(0.1)
    raise SystemExit(f"ovsdb-server did not start on {sock}")


def _converted_schema(workdir: Path) -> Path:
    """The NB schema with one more column: an online conversion writes an entry that
    carries a schema (the database starts afresh from it)."""
    schema = json.loads(Path(SCHEMA).read_text())
    major, minor, patch = schema["version"].split(".")
    schema["version"] = f"{major}.{minor}.{int(patch) + 1}"
    schema["tables"]["Logical_Switch"]["columns"]["ofrace_note"] = {
        "type": {"key": "string", "min": 0, "max": 1}}
    path = workdir / "converted.ovsschema"
    path.write_text(json.dumps(schema))
    return path


def record(kind: str, workdir: Path) -> None:
    dbfile = workdir / f"{kind}.db"
    if kind == "standalone":
        _run("ovsdb-tool", "create", str(dbfile), SCHEMA)
    else:
        _run("ovsdb-tool", "create-cluster", str(dbfile), SCHEMA,
             f"tcp:127.0.0.1:{_free_port()}")
    sock = workdir / f"{kind}.sock"
    server = _serve(workdir, dbfile, sock)
    try:
        _wait(sock)
        _changes(f"unix:{sock}")
        if kind == "converted":
            _run("ovsdb-client", "convert", f"unix:{sock}", str(_converted_schema(workdir)))
            _run("ovsdb-client", "transact", f"unix:{sock}", json.dumps([
                "OVN_Northbound", {"op": "update", "table": "Logical_Switch",
                                   "where": [["name", "==", "sw0"]],
                                   "row": {"ofrace_note": "after"}}]))
            _run("ovn-nbctl", f"--db=unix:{sock}", "ls-add", "sw2")
        dump = _run("ovsdb-client", "-f", "json", "dump", f"unix:{sock}", "OVN_Northbound")
        listing = _run("ovsdb-client", "-f", "list", "dump", f"unix:{sock}", "OVN_Northbound")
    finally:
        server.terminate()
        server.wait()
    OUT.mkdir(parents=True, exist_ok=True)
    shutil.copy(dbfile, OUT / f"{kind}.db")
    tables = [json.loads(line) for line in dump.splitlines() if line.strip()]
    (OUT / f"{kind}.dump.json").write_text(json.dumps(tables, indent=None) + "\n")
    (OUT / f"{kind}.list.txt").write_text(listing)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="ofrace-ovsdb-") as tmp:
        for kind in ("standalone", "clustered", "converted"):
            record(kind, Path(tmp))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
