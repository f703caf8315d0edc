"""A ct(nat) on a packet that carries its connection from an earlier ct() still NATs.

OVN 26.03's distributed router tracks SNAT traffic before translating it:
lr_out_post_undnat ``ct_next(snat)`` (a ct() without nat), then lr_out_snat ``ct_snat``
(``ct(commit,table=N,zone=Z,nat(src=A))``), both in the SNAT zone (northd.c
build_lrouter_out_snat_flow).  From the ACK on, the first ct() finds the committed
connection and the packet carries it (``md.conn``); the second takes
lib/conntrack.c process_one_fast, whose handle_nat still applies the connection's NAT
(OVS 3.1 and 3.7 alike).  Seen on a 26.03.2 lab: every packet of the conversation left
the gateway with the SNAT address, not only the SYN.
"""

from ofrace.openflow.actions import parse_actions
from ofrace.simulate.conntrack import CT_CACHE, DNAT, EST, RPL, SNAT, TRK, ConntrackTable

VM, SNAT_IP, OUTSIDE = 0x0A00000C, 0xAC18040A, 0xAC180415     # 10.0.0.12, .4.10, .4.21
ZONE = 8


def ct(text):
    (action,) = parse_actions(text)
    return action


TRACK = ct(f"ct(table=51,zone={ZONE})")
SNAT_COMMIT = ct(f"ct(commit,table=52,zone={ZONE},nat(src=172.24.4.10))")
COMMIT_ONLY = ct(f"ct(commit,table=52,zone={ZONE})")


def tcp(src, dst, sport, dport, flags):
    return {"dl_type": 0x800, "nw_proto": 6, "nw_src": src, "nw_dst": dst,
            "tp_src": sport, "tp_dst": dport, "tcp_flags": flags}


def outgoing(table: ConntrackTable, flags: int, second=SNAT_COMMIT):
    """One packet of the VM's conversation through the two egress ct()s."""
    packet = tcp(VM, OUTSIDE, 40000, 80, flags)
    table.execute(TRACK, packet)
    return packet, table.execute(second, packet)


def opened() -> ConntrackTable:
    """The SYN committed with its SNAT, and the SYN-ACK seen, so later packets are est."""
    table = ConntrackTable()
    syn, outcome = outgoing(table, 0x02)
    assert syn["nw_src"] == SNAT_IP and outcome.committed
    table.execute(TRACK, tcp(OUTSIDE, SNAT_IP, 80, 40000, 0x12))
    return table


def test_an_ack_carrying_its_connection_is_snated_by_the_second_ct():
    table = opened()
    ack, outcome = outgoing(table, 0x10)
    assert ack["nw_src"] == SNAT_IP and ack["tp_src"] == 40000
    assert outcome.state == TRK | EST | SNAT
    assert "no new lookup" in outcome.lookup


def test_without_nat_the_second_ct_leaves_the_source():
    """Negative control: the carried connection alone rewrites nothing."""
    table = opened()
    ack, outcome = outgoing(table, 0x10, second=COMMIT_ONLY)
    assert ack["nw_src"] == VM
    assert outcome.state == TRK | EST


def test_a_reply_carrying_its_connection_is_un_snated_in_its_direction():
    table = opened()
    reply = tcp(OUTSIDE, SNAT_IP, 80, 40000, 0x10)
    table.execute(TRACK, reply)
    outcome = table.execute(SNAT_COMMIT, reply)
    assert (reply["nw_dst"], reply["nw_src"]) == (VM, OUTSIDE)
    assert outcome.state == TRK | EST | RPL | DNAT


def test_after_the_fast_nat_the_connection_is_dropped_and_not_translated_twice():
    """handle_nat then sets md.conn = NULL: the next ct() in the zone looks the translated
    packet up, finds the same connection, and its +snat keeps it from a second NAT."""
    table = opened()
    ack, _ = outgoing(table, 0x10)
    assert ack[CT_CACHE][3]                       # the NAT ran: no fast path next
    again = table.execute(SNAT_COMMIT, ack)
    assert ack["nw_src"] == SNAT_IP and again.state & SNAT
    assert len(table.connections()) == 1
