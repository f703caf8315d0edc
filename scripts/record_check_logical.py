"""Record --check-logical fixtures: the real ovn-trace against a recorded SB.

Usage: python scripts/record_check_logical.py SNAPSHOT OUT_DIR LABEL...

Copies SNAPSHOT (taken from a lab with `ofrace collect`, so it carries the SB schema)
to OUT_DIR/snapshot.ofr and, for every step of each named conversation, writes the
microflow, the options ofrace's trace implied (--ct, --lb-dst) and ovn-trace's own
output and error output (run
against the snapshot's SB in a private ovsdb-server) to OUT_DIR/ovn_trace.json.
tests/test_check_logical.py compares ofrace's offline trace with these outputs.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from ofrace.compare.ovn_trace import check_scenarios
from ofrace.snapshot import Snapshot


def main() -> None:
    snapshot_path, out_dir, *labels = sys.argv[1:]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(snapshot_path, out / "snapshot.ofr")
    snapshot = Snapshot.load(out / "snapshot.ofr")
    recorded = {}
    for check in check_scenarios(snapshot, only=set(labels)):
        recorded[check.label] = {"microflow": check.microflow,
                                 "options": check.answer["options"],
                                 "ovn_trace": check.answer["ovn_trace"],
                                 "ovn_trace_failure": check.answer["ovn_trace_failure"],
                                 "cause": (check.answer.get("cause") or {}).get("name")}
    (out / "ovn_trace.json").write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
    print(f"{len(recorded)} steps recorded in {out}")


if __name__ == "__main__":
    main()
