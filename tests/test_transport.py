"""Transports: how argv is wrapped and quoted for a node."""

import base64
import hashlib
import hmac
import json
import os
import shlex
import socket
import threading
import time

import paramiko
import pytest

from ofrace.collect import known_hosts
from ofrace.collect.transport import ExecTransport, LocalTransport, SSHTransport, TransportError


def test_exec_appends_argv_as_separate_arguments():
    t = ExecTransport("kubectl exec -n ovn-kubernetes {node} -c ovn-controller --",
                      fields={"node": "ovnkube-node-x"})
    assert t.wrap(["ovs-ofctl", "dump-flows", "br-int"]) == [
        "kubectl", "exec", "-n", "ovn-kubernetes", "ovnkube-node-x", "-c", "ovn-controller",
        "--", "ovs-ofctl", "dump-flows", "br-int"]


def test_exec_field_values_are_quoted():
    t = ExecTransport("docker exec -i {node}", fields={"node": "a b; rm -rf /"})
    assert t.wrap(["true"]) == ["docker", "exec", "-i", "a b; rm -rf /", "true"]


def test_exec_command_placeholder_gets_one_quoted_string():
    t = ExecTransport("ssh -o BatchMode=yes {node} {command}", fields={"node": "hv1"})
    argv = t.wrap(["ovs-ofctl", "dump-flows", "br-int", "table=0,ip"])
    assert argv[:3] == ["ssh", "-o", "BatchMode=yes"]
    assert argv[3] == "hv1"
    assert shlex.split(argv[4]) == ["ovs-ofctl", "dump-flows", "br-int", "table=0,ip"]


def test_exec_env_goes_through_env_command():
    t = ExecTransport("ip netns exec {node}", fields={"node": "ns1"},
                      env={"OVS_RUNDIR": "/var/run/x"})
    assert t.wrap(["ovs-vsctl", "show"]) == [
        "ip", "netns", "exec", "ns1", "env", "OVS_RUNDIR=/var/run/x", "ovs-vsctl", "show"]


def test_exec_unknown_field_is_a_clear_error():
    t = ExecTransport("docker exec {pod}", fields={"node": "x"})
    with pytest.raises(TransportError, match=r"unknown field \{pod\}") as exc:
        t.wrap(["true"])
    assert "docker exec" not in str(exc.value)   # the template text is not repeated


def test_exec_fields_fill_arguments_never_shell_syntax():
    """A value inside a quoted shell string is quoted for that shell, not spliced in."""
    evil = "x'; touch /tmp/pwned; echo '"
    t = ExecTransport("sh -c 'ip netns exec {node} \"$0\"' ovs-vsctl", fields={"node": evil})
    argv = t.wrap(["show"])
    assert argv[:2] == ["sh", "-c"]
    assert shlex.split(argv[2]) == ["ip", "netns", "exec", evil, "$0"]
    t = ExecTransport("docker exec ovnkube-{node} --", fields={"node": "a b;c"})
    assert t.wrap(["true"]) == ["docker", "exec", "ovnkube-a b;c", "--", "true"]


def test_exec_argv_for_a_remote_shell_is_one_quoted_string():
    """``ssh host`` hands its words to a shell: the argv goes as one quoted line."""
    argv = ["python3", "-c", "print('x y')", '{"a": 1}']
    wrapped = ExecTransport("ssh -o BatchMode=yes -p 2222 {node}", fields={"node": "hv"}).wrap(
        argv)
    assert wrapped[:6] == ["ssh", "-o", "BatchMode=yes", "-p", "2222", "hv"]
    assert len(wrapped) == 7 and shlex.split(wrapped[6]) == argv
    wrapped = ExecTransport("docker exec {node} sh -c", fields={"node": "c"}).wrap(argv)
    assert wrapped[:5] == ["docker", "exec", "c", "sh", "-c"] and shlex.split(wrapped[5]) == argv
    # negative control: a plain wrapper gets the argv as separate arguments
    assert ExecTransport("docker exec -i {node}", fields={"node": "c"}).wrap(argv)[4:] == argv


def test_exec_describe_names_only_the_program():
    t = ExecTransport("/usr/bin/kubectl --token=s3cr3t-t0ken exec {node} --",
                      fields={"node": "n"})
    assert t.describe() == "exec:kubectl …"
    with pytest.raises(TransportError) as exc:
        ExecTransport("kubectl --token=s3cr3t-t0ken exec {pod}", fields={}).wrap(["true"])
    assert "s3cr3t" not in str(exc.value)


