"""known_hosts files, read the way OpenSSH reads them, and never written.

paramiko's own reader stops with a traceback on a valid ``@cert-authority``
line, ignores ``@revoked``, and its AutoAddPolicy saves keys back into the
file it loaded (dropping its comments).  This module only reads: for one
host it returns the keys the files trust, the keys they revoke, and whether
a certificate authority is trusted for it — paramiko cannot check host
certificates, so such a host counts as unknown and the message says why.

Understood (sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT"): comments, ``@cert-authority``
and ``@revoked`` markers, comma-separated patterns with ``*``/``?`` and ``!``
negation, ``[host]:port`` for ports other than 22, hashed names
(``|1|salt|hmac``).  A line that cannot be read is skipped, as ssh does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass, field

import paramiko


@dataclass
class HostKeys:
    """What the known_hosts files say about one host."""

    name: str                                          # ``host`` or ``[host]:port``
    trusted: list[tuple[str, paramiko.PKey]] = field(default_factory=list)
    revoked: set[bytes] = field(default_factory=set)   # key blobs
    cert_authority: bool = False                       # a @cert-authority line matches


def host_name(host: str, port: int) -> str:
    """The name known_hosts uses for ``host`` reached on ``port``."""
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    """``SHA256:…`` as ssh-keygen -l prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _pattern_matches(pattern: str, name: str) -> bool:
    if pattern.startswith("|1|"):
        try:
            salt_b64, hash_b64 = pattern[3:].split("|", 1)
            salt, want = base64.b64decode(salt_b64), base64.b64decode(hash_b64)
        except (ValueError, binascii.Error):
            return False
        got = hmac.new(salt, name.encode(), hashlib.sha1).digest()
        return hmac.compare_digest(got, want)
    if "*" not in pattern and "?" not in pattern:
        return pattern.lower() == name.lower()
    # only * and ? are wildcards ([ ] are literal: they bracket "[host]:port")
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, re.IGNORECASE | re.DOTALL) is not None


def _hosts_match(patterns: str, name: str) -> bool:
    """OpenSSH's rule: any positive pattern matches and no negated one does."""
    matched = False
    for pattern in patterns.split(","):
        if pattern.startswith("!"):
            if _pattern_matches(pattern[1:], name):
                return False
        elif pattern and _pattern_matches(pattern, name):
            matched = True
    return matched


def lookup(texts: list[str], host: str, port: int) -> HostKeys:
    """What ``texts`` (contents of known_hosts files) say about ``host``:``port``."""
    found = HostKeys(name=host_name(host, port))
    for text in texts:
        for line in text.splitlines():
            _read_line(line, found)
    revoked = found.revoked
    found.trusted = [(t, k) for t, k in found.trusted if k.asbytes() not in revoked]
    return found


def _read_line(line: str, found: HostKeys) -> None:
    words = line.split()
    if not words or words[0].startswith("#"):
        return
    marker = None
    if words[0].startswith("@"):
        marker, words = words[0], words[1:]
        if marker not in ("@cert-authority", "@revoked"):
            return
    if len(words) < 3 or not _hosts_match(words[0], found.name):
        return
    key_type, key_b64 = words[1], words[2]
    try:
        blob = base64.b64decode(key_b64, validate=True)
    except (ValueError, binascii.Error):
        return
    if marker == "@revoked":
        found.revoked.add(blob)
    elif marker == "@cert-authority":
        found.cert_authority = True
    else:
        try:
            key = paramiko.PKey.from_type_string(key_type, blob)
        except Exception:  # a type paramiko lacks (sk-…), or a damaged key: skip, as ssh does
            return
        found.trusted.append((key_type, key))


def read_files(paths: list[str]) -> tuple[list[str], list[str]]:
    """The readable files' texts, and the paths that could not be read."""
    texts, unreadable = [], []
    for path in paths:
        try:
            with open(path, "rb") as fh:
                texts.append(fh.read().decode("utf-8", errors="replace"))
        except OSError:
            unreadable.append(path)
    return texts, unreadable
