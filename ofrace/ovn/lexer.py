"""Tokens of OVN's expression language, as OVN's ``lib/lex.c`` reads them.

JSON-quoted strings; decimal (no leading zeros), ``0x`` hex, MAC (exactly
``xx:xx:xx:xx:xx:xx``), IPv4 and IPv6 constants; ``//`` and one-line ``/* */``
comments.  A token starting with hex letters is a constant only if a ``:``
follows them (``fe80::1``), else a name.  A lexical error is an ``error`` token,
reported only if the parser gets that far (as OVN does).
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Token:
    kind: str  # id | string | constant | mask | address_set | port_group | end | error | punct
    text: str
    start: int
    end: int
    value: object = None  # str for strings, Constant for constants, message for errors


@dataclass(frozen=True)
class Constant:
    value: int
    width: int  # OVN's "minimum reasonable width" of the written form
    form: str  # decimal | hex | mac | ipv4 | ipv6


_PUNCTUATION = ("<->", "==", "!=", "<=", ">=", "&&", "||", "..", "--",
                "(", ")", "{", "}", "[", "]", ",", ";", ":", "=", "!", "<", ">", "-")
_STRAY = {"&": "`&` is only valid as part of `&&`", "|": "`|` is only valid as part of `||`",
          ".": "`.` is only valid as part of `..` or a number",
          "/": "`/` is only valid after a constant (a mask) or as `//` or `/*`"}
_HEX = set("0123456789abcdefABCDEF")
_MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")


def _is_alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def _is_name_char(ch: str, first: bool = False) -> bool:
    """OVN's identifier characters: letters, ``_`` and ``.``, then digits too."""
    return len(ch) == 1 and ch.isascii() and (
        ch.isalpha() or ch in "_." or (not first and ch.isdigit()))


def _constant_end(text: str, i: int) -> int:
    """Where a constant starting at ``i`` ends, by OVN's rule: alphanumerics,
    ``:`` until a ``.`` is seen (so ``1.2.3.4:80`` splits), ``.`` unless ``..``."""
    saw_dot = False
    while i < len(text):
        ch = text[i]
        if ch == "." and text[i + 1:i + 2] != ".":
            saw_dot = True
        elif not (_is_alnum(ch) or (ch == ":" and not saw_dot)):
            break
        i += 1
    return i


def _decode_constant(raw: str) -> Constant | str:
    """A constant's value and width, or why it is not one."""
    if len(raw) == 17 and _MAC.fullmatch(raw):
        return Constant(int(raw.replace(":", ""), 16), 48, "mac")
    if raw.isdigit():
        if raw[0] == "0" and len(raw) > 1:
            return "decimal constants must not have leading zeros"
        if len(raw) > 20:  # 2**64 has 20 digits; int() of thousands of digits refuses
            return "decimal constants must be less than 2**64"
        value = int(raw)
        if value >= 1 << 64:
            return "decimal constants must be less than 2**64"
        return Constant(value, value.bit_length(), "decimal")
    if raw[:2] in ("0x", "0X"):
        digits = raw[2:]
        if not digits:
            return f"hex digits expected after {raw}"
        if not set(digits) <= _HEX:
            return "invalid syntax in hexadecimal constant"
        if len(digits.lstrip("0")) > 32:
            return "hexadecimal constant requires more than 128 bits"
        value = int(digits, 16)
        if value >= 1 << 128:
            return "hexadecimal constant requires more than 128 bits"
        return Constant(value, value.bit_length(), "hex")
    for form, parse, width in (("ipv4", ipaddress.IPv4Address, 32),
                               ("ipv6", ipaddress.IPv6Address, 128)):
        try:
            return Constant(int(parse(raw)), width, form)
        except ValueError:
            pass
    return f"invalid numeric constant `{raw}`"


def tokenize(text: str) -> list[Token]:
    """All tokens, ending with ``end``; a lexical error becomes an ``error``
    token so it is reported only if the parser gets that far (as OVN does)."""
    tokens: list[Token] = []
    i = 0

    def error(start: int, message: str) -> list[Token]:
        tokens.append(Token("error", text[start:start + 1], start, start + 1, message))
        return tokens

    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            tokens.append(Token("end", "", len(text), len(text)))
            return tokens
        ch, start = text[i], i
        if text.startswith("//", i):
            newline = text.find("\n", i)
            i = len(text) if newline < 0 else newline
            continue
        if text.startswith("/*", i):
            close = text.find("*/", i + 2)
            if close < 0 or "\n" in text[i:close]:
                return error(start, "`/*` without matching `*/` on the same line")
            i = close + 2
            continue
        if ch == "/" and tokens and tokens[-1].kind == "constant" and tokens[-1].end == i:
            tokens.append(Token("mask", "/", i, i + 1))
            i += 1
            continue
        hex_run = i
        while hex_run < len(text) and text[hex_run] in _HEX:
            hex_run += 1
        if ch in "0123456789" or text.startswith("::", i) or (
                ch in _HEX and text[hex_run:hex_run + 1] == ":"):
            i = _constant_end(text, i)
            decoded = _decode_constant(text[start:i])
            if isinstance(decoded, str):
                return error(start, decoded)
            tokens.append(Token("constant", text[start:i], start, i, decoded))
            continue
        if ch == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            if i >= len(text):
                return error(start, "input ends inside a quoted string")
            i += 1
            try:
                tokens.append(Token("string", text[start:i], start, i, json.loads(text[start:i])))
            except ValueError:
                return error(start, "invalid escape in quoted string")
            continue
        if ch in "$@" or (_is_name_char(ch, first=True) and ch != "."):
            i += 1 if ch in "$@" else 0
            if not _is_name_char(text[i:i + 1], first=True):
                return error(start, f"`{ch}` must be followed by a name")
            while i < len(text) and _is_name_char(text[i]):
                i += 1
            kind = {"$": "address_set", "@": "port_group"}.get(ch, "id")
            tokens.append(Token(kind, text[start:i], start, i))
            continue
        punct = next((p for p in _PUNCTUATION if text.startswith(p, i)), None)
        if punct is None:
            return error(start, _STRAY.get(ch, f"invalid character `{ch}`"))
        i += len(punct)
        tokens.append(Token(punct, punct, start, i))
