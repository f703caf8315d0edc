"""Command templates (``docker exec -i {node}``): split like a shell line, then filled.

The template is split into arguments first and each ``{field}`` is filled
inside its own argument afterwards, so a value is always data, never shell
syntax: ``a b; rm -rf /`` stays one argument.  The one place where a value
would still meet a shell is an argument that *is* a shell command line — the
string after ``sh -c`` (``bash -lc``, ``su -c``…) or the words after the
destination of ``ssh``, which the remote side hands to its shell.  Those
arguments are found here so callers can refuse a field there (``--discover``,
whose values come from the Southbound) or quote it for the shell (the exec
transport).
"""

from __future__ import annotations

import os
import shlex
import string

# The whole argv ofrace runs on the node, as one shell-quoted string.
COMMAND_FIELD = "command"

SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox", "fish", "csh", "tcsh"}
# ssh(1) options that take an argument (the next word is not the destination).
_SSH_OPTS_WITH_ARG = set("BbcDEeFIiJLlmOoPpQRSWw")


class TemplateError(ValueError):
    """The template cannot be read; the message is one line, without the template."""


Part = tuple[str, str | None]  # literal text, then a field name or None


def split(template: str) -> list[list[Part]]:
    """The template's arguments, each a list of (literal, field) parts."""
    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise TemplateError(f"cannot split it like a shell line ({exc})") from None
    if not words:
        raise TemplateError("it is empty")
    return [parts(word) for word in words]


def parts(word: str) -> list[Part]:
    """``ovnkube-{node}`` → [("ovnkube-", "node")]; raises TemplateError."""
    try:
        parsed = list(string.Formatter().parse(word))
    except ValueError as exc:
        raise TemplateError(f"a {{…}} field is malformed ({exc}; write {{{{ for a brace)") \
            from None
    found = []
    for literal, name, spec, conversion in parsed:
        if name is not None and (spec or conversion or not name.isidentifier()):
            shown = ascii(f"{{{name}{'!' + conversion if conversion else ''}"
                          f"{':' + spec if spec else ''}}}")[1:-1]
            raise TemplateError(f"{shown[:40]} is not a plain {{field}}")
        found.append((literal, name))
    return found


def fields_used(template: str) -> set[str]:
    return {name for word in split(template) for _, name in word if name is not None}


def check(template: str, known: set[str]) -> None:
    """Raise TemplateError unless the template splits and uses only ``known`` fields."""
    unknown = fields_used(template) - known
    if unknown:
        raise TemplateError(
            f"unknown field(s) {', '.join('{' + f + '}' for f in sorted(unknown))} "
            f"(known: {', '.join('{' + f + '}' for f in sorted(known))})")


def shell_strings(words: list[str]) -> set[int]:
    """Indices of the arguments a shell will parse: after ``sh -c``, and ssh's remote command."""
    found: set[int] = set()
    i = 0
    while i < len(words):
        base = os.path.basename(words[i])
        if base in SHELLS or base in ("su", "runuser"):
            j = i + 1
            while j < len(words) and words[j].startswith("-") and words[j] != "--":
                opt = words[j]
                takes_command = (opt in ("-c", "--command") or
                                 (not opt.startswith("--") and "c" in opt[1:]))
                if opt.startswith("--command="):
                    found.add(j)
                elif takes_command and j + 1 < len(words):
                    found.add(j + 1)
                    j += 1
                j += 1
        elif base == "ssh":
            j = i + 1
            while j < len(words) and words[j].startswith("-") and words[j] != "--":
                opt = words[j]
                if len(opt) == 2 and opt[1] in _SSH_OPTS_WITH_ARG:
                    j += 1
                j += 1
            if j < len(words) and words[j] == "--":
                j += 1
            found.update(range(j + 1, len(words)))   # words after the destination
            return found
        i += 1
    return found


def fill(template: str, fields: dict[str, str], argv: list[str] | None = None) -> list[str]:
    """The argv: each argument filled on its own; a field in a shell string is shell-quoted.

    ``{command}`` is ``argv`` as one shell-quoted string; without it ``argv`` is
    appended as separate arguments (as one quoted string where a shell would
    parse it: after ``ssh host`` or a final ``sh -c``).
    """
    words = split(template)
    plain = ["".join(lit + ("{}" if name else "") for lit, name in word) for word in words]
    shell = shell_strings(plain)
    values = dict(fields)
    if argv is not None:
        values[COMMAND_FIELD] = shlex.join(argv)
    out = []
    for i, word in enumerate(words):
        text = []
        for literal, name in word:
            text.append(literal)
            if name is None:
                continue
            if name not in values:
                raise TemplateError(f"unknown field {{{name}}} (known: "
                                    f"{', '.join('{' + f + '}' for f in sorted(values))})")
            value = values[name]
            text.append(shlex.quote(value) if i in shell and name != COMMAND_FIELD else value)
        out.append("".join(text))
    if argv is not None and COMMAND_FIELD not in {n for w in words for _, n in w}:
        # appended words that a shell would parse (``ssh host``, ``… sh -c``) go as one
        # quoted command line, so the remote shell sees the argv ofrace meant
        if len(plain) in shell_strings(plain + ["argv"]):
            out.append(shlex.join(argv))
        else:
            out += argv
    return out


def fields_in_shell_strings(template: str) -> set[str]:
    """The fields a shell would parse as command text (see ``shell_strings``)."""
    words = split(template)
    plain = ["".join(lit + ("{}" if name else "") for lit, name in word) for word in words]
    return {name for i in shell_strings(plain) for _, name in words[i]
            if name is not None and name != COMMAND_FIELD}


def program(template: str) -> str:
    """The wrapper's program name, for messages that must not repeat the template."""
    try:
        words = shlex.split(template)
    except ValueError:
        words = template.split()
    return os.path.basename(words[0]) if words else "?"
