"""Errors a user can act on.

Anything raised as an ``OfraceError`` is printed by the CLI as one line and
turned into a non-zero exit code; everything else is a bug and keeps its
traceback.
"""


class OfraceError(Exception):
    """A problem with the user's input or environment, told in one line."""

    exit_code = 2


class InputError(OfraceError):
    """Malformed input: an inventory, an expression, a file."""


class LabError(OfraceError):
    """The embedded lab could not be brought up, inspected or taken down."""

    exit_code = 3
