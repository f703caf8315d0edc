"""Record real sosreports of a kind lab as fixtures for tests/test_import_sos.py.

The lab must be up (``ofrace lab up --topology kind --dir DIR``).  For each chassis
and for central the real ``sos report`` runs (ofrace.lab.sosreport: the node's run
directory at the standard paths, in its network namespace); right after, the lab is
collected live into live.ofr: what the imported archives must trace and audit as.
Each archive is then trimmed to the members ``ofrace import`` reads, keeping sos's
layout and names, and written under tests/fixtures/sos/<flavor>/ beside live.ofr.

    python3 scripts/record_sosreports.py --dir /var/tmp/ofr-imp --flavor sos-4.0
    python3 scripts/record_sosreports.py --dir /var/tmp/ofr-imp --flavor sos-4.12 \\
        --sos "env PYTHONPATH=/var/tmp/sos python3 /var/tmp/sos/bin/sos"
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ofrace.collect.archive import extract  # noqa: E402
from ofrace.collect.sosreport import wanted_member  # noqa: E402
from ofrace.lab.lab import Lab  # noqa: E402
from ofrace.lab.sosreport import lab_sosreports  # noqa: E402

SEED = ('inport == "breth0_ovn-worker" && eth.src == 02:42:7a:79:82:ca && '
        'eth.dst == 02:42:ac:12:00:04 && ip4.src == 172.18.0.1 && ip4.dst == 172.18.0.4 && '
        'ip.ttl == 64 && tcp.src == 12345 && tcp.dst == 30007 && tcp.flags == 2')


def ofrace(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "ofrace", *args], capture_output=True,
                            text=True)
    if result.returncode not in (0, 1):
        raise SystemExit(f"ofrace {args[0]} failed: {result.stderr.strip()}")
    return result.stdout


def trim(archive: Path, out: Path, scratch: Path) -> Path:
    """The archive with only what import reads, same top directory and name."""
    scratch.mkdir(parents=True)
    names = extract(archive, scratch, wanted_member)
    top = names[0].split("/")[0]
    target = out / archive.name
    with tarfile.open(target, "w:xz", preset=9) as tar:
        tar.add(scratch / top, arcname=top)
    return target


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True, help="the lab's directory (up, kind)")
    parser.add_argument("--flavor", required=True, help="fixture directory name (sos-4.0)")
    parser.add_argument("--sos", default="sos", help="how to run sos")
    parser.add_argument("--out", default=str(ROOT / "tests" / "fixtures" / "sos"))
    args = parser.parse_args()
    lab = Lab(Path(args.dir))
    if lab.state.get("status") != "up" or lab.state.get("topology") != "kind":
        raise SystemExit(f"no kind lab up in {args.dir}")
    out = Path(args.out) / args.flavor
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("sosreport-*"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="ofrace-sos-", dir="/var/tmp") as tmp:
        live = Path(tmp) / "live.ofr"
        with ThreadPoolExecutor(max_workers=2) as pool:   # the same moment
            reports = pool.submit(lab_sosreports, lab, Path(tmp) / "sos",
                                  shlex.split(args.sos))
            pool.submit(ofrace, "collect", "-i", str(lab.layout.inventory_file), "-o",
                        str(live)).result()
            archives = reports.result()
        json.loads(ofrace("trace", "--snapshot", str(live), "--reply", "--json", SEED))
        shutil.copy(live, out / "live.ofr")
        for n, archive in enumerate(archives):
            trimmed = trim(archive, out, Path(tmp) / f"trim{n}")
            print(f"{trimmed.name}: {archive.stat().st_size} -> {trimmed.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
