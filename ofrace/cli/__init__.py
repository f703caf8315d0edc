"""The ``ofrace`` command line.

Each sub-command lives in its own module and is registered here; this module
only turns ``OfraceError`` into a one-line message and an exit code.
"""

import sys

import click

from ofrace import __version__
from ofrace.errors import OfraceError


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except OfraceError as exc:
            click.echo(f"ofrace: error: {exc}", err=True)
            caret = getattr(exc, "caret", None)
            if callable(caret) and getattr(exc, "text", ""):
                click.echo(caret(), err=True)
            sys.exit(exc.exit_code)


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
