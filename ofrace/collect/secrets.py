"""Secrets stay out of snapshots and messages: redacted where data enters ofrace.

A snapshot is a file people attach to tickets, so what a node or database
sends is scrubbed before it is stored (``redact_rows``), and the snapshot
lists *where* something was removed — table, row, column, never the value.

What counts as a secret (the value becomes ``<redacted>``):

* a map entry (``options``, ``other_config``, ``external_ids``… of any table)
  whose key names a secret: a word ``psk``, ``password``, ``passwd``, ``pass``,
  ``pwd``, ``secret``, ``token``, ``credential(s)``, ``passphrase``, ``apikey``,
  ``privkey`` (words are split at ``-_.:``; ``Interface options:psk`` for IPsec);
* a map entry whose key has the word ``key`` (``private_key``, ``ssl-key``…),
  unless its value is a plain identifier: a number (``options:key=5``,
  ``in_key``, ``requested-tnl-key``), ``flow`` (tunnel keys) or an absolute file
  name (OVS stores key *files*, ``other_config:private_key=/etc/…pem``);
* any string holding PEM text (``-----BEGIN …``: certificate, key or CA
  contents, wherever they appear — the SSL tables normally hold file names,
  which are kept, and which ``--sb-via`` needs);
* the password in a URL-like remote, ``tcp:user:pass@host`` or
  ``https://user:pass@host`` (only the password part).

Kept on purpose: ``iface-id``, ``remote_ip``, ``remote_name``, ``key=flow``,
tunnel keys, file names of certificates and keys, ``ovn-remote`` without
credentials — the trace and audit use them, and they are not secrets.

The exec template and env values are never stored (the transport describes
itself as ``exec:<program> …``); words of the template that look like
credentials (``--token=…``, ``--password X``, ``TOKEN=…``) and the values of
env variables named like secrets are also cut out of error text from the
node (``scrub``), in case the wrapper repeats them.
"""

from __future__ import annotations

import re
import shlex
from functools import lru_cache

REDACTED = "<redacted>"
MAX_RECORDED = 1000   # the redacted list names places, not every one of a million rows

_SECRET_WORDS = {"psk", "password", "passwd", "pass", "pwd", "secret", "secrets", "token",
                 "tokens", "credential", "credentials", "passphrase", "apikey", "privkey"}
_SPLIT = re.compile(r"[-_.:/\s]+")
_PLAIN_KEY_VALUE = re.compile(r"(?:[0-9]+|0x[0-9a-fA-F]+|flow|/[^\s]*)?")
_USERINFO = re.compile(r"(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]*:(?://)?[^\s:@/,]+):"
                       r"([^\s@/,]+)@")


def _words(name: str) -> set[str]:
    return {w for w in _SPLIT.split(name.lower()) if w}


@lru_cache(maxsize=4096)
def _key_kind(key: str) -> int:
    """0: never a secret, 1: always, 2: a secret unless the value is a plain identifier."""
    words = _words(key)
    if words & _SECRET_WORDS:
        return 1
    if any(w.endswith("key") for w in words):
        return 2
    return 0


def secret_map_entry(key: str, value: object) -> bool:
    """Whether a map entry ``key=value`` holds a secret (see the module's rules)."""
    kind = _key_kind(key)
    if kind == 2:
        return not (isinstance(value, str) and _PLAIN_KEY_VALUE.fullmatch(value))
    return kind == 1


def scrub_string(value: str) -> str | None:
    """``value`` with its secret parts removed, or None when nothing is secret."""
    if "-----BEGIN" in value:
        return REDACTED
    if "@" in value and not any(c.isspace() for c in value):
        scrubbed = _USERINFO.sub(lambda m: f"{m[1]}:{REDACTED}@", value)
        if scrubbed != value:
            return scrubbed
    return None


def _suspect(value: str) -> bool:
    return "@" in value or "-----BEGIN" in value


def redact_rows(tables: dict, where: str, change: bool = True) -> list[str]:
    """Redact secrets in OVSDB rows in place; returns where (``where: Table row column``).
    ``change=False``: only say where, the rows untouched.

    Runs over every row of the Southbound (a million logical flows), so the
    common case — nothing suspicious — is kept to a few C-level checks per value.
    """
    found: list[str] = []
    if not isinstance(tables, dict):
        return found
    for table, rows in tables.items():
        if not isinstance(rows, list):
            continue
        for row in rows:
            if not isinstance(row, dict):
                continue
            for column, value in row.items():
                kind = type(value)
                if kind is str:
                    if _suspect(value):
                        scrubbed = scrub_string(value)
                        if scrubbed is not None:
                            if change:
                                row[column] = scrubbed
                            found.append(_place(where, table, row, column))
                elif kind is dict:
                    if value:
                        _redact_map(value, where, table, row, column, found, change)
                elif kind is list and value:
                    for i, item in enumerate(value):
                        if type(item) is str and _suspect(item):
                            scrubbed = scrub_string(item)
                            if scrubbed is not None:
                                if change:
                                    value[i] = scrubbed
                                found.append(_place(where, table, row, column))
    return found


