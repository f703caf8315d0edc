"""How ofrace reaches a node: locally, over SSH, or through a command template.

A transport runs one argv on a node and returns its exit status and output
(or hands stdout to ``on_stdout`` as it arrives, so a big answer can be
decoded while the rest of it is still on the wire).
Every argument is quoted for the remote shell; nothing here writes on the
node.  Connection-level failures (unreachable host, unknown host key,
refused authentication) raise ``TransportError`` with a one-line reason, so
the collector can record it and move on to the next node.
"""

from __future__ import annotations

import os
import selectors
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from ofrace.collect import known_hosts, template
from ofrace.errors import EnvironmentFailure


class TransportError(EnvironmentFailure):
    """The node could not be reached or refused us; one line, for the user."""


class LimitExceeded(TransportError):
    """The node used up its time or its output bytes (``Budget``)."""


# A node's answer may be this big (bytes received, and again after decompression)
# unless the inventory or ``collect --max-output`` says otherwise: ~8x the biggest
# chassis benchmarked (the scale lab's 224k br-int flows of ~220 bytes: ~50 MB, ~64 MB
# as counted with ``LINE_COST``), while what one hostile node can cost here stays
# bounded (about 1.6x this, measured by tests/test_hostile_nodes.py).
DEFAULT_MAX_OUTPUT = 512 << 20
# How long one node may take, connect to last byte, unless told otherwise.
DEFAULT_TIMEOUT = 300.0
CHUNK = 1 << 20


class Budget:
    """What one node may still cost: one deadline (covering connect, every command
    and every read, however slowly the bytes trickle in) and a number of output
    bytes, shared by all of the node's commands."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, max_output: int = DEFAULT_MAX_OUTPUT):
        self.timeout = timeout
        self.max_output = max_output
        self.deadline = time.monotonic() + timeout
        self._used = 0
        self._lock = threading.Lock()

    def left(self) -> float:
        """Seconds until the deadline (raises LimitExceeded once it has passed)."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.expired()
        return left

    def expired(self) -> LimitExceeded:
        return LimitExceeded(f"no answer within {self.timeout:g} s")

    def spend(self, count: int) -> None:
        """Count ``count`` more bytes (raises LimitExceeded past ``max_output``)."""
        with self._lock:
            self._used += count
            if self._used > self.max_output:
                raise LimitExceeded(f"output exceeded {self.max_output} bytes")


@dataclass
class CommandOutput:
    rc: int
    stdout: bytes
    stderr: bytes


def _with_env(argv: list[str], env: dict[str, str]) -> list[str]:
    """Prefix ``env K=V`` so the variables reach the node's command."""
    if not env:
        return list(argv)
    return ["env", *(f"{k}={v}" for k, v in sorted(env.items())), *argv]


class _Processes:
    """The processes a transport has running here, so ``kill_all`` can end them
    (a deadline, Ctrl-C); each runs in its own session, so killing its process
    group also ends what a template started under it."""

    def __init__(self):
        self._live: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self.closed = False

    def run(self, argv: list[str], budget: Budget, env: dict | None = None,
            on_stdout=None) -> CommandOutput:
        """Run ``argv`` here, reading its output as it comes: stdout goes to
        ``on_stdout`` chunk by chunk (or is kept), every byte counts against
        ``budget``, and the process group is killed at the deadline, past the
        byte limit, or if ``on_stdout`` raises (FileNotFoundError is the
        caller's to interpret)."""
        budget.left()
        with self._lock:
            if self.closed:
                raise TransportError("collect interrupted")
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=env, start_new_session=True)
            self._live.add(proc)
        out, err = bytearray(), bytearray()
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(proc.stdout, selectors.EVENT_READ, out)
                selector.register(proc.stderr, selectors.EVENT_READ, err)
                while selector.get_map():
                    for key, _ in selector.select(budget.left()):
                        chunk = os.read(key.fd, CHUNK)
                        if not chunk:
                            selector.unregister(key.fileobj)
                            continue
                        budget.spend(len(chunk))
                        if key.data is out and on_stdout is not None:
                            on_stdout(chunk)
                        else:
                            key.data.extend(chunk)
            try:  # output closed: the exit status is near, but not if the process lingers
                proc.wait(budget.left())
            except subprocess.TimeoutExpired:
                raise budget.expired() from None
        except BaseException:
            self._kill(proc)
            raise
        finally:
            proc.stdout.close()
            proc.stderr.close()
            with self._lock:
                self._live.discard(proc)
        return CommandOutput(proc.returncode, bytes(out), bytes(err))

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()

    def kill_all(self) -> None:
        with self._lock:
            self.closed = True
            live = list(self._live)
        for proc in live:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@dataclass
