"""``ofrace compare`` end to end without a lab: the node is this machine (transport
local) and its ``ovs-appctl`` a stand-in that answers what the real one answered
when the kind fixtures were recorded — or fails, which is the environment (exit 5)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest
from conftest import FIXTURES, recorded

from ofrace.compare.live import format_microflow
from ofrace.errors import Exit


def _recorded_trace():
    _, traces = recorded("kind")
    return next(t for t in traces if t["chassis"] == "ovn-worker" and not t["ct_next"]
                and t["bridge"] == "br-int" and "tcp to" in t["label"])


def _compare(tmp_path, appctl: str, *extra: str):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "ovs-appctl"
    fake.write_text("#!/bin/sh\n" + appctl)
    fake.chmod(0o755)
    inventory = tmp_path / "inventory.toml"
    inventory.write_text('[[node]]\nname = "ovn-worker"\ntransport = "local"\n')
    trace = _recorded_trace()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run([sys.executable, "-m", "ofrace", "compare", "-i", str(inventory),
                           "--snapshot", str(FIXTURES / "kind" / "snapshot.ofr"),
                           "--node", "ovn-worker", format_microflow(trace["packet"]), *extra],
                          capture_output=True, text=True, env=env, timeout=60)


def test_compare_agrees_with_the_recorded_ofproto_trace(tmp_path):
    answer = tmp_path / "answer.txt"
    answer.write_text(_recorded_trace()["output"])
    run = _compare(tmp_path, f"cat {shlex.quote(str(answer))}\n", "--json")
    assert run.returncode == Exit.OK, run.stderr
    doc = json.loads(run.stdout)
    assert doc["agree"] is True and doc["flows_compared"] > 5 and doc["divergence"] is None


def test_compare_names_the_first_divergence(tmp_path):
    """Negative control: an answer with one flow's cookie changed parts there (exit 1)."""
    text = _recorded_trace()["output"]
    edited = text.replace("cookie 0x", "cookie 0x1", 1)
    assert edited != text
    answer = tmp_path / "answer.txt"
    answer.write_text(edited)
    run = _compare(tmp_path, f"cat {shlex.quote(str(answer))}\n")
    assert run.returncode == Exit.FOUND, run.stderr
    assert "first divergence" in run.stdout


@pytest.mark.parametrize("appctl", ["echo 'ovs-appctl: cannot connect' >&2\nexit 1\n"])
def test_ofproto_trace_failing_is_the_environment(tmp_path, appctl):
    run = _compare(tmp_path, appctl)
    assert run.returncode == Exit.ENVIRONMENT, run.stderr
    assert run.stderr.startswith("ofrace: error: ofproto/trace failed on ovn-worker")
    assert len(run.stderr.splitlines()) == 1


def test_compare_needs_an_inventory(tmp_path):
    run = subprocess.run([sys.executable, "-m", "ofrace", "compare", "--snapshot",
                          str(FIXTURES / "kind" / "snapshot.ofr"), "--node", "ovn-worker",
                          "in_port=1"], capture_output=True, text=True, timeout=60)
    assert run.returncode == Exit.INPUT
    assert "give --inventory FILE or --lab" in run.stderr


def test_an_unreachable_node_is_the_environment(tmp_path):
    """Read live (no --snapshot), a node whose commands cannot run is exit 5, one line."""
    inventory = tmp_path / "inventory.toml"
    inventory.write_text('[[node]]\nname = "n1"\ntransport = "exec"\n'
                         'template = "/nonexistent/ofrace-no-such-program"\n')
    run = subprocess.run([sys.executable, "-m", "ofrace", "compare", "-i", str(inventory),
                          "--node", "n1", "in_port=1"], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == Exit.ENVIRONMENT, run.stderr
    assert run.stderr.startswith("ofrace: error: cannot read n1")
    assert len(run.stderr.splitlines()) == 1
