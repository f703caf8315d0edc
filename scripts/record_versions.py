"""Re-record every OVN release's fixtures and run the lab tests on it (`tox -e versions`).

Usage (as root):  .venv/bin/python scripts/record_versions.py [--record-only] PREFIX ...
                  (or OFRACE_OVN_BUILDS="PREFIX PREFIX ..." with no arguments)

Each PREFIX is a ``make install`` tree of one OVN release and the OVS its ``ovs``
submodule pins (built outside this repository; docs/versions.md says which were
measured).  For each: the release is read from its ``ovn-controller --version``; the
lab tests that issue 15 names run on it (``OFRACE_OVN_PREFIX`` makes every ``lab up``
use the build); then scripts/record_fixtures.py and scripts/record_sweeps.py record its
fixtures into tests/fixtures/versions/<release>/, which tests/test_versions.py replays.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# The lab tests that say a release works: bring-up, the seed's trace and reply against
# the wire, ofrace against ofproto/trace, the audit and its injected faults, and the
# interconnect lab (zones, cross-zone traces, the per-zone audit).
LAB_TESTS = ("integration/test_lab.py", "integration/test_trace.py",
             "integration/test_agreement.py", "integration/test_audit.py",
             "integration/test_kind_ic.py", "integration/test_zones_trace.py")
TOPOLOGIES = ("kind", "acl", "openstack")


def release_of(prefix: Path) -> str:
    text = subprocess.run([str(prefix / "bin" / "ovn-controller"), "--version"],
                          capture_output=True, text=True, check=True).stdout
    found = re.search(r"(\d+)\.(\d+)\.\d+", text)
    if not found:
        raise SystemExit(f"{prefix}: ovn-controller --version names no release: {text!r}")
    return f"{found.group(1)}.{found.group(2)}"


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--record-only"]
    record_only = len(args) < len(sys.argv[1:])
    prefixes = [Path(p) for p in (args or os.environ.get("OFRACE_OVN_BUILDS", "").split())]
    if not prefixes:
        raise SystemExit("name at least one OVN build prefix (or set OFRACE_OVN_BUILDS)")
    failed = []
    for prefix in prefixes:
        release = release_of(prefix)
        out = ROOT / "tests" / "fixtures" / "versions" / release
        # the build's tools first on PATH too: --check-logical runs the ovn-trace it finds
        env = {**os.environ, "OFRACE_OVN_PREFIX": str(prefix),
               "PATH": f"{prefix / 'bin'}:{prefix / 'sbin'}:{os.environ.get('PATH', '')}"}
        print(f"== OVN {release} from {prefix}", flush=True)
        if not record_only:
            tests = subprocess.run([PYTHON, "-m", "pytest", "-q", *LAB_TESTS], cwd=ROOT,
                                   env=env)
            if tests.returncode != 0:
                failed.append(f"{release}: lab tests")
        topologies = [*TOPOLOGIES, *(["kind-flow-tunnels"] if release >= "26.03" else [])]
        for topology in topologies:
            lab_dir = f"/var/tmp/ofr-fix-{topology}-{release}"
            steps = [
                [PYTHON, "scripts/record_fixtures.py", topology, "--dir", lab_dir,
                 "--ovn", str(prefix), "--out", str(out)],
                [PYTHON, "-m", "ofrace", "lab", "down", "--dir", lab_dir],
                [PYTHON, "scripts/record_sweeps.py", topology, "--ovn", str(prefix),
                 "--out", str(out)],
            ]
            for step in steps:
                if subprocess.run(step, cwd=ROOT, env=env).returncode != 0:
                    failed.append(f"{release}: {' '.join(step[1:3])}")
                    break
    print("failed: " + "; ".join(failed) if failed else "every release recorded")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