class LocalTransport:
    """Commands run on this machine (ofrace runs on the node itself)."""

    env: dict[str, str] = field(default_factory=dict)
    _processes: _Processes = field(default_factory=_Processes, init=False, repr=False)

    def describe(self) -> str:
        return "local"

    def run(self, argv: list[str], timeout: float = 120, on_stdout=None,
            budget: Budget | None = None) -> CommandOutput:
        """Run ``argv`` within ``budget`` (else within ``timeout`` seconds)."""
        try:
            return self._processes.run(argv, budget or Budget(timeout),
                                       {**os.environ, **self.env}, on_stdout)
        except FileNotFoundError:
            return CommandOutput(127, b"", f"{argv[0]}: command not found".encode())

    def close(self) -> None:
        """End whatever still runs (a collect interrupted or past its deadline)."""
        self._processes.kill_all()


@dataclass
class ExecTransport:
    """Commands wrapped by a template: ``docker exec -i {node}``, ``kubectl exec …``.

    The template is split like a shell line first, then each ``{field}`` is
    filled inside its own argument (``ofrace.collect.template``), so a value
    never becomes shell syntax.  The node's argv is appended as separate
    arguments, unless the template holds ``{command}``, which then receives the
    whole argv as one shell-quoted string (for wrappers that hand a string to a
    shell, such as ``ssh host {command}`` or ``sh -c {command}``).
    The template may hold credentials (a token for kubectl), so messages and
    the snapshot name only its program: ``exec:kubectl …``.
    """

    template: str
    fields: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    _processes: _Processes = field(default_factory=_Processes, init=False, repr=False)

    def describe(self) -> str:
        return f"exec:{template.program(self.template)} …"

    def wrap(self, argv: list[str]) -> list[str]:
        try:
            return template.fill(self.template, self.fields, _with_env(argv, self.env))
        except template.TemplateError as exc:
            raise TransportError(f"{self.describe()}: template: {exc}") from None

    def run(self, argv: list[str], timeout: float = 120, on_stdout=None,
            budget: Budget | None = None) -> CommandOutput:
        """Run ``argv`` through the template within ``budget`` (else ``timeout`` seconds)."""
        wrapped = self.wrap(argv)
        try:
            return self._processes.run(wrapped, budget or Budget(timeout), on_stdout=on_stdout)
        except FileNotFoundError:
            # the wrapper itself (docker, kubectl, ip) is missing: no node is reachable
            raise TransportError(f"{wrapped[0]}: command not found") from None

    def close(self) -> None:
        """End whatever still runs (a collect interrupted or past its deadline)."""
        self._processes.kill_all()


class _HostKeyCheck(paramiko.MissingHostKeyPolicy):
    """Called by paramiko when no trusted key is known for the host.

    Refuses revoked keys always, unknown keys unless told; a key accepted
    unverified is remembered here, in memory, and written nowhere.
    """

    def __init__(self, known: known_hosts.HostKeys, strict: bool, where: str, files: str):
        self.known, self.strict, self.where, self.files = known, strict, where, files
        self.accepted: str | None = None

    def missing_host_key(self, client, hostname, key):
        what = f"{key.get_name()} {known_hosts.fingerprint(key)}"
        if key.asbytes() in self.known.revoked:
            raise TransportError(f"{self.where}: host key {what} is marked @revoked in "
                                 "known_hosts; refusing it")
        if not self.strict:
            self.accepted = what
            return
        if self.known.cert_authority:
            raise TransportError(
                f"{self.where}: known_hosts trusts a @cert-authority for this host, but "
                "ofrace (paramiko) cannot verify host certificates: add the host's own key "
                f"({what}) to known_hosts after checking it")
        raise TransportError(
            f"{self.where}: host key unknown (not in {self.files}); verify it and add it "
            "to known_hosts, or pass --insecure-host-keys to skip the check")


