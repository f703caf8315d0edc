"""Run the lab's external programs from argv lists and report failures in one line."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from ofrace.errors import LabError

# Which Debian package brings each program the lab runs, for the error message.
PACKAGE_OF = {
    "ovsdb-tool": "openvswitch-switch",
    "ovsdb-server": "openvswitch-switch",
    "ovs-vswitchd": "openvswitch-switch",
    "ovs-vsctl": "openvswitch-switch",
    "ovs-appctl": "openvswitch-switch",
    "ovs-ofctl": "openvswitch-switch",
    "ovn-northd": "ovn-central",
    "ovn-nbctl": "ovn-central",
    "ovn-sbctl": "ovn-central",
    "ovn-appctl": "ovn-host",
    "ovn-controller": "ovn-host",
    "sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
    "ip": "iproute2",
}

# Daemons and tools live in sbin directories that a non-login PATH may lack.
_EXTRA_PATH = ("/usr/sbin", "/sbin", "/usr/local/sbin")

# Where ``ofrace lab up --ovn PREFIX`` (or OFRACE_OVN_PREFIX) finds a build of OVN and
# the OVS it pins: its programs come before the system's.  One per process, set by the
# lab that runs on it, since every command the lab runs must come from the same build.
PREFIX_ENV = "OFRACE_OVN_PREFIX"
_build_prefix: Path | None = None


def use_build(prefix: str | os.PathLike | None) -> Path | None:
    """Run OVS/OVN programs from ``prefix`` (a ``make install`` tree), or the system's."""
    global _build_prefix
    if prefix is None:
        _build_prefix = None
        return None
    root = Path(prefix).expanduser().resolve()
    missing = [p for p in ("bin/ovn-controller", "sbin/ovs-vswitchd", "bin/ovsdb-tool")
               if not (root / p).is_file()]
    if missing:
        raise LabError(f"{root} is not an OVN build prefix: no {', '.join(missing)} "
                       f"(build OVN and its OVS submodule with --prefix={root}, make install)")
    _build_prefix = root
    return root


def build_prefix() -> Path | None:
    return _build_prefix


def build_path_env() -> dict[str, str]:
    """PATH for a session on a chassis (sshd SetEnv, ``ip netns exec env``) of a build."""
    if _build_prefix is None:
        return {}
    return {"PATH": f"{_build_prefix / 'bin'}:{_build_prefix / 'sbin'}:"
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


def shared_file(relative: str) -> Path:
    """A file OVS/OVN install under share/ (schemas), from the build in use."""
    root = _build_prefix / "share" if _build_prefix else Path("/usr/share")
    return root / relative


def find_program(name: str) -> str:
    """Absolute path of a program, or a LabError that says which package to install."""
    found = None
    if _build_prefix is not None:
        for directory in ("bin", "sbin"):
            found = shutil.which(name, path=str(_build_prefix / directory))
            if found:
                return found
    found = shutil.which(name)
    if not found:
        for directory in _EXTRA_PATH:
            found = shutil.which(name, path=directory)
            if found:
                break
    if not found:
        package = PACKAGE_OF.get(name, name)
        raise LabError(f"{name} not found: apt-get install {package}")
    return found


def netns_prefix(netns: str | None) -> list[str]:
    """The argv prefix that runs a command inside a network namespace."""
    return [find_program("ip"), "netns", "exec", netns] if netns else []


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    netns: str | None = None,
    check: bool = True,
    timeout: float = 60,
    input: str | None = None,
) -> subprocess.CompletedProcess:
    """Run ``argv`` (optionally in ``netns``, with ``env`` added to ours) and capture text output.

    With ``check``, a non-zero exit becomes a LabError naming the program and
    its last line of error output.
    """
    program = find_program(argv[0]) if "/" not in argv[0] else argv[0]
    full = [*netns_prefix(netns), program, *argv[1:]]
    merged = {**os.environ, **env} if env else None
    try:
        result = subprocess.run(
            full, env=merged, capture_output=True, text=True, timeout=timeout, input=input
        )
    except subprocess.TimeoutExpired:
        raise LabError(f"{argv[0]} timed out after {timeout:g}s: {_brief(argv)}") from None
    if check and result.returncode != 0:
        lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
        detail = "; ".join(line.strip() for line in lines if line.strip())[:400]
        detail = detail or f"exit status {result.returncode}"
        raise LabError(f"{argv[0]} failed: {detail} ({_brief(argv)})")
    return result


def _brief(argv: Sequence[str]) -> str:
    """A command line short enough to stay on one line of an error message."""
    text = " ".join(argv)
    return text if len(text) <= 160 else text[:157] + "..."
