"""How long and how much memory reading a big Southbound file directly takes.

A real file made by the real server: ``ovsdb-tool create`` with the installed SB
schema, a private ``ovsdb-server`` on a unix socket in a temporary directory, and N
Logical_Flow rows inserted over JSON-RPC in transactions of 5,000 (then a third of
them modified, so the file holds column diffs).  Then ``read_ovsdb_file`` in a fresh
process: wall time and peak resident memory (tests/peak_memory.py: VmHWM).

    python3 benchmarks/ovsdb_file_bench.py [--flows 100000]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = "/usr/share/ovn/ovn-sb.ovsschema"


def _rpc(sock: socket.socket, method: str, params: list) -> dict:
    ident = uuid.uuid4().hex
    sock.sendall(json.dumps({"method": method, "params": params, "id": ident}).encode())
    buffer, decoder = b"", json.JSONDecoder()
    while True:
        buffer += sock.recv(1 << 20)
        try:
            reply, _ = decoder.raw_decode(buffer.decode())
        except ValueError:
            continue
        if reply.get("id") == ident:
            return reply
        buffer = b""


def make(path: Path, flows: int) -> None:
    subprocess.run(["ovsdb-tool", "create", str(path), SCHEMA], check=True)
    sock_path = path.parent / "sb.sock"
    server = subprocess.Popen(["ovsdb-server", str(path), f"--remote=punix:{sock_path}",
                               f"--unixctl={path.parent / 'ctl'}", "--no-chdir"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock_path.exists():
                break
            time.sleep(0.1)
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(sock_path))
            names = []
            for start in range(0, flows, 5000):
                ops = ["OVN_Southbound"]
                for n in range(start, min(flows, start + 5000)):
                    ops.append({"op": "insert", "table": "Logical_Flow", "row": {
                        "pipeline": "ingress", "table_id": n % 30, "priority": n % 1000,
                        "match": f"ip4.dst == 10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}",
                        "actions": "next;",
                        "external_ids": ["map", [["stage-name", "ls_in_acl"],
                                                 ["source", f"northd.c:{n}"]]]}})
                reply = _rpc(sock, "transact", ops)
                names += [r["uuid"][1] for r in reply["result"]]
            for start in range(0, len(names) // 3, 5000):
                ops = ["OVN_Southbound"] + [
                    {"op": "mutate", "table": "Logical_Flow",
                     "where": [["_uuid", "==", ["uuid", u]]],
                     "mutations": [["external_ids", "insert", ["map", [["x", "y"]]]]]}
                    for u in names[start:start + 5000]]
                _rpc(sock, "transact", ops)
    finally:
        server.terminate()
        server.wait()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ofrace-ovsdb-bench-", dir="/var/tmp") as tmp:
        path = Path(tmp) / "ovnsb_db.db"
        make(path, args.flows)
        peak = Path(tmp) / "peak"
        code = ("import sys; from ofrace.collect.ovsdb_file import read_ovsdb_file; "
                "db = read_ovsdb_file(sys.argv[1]); rows = db.tables(); "
                "print(len(rows['Logical_Flow']), db.records)")
        started = time.monotonic()
        out = subprocess.run([sys.executable, str(ROOT / "tests" / "peak_memory.py"),
                              str(peak), "-c", code, str(path)], capture_output=True,
                             text=True, check=True, cwd=ROOT).stdout.split()
        elapsed = time.monotonic() - started
        print(f"file {path.stat().st_size / 1e6:.1f} MB, {out[1]} records, {out[0]} "
              f"Logical_Flow rows: read in {elapsed:.2f} s, peak {int(peak.read_text()) >> 10} "
              f"MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