@dataclass
class SSHTransport:
    """Commands over SSH with paramiko.

    Host keys are checked against known_hosts (the user's, the system's and
    the one given) unless ``strict_host_keys`` is turned off explicitly; the
    files are only read (``ofrace.collect.known_hosts``), and a key accepted
    without a check is kept in memory, reported through ``on_unverified`` and
    ``describe()``, and never saved.
    ``~/.ssh/config`` supplies HostName, User, Port, IdentityFile,
    UserKnownHostsFile and ProxyCommand, as OpenSSH would.
    """

    host: str
    user: str | None = None
    port: int | None = None
    identity: str | None = None
    known_hosts: str | None = None
    strict_host_keys: bool = True
    timeout: float = 15.0
    env: dict[str, str] = field(default_factory=dict)
    ssh_config: str | None = "~/.ssh/config"
    system_known_hosts: tuple[str, ...] = ("~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts")
    # called once with (where, "key-type SHA256:…") when a key is accepted unverified
    on_unverified: Callable[[str, str], None] | None = field(default=None, repr=False)
    unverified_key: str | None = field(default=None, init=False)
    _client: paramiko.SSHClient | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _closed: bool = field(default=False, init=False, repr=False)
    _connecting: tuple | None = field(default=None, init=False, repr=False)

    def describe(self) -> str:
        return f"ssh://{self.user + '@' if self.user else ''}{self.host}" + (
            f":{self.port}" if self.port else "") + (
            " (host key NOT verified)" if self.unverified_key else "")

    def _settings(self) -> dict:
        settings = {"hostname": self.host, "port": self.port, "user": self.user,
                    "identity": [self.identity] if self.identity else [],
                    "known_hosts": [self.known_hosts] if self.known_hosts else [],
                    "proxy": None}
        path = Path(os.path.expanduser(self.ssh_config)) if self.ssh_config else None
        if path and path.is_file():
            conf = paramiko.SSHConfig.from_path(str(path)).lookup(self.host)
            settings["hostname"] = conf.get("hostname", self.host)
            settings["port"] = settings["port"] or (int(conf["port"]) if "port" in conf else None)
            settings["user"] = settings["user"] or conf.get("user")
            settings["identity"] += conf.get("identityfile", [])
            if "userknownhostsfile" in conf:
                settings["known_hosts"] += conf["userknownhostsfile"].split()
            settings["proxy"] = conf.get("proxycommand")
        settings["port"] = settings["port"] or 22
        settings["user"] = settings["user"] or os.environ.get("USER") or "root"
        return settings

    def _host_key_check(self, s: dict, where: str) -> _HostKeyCheck:
        """Read every known_hosts file (never write one) and decide for this host."""
        given = [os.path.expanduser(kh) for kh in s["known_hosts"]]
        defaults = [os.path.expanduser(kh) for kh in self.system_known_hosts]
        texts, unreadable = known_hosts.read_files(
            [p for p in defaults if os.path.isfile(p)] + given)
        if self.strict_host_keys and self.known_hosts:
            mine = os.path.expanduser(self.known_hosts)
            if mine in unreadable:
                state = "does not exist" if not os.path.exists(mine) else "cannot be read"
                raise TransportError(f"known_hosts file {mine} {state}")
        known = known_hosts.lookup(texts, s["hostname"], s["port"])
        return _HostKeyCheck(known, self.strict_host_keys, where,
                             ", ".join(s["known_hosts"]) or "~/.ssh/known_hosts")

    def _connect(self) -> paramiko.SSHClient:
        s = self._settings()
        where = f"{s['user']}@{s['hostname']}:{s['port']}"
        check = self._host_key_check(s, where)
        client = paramiko.SSHClient()
        # Trusted keys go into paramiko's in-memory table only (no file name is
        # ever given to it, so nothing can be saved back).
        for key_type, key in check.known.trusted:
            client.get_host_keys().add(check.known.name, key_type, key)
        client.set_missing_host_key_policy(check)
        keys = [os.path.expanduser(k) for k in s["identity"]]
        for key in keys:
            if not os.path.isfile(key):
                raise TransportError(f"identity file {key} does not exist")
        try:
            client.connect(
                s["hostname"], port=s["port"], username=s["user"],
                key_filename=keys or None, look_for_keys=not keys, allow_agent=not keys,
                timeout=self.timeout, banner_timeout=self.timeout, auth_timeout=self.timeout,
                sock=paramiko.ProxyCommand(s["proxy"]) if s["proxy"] else None)
        except TransportError:
            client.close()
            raise
        except paramiko.BadHostKeyException:
            client.close()
            raise TransportError(
                f"{where}: host key does not match known_hosts (possible "
                "man-in-the-middle, or the host was reinstalled)") from None
        except paramiko.SSHException as exc:
            client.close()
            if isinstance(exc, paramiko.AuthenticationException):
                how = f"key {', '.join(keys)}" if keys else "agent/default keys"
                raise TransportError(f"{where}: authentication failed with {how}") from None
            raise TransportError(f"{where}: {exc}") from None
        except (TimeoutError, OSError, EOFError) as exc:
            client.close()
            reason = exc.strerror if getattr(exc, "strerror", None) else str(exc) or "timed out"
            raise TransportError(f"{where}: cannot connect: {reason}") from None
        if check.accepted:
            self.unverified_key = check.accepted
            if self.on_unverified is not None:
                self.on_unverified(where, check.accepted)
        return client

    def _connected(self, budget: Budget) -> paramiko.SSHClient:
        """The open connection, made within ``budget``'s deadline.

        ``_connect`` runs in a thread of its own, so that neither the deadline nor
        ``close()`` (Ctrl-C) has to wait for it; a connection that arrives too late
        is closed as soon as it does.
        """
        with self._lock:
            if self._client is not None:
                return self._client
            if self._closed:
                raise TransportError("collect interrupted")
            if self._connecting is None or "error" in self._connecting[1]:
                self._connecting = (threading.Event(), {})
                threading.Thread(target=self._connect_in_background, args=self._connecting,
                                 daemon=True, name=f"ssh connect {self.host}").start()
            done, result = self._connecting
        done.wait(max(0.0, budget.deadline - time.monotonic()))
        with self._lock:
            if self._closed:
                raise TransportError("collect interrupted")
            if self._client is not None:
                return self._client
            if "error" in result:
                raise result["error"]
        raise budget.expired()

    def _connect_in_background(self, done: threading.Event, result: dict) -> None:
        try:
            client = self._connect()
        except BaseException as exc:  # handed to the threads waiting for it
            with self._lock:
                result["error"] = exc
        else:
            with self._lock:
                if self._closed:
                    client.close()
                else:
                    self._client = client
        done.set()

    def run(self, argv: list[str], timeout: float = 120, on_stdout=None,
            budget: Budget | None = None) -> CommandOutput:
        """Run ``argv`` within ``budget`` (else ``timeout`` seconds): at the deadline the
        connection is closed, whatever the node is (or is not) sending."""
        budget = budget or Budget(timeout)
        client = self._connected(budget)
        command = shlex.join(_with_env(argv, self.env))
        watchdog = threading.Timer(budget.left(), client.close)
        watchdog.daemon = True
        watchdog.start()
        channel = None
        try:
            channel = client.get_transport().open_session(timeout=budget.left())
            channel.exec_command(command)
            channel.shutdown_write()
            out, err = _read_channel(channel, budget, on_stdout)
            if not channel.status_event.wait(budget.left()):
                raise budget.expired()
            rc = channel.recv_exit_status()
            if rc == -1:
                raise TransportError(
                    f"{self.describe()}: connection lost (no exit status from the node)")
        except (TimeoutError, EOFError, paramiko.SSHException, OSError, AttributeError) as exc:
            if time.monotonic() >= budget.deadline:
                raise budget.expired() from None
            raise TransportError(
                f"{self.describe()}: connection lost: {exc or type(exc).__name__}") from None
        except LimitExceeded:
            client.close()  # the node is out of time or bytes: nothing more is read from it
            raise
        except BaseException:
            if channel is not None:  # the reader gave up (a broken answer, Ctrl-C)
                channel.close()
            raise
        finally:
            watchdog.cancel()
        return CommandOutput(rc, out, err)

    def close(self) -> None:
        """Close the connection; commands still running fail at once."""
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
            if self._connecting is not None:
                self._connecting[0].set()  # wake whoever waits for the connection
        if client is not None:
            client.close()


def _read_channel(channel, budget: Budget, on_stdout) -> tuple[bytes, bytes]:
    """Read a channel's stdout and stderr until both end, within ``budget``.

    ``select`` on the channel wakes for either stream (paramiko sets its pipe for
    both), so a node that floods stderr cannot stall stdout, and one that trickles
    is cut off at the deadline, not a read timeout later.
    """
    out, err = bytearray(), bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(channel, selectors.EVENT_READ)
        while True:
            busy = False
            if channel.recv_stderr_ready():
                chunk = channel.recv_stderr(CHUNK)
                budget.spend(len(chunk))
                err += chunk
                busy = True
            if channel.recv_ready():
                chunk = channel.recv(CHUNK)
                budget.spend(len(chunk))
                if on_stdout is not None:
                    on_stdout(chunk)
                else:
                    out += chunk
                busy = True
            if not busy:
                if channel.eof_received or channel.closed:
                    return bytes(out), bytes(err)
                selector.select(budget.left())
