"""Errors a user can act on, and the one table of exit codes.

Anything raised as an ``OfraceError`` is printed by the CLI as one line and
turned into its exit code; anything else is a bug: the CLI prints one line
naming it (the traceback only with ``OFRACE_DEBUG=1``) and exits ``INTERNAL``.
"""

from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    """What an exit code tells a script; README.md's table is this one."""

    OK = 0
    # The answer is known and it is bad: partial snapshot, divergence, packet not
    # delivered (dropped), audit found something MISSING, stale or broken (not for a
    # notice: a BFD session down whose gateway port failed over is exit 0).
    FOUND = 1
    # Bad input: an inventory, a node spec, an expression, a snapshot file, an option.
    INPUT = 2
    # The trace reached an action or state it cannot simulate.
    GAP = 3
    # Could not know: the answer depends on data that is missing or unreadable
    # (a node's tables never read, no Southbound, garbled flows on the path).
    UNKNOWN = 4
    # The environment failed: the lab could not be brought up, a node could not be
    # reached or answered garbage, a tool failed (ofproto/trace on a node, ovn-trace).
    ENVIRONMENT = 5
    # Interrupted by the user (Ctrl-C), as shells report SIGINT.
    INTERRUPTED = 130
    # A bug in ofrace (an unexpected exception); sysexits' EX_SOFTWARE.
    INTERNAL = 70


class OfraceError(Exception):
    """A problem with the user's input or environment, told in one line."""

    exit_code = Exit.INPUT


class InputError(OfraceError):
    """Malformed input: an inventory, an expression, a file."""


class EnvironmentFailure(OfraceError):
    """Something outside ofrace failed: a node could not be reached or answered
    garbage, a tool (ovn-trace here, ofproto/trace on a node) failed.  Not the
    user's input, and not a bug: the environment."""

    exit_code = Exit.ENVIRONMENT


class ToolError(EnvironmentFailure):
    """A program ofrace runs (ovn-trace, ovs-appctl ofproto/trace) is missing or failed."""


class LabError(EnvironmentFailure):
    """The embedded lab could not be brought up, inspected or taken down."""


class MissingDataError(OfraceError):
    """The answer depends on data the snapshot does not have (no Southbound, a
    chassis never read): the result is unknown, not bad input."""

    exit_code = Exit.UNKNOWN
