"""``python -m ofrace`` is the ``ofrace`` command."""

from ofrace.cli import run

run()
