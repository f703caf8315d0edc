"""The packets ovn-controller answers and resumes: put_dhcp_opts, put_dhcpv6_opts,
put_nd_ra_opts, dns_lookup, and put_icmp4/6_frag_mtu (the MTU an ICMP error pinctrl is
building carries, written in the middle of its packet-out's actions).

The engine froze the translation at the ``controller(pause)`` action (its
``Continuation``); pinctrl builds the answer (``ofrace.ovn.pinctrl_answers``) and
resumes the continuation with it (NXT_RESUME), so the answer runs the actions after
the controller action, on the chassis that sent it, and the logical flows that follow
send it out.  The other controller actions (packets ovn-controller sends anew with a
packet-out) are not handled here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ofrace.ovn import controller as controller_actions
from ofrace.ovn.pinctrl_answers import FRAG_MTU, PAUSING, UserdataError, answer, dns_records
from ofrace.ovn.southbound import SouthboundIndex
from ofrace.ovn.versions import OvnFacts
from ofrace.simulate.engine import Continuation
from ofrace.simulate.steps import Exit


@dataclass
class Resumed:
    """Where the answer runs (the cluster tracer makes it a hop): the chassis and bridge
    that paused, the fields the answer changed, and what pinctrl built, in words."""

    chassis: str
    bridge: str
    packet: dict
    entry: str
    continuation: Continuation
    payload_length: int = 0      # an ICMP error given its MTU keeps the bytes it quotes


def resumed_answer(notes: list[str], chassis: str, exit_: Exit, facts: OvnFacts,
                   names: SouthboundIndex, payload_length: int = 0) -> Resumed | None:
    """The answer to a paused controller action, resumed; None when the exit is no such
    action (or its userdata cannot be read, said in ``notes``: the exit stays a verdict)."""
    continuation = exit_.data.get("continuation")
    action = controller_actions.decode_userdata(exit_.data.get("userdata", ""), facts)
    if continuation is None or action is None or action.name not in PAUSING:
        return None
    try:
        dns = dns_records(names.rows("DNS"), names.datapath_key) \
            if action.name == "dns_lookup" else None
        result = answer(action.name, exit_.data["userdata"], continuation.packet, facts, dns)
    except (UserdataError, IndexError, struct.error) as exc:
        # a userdata or a packet pinctrl would refuse to parse: the exit stays a verdict
        notes.append(f"{chassis}: {action.name}: no answer modelled ({exc})")
        return None
    entry = (f"answered by ovn-controller on {chassis} ({result.text()})" if result.answered
             else f"resumed by ovn-controller on {chassis} (not answered: {result.summary})")
    kept = payload_length if action.name in FRAG_MTU else 0
    return Resumed(chassis, continuation.bridge, result.resume_with, entry, continuation, kept)
