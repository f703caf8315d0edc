"""Broken and hostile nodes cost only their own data: bounded time and memory, one line each.

Every fake node is an ``exec:`` template running ``tests/hostile_node.py CASE``,
which answers the agent command with crafted output (issue 10, items 3-5); one
healthy fake node answers properly and is also the way to the SB and NB.  The
whole cluster is collected by ``ofrace collect`` in a subprocess, whose peak
memory (``ru_maxrss`` from ``wait4``) and wall time are measured.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ofrace.snapshot import Snapshot

FAKE = Path(__file__).with_name("hostile_node.py")
MAX_OUTPUT = 16 << 20          # --max-output for the run: each node's answer, at most
SHORT = 2                      # the deadline of the nodes that trickle or stall (s)
# Peak RSS (MB) of a collect, the collector with its fake nodes: Python and ofrace take
# ~55 MB, and a node being read may cost up to ~1.6x its max_output more (measured:
# 64 MiB of 3-byte lines, the most lines per byte, cost 97 MB; 64 MiB of flow lines 70).
# Bound stated: 80 MB + 2x max_output per node that can fill it at the same time (here
# 6: flood, flood-plain, short-lines, gzip-bomb, no-newline, stderr-flood); measured
# ~160 MB (each of them alone: 70-100 MB).
# Without the limits the same nodes took gigabytes (issue 10, item 5).
BASE_MB = 80
MEMORY_BOUND = BASE_MB + 2 * 6 * MAX_OUTPUT / (1 << 20)
# Wall time of the whole collect: the nodes are read in parallel, so it is bounded by
# the slowest one, the deadline of the stalling nodes, plus Python's start-ups.
TIME_BOUND = 30.0

# case -> what its one Problem must say
CASES = {
    # item 3: malformed frames that used to loop forever
    "hang-plain": "bad frame header",
    "hang-gzip": "bad frame header",
    "stderr-flood": "e" * 300,        # the end of its last line, not 8 MiB of it
    # item 4: wrongly-typed documents
    "doc-list": "document: expected an object, got a list",
    "doc-bridges-list": "document.bridges: expected an object, got a list",
    "doc-bridge-string": "document.bridges['br-int']: expected an object, got a string",
    "doc-empty-command": "document.commands[0]: missing argv, elapsed, rc, started",
    "doc-error-number": "document.errors[0]: missing error",
    "doc-flows-number": "document.bridges['br-int'].flows: expected a list or an object",
    "doc-top-flows": "document.bridges['br-int'].flows: expected a list or an object",
    "doc-deep": "nested too deeply",
    "doc-external-ids-string": "external_ids: expected an object, got a string",
    "doc-wrong-version": "agent version '99' does not match",
    # (a node without python3 is read command by command: its OVSDB is what fails)
    "agentless-rows": "table Open_vSwitch: rows are not a list of objects",
    "agentless-deep": "unreadable ovsdb-client output: nested too deeply",
    # item 5: unbounded output and time
    "huge-frame": "is over",
    "doc-amplify": f"is over {MAX_OUTPUT} bytes",   # 30 MiB of JSON: ~500 MB once parsed
    "flood": f"output exceeded {MAX_OUTPUT} bytes (uncompressed)",
    "flood-plain": f"output exceeded {MAX_OUTPUT} bytes",
    "short-lines": f"output exceeded {MAX_OUTPUT} bytes (uncompressed)",
    "gzip-bomb": f"output exceeded {MAX_OUTPUT} bytes (uncompressed)",
    "trickle": f"no answer within {SHORT} s",
    "silent": f"no answer within {SHORT} s",
    "lingering-child": f"no answer within {SHORT} s",
}
# Answers that are not hostile, only hard: read in full, in bounded time
WELL_FORMED = {"no-newline"}   # an 8 MiB line without a newline (was quadratic: 16 s)
SLOW = {"trickle", "silent", "lingering-child"}
AGENTLESS = {"agentless-rows", "agentless-deep"}


def _template(case: str) -> str:
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE))} {case} {{node}}"


def _inventory(tmp_path: Path, cases) -> Path:
    lines = []
    for case in ["healthy", *cases]:
        lines += ["[[node]]", f'name = "{case}"', 'transport = "exec"',
                  f"template = '{_template(case)}'"]
        if case in SLOW:
            lines.append(f"timeout = {SHORT}")
    lines += ["[southbound]", 'remote = "tcp:127.0.0.1:6642"', 'via = "healthy"',
              "[northbound]", 'remote = "tcp:127.0.0.1:6641"', 'via = "healthy"']
    path = tmp_path / "inventory.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def collect_measured(argv: list[str], timeout: float):
    """Run ``argv`` (``python -m …`` or ``python -c …``): (exit code, stdout, stderr,
    seconds, peak RSS in MB).  The peak is the collector's own VmHWM, written at its exit
    by tests/peak_memory.py (``ru_maxrss`` would include the pytest process it was forked
    from).  Killed, and failed, past ``timeout``."""
    started = time.monotonic()
    with open(os.devnull, "rb") as null, tempfile.TemporaryFile() as stdout, \
            tempfile.TemporaryFile() as stderr, tempfile.NamedTemporaryFile() as peak:
        wrapped = [argv[0], str(Path(__file__).with_name("peak_memory.py")), peak.name,
                   *argv[1:]]
        proc = subprocess.Popen(wrapped, stdin=null, stdout=stdout, stderr=stderr,
                                start_new_session=True)
        deadline = started + timeout
        while True:
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                os.wait4(proc.pid, 0)
                proc.returncode = -9
                pytest.fail(f"{argv[2:4]} did not finish within {timeout} s")
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.monotonic() - started
        peak_kib = int(Path(peak.name).read_text() or 0)
        return proc.returncode, _text(stdout), _text(stderr), elapsed, peak_kib / 1024


def _text(spool) -> str:
    spool.seek(0)
    return spool.read().decode(errors="replace")


@pytest.fixture(scope="module")
def hostile_collect(tmp_path_factory):
    """One collect of the healthy node with every hostile one, measured."""
    tmp_path = tmp_path_factory.mktemp("hostile")
    inventory = _inventory(tmp_path, [*CASES, *WELL_FORMED])
    output = tmp_path / "cluster.ofr"
    argv = [sys.executable, "-m", "ofrace", "collect", "-i", str(inventory), "-o", str(output),
            "--max-output", str(MAX_OUTPUT), "--json"]
    rc, out, err, elapsed, peak_mb = collect_measured(argv, timeout=120)
    return {"rc": rc, "out": out, "err": err, "elapsed": elapsed, "peak_mb": peak_mb,
            "snapshot": Snapshot.load(output) if output.exists() else None}


def test_the_healthy_node_and_the_databases_are_saved(hostile_collect):
    run = hostile_collect
    assert "Traceback" not in run["err"], run["err"][-3000:]
    assert run["rc"] == 1, run["err"][-3000:]          # partial, not a crash (70) or 0
    snapshot = run["snapshot"]
    assert snapshot is not None, run["err"][-3000:]
    healthy = snapshot.chassis["healthy"]
    assert healthy.reachable and not healthy.problems
    assert len(healthy.bridges["br-int"].flows) == 50
    assert healthy.external_ids["ovn-remote"] == "tcp:127.0.0.1:6642"
    assert snapshot.southbound.error is None
    assert snapshot.southbound.tables["Chassis"][0]["hostname"] == "healthy"
    assert snapshot.northbound.error is None
    assert snapshot.northbound.tables["Logical_Switch"][0]["name"] == "sw0"


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_hostile_node_is_one_line_of_its_own(hostile_collect, case):
    snapshot = hostile_collect["snapshot"]
    assert snapshot is not None, hostile_collect["err"][-3000:]
    chassis = snapshot.chassis[case]
    if case in AGENTLESS:
        assert chassis.reachable and chassis.transport.endswith("(agentless (no python3 on "
                                                                "the node))")
        assert [p.what for p in chassis.problems] == ["local OVSDB"]
    else:
        assert not chassis.reachable and not chassis.bridges
        assert [p.what for p in chassis.problems] == ["collect"]
    error = chassis.problems[0].error
    assert CASES[case] in error, error
    assert "\n" not in error and len(error) < 400, error
    assert "Traceback" not in error and "bug in ofrace" not in error


def test_a_newline_free_answer_is_read_in_full(hostile_collect):
    chassis = hostile_collect["snapshot"].chassis["no-newline"]
    assert chassis.reachable and not chassis.problems
    assert chassis.bridges["br-int"].flows == ["x" * (8 << 20)]


def test_time_and_memory_stay_bounded(hostile_collect):
    run = hostile_collect
    assert run["elapsed"] < TIME_BOUND, run["elapsed"]
    assert run["elapsed"] >= SHORT  # the stalling nodes were waited for, up to their deadline
    assert 30 < run["peak_mb"] < MEMORY_BOUND, run["peak_mb"]


def test_peak_memory_is_measured_for_real(tmp_path):
    """Negative control for the measurement: a child that takes 300 MB shows it."""
    argv = [sys.executable, "-c", "x = bytearray(300 << 20); x[::4096] = b'1' * len(x[::4096])"]
    rc, _, _, _, peak_mb = collect_measured(argv, timeout=60)
    assert rc == 0 and peak_mb > 300


def test_lingering_processes_are_killed(hostile_collect):
    """The fake node that forks a child holding stdout open: the child is gone too."""
    ps = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"{FAKE} lingering-child" not in ps


def _collect(tmp_path: Path, cases, *options: str, timeout: float = 120):
    inventory = _inventory(tmp_path, cases)
    output = tmp_path / "cluster.ofr"
    run = collect_measured([sys.executable, "-m", "ofrace", "collect", "-i", str(inventory),
                            "-o", str(output), "--json", *options], timeout=timeout)
    return run, (Snapshot.load(output) if output.exists() else None)


def test_memory_follows_max_output_not_the_nodes_output(tmp_path):
    """The costliest answer per byte (3-byte lines) from one node, at 64 MiB."""
    (rc, _, err, _, peak_mb), snapshot = _collect(tmp_path, ["short-lines"],
                                                  "--max-output", "64M")
    assert rc == 1 and "Traceback" not in err
    assert "output exceeded 67108864 bytes" in snapshot.chassis["short-lines"].problems[0].error
    assert peak_mb < BASE_MB + 2 * 64, peak_mb


def test_collect_timeout_is_every_nodes_deadline(tmp_path):
    """``--timeout`` holds for every node, over the inventory's ``timeout``."""
    (rc, _, err, elapsed, _), snapshot = _collect(tmp_path, ["silent"], "--timeout", "1.5")
    assert rc == 1 and "Traceback" not in err
    assert snapshot.chassis["silent"].problems[0].error.endswith("no answer within 1.5 s")
    assert snapshot.chassis["healthy"].reachable and snapshot.southbound.error is None
    assert 1.5 <= elapsed < TIME_BOUND


