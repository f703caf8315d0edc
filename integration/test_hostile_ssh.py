"""Hostile nodes over SSH: a private sshd on 127.0.0.1 whose keys force ``hostile_node.py``.

Each node of the inventory logs in with its own key; ``authorized_keys`` ties the key
to a forced command (``command="…"``), so the "node" answers ofrace's agent command
with crafted output: a frame header that used to hang the reader, bytes trickling
in forever, a wrongly-typed document -- beside a healthy node that must be saved.
The sshd (own host key, config, known_hosts, all in a temporary directory, on a
free loopback port) is started and stopped by the fixture; no lab is needed.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ofrace.lab.sshd import PRIVSEP_DIR, known_hosts_line, make_key, write_config
from ofrace.snapshot import Snapshot

FAKE = Path(__file__).parent.parent / "tests" / "hostile_node.py"
SSHD = Path("/usr/sbin/sshd")
TRICKLE_TIMEOUT = 3   # the trickling node's deadline (s)
CASES = {  # node -> what its one Problem says
    "hang-plain": "bad frame header b'B 1 -5'",
    "hang-gzip": "bad frame header b'D 0 -100'",
    "trickle": f"no answer within {TRICKLE_TIMEOUT} s",
    "doc-bridge-string": "document.bridges['br-int']: expected an object, got a string",
    "doc-deep": "nested too deeply",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_banner(port: int, proc: subprocess.Popen, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sshd exited: {proc.stderr.read().decode(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.1)
    pytest.fail("sshd did not answer")


@pytest.fixture(scope="module")
def hostile_sshd(tmp_path_factory):
    """(port, directory): an sshd on 127.0.0.1 where key ``<dir>/<case>`` runs that case."""
    if os.geteuid() != 0 or not SSHD.exists():
        pytest.skip("needs root and /usr/sbin/sshd (as the lab tests do)")
    where = tmp_path_factory.mktemp("sshd")
    port = _free_port()
    host_key = where / "host_key"
    host_public = make_key(host_key, "ofrace hostile-test host")
    lines = []
    for case in ["healthy", "silent", *CASES]:
        public = make_key(where / case, f"ofrace hostile-test {case}")
        forced = shlex.join([sys.executable, str(FAKE), case, case])
        lines.append(f'command="{forced}",no-pty,no-port-forwarding,no-agent-forwarding '
                     f"{public}")
    (where / "authorized_keys").write_text("\n".join(lines) + "\n")
    make_key(where / "stranger", "ofrace hostile-test key not authorized")
    (where / "known_hosts").write_text(
        known_hosts_line(f"[127.0.0.1]:{port}", host_public) + "\n")
    config = where / "sshd_config"
    write_config(config, address="127.0.0.1", port=port, host_key=host_key,
                 pidfile=where / "sshd.pid", authorized_keys=where / "authorized_keys",
                 purpose="a private sshd for integration/test_hostile_ssh.py (loopback only)")
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        _wait_for_banner(port, proc)
        yield port, where
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _inventory(port: int, where: Path, cases) -> Path:
    lines = ["[defaults]", 'transport = "ssh"', 'host = "127.0.0.1"', f"port = {port}",
             'user = "root"', f'known_hosts = "{where / "known_hosts"}"']
    for case in ["healthy", *cases]:
        lines += ["[[node]]", f'name = "{case}"', f'identity = "{where / case}"']
        if case == "trickle":
            lines.append(f"timeout = {TRICKLE_TIMEOUT}")
    lines += ["[southbound]", 'remote = "tcp:127.0.0.1:6642"', 'via = "healthy"']
    path = where / f"inventory-{'-'.join(cases)}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_hostile_ssh_nodes_cost_only_their_own_data(hostile_sshd, tmp_path):
    port, where = hostile_sshd
    out = tmp_path / "cluster.ofr"
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "ofrace", "collect", "-i",
                          str(_inventory(port, where, CASES)), "-o", str(out), "--json"],
                         capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert TRICKLE_TIMEOUT <= elapsed < 60  # the trickling node is cut at its deadline
    snapshot = Snapshot.load(out)
    healthy = snapshot.chassis["healthy"]
    assert healthy.reachable and not healthy.problems, healthy.problems
    assert len(healthy.bridges["br-int"].flows) == 50
    assert snapshot.southbound.error is None
    assert snapshot.southbound.tables["Chassis"][0]["hostname"] == "healthy"
    for case, said in CASES.items():
        chassis = snapshot.chassis[case]
        assert not chassis.reachable and len(chassis.problems) == 1, (case, chassis.problems)
        error = chassis.problems[0].error
        assert said in error and "\n" not in error, (case, error)
    assert f"{FAKE} trickle" not in subprocess.run(["ps", "-ww", "-eo", "args"],
                                                   capture_output=True,
                                                   text=True).stdout


def test_ctrl_c_interrupts_an_ssh_collect(hostile_sshd, tmp_path):
    port, where = hostile_sshd
    proc = subprocess.Popen([sys.executable, "-m", "ofrace", "collect", "-i",
                             str(_inventory(port, where, ["silent"])),
                             "-o", str(tmp_path / "x.ofr"), "--timeout", "600"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120  # generous: a loaded 2-core machine is slow to connect
    while True:  # until the silent node's forced command runs
        ps = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
        if f"{FAKE} silent" in ps:
            break
        if proc.poll() is not None:
            pytest.fail(f"collect ended before the silent node started: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the silent node never started")
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("Ctrl-C did not interrupt the SSH collect")
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "ofrace: interrupted" and "Traceback" not in err
    for _ in range(100):  # the connection is closed: the node's command ends soon after
        ps = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
        if f"{FAKE} silent" not in ps:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the silent node's command outlived the connection")


def test_connect_failures_are_still_one_line_each(hostile_sshd):
    """The connection is opened in a thread of its own (so the deadline covers it): its
    failures still reach the node's Problem as before."""
    from ofrace.collect.cluster import collect_cluster
    from ofrace.collect.inventory import Inventory, NodeSpec

    port, where = hostile_sshd
    common = {"host": "127.0.0.1", "user": "root", "known_hosts": str(where / "known_hosts")}
    nodes = [NodeSpec(name="stranger", port=port, identity=str(where / "stranger"), **common),
             NodeSpec(name="closed", port=_free_port(), identity=str(where / "healthy"),
                      **common),
             NodeSpec(name="healthy", port=port, identity=str(where / "healthy"), **common)]
    snapshot = collect_cluster(Inventory(nodes=nodes))
    assert "authentication failed" in snapshot.chassis["stranger"].problems[0].error
    assert "cannot connect" in snapshot.chassis["closed"].problems[0].error
    assert snapshot.chassis["healthy"].reachable
