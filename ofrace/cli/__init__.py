"""The ``ofrace`` command line.

Each sub-command lives in its own module and is registered here; this module
only turns errors into one line and an exit code (``ofrace.errors.Exit``).
"""

import importlib
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


# Each command's module is imported when the command runs (or is listed): `ofrace trace`
# does not pay for SSH, the lab or the audit.  ``lab_verify`` adds itself to ``lab``.
COMMANDS = {"lab": ("lab", "lab"), "collect": ("collect", "collect"), "show": ("collect", "show"),
            "import": ("import_", "import_"), "compare": ("compare", "compare"),
            "trace": ("trace", "trace"), "audit": ("audit", "audit")}


class _LazyCommands(dict):
    """``main.commands``: a command's module imported when the command is first asked for."""

    def __missing__(self, name: str) -> click.Command:
        module, attr = COMMANDS[name]
        self[name] = getattr(importlib.import_module(f"ofrace.cli.{module}"), attr)
        if name == "lab":
            importlib.import_module("ofrace.cli.lab_verify")
        return dict.__getitem__(self, name)

    def get(self, name, default=None):
        return self[name] if name in COMMANDS or dict.__contains__(self, name) else default

    def __iter__(self):
        return iter(dict.fromkeys([*COMMANDS, *dict.keys(self)]))


main.commands = _LazyCommands()


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
