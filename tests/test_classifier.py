"""Lookup semantics: priorities, masks, ties, conjunctions (OVS lib/classifier.c rules)."""

from ofrace.openflow.bridge import BridgeIndex
from ofrace.snapshot import Bridge


def index(*lines: str) -> BridgeIndex:
    return BridgeIndex(Bridge(name="br0", flows=list(lines)))


def hit(idx: BridgeIndex, packet: dict, table: int = 0):
    entry, conj = idx.lookup(table, packet)
    return (entry.cookie if entry else None), conj


def test_highest_priority_wins_across_shapes():
    idx = index("cookie=0x1, table=0, priority=10,ip actions=drop",
                "cookie=0x2, table=0, priority=20,ip,nw_dst=10.0.0.0/8 actions=drop",
                "cookie=0x3, table=0, priority=15,ip,nw_dst=10.1.2.3 actions=drop")
    assert hit(idx, {"dl_type": 0x800, "nw_dst": 0x0A010203}) == (2, None)
    assert hit(idx, {"dl_type": 0x800, "nw_dst": 0x0B000001}) == (1, None)
    assert hit(idx, {"dl_type": 0x806}) == (None, None)


def test_equal_priority_overlap_takes_the_first_flow():
    idx = index("cookie=0x1, table=0, priority=5,reg0=0x1/0x1 actions=drop",
                "cookie=0x2, table=0, priority=5,reg1=0x1/0x1 actions=drop")
    assert hit(idx, {"reg0": 1, "reg1": 1}) == (1, None)


def test_masked_bits_only():
    idx = index("cookie=0x7, table=3, priority=1,reg10=0x8/0x8 actions=drop")
    assert hit(idx, {"reg10": 0xF}, 3) == (7, None)
    assert hit(idx, {"reg10": 0x7}, 3) == (None, None)


CONJ = (
    "cookie=0xa, table=9, priority=2000,ip,nw_src=10.0.0.1 actions=conjunction(5,1/2)",
    "cookie=0xa, table=9, priority=2000,ip,nw_src=10.0.0.2 actions=conjunction(5,1/2)",
    "cookie=0xa, table=9, priority=2000,tcp,tp_dst=80 actions=conjunction(5,2/2)",
    "cookie=0xa, table=9, priority=2000,tcp,tp_dst=443 actions=conjunction(5,2/2)",
    "cookie=0xb, table=9, priority=2000,conj_id=5,ip actions=resubmit(,10)",
    "cookie=0xc, table=9, priority=1000,ip actions=drop",
    "cookie=0xd, table=9, priority=3000,ip,nw_src=10.0.0.9 actions=drop",
)


def test_conjunction_needs_every_clause():
    idx = index(*CONJ)
    tcp = {"dl_type": 0x800, "nw_proto": 6}
    assert hit(idx, {**tcp, "nw_src": 0x0A000002, "tp_dst": 443}, 9) == (0xB, 5)
    # one clause only: the regular lower-priority flow
    assert hit(idx, {**tcp, "nw_src": 0x0A000002, "tp_dst": 22}, 9) == (0xC, None)
    assert hit(idx, {**tcp, "nw_src": 0x0A000003, "tp_dst": 80}, 9) == (0xC, None)


def test_a_higher_regular_flow_beats_a_conjunction():
    idx = index(*CONJ, "cookie=0xe, table=9, priority=2500,tcp,tp_dst=80 actions=drop")
    tcp = {"dl_type": 0x800, "nw_proto": 6}
    assert hit(idx, {**tcp, "nw_src": 0x0A000001, "tp_dst": 80}, 9) == (0xE, None)


def test_conj_id_is_not_left_in_the_packet():
    idx = index(*CONJ)
    packet = {"dl_type": 0x800, "nw_proto": 6, "nw_src": 0x0A000001, "tp_dst": 80}
    hit(idx, packet, 9)
    assert "conj_id" not in packet
