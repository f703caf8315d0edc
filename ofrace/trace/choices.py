"""The datapath's choices a user may force on a trace: which bucket a select group
takes (``--bucket G=B``), and the ct_state of the next ct() recirculations
(``--ct-next``), read and checked against the snapshot before tracing."""

from __future__ import annotations

from ofrace.errors import InputError
from ofrace.openflow.bridge import parse_groups
from ofrace.simulate.conntrack import EST, REL, RPL, ct_state_problem, parse_ct_state
from ofrace.snapshot import Snapshot


def parse_buckets(values) -> dict[int, int]:
    """``GROUP=BUCKET`` strings as {group: bucket}."""
    result = {}
    for value in values:
        group, sep, bucket = value.partition("=")
        if (not sep or not group.isdigit() or not bucket.isdigit() or len(group) > 10
                or len(bucket) > 10):
            raise InputError(f"--bucket {value!r}: expected GROUP=BUCKET, e.g. 3=0")
        result[int(group)] = int(bucket)
    return result


def parse_ct_next(values, established_ok: bool = True) -> list[int] | None:
    """ct_state flags (``trk,est``) per recirculation, or None for the conntrack model.

    Each state must be one a packet can have (ofproto/trace's own check).  With
    ``established_ok`` False (a trace, where the answer should be the wire's), a
    state of an existing connection (est, rel, rpl) is refused: it stands for no
    connection, so the NAT that connection would apply is missing."""
    states = []
    for value in values:
        try:
            state = parse_ct_state(value)
        except ValueError as exc:
            raise InputError(f"--ct-next {value!r}: {exc}") from None
        problem = ct_state_problem(state)
        if problem:
            raise InputError(f"--ct-next {value!r}: not a state a packet can have: {problem}")
        if not established_ok and state & (EST | REL | RPL):
            raise InputError(
                f"--ct-next {value!r}: a forced state of an existing connection stands for no "
                "connection, so its NAT (un-DNAT, un-SNAT) would be missing and the trace "
                "wrong; trace the conversation instead: --step ACK (or --established) for "
                "a packet of an established connection, --conversation or --reply for all")
        states.append(state)
    return states or None


def check_buckets(snapshot: Snapshot, buckets: dict[int, int]) -> None:
    """Each ``--bucket G=B`` names a group some read bridge has, with a bucket B."""
    if not buckets:
        return
    sizes: dict[int, set[int]] = {}
    for ch in snapshot.chassis.values():
        for bridge in ch.bridges.values():
            for group in parse_groups(bridge.groups):
                sizes.setdefault(group.group_id, set()).add(len(group.buckets))
    for group_id, bucket in sorted(buckets.items()):
        if group_id not in sizes:
            known = ", ".join(map(str, sorted(sizes)[:20])) or "none"
            raise InputError(f"--bucket {group_id}={bucket}: no bridge in the snapshot has "
                             f"group {group_id} (groups: {known})")
        most = max(sizes[group_id])
        if bucket >= most:
            raise InputError(f"--bucket {group_id}={bucket}: group {group_id} has "
                             f"{most} bucket(s) (0-{most - 1})" if most else
                             f"--bucket {group_id}={bucket}: group {group_id} has no buckets")
