"""Run the lab's external programs from argv lists and report failures in one line."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence

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


def find_program(name: str) -> str:
    """Absolute path of a program, or a LabError that says which package to install."""
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