def test_ctrl_c_interrupts_a_collect(tmp_path):
    """A node that never answers (and one that trickles): Ctrl-C still ends the collect
    at once with 130, and no fake node is left running."""
    inventory = _inventory(tmp_path, ["silent", "trickle"])
    proc = subprocess.Popen([sys.executable, "-m", "ofrace", "collect", "-i", str(inventory),
                             "-o", str(tmp_path / "x.ofr"), "--timeout", "600"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    fakes = f"{FAKE} silent"
    for _ in range(200):  # wait until the collect has really started its nodes
        if fakes in subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True,
                                   text=True).stdout:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("Ctrl-C did not interrupt the collect")
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "ofrace: interrupted" and "Traceback" not in err
    assert not (tmp_path / "x.ofr").exists()
    time.sleep(0.2)
    ps = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
    assert fakes not in ps and f"{FAKE} trickle" not in ps



@pytest.mark.parametrize("line, said", [
    ('timeout = "abc"', "timeout must be a positive number, not a string"),
    ("timeout = 0", "timeout must be a positive number"),
    ("timeout = nan", "timeout must be a positive number"),
    ('max_output = "lots"', "max_output 'lots' is not a size in bytes"),
    ("max_output = -1", "max_output must be a positive whole number"),
    ("max_output = 1.5", "max_output must be a positive whole number, not a number"),
    ('max_output = "999999999999999G"', "max_output must be a positive whole number up to"),
])
def test_the_inventorys_limits_are_checked(tmp_path, line, said):
    from ofrace.collect.inventory import load_inventory
    from ofrace.errors import InputError
    path = tmp_path / "inventory.toml"
    path.write_text(f'[defaults]\n{line}\n[[node]]\nname = "n"\ntransport = "local"\n')
    with pytest.raises(InputError, match=said):
        load_inventory(path)
    path.write_text('[defaults]\ntimeout = 2.5\nmax_output = "16M"\n'
                    '[[node]]\nname = "n"\ntransport = "local"\nmax_output = 1000\n'
                    '[[node]]\nname = "m"\ntransport = "local"\n')
    n, m = load_inventory(path).nodes
    assert (n.timeout, n.max_output, m.timeout, m.max_output) == (2.5, 1000, 2.5, 16 << 20)


@pytest.mark.parametrize("option, said", [
    (["--timeout", "soon"], "--timeout: timeout must be a positive number"),
    (["--max-output", "0"], "--max-output: max_output must be a positive whole number"),
])
def test_bad_limits_on_the_command_line_are_one_line(tmp_path, option, said):
    run = subprocess.run([sys.executable, "-m", "ofrace", "collect", "--node", "n=local",
                          "-o", str(tmp_path / "x.ofr"), *option],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert said in run.stderr and not (tmp_path / "x.ofr").exists()


def test_ctrl_c_ends_the_program_even_if_a_thread_never_lets_go(tmp_path):
    """The interrupt handler's last resort: a program whose main thread ignores the
    KeyboardInterrupt (as one stuck joining a thread blocked on a lock would) still ends
    with 130 within the grace period."""
    script = ("import time, ofrace.cli as c, signal\n"
              "signal.signal(signal.SIGINT, c._interrupted)\n"
              "while True:\n"
              "    try:\n"
              "        print('ready', flush=True)\n"
              "        time.sleep(60)\n"
              "    except KeyboardInterrupt:\n"
              "        pass\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the grace timer did not end the program")
    assert proc.returncode == 130 and "interrupted" in err
    assert time.monotonic() - started < 10
