"""An error as the user sees it: one line on stderr (node text made visible), with the
offending line and a caret under a microflow's syntax error; a bug named in one line."""

from __future__ import annotations

import os
import traceback

import click

from ofrace.render.escape import escape


def _one_line(text: object) -> str:
    """Whitespace folded, control characters (node text may carry ESC) made visible."""
    return escape(" ".join(str(text).split()), markup=False)


def _visible_caret(caret: str) -> str:
    """The offending line with its control characters made visible, and the ``^``
    moved to stay under the same character."""
    line, pad = caret.rsplit("\n", 1)
    shown = [escape(ch, markup=False, multiline=True) for ch in line]
    under = "".join("\t" if ch == "\t" else " " * len(vis)
                    for ch, vis in zip(line, shown[:len(pad) - 1], strict=False))
    return "".join(shown) + "\n" + under + "^"


def print_error(exc: Exception) -> None:
    """An ``OfraceError``: one line, and the caret under the place a parser stopped."""
    click.echo(f"ofrace: error: {_one_line(exc)}", err=True)
    caret = getattr(exc, "caret", None)
    if callable(caret) and getattr(exc, "text", ""):
        click.echo(_visible_caret(caret()), err=True)


def print_bug(exc: Exception) -> None:
    """An unexpected exception: one line naming it and where (the traceback with
    ``OFRACE_DEBUG=1``)."""
    if os.environ.get("OFRACE_DEBUG"):
        traceback.print_exc()
    where = traceback.extract_tb(exc.__traceback__)[-1]
    click.echo(f"ofrace: internal error: {type(exc).__name__}: {_one_line(exc)[:300]} "
               f"(at {os.path.basename(where.filename)}:{where.lineno}; "
               "OFRACE_DEBUG=1 shows the traceback)", err=True)
