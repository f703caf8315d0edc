"""Record an OpenShift network must-gather–shaped tree of a kind-ic lab, with the nodes'
real sosreports, as fixtures for tests/test_import_mustgather.py.

The lab must be up (``ofrace lab up --topology kind-ic --dir DIR``).  At one moment:
the must-gather tree from the lab's own clustered NB/SB files
(ofrace.lab.mustgather), the real ``sos report`` of every chassis, and a live
collect (live.ofr: what the imported files must trace as); then the IC-SB file.
The sosreports are trimmed to what ``ofrace import`` reads (scripts/record_sosreports.py's
``trim``); the tree is packed by the real ``tar`` as it is handed on
(must-gather.tar.gz, the store archive inside it as the script made it).

    python3 scripts/record_mustgather.py --dir /var/tmp/ofr-mg-kindic \\
        --sos "env PYTHONPATH=/var/tmp/sos python3 /var/tmp/sos/bin/sos"
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from record_sosreports import ofrace, trim  # noqa: E402

from ofrace.lab.lab import Lab  # noqa: E402
from ofrace.lab.mustgather import (  # noqa: E402
    interconnect_database,
    must_gather,
    node_sosreports,
)

STAMP = 5550123412341234123   # must-gather.local.<n>: fixed, so a re-recording diffs


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True, help="the lab's directory (up, kind-ic)")
    parser.add_argument("--sos", default="sos", help="how to run sos")
    parser.add_argument("--out", default=str(ROOT / "tests" / "fixtures" / "mustgather"))
    args = parser.parse_args()
    lab = Lab(Path(args.dir))
    if lab.state.get("status") != "up" or lab.state.get("topology") != "kind-ic":
        raise SystemExit(f"no kind-ic lab up in {args.dir}")
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="ofrace-mg-", dir="/var/tmp") as name:
        tmp = Path(name)
        live = tmp / "live.ofr"
        with ThreadPoolExecutor(max_workers=3) as pool:   # the same moment
            reports = pool.submit(node_sosreports, lab, tmp / "sos", shlex.split(args.sos))
            tree = pool.submit(must_gather, lab, tmp / "mg", STAMP)
            pool.submit(ofrace, "collect", "-i", str(lab.layout.inventory_file), "-o",
                        str(live)).result()
            archives, top = reports.result(), tree.result()
        shutil.copy(interconnect_database(lab, tmp / "ic"), out / "ovn_ic_sb_db.db")
        shutil.copy(live, out / "live.ofr")
        subprocess.run(["tar", "-czf", str(out / "must-gather.tar.gz"), "-C", str(top.parent),
                        top.name], check=True)
        for n, archive in enumerate(archives):
            trimmed = trim(archive, out, tmp / f"trim{n}")
            print(f"{trimmed.name}: {archive.stat().st_size} -> {trimmed.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
