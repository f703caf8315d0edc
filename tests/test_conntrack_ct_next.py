"""--ct-next: states a packet cannot have are refused, with the reason; a trace refuses
a forced established state (no connection, so no NAT), compare keeps it."""

import pytest

from ofrace.annotate.session import TraceRequest
from ofrace.errors import InputError
from ofrace.simulate.conntrack import NEW, TRK
from ofrace.trace.choices import parse_ct_next


@pytest.mark.parametrize(("flags", "why"), [
    ("new", 'without "trk"'),
    ("trk,new,est", "mutually exclusive"),
    ("trk,new,rpl", "mutually exclusive"),
    ("trk,inv,est", 'only "trk"'),
])
def test_impossible_states_are_refused_with_the_reason(flags, why):
    with pytest.raises(InputError) as err:
        parse_ct_next([flags])
    message = str(err.value)
    assert why in message and "\n" not in message


def test_possible_states_pass():
    assert parse_ct_next(["trk,new", "+trk+est+rpl", "trk,inv", "0"]) == [TRK | NEW, 0x2A,
                                                                          0x30, 0]
    assert parse_ct_next([]) is None


def test_a_trace_refuses_an_established_state_and_says_what_to_do():
    for flags in ("trk,est", "trk,rel", "trk,est,rpl"):
        with pytest.raises(InputError) as err:
            TraceRequest.from_options(None, "vm1", "10.0.0.2", "tcp", None, False,
                                      ct_next=[flags])
        assert "--reply" in str(err.value) and "NAT" in str(err.value)
    ok = TraceRequest.from_options(None, "vm1", "10.0.0.2", "tcp", None, False,
                                   ct_next=["trk,new"])
    assert ok.ct_next == [TRK | NEW]          # negative control: new is fine
    assert parse_ct_next(["trk,est"]) == [0x22]  # compare (ofproto/trace's view) keeps it
