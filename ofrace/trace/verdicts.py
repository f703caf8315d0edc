"""How a copy of the packet ended, and what that tells a script: the one mapping
exit kind → verdict kind → exit code (as ovn-trace's node types are a closed enum).

The engine ends a copy in an ``ExitKind``; the cluster tracer turns each exit it
does not follow into a ``VerdictKind``; a trace's verdicts, forward and reply,
give the command's ``ofrace.errors.Exit`` code.  The JSON strings are the
members' values (docs/trace-json.md).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from ofrace.errors import Exit
from ofrace.simulate.steps import ExitKind


class VerdictKind(enum.StrEnum):
    DELIVERED = "delivered"    # out of a VIF: the logical port it was for
    LEFT = "left"              # out of the cluster: an uplink, a tunnel to no chassis
    HOST = "host"              # to a chassis' host stack (a bridge's LOCAL port)
    CONTROLLER = "controller"  # held by ovn-controller
    DROPPED = "dropped"
    ERROR = "error"            # ofrace could not simulate it (a gap, a limit), or no way on
    LOOP = "loop"              # back where it was with the same packet, or too many hops
    UNKNOWN = "unknown"        # the answer depends on data the snapshot does not have


# Exits that end in one verdict whatever the port (OUTPUT: delivered, host or left,
# by the port; TUNNEL: followed to the next chassis, or left/unknown/error there).
VERDICT_OF_EXIT: dict[ExitKind, VerdictKind] = {
    ExitKind.CONTROLLER: VerdictKind.CONTROLLER,
    ExitKind.DROP: VerdictKind.DROPPED,
    ExitKind.UNKNOWN: VerdictKind.UNKNOWN,
    ExitKind.GAP: VerdictKind.ERROR,
    ExitKind.LIMIT: VerdictKind.ERROR,
}

# What each verdict means for the exit code, per direction.
EXIT_OF_VERDICT: dict[VerdictKind, Exit] = {
    VerdictKind.DELIVERED: Exit.OK,
    VerdictKind.LEFT: Exit.OK,
    VerdictKind.HOST: Exit.OK,
    VerdictKind.UNKNOWN: Exit.UNKNOWN,
    VerdictKind.ERROR: Exit.GAP,
    VerdictKind.CONTROLLER: Exit.FOUND,
    VerdictKind.DROPPED: Exit.FOUND,
    VerdictKind.LOOP: Exit.FOUND,
}

# Which code wins when copies end differently: one delivery makes a direction
# delivered; else could not know (4) before cannot simulate (3) before not
# delivered (1).  Across directions the worst wins (a delivered reply does not
# hide an unknown request).
_DIRECTION = (Exit.OK, Exit.UNKNOWN, Exit.GAP, Exit.FOUND)
_ACROSS = (Exit.UNKNOWN, Exit.GAP, Exit.FOUND, Exit.OK)


# Where a reply can start from: the VIF it was delivered to, the uplink it left by.
ANSWERABLE = frozenset({VerdictKind.DELIVERED, VerdictKind.LEFT})


def direction_code(kinds: Iterable[VerdictKind]) -> Exit:
    codes = {EXIT_OF_VERDICT[VerdictKind(k)] for k in kinds}
    return next((code for code in _DIRECTION if code in codes), Exit.FOUND)


def exit_code(forward: Iterable[VerdictKind], back: Iterable[VerdictKind] | None = None) -> Exit:
    """The trace command's exit code from the verdict kinds of each direction."""
    codes = {direction_code(forward)} | ({direction_code(back)} if back is not None else set())
    return next(code for code in _ACROSS if code in codes)


def conversation_exit_code(steps: Iterable[Iterable[VerdictKind]]) -> Exit:
    """A conversation's exit code: each step is a direction of its own, the worst wins."""
    codes = {direction_code(kinds) for kinds in steps}
    return next((code for code in _ACROSS if code in codes), Exit.OK)
