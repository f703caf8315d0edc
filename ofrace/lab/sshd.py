"""One sshd per chassis namespace, so every chassis is an SSH host of its own.

The lab makes all the keys: a client key that ofrace and the tests use, one
host key per chassis, and a known_hosts file naming each chassis address, so
clients can keep strict host key checking on.  ``SetEnv`` puts an SSH session
into that chassis' OVS/OVN run directory, so ``ovs-vsctl show`` needs no flags.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ofrace.lab.command import run

PRIVSEP_DIR = Path("/run/sshd")


def make_key(path: Path, comment: str) -> str:
    """Create an ed25519 key pair at ``path`` and return the public key line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in (path, path.with_name(path.name + ".pub")):
        old.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    return path.with_name(path.name + ".pub").read_text().strip()


def known_hosts_line(address: str, host_public_key: str) -> str:
    key_type, key_data = host_public_key.split()[:2]
    return f"{address} {key_type} {key_data}"


def write_config(
    path: Path,
    *,
    address: str,
    host_key: Path,
    pidfile: Path,
    authorized_keys: Path,
    env: Mapping[str, str] | None = None,
    port: int = 22,
    purpose: str = "this sshd serves one lab chassis",
) -> None:
    """An sshd_config with key-only root login on ``address``:``port`` (``env`` set into
    every session, so a chassis' OVS tools need no flags)."""
    lines = [
        f"# Written by ofrace; {purpose}.",
        f"ListenAddress {address}:{port}",
        f"HostKey {host_key}",
        f"PidFile {pidfile}",
        f"AuthorizedKeysFile {authorized_keys}",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "PrintMotd no",
        "UseDNS no",
        "Subsystem sftp internal-sftp",
    ]
    if env:
        lines.append("SetEnv " + " ".join(f'"{k}={v}"' for k, v in env.items()))
    path.write_text("\n".join(lines) + "\n")


def ensure_privsep_dir() -> None:
    """sshd refuses to start without its privilege-separation directory."""
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
