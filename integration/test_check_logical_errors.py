"""--check-logical's failures of the environment: ovn-trace failing is exit 5, not bad
input.  Here, not in tests/, because the check loads the snapshot's SB into a private
ovsdb-server (a daemon, ~0.1 s) before ovn-trace runs; ovn-trace itself is a fake."""

from __future__ import annotations

from pathlib import Path

from ofrace.errors import Exit

ROOT = Path(__file__).resolve().parents[1]


def _trace_with_ovn_trace(tmp_path, script: str):
    import os
    import subprocess
    import sys

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ovn-trace"
    fake.write_text("#!/bin/sh\n" + script)
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    snapshot = ROOT / "tests" / "fixtures" / "kind" / "snapshot.ofr"
    return subprocess.run([sys.executable, "-m", "ofrace", "trace", "--snapshot", str(snapshot),
                           "--from", "default_nginx-deployment-9456bbbf9-x6pc6",
                           "--to", "10.244.2.5:53", "--udp", "--check-logical", "--json"],
                          capture_output=True, text=True, env=env, timeout=60)


def test_ovn_trace_failing_is_the_environment_not_bad_input(tmp_path):
    run = _trace_with_ovn_trace(tmp_path, "echo 'ovn-trace: cannot connect' >&2\nexit 1\n")
    assert run.returncode == Exit.ENVIRONMENT, run.stderr
    assert run.stderr.startswith("ofrace: error: ovn-trace failed")
    assert len(run.stderr.splitlines()) == 1


def test_ovn_trace_answering_is_compared(tmp_path):
    """Negative control: the same trace with an ovn-trace that answers exits by its verdict."""
    run = _trace_with_ovn_trace(tmp_path, "exit 0\n")
    assert run.returncode == Exit.OK, run.stderr
    import json

    assert json.loads(run.stdout)["check_logical"]["agree"] is False
