"""TCP validity as OVS's userspace conntrack decides it (lib/conntrack-tcp.c)."""

import pytest

from ofrace.openflow.actions import parse_actions
from ofrace.simulate.conntrack import EST, INV, NEW, RPL, TRK, ConntrackTable

CLIENT = {"dl_type": 0x800, "nw_proto": 6, "nw_src": 0x0A000001, "nw_dst": 0x0A000002,
          "tp_src": 40000, "tp_dst": 80}
SERVER = {"dl_type": 0x800, "nw_proto": 6, "nw_src": 0x0A000002, "nw_dst": 0x0A000001,
          "tp_src": 80, "tp_dst": 40000}
SYN, ACK, FIN, RST, PSH = 0x002, 0x010, 0x001, 0x004, 0x008


def ct(text):
    (action,) = parse_actions(text)
    return action


def send(table, side, flags, commit=True, **extra):
    packet = dict(side, tcp_flags=flags, **extra)
    return table.execute(ct("ct(commit,table=1,zone=1)" if commit else "ct(table=1,zone=1)"),
                         packet)


@pytest.mark.parametrize("flags", [0, SYN | ACK, SYN | FIN, SYN | RST, FIN, PSH, FIN | PSH])
def test_no_connection_from_an_invalid_first_packet(flags):
    table = ConntrackTable()
    out = send(table, CLIENT, flags)
    assert out.state == TRK | INV and not out.committed
    assert table.connections() == []          # nothing committed: the next SYN is new
    assert send(table, CLIENT, SYN).state == TRK | NEW


def test_flags_zero_says_why_and_how_to_ask_for_a_syn():
    out = send(ConntrackTable(), CLIENT, 0)
    assert "TCP flags 0" in out.why and "tcp.flags == 2" in out.why
    assert "tcp.flags == 2" in out.describe()


@pytest.mark.parametrize("flags", [SYN, ACK, ACK | PSH, RST, ACK | FIN])
def test_valid_first_packets_start_a_connection(flags):
    # tcp_valid_new: a SYN, or a packet of an established stream (ACK, RST)
    # picked up mid-way; only a SYN-ACK is refused among the valid ones.
    out = send(ConntrackTable(), CLIENT, flags)
    assert out.state == TRK | NEW and out.committed


def test_handshake_data_and_close():
    table = ConntrackTable()
    assert send(table, CLIENT, SYN).state == TRK | NEW
    assert send(table, SERVER, SYN | ACK, commit=False).state == TRK | EST | RPL
    assert send(table, CLIENT, ACK, commit=False).state == TRK | EST
    assert send(table, CLIENT, ACK | PSH, commit=False).state == TRK | EST
    assert send(table, SERVER, ACK | FIN, commit=False).state == TRK | EST | RPL
    assert send(table, CLIENT, ACK | FIN, commit=False).state == TRK | EST
    assert send(table, SERVER, ACK, commit=False).state == TRK | EST | RPL
    # Both ends past FIN_WAIT_2: a new SYN replaces the connection.
    again = send(table, CLIENT, SYN)
    assert again.state == TRK | NEW and again.committed
    assert len(table.connections()) == 1


def test_invalid_flags_on_an_existing_connection():
    table = ConntrackTable()
    send(table, CLIENT, SYN)
    out = send(table, SERVER, 0, commit=False)
    assert out.state == TRK | INV and "tcp_invalid_flags" in out.why
    # The connection stays: the right answer still gets through.
    assert send(table, SERVER, SYN | ACK, commit=False).state == TRK | EST | RPL


def test_a_repeated_syn_is_still_new():
    # tcp_conn_update's VALID_NEW for a SYN while the sender is at most SYN_SENT
    # (wire: the second SYN hit ls_in_acl_hint's ct_state=+new-est+trk flow).
    table = ConntrackTable()
    send(table, CLIENT, SYN)
    assert send(table, CLIENT, SYN, commit=False).state == TRK | NEW
    send(table, SERVER, SYN | ACK, commit=False)
    # Once established, a SYN in the window is an ordinary valid packet.
    assert send(table, CLIENT, SYN, commit=False).state == TRK | EST


def test_window_checked_when_the_packet_carries_numbers():
    table = ConntrackTable()
    send(table, CLIENT, SYN, tcp_seq=1000)
    reply = send(table, SERVER, SYN | ACK, commit=False, tcp_seq=5000, tcp_ack=1001)
    assert reply.state == TRK | EST | RPL
    ok = send(table, CLIENT, ACK, commit=False, tcp_seq=1001, tcp_ack=5001)
    assert ok.state == TRK | EST
    data = send(table, CLIENT, ACK | PSH, commit=False, tcp_seq=1001, tcp_ack=5001,
                payload_len=100)
    assert data.state == TRK | EST
    far = send(table, CLIENT, ACK | PSH, commit=False, tcp_seq=1001 + 10_000_000,
               tcp_ack=5001, payload_len=100)
    assert far.state == TRK | INV and "window" in far.why
    # RST needs an exact (or ±1) sequence number.
    wrong_rst = send(table, SERVER, RST, commit=False, tcp_seq=5000 + 3000)
    assert wrong_rst.state == TRK | INV
    rst = send(table, SERVER, RST, commit=False, tcp_seq=5001)
    assert rst.state == TRK | EST | RPL


def test_window_as_measured_on_the_wire():
    # Raw frames on the kind lab: SYN, SYN-ACK, then an ACK with 64 bytes, all with
    # seq 0 and ack 0 (what netdev-dummy builds from a flow string).  Window 0: the
    # ACK was dropped; window 65535: delivered.
    for win, expected in ((0, TRK | INV), (65535, TRK | EST)):
        table = ConntrackTable()
        numbers = {"tcp_seq": 0, "tcp_ack": 0, "tcp_win": win}
        send(table, CLIENT, SYN, **numbers)
        send(table, SERVER, SYN | ACK, commit=False, **numbers)
        assert send(table, CLIENT, ACK, commit=False, payload_len=64, **numbers).state == expected
