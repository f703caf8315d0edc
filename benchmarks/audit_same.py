"""The audit of every fixture snapshot (and of files given) by this tree and by an older
checkout, compared: the JSON with ``--details`` and every lflow's status must be
byte-identical.  This tree also audits each file re-saved (a version-3 file with the
columns the audit reads stored beside the rows), which must match as well.

Usage:  .venv/bin/python benchmarks/audit_same.py --checkout DIR [--chassis NAME]
            [FILE ...]

No FILE: every ``snapshot*.ofr`` under tests/fixtures.  Exit 1 on any difference.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Run in each tree's own process: one line of JSON per file (or the error it raised).
_AUDIT_ALL = r"""
import json, sys
from ofrace.audit.cluster import audit_snapshot
from ofrace.errors import OfraceError
from ofrace.render.audit import audit_json
from ofrace.snapshot import Snapshot
only = json.loads(sys.argv[1]) or None
resave = sys.argv[2] == "1"
for line in sys.stdin:
    path = line.rstrip("\n")
    try:
        snapshot = Snapshot.load(path)
        if resave:
            copy = sys.argv[3] + "/resaved.ofr"
            snapshot.save(copy)
            snapshot = Snapshot.load(copy)
        names = [n for n in (only or []) if n in snapshot.chassis] if only else None
        audit = audit_snapshot(snapshot, names or None)
        doc = audit_json(audit, details=True)
        doc["lflows"] = {c.chassis: [vars(s) for s in c.logical.lflows] if c.logical else None
                         for c in audit.chassis}
        doc["exit"] = int(audit.exit_code)
        text = json.dumps(doc, sort_keys=True)
    except OfraceError as exc:
        text = json.dumps({"error": str(exc)})
    print(text, flush=True)
"""


def audit_all(tree: Path, files: list[Path], only: list[str], resave: bool) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-c", _AUDIT_ALL, json.dumps(only),
                               "1" if resave else "0", tmp],
                              input="".join(f"{f}\n" for f in files), env=env, cwd=tmp,
                              capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--checkout", required=True, type=Path,
                    help="the older tree (a git archive of it)")
    ap.add_argument("--chassis", action="append", default=[])
    args = ap.parse_args()
    files = [f.resolve() for f in args.files] or sorted(
        (ROOT / "tests" / "fixtures").rglob("snapshot*.ofr"))
    before = audit_all(args.checkout.resolve(), files, args.chassis, False)
    after = audit_all(ROOT, files, args.chassis, False)
    resaved = audit_all(ROOT, files, args.chassis, True)
    differ = [str(f) for f, b, a, r in zip(files, before, after, resaved, strict=True)
              if not b == a == r]
    errors = sum('"error"' in b[:10] for b in before)
    statuses = sum(len(lflows or []) for b in before if '"error"' not in b[:10]
                   for lflows in json.loads(b)["lflows"].values())
    print(f"{len(files)} snapshots ({errors} refused by both; {statuses} lflow statuses), "
          f"{len(files) - len(differ)} identical (this tree, and re-saved with the stored "
          f"columns), {len(differ)} differ")
    for f in differ:
        print(f"  DIFFERS: {f}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
