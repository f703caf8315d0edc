"""The ``ofrace`` command line.

Each sub-command lives in its own module and is registered here; this module
only turns errors into one line and an exit code (``ofrace.errors.Exit``).
"""

import sys

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
    from ofrace.cli import audit, collect, compare, lab, lab_verify, trace  # noqa: F401

    main.add_command(lab.lab)
    main.add_command(collect.collect)
    main.add_command(collect.show)
    main.add_command(compare.compare)
    main.add_command(trace.trace)
    main.add_command(audit.audit)


_register()
