"""Text from nodes and databases, made safe to print.

A hostname, bridge name, OVSDB cell or error message comes from a node we do
not trust.  Printed raw, ``[/x]`` is rich markup (and crashes the renderer)
and ESC, CSI or OSC sequences clear the screen or set the terminal's title.
Every renderer passes such text through ``escape`` before printing it.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls (which include the 8-bit CSI and OSC) and the
# bidirectional overrides that make text read differently from what it is.
# Tab and newline are kept only where a renderer says they are meaningful.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_AND_LAYOUT = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\x1b": "\\e"}


def _visible(match: re.Match) -> str:
    ch = match.group()
    return _NAMED.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")


def escape(value: object, *, markup: bool = True, multiline: bool = False) -> str:
    """``value`` as text that prints as itself: control characters in a visible
    form (``\\e``, ``\\x07``, …) and, for rich, markup brackets escaped.

    ``markup=False`` for output that is not rich markup (click.echo, stderr lines);
    ``multiline=True`` keeps tabs and newlines.
    """
    text = value if isinstance(value, str) else str(value)
    pattern = _CONTROL if multiline else _CONTROL_AND_LAYOUT
    text = pattern.sub(_visible, text)
    if not markup:
        return text
    from rich.markup import escape as markup_escape  # not for a plain line: a cold trace

    return markup_escape(text)
