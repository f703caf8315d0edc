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
import shlex
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from ofrace.collect import known_hosts, template


class TransportError(Exception):
    """The node could not be reached or refused us; one line, for the user."""


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


def _run_process(argv: list[str], timeout: float, env: dict | None = None,
                 on_stdout=None) -> CommandOutput:
    """Run a process here; a timeout is an error result (FileNotFoundError is the
    caller's to interpret)."""
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return CommandOutput(-1, b"", f"timed out after {timeout}s".encode())
    return _deliver(CommandOutput(proc.returncode, proc.stdout, proc.stderr), on_stdout)


def _deliver(out: CommandOutput, on_stdout) -> CommandOutput:
    if on_stdout is not None and out.stdout:
        on_stdout(out.stdout)
        out.stdout = b""
    return out


@dataclass
class LocalTransport:
    """Commands run on this machine (ofrace runs on the node itself)."""

    env: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return "local"

    def run(self, argv: list[str], timeout: float = 120, on_stdout=None) -> CommandOutput:
        try:
            return _run_process(argv, timeout, {**os.environ, **self.env}, on_stdout)
        except FileNotFoundError:
            return CommandOutput(127, b"", f"{argv[0]}: command not found".encode())

    def close(self) -> None:
        pass


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

    def describe(self) -> str:
        return f"exec:{template.program(self.template)} …"

    def wrap(self, argv: list[str]) -> list[str]:
        try:
            return template.fill(self.template, self.fields, _with_env(argv, self.env))
        except template.TemplateError as exc:
            raise TransportError(f"{self.describe()}: template: {exc}") from None

    def run(self, argv: list[str], timeout: float = 120, on_stdout=None) -> CommandOutput:
        wrapped = self.wrap(argv)
        try:
            return _run_process(wrapped, timeout, on_stdout=on_stdout)
        except FileNotFoundError:
            # the wrapper itself (docker, kubectl, ip) is missing: no node is reachable
            raise TransportError(f"{wrapped[0]}: command not found") from None

    def close(self) -> None:
        pass


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

    def run(self, argv: list[str], timeout: float = 120, on_stdout=None) -> CommandOutput:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            client = self._client
        command = shlex.join(_with_env(argv, self.env))
        try:
            _, stdout, stderr = client.exec_command(command, timeout=timeout)
            channel = stdout.channel
            channel.shutdown_write()
            if on_stdout is None:
                out = stdout.read()
            else:
                out = b""
                while chunk := channel.recv(1 << 20):
                    on_stdout(chunk)
            err = stderr.read()
            rc = stdout.channel.recv_exit_status()
            if rc == -1:
                raise TransportError(
                    f"{self.describe()}: connection lost (no exit status from the node)")
        except (TimeoutError, EOFError, paramiko.SSHException, OSError) as exc:
            raise TransportError(
                f"{self.describe()}: connection lost: {exc or type(exc).__name__}") from None
        return CommandOutput(rc, out, err)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