def test_exec_unknown_field_message_is_short():
    t = ExecTransport("docker exec {pod}", fields={"node": "x"})
    with pytest.raises(TransportError, match=r"unknown field \{pod\}"):
        t.wrap(["true"])


def test_local_runs_and_reports_missing_commands():
    out = LocalTransport(env={"OFRACE_T": "42"}).run(["sh", "-c", "echo $OFRACE_T"])
    assert (out.rc, out.stdout) == (0, b"42\n")
    missing = LocalTransport().run(["ofrace-no-such-command"])
    assert missing.rc == 127 and b"not found" in missing.stderr


def test_exec_missing_wrapper_is_a_transport_error():
    with pytest.raises(TransportError, match="command not found"):
        ExecTransport("ofrace-no-such-wrapper {node}", fields={"node": "x"}).run(["true"])


# --- host keys: a real paramiko server on loopback, generated keys ----------------------

def _agent_answer() -> bytes:
    """What a node's agent prints: one document frame (no dumps)."""
    now = time.time()
    doc = json.dumps({"agent_version": 2, "hostname": "hv", "system_id": "id-hv",
                      "bridges": {}, "ovsdb": {}, "commands": [], "errors": [],
                      "started": now, "finished": now}).encode()
    return b"D 0 %d\n" % len(doc) + doc


class _AcceptAnyKey(paramiko.ServerInterface):
    """Any client key is welcome; any command gets a (fake) agent's answer."""

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel, command):
        def answer():
            # like a process that has started: answer once the client closed stdin
            deadline = time.monotonic() + 10
            while not channel.eof_received and time.monotonic() < deadline:
                time.sleep(0.01)
            channel.sendall(_agent_answer())
            channel.send_exit_status(0)
            channel.close()
        threading.Thread(target=answer, daemon=True).start()
        return True


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory):
    """An SSH server on 127.0.0.1 that accepts any client key; yields (port, host key, id file)."""
    host_key = paramiko.ECDSAKey.generate()
    identity = tmp_path_factory.mktemp("ssh") / "id_ecdsa"
    paramiko.ECDSAKey.generate().write_private_key_file(str(identity))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    transports = []

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            t = paramiko.Transport(conn)
            t.add_server_key(host_key)
            transports.append(t)
            try:
                t.start_server(server=_AcceptAnyKey())
            except (paramiko.SSHException, EOFError, OSError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1], host_key, str(identity)
    listener.close()
    for t in transports:
        t.close()


def _line(host, key, marker=""):
    return f"{marker + ' ' if marker else ''}{host} {key.get_name()} {key.get_base64()}"


def _ssh(port, identity, known, strict=True, **kw):
    return SSHTransport(host="127.0.0.1", port=port, user="u", identity=identity,
                        known_hosts=str(known), strict_host_keys=strict, timeout=10,
                        ssh_config=None, system_known_hosts=(), **kw)


def _connects(transport):
    client = transport._connect()
    client.close()
    return True


KNOWN_HOSTS_TEXT = ("# my hosts, with a comment that must survive\n"
                    "other.example ssh-ed25519 "
                    "AAAAC3NzaC1lZDI1NTE5AAAAIHk7uOVfxQW5BhJmQ2R5V8MXr5vTyZ5DW5Qj2i9Jr8yc\n"
                    "\n# end\n")


def test_insecure_host_keys_leave_known_hosts_byte_identical(ssh_server, tmp_path):
    port, host_key, identity = ssh_server
    known = tmp_path / "known_hosts"
    known.write_bytes(KNOWN_HOSTS_TEXT.encode())
    before = known.read_bytes(), known.stat().st_mtime_ns
    warned = []
    t = _ssh(port, identity, known, strict=False, on_unverified=lambda *a: warned.append(a))
    assert _connects(t)
    assert (known.read_bytes(), known.stat().st_mtime_ns) == before
    assert list(tmp_path.iterdir()) == [known]           # no new file next to it either
    fp = known_hosts.fingerprint(host_key)
    assert warned == [(f"u@127.0.0.1:{port}", f"{host_key.get_name()} {fp}")]
    assert "NOT verified" in t.describe()
    # negative control: paramiko's own policy would have rewritten the file
    client = paramiko.SSHClient()
    client.load_host_keys(str(known))
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=port, username="u", key_filename=identity,
                   look_for_keys=False, allow_agent=False, timeout=10)
    client.close()
    assert known.read_bytes() != before[0]


