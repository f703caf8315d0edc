"""UDP and other protocols (lib/conntrack-other.c), zones, and the cached connection."""

from ofrace.openflow.actions import parse_actions
from ofrace.simulate.conntrack import CT_CACHE, EST, NEW, RPL, TRK, ConntrackTable

OUT = {"dl_type": 0x800, "nw_proto": 17, "nw_src": 0x0A000001, "nw_dst": 0x0A000002,
       "tp_src": 43000, "tp_dst": 53}
BACK = dict(OUT, nw_src=0x0A000002, nw_dst=0x0A000001, tp_src=53, tp_dst=43000)


def ct(text):
    (action,) = parse_actions(text)
    return action


def test_new_until_a_reply_then_established():
    # Measured on the wire: the 2nd datagram hit ct_state=+new-est+trk, the 3rd
    # (after the answer) -new+est-rpl+trk.
    table = ConntrackTable()
    assert table.execute(ct("ct(commit,table=1,zone=2)"), dict(OUT)).state == TRK | NEW
    assert table.execute(ct("ct(table=1,zone=2)"), dict(OUT)).state == TRK | NEW
    assert table.execute(ct("ct(table=1,zone=2)"), dict(BACK)).state == TRK | EST | RPL
    assert table.execute(ct("ct(table=1,zone=2)"), dict(OUT)).state == TRK | EST


def test_uncommitted_is_forgotten():
    table = ConntrackTable()
    table.execute(ct("ct(table=1,zone=2)"), dict(OUT))
    assert table.execute(ct("ct(table=1,zone=2)"), dict(BACK)).state == TRK | NEW


def test_zones_kept_apart():
    table = ConntrackTable()
    table.execute(ct("ct(commit,table=1,zone=2)"), dict(OUT))
    assert table.execute(ct("ct(table=1,zone=3)"), dict(BACK)).state == TRK | NEW
    assert table.execute(ct("ct(table=1,zone=2)"), dict(BACK)).state == TRK | EST | RPL


def test_a_second_ct_in_the_same_zone_reuses_the_connection_unchanged():
    # process_one_fast: no update, so the state stays what the first ct() found.
    table = ConntrackTable()
    table.execute(ct("ct(commit,table=1,zone=2)"), dict(OUT))
    packet = dict(BACK)
    first = table.execute(ct("ct(table=1,zone=2)"), packet)
    again = table.execute(ct("ct(commit,table=2,zone=2,exec(set_field:0x5->ct_mark))"), packet)
    assert again.state == first.state == TRK | EST | RPL and again.mark == 5
    other_zone = table.execute(ct("ct(table=3,zone=9)"), packet)
    assert other_zone.state == TRK | NEW        # another zone: looked up afresh
    packet.pop(CT_CACHE)                          # what ct_clear does to the cache
    assert table.execute(ct("ct(table=1,zone=2)"), packet).state == TRK | EST | RPL


def test_a_nat_whose_reply_tuple_is_taken_moves_the_source_port():
    """nat_get_unique_tuple: OVN's hairpin commits the DNATed packet again in the zone
    where the LB's DNAT already holds its reply tuple; the datapath moves the source port
    to the next free one (measured on kind: 40000 became 40001).  Without the clash the
    port stays."""
    vip = dict(OUT, nw_dst=0x0A00000A, tp_dst=80)
    table = ConntrackTable()
    dnat = table.execute(ct("ct(commit,table=1,zone=2,nat(dst=10.0.0.2:53))"), dict(vip))
    assert dnat.connection.reply.dport == 43000
    again = dict(OUT)                 # the DNATed packet, committed afresh with NAT
    second = table.execute(ct("ct(commit,table=1,zone=2,nat(src=10.0.0.1))"), again)
    assert again["tp_src"] == 43001 and second.connection.reply.dport == 43001
    fresh = ConntrackTable()
    alone = dict(OUT)
    fresh.execute(ct("ct(commit,table=1,zone=2,nat(src=10.0.0.1))"), alone)
    assert alone["tp_src"] == 43000
