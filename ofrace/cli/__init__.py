"""The ``ofrace`` command line.

Each sub-command lives in its own module and is registered here; this module
only turns errors into one line and an exit code (``ofrace.errors.Exit``).
"""

import os
import signal
import sys
import threading

import click

from ofrace import __version__
from ofrace.errors import Exit, OfraceError


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except OfraceError as exc:
            from ofrace.render.errors import print_error

            print_error(exc)
            sys.exit(int(exc.exit_code))
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("ofrace: interrupted", err=True)
            sys.exit(int(Exit.INTERRUPTED))
        except Exception as exc:  # a bug: one line, its own exit code
            from ofrace.render.errors import print_bug

            print_bug(exc)
            sys.exit(int(Exit.INTERNAL))


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="ofrace")
def main():
    """Trace packets through the OpenFlow tables OVN really installed."""


def _register():
    from ofrace.cli import audit, collect, compare, import_, lab, lab_verify, trace  # noqa: F401

    main.add_command(lab.lab)
    main.add_command(collect.collect)
    main.add_command(collect.show)
    main.add_command(import_.import_)
    main.add_command(compare.compare)
    main.add_command(trace.trace)
    main.add_command(audit.audit)


_register()


# After Ctrl-C, how long the process may take to unwind (kill node processes, close
# connections) before it ends anyway: a thread stuck on a lock the interrupt left taken
# must not keep a user's terminal.
INTERRUPT_GRACE = 2.0


def _end_now() -> None:
    try:
        sys.stderr.write("ofrace: interrupted\n")
        sys.stderr.flush()
    finally:
        os._exit(int(Exit.INTERRUPTED))


def _interrupted(signum, frame):
    timer = threading.Timer(INTERRUPT_GRACE, _end_now)
    timer.daemon = True
    timer.start()
    raise KeyboardInterrupt


def run() -> None:
    """The ``ofrace`` program: Ctrl-C unwinds as KeyboardInterrupt (exit 130), within
    ``INTERRUPT_GRACE`` seconds whatever a thread is blocked on."""
    signal.signal(signal.SIGINT, _interrupted)
    main()