def test_unknown_host_key_is_refused_by_default(ssh_server, tmp_path):
    port, _, identity = ssh_server
    known = tmp_path / "known_hosts"
    known.write_text(KNOWN_HOSTS_TEXT)
    with pytest.raises(TransportError, match="host key unknown"):
        _ssh(port, identity, known)._connect()
    assert known.read_text() == KNOWN_HOSTS_TEXT


@pytest.mark.parametrize("entry", ["plain", "hashed", "wildcard", "negated-other"])
def test_known_host_key_forms(ssh_server, tmp_path, entry):
    port, host_key, identity = ssh_server
    name = f"[127.0.0.1]:{port}"
    if entry == "hashed":
        salt = os.urandom(20)
        digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
        name = f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"
    elif entry == "wildcard":
        name = f"[127.0.0.?]:{port},nothing"
    elif entry == "negated-other":
        name = f"[127.0.*]:{port},!other"
    known = tmp_path / "known_hosts"
    known.write_text(_line(name, host_key) + "\n")
    assert _connects(_ssh(port, identity, known))


def test_negated_pattern_excludes_the_host(ssh_server, tmp_path):
    port, host_key, identity = ssh_server
    known = tmp_path / "known_hosts"
    known.write_text(_line(f"[127.0.0.*]:{port},![127.0.0.1]:{port}", host_key) + "\n")
    with pytest.raises(TransportError, match="host key unknown"):
        _ssh(port, identity, known)._connect()


def test_port_22_entry_does_not_vouch_for_another_port(ssh_server, tmp_path):
    port, host_key, identity = ssh_server
    known = tmp_path / "known_hosts"
    known.write_text(_line("127.0.0.1", host_key) + "\n")
    with pytest.raises(TransportError, match="host key unknown"):
        _ssh(port, identity, known)._connect()


def test_cert_authority_line_is_explained_not_a_traceback(ssh_server, tmp_path):
    port, host_key, identity = ssh_server
    ca = paramiko.ECDSAKey.generate()
    known = tmp_path / "known_hosts"
    known.write_text(_line("*", ca, "@cert-authority") + "\n")
    # negative control: paramiko's reader dies on this valid line
    with pytest.raises(Exception):  # noqa: B017
        paramiko.HostKeys(str(known))
    with pytest.raises(TransportError, match="@cert-authority.*cannot verify host cert"):
        _ssh(port, identity, known)._connect()
    # the host's own key next to it is used
    known.write_text(_line("*", ca, "@cert-authority") + "\n"
                     + _line(f"[127.0.0.1]:{port}", host_key) + "\n")
    assert _connects(_ssh(port, identity, known))


def test_revoked_key_is_refused_even_when_listed_or_insecure(ssh_server, tmp_path):
    port, host_key, identity = ssh_server
    known = tmp_path / "known_hosts"
    known.write_text(_line("*", host_key, "@revoked") + "\n"
                     + _line(f"[127.0.0.1]:{port}", host_key) + "\n")
    for strict in (True, False):
        with pytest.raises(TransportError, match="@revoked"):
            _ssh(port, identity, known, strict=strict)._connect()


def test_changed_host_key_is_refused(ssh_server, tmp_path):
    port, _, identity = ssh_server
    known = tmp_path / "known_hosts"
    known.write_text(_line(f"[127.0.0.1]:{port}", paramiko.ECDSAKey.generate()) + "\n")
    with pytest.raises(TransportError, match="does not match known_hosts"):
        _ssh(port, identity, known, strict=False)._connect()


def test_garbage_known_hosts_lines_are_skipped(ssh_server, tmp_path):
    port, host_key, identity = ssh_server
    known = tmp_path / "known_hosts"
    known.write_bytes(b"@bogus-marker * ssh-rsa AAAA\n|1|!!|!!\n* ssh-rsa not-base64\n"
                      b"* ssh-ed25519 AAAA\n\xff\xfe\n* sk-ssh-ed25519@openssh.com AAAA\n"
                      + _line(f"[127.0.0.1]:{port}", host_key).encode() + b"\n")
    assert _connects(_ssh(port, identity, known))


