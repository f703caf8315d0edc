"""The ``ofrace`` command line.

Each sub-command lives in its own module and is registered here; this module
only turns errors into one line and an exit code (``ofrace.errors.Exit``).
"""

import os
import sys
import traceback

import click

from ofrace import __version__
from ofrace.errors import Exit, OfraceError


def _one_line(text: str) -> str:
    """Whitespace folded, control characters (node text may carry ESC) made visible."""
    from ofrace.render.escape import escape

    return escape(" ".join(str(text).split()), markup=False)


def _visible_caret(caret: str) -> str:
    """The offending line with its control characters made visible, and the ``^``
    moved to stay under the same character."""
    from ofrace.render.escape import escape

    line, pad = caret.rsplit("\n", 1)
    shown = [escape(ch, markup=False, multiline=True) for ch in line]
    under = "".join("\t" if ch == "\t" else " " * len(vis)
                    for ch, vis in zip(line, shown[:len(pad) - 1], strict=False))
    return "".join(shown) + "\n" + under + "^"


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except OfraceError as exc:
            click.echo(f"ofrace: error: {_one_line(exc)}", err=True)
            caret = getattr(exc, "caret", None)
            if callable(caret) and getattr(exc, "text", ""):
                click.echo(_visible_caret(caret()), err=True)
            sys.exit(int(exc.exit_code))
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("ofrace: interrupted", err=True)
            sys.exit(int(Exit.INTERRUPTED))
        except Exception as exc:  # a bug: one line, its own exit code
            if os.environ.get("OFRACE_DEBUG"):
                traceback.print_exc()
            where = traceback.extract_tb(exc.__traceback__)[-1]
            click.echo(f"ofrace: internal error: {type(exc).__name__}: {_one_line(exc)[:300]} "
                       f"(at {os.path.basename(where.filename)}:{where.lineno}; "
                       "OFRACE_DEBUG=1 shows the traceback)", err=True)
            sys.exit(int(Exit.INTERNAL))


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="ofrace")
def main():
    """Trace packets through the OpenFlow tables OVN really installed."""


def _register():
    from ofrace.cli import audit, collect, compare, lab, trace

    main.add_command(lab.lab)
    main.add_command(collect.collect)
    main.add_command(collect.show)
    main.add_command(compare.compare)
    main.add_command(trace.trace)
    main.add_command(audit.audit)


_register()