def _redact_map(value: dict, where: str, table: str, row: dict, column: str,
                found: list[str], change: bool = True) -> None:
    for key, item in value.items():
        if type(key) is not str:
            continue
        if _key_kind(key) and secret_map_entry(key, item):
            if item != REDACTED:
                if change:
                    value[key] = REDACTED
                found.append(_place(where, table, row, f"{column}:{key}"))
        elif type(item) is str and _suspect(item):
            scrubbed = scrub_string(item)
            if scrubbed is not None:
                if change:
                    value[key] = scrubbed
                found.append(_place(where, table, row, f"{column}:{key}"))


def _place(where: str, table: str, row: dict, column: str) -> str:
    name = row.get("name")
    label = name if isinstance(name, str) else str(row.get("_uuid", "?"))[:8]
    return f"{where}: {table} {label!r} {column}"


def template_secrets(template: str | None, env: dict[str, str] | None = None) -> list[str]:
    """Words of an exec template (and env values) that look like credentials."""
    found = [v for k, v in (env or {}).items() if _words(k) & (_SECRET_WORDS | {"key"}) and v]
    if not template:
        return found
    try:
        words = shlex.split(template)
    except ValueError:
        words = template.split()
    for i, word in enumerate(words):
        name, sep, value = word.lstrip("-").partition("=")
        named_secret = bool(_words(name) & (_SECRET_WORDS | {"key"}))
        if sep and named_secret and value:
            found.append(value)
        elif word.startswith("-") and not sep and named_secret and i + 1 < len(words):
            found.append(words[i + 1])
        elif word.lower() == "bearer" and i + 1 < len(words):
            found.append(words[i + 1])
        elif word.lower().startswith(("authorization:", "bearer ")):
            found.append(word.split()[-1])
    return [s for s in found if len(s) >= 4 and "{" not in s]


def scrub(text: str | None, secrets: list[str]) -> str | None:
    """``text`` without any of ``secrets`` (nor PEM or URL passwords) in it."""
    if not text:
        return text
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return scrub_string(text) if "-----BEGIN" in text else (
        _USERINFO.sub(lambda m: f"{m[1]}:{REDACTED}@", text) if "@" in text else text)


def redact_chassis(chassis, node_secrets: list[str], record: list[str]) -> None:
    """One node's rows and error text, before anything is shown or stored."""
    places = redact_rows(chassis.ovsdb, chassis.name)
    scrubbed = False
    for problem in chassis.problems:
        clean = scrub(problem.error, node_secrets)
        scrubbed |= clean != problem.error
        problem.error = clean
    for command in chassis.commands:
        clean = scrub(command.error, node_secrets)
        scrubbed |= clean != command.error
        command.error = clean
    for bridge in chassis.bridges.values():
        for key, error in list(bridge.errors.items()):
            clean = scrub(error, node_secrets)
            scrubbed |= clean != error
            bridge.errors[key] = clean
    if scrubbed:
        places.append(f"{chassis.name}: error text (credentials of the exec template, "
                      "env values, PEM or URL passwords)")
    _record(record, places)


def redact_database(db, record: list[str], rows: dict | None = None) -> None:
    """An OVN database's rows, its remote and its error, before anything is shown or
    stored.  ``rows``: of its rows, only these may hold a secret (the others came from
    the cache, which keeps none: ``ofrace.collect.database_cache``)."""
    places = redact_rows(db.tables if rows is None else rows, db.name)
    remote = scrub(db.remote, [])
    if remote != db.remote:
        db.remote = remote
        places.append(f"{db.name}: remote (password)")
    error = scrub(db.error, [])
    if error != db.error:
        db.error = error
        places.append(f"{db.name}: error text (PEM or URL password)")
    _record(record, places)


def redact_more_rows(tables: dict, where: str, record: list[str]) -> None:
    """Rows of a database read later (a live trace's logical flows by datapath): redacted
    as the first read's were, and where, recorded with them."""
    _record(record, redact_rows(tables, where))


def _record(record: list[str], places: list[str]) -> None:
    room = MAX_RECORDED - len(record)
    if room <= 0 or len(places) <= room:
        record.extend(places if room > 0 else [])
        return
    record.extend(places[:room - 1])
    record.append(f"… and more: over {MAX_RECORDED} places redacted")