def test_collect_with_insecure_host_keys_warns_per_host(ssh_server, tmp_path, monkeypatch):
    """Through the real command line: one warning line per host, known_hosts untouched."""
    from click.testing import CliRunner

    from ofrace.cli import main
    from ofrace.snapshot import Snapshot

    port, host_key, identity = ssh_server
    monkeypatch.setenv("HOME", str(tmp_path))          # no ~/.ssh/config or known_hosts of ours
    (tmp_path / ".ssh").mkdir()
    user_known = tmp_path / ".ssh" / "known_hosts"
    user_known.write_text(KNOWN_HOSTS_TEXT)
    inventory = tmp_path / "inv.toml"
    inventory.write_text("".join(
        f'[[node]]\nname = "{name}"\nhost = "127.0.0.1"\nport = {port}\nuser = "u"\n'
        f'identity = "{identity}"\n' for name in ("hv-a", "hv-b")))
    out = tmp_path / "s.ofr"
    strict = CliRunner().invoke(main, ["collect", "-i", str(inventory), "-o", str(out)])
    assert strict.exit_code == 1 and "host key unknown" in strict.output
    result = CliRunner().invoke(main, ["collect", "-i", str(inventory), "-o", str(out),
                                       "--insecure-host-keys", "--json"])
    assert result.exit_code == 1, result.output  # partial only because there is no --sb
    assert [p["where"] for p in json.loads(result.stdout)["problems"]] == ["southbound"]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    fp = known_hosts.fingerprint(host_key)
    assert sorted(w.split(":")[1].strip() for w in warnings) == ["hv-a", "hv-b"]
    assert all(fp in w and "WITHOUT verification" in w for w in warnings), result.stderr
    assert user_known.read_text() == KNOWN_HOSTS_TEXT
    assert sorted(p.name for p in (tmp_path / ".ssh").iterdir()) == ["known_hosts"]
    snapshot = Snapshot.load(out)
    assert all("host key NOT verified" in ch.transport for ch in snapshot.chassis.values())


def _gone(pid: int) -> bool:
    """Killed: no such process, or a zombie left for its new parent to reap."""
    import time
    from pathlib import Path
    for _ in range(50):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


def test_one_deadline_even_when_bytes_trickle_in(tmp_path):
    """The deadline is for the whole command, not per read: a byte every 0.1 s stops at it."""
    import time

    from ofrace.collect.transport import Budget, LimitExceeded
    pidfile = tmp_path / "pid"
    trickle = ["sh", "-c", f"sleep 60 & echo $! > {pidfile}; "
               "while true; do printf x; sleep 0.1; done"]
    started = time.monotonic()
    with pytest.raises(LimitExceeded, match=r"no answer within 1\.5 s"):
        LocalTransport().run(trickle, budget=Budget(1.5))
    assert 1.4 < time.monotonic() - started < 10
    assert _gone(int(pidfile.read_text()))  # the whole process group was killed


def test_the_deadline_is_shared_by_a_nodes_commands():
    from ofrace.collect.transport import Budget, LimitExceeded
    budget = Budget(1.0)
    assert LocalTransport().run(["sleep", "0.6"], budget=budget).rc == 0
    with pytest.raises(LimitExceeded, match="no answer within 1 s"):
        LocalTransport().run(["sleep", "0.6"], budget=budget)


def test_output_is_bounded_and_the_command_stopped():
    from ofrace.collect.transport import Budget, LimitExceeded
    endless = ["sh", "-c", "yes 0123456789"]
    with pytest.raises(LimitExceeded, match="output exceeded 1000000 bytes"):
        ExecTransport("env", {}).run(endless, budget=Budget(30, 1_000_000))
    seen = []
    with pytest.raises(LimitExceeded):  # handed on as it comes, and counted
        LocalTransport().run(endless, on_stdout=seen.append, budget=Budget(30, 1_000_000))
    assert 0 < sum(map(len, seen)) <= 1_000_000
    ok = LocalTransport().run(["head", "-c", "999000", "/dev/zero"], budget=Budget(30, 1_000_000))
    assert ok.stdout == bytes(999_000)


def test_a_reader_that_gives_up_stops_the_command():
    import time

    def refuse(chunk):
        raise ValueError("broken")

    started = time.monotonic()
    with pytest.raises(ValueError, match="broken"):
        LocalTransport().run(["sh", "-c", "echo x; sleep 60"], on_stdout=refuse)
    assert time.monotonic() - started < 10


def test_close_ends_running_commands_at_once():
    """What Ctrl-C does to a collect: every transport closed, its commands killed."""
    import threading
    import time

    transport = ExecTransport("sh -c {command}", {})
    errors = []

    def run():
        try:
            errors.append(transport.run(["sleep", "60"]).rc)
        except Exception as exc:  # noqa: BLE001 - recorded for the assertion
            errors.append(exc)

    thread = threading.Thread(target=run)
    started = time.monotonic()
    thread.start()
    time.sleep(0.3)
    transport.close()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - started < 10
    assert errors and errors[0] not in (0,)
    with pytest.raises(TransportError, match="interrupted"):
        transport.run(["true"])
