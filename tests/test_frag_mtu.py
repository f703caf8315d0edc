"""icmp4.frag_mtu / icmp6.frag_mtu inside icmp4_error{}/icmp6_error{} (a router port's
options:gateway_mtu): pinctrl writes the MTU into the error it is building and resumes
(controller/pinctrl.c pinctrl_handle_put_icmp_frag_mtu; issue 14 item 3)."""

from ofrace.openflow.bridge import BridgeIndex
from ofrace.openflow.frames import decode, encode
from ofrace.ovn.versions import facts_for
from ofrace.simulate.engine import ChassisDatapath
from ofrace.snapshot import Bridge, Interface
from ofrace.trace import resumed

FACTS = facts_for("ovn-controller 23.03.1")
# encode_PUT_ICMP4_FRAG_MTU: opcode 13 (23.03), 4 pad bytes, the MTU as be16 (1400);
# encode_PUT_ICMP6_FRAG_MTU: opcode 21, the MTU as be32 (1380)
ICMP4_MTU = "0000000d000000000578"
ICMP6_MTU = "000000150000000000000564"


def _datapath(userdata: str) -> ChassisDatapath:
    dotted = ".".join(userdata[i:i + 2] for i in range(0, len(userdata), 2))
    lines = [f"table=0, priority=1,in_port=1 actions=controller(userdata={dotted},pause),"
             "output:2"]
    ports = [Interface(name=f"p{n}", bridge="br0", type="", ofport=n, options={},
                       external_ids={}, error=None, mac_in_use=None) for n in (1, 2)]
    return ChassisDatapath("hv", {"br0": BridgeIndex(Bridge(name="br0", flows=lines), ports)})


def _resumed_frame(userdata: str, packet: dict) -> tuple[dict, resumed.Resumed | None]:
    dp = _datapath(userdata)
    _, exits = dp.inject("br0", {"in_port": 1, **packet}, payload_length=100)
    [exit_] = [e for e in exits if e.kind == "controller"]
    notes: list[str] = []
    answer = resumed.resumed_answer(notes, "hv", exit_, FACTS, None, 100)
    if answer is None:
        return {}, None
    _, outs = dp.resume(answer.continuation, {**answer.continuation.packet, **answer.packet},
                         payload_length=answer.payload_length)
    [out] = [e for e in outs if e.kind == "output"]
    wire = {**out.packet, "payload_len": answer.payload_length}
    return decode(encode(out.packet, wire)), answer


NEEDS_FRAG = {"dl_src": 0x0A0000000001, "dl_dst": 0x0A0000000002, "dl_type": 0x0800,
              "nw_src": 0x0A000001, "nw_dst": 0x0A000002, "nw_proto": 1, "nw_ttl": 255,
              "tp_src": 3, "tp_dst": 4}


def test_needs_frag_resumes_with_the_mtu_on_the_wire():
    frame, answer = _resumed_frame(ICMP4_MTU, NEEDS_FRAG)
    assert answer is not None and answer.entry.startswith("answered by ovn-controller on hv")
    assert "MTU 1400" in answer.entry
    assert (frame["tp_src"], frame["tp_dst"], frame["icmp_frag_mtu"]) == (3, 4, 1400)
    assert answer.payload_length == 100      # the quoted bytes are kept


def test_packet_too_big_carries_a_32_bit_mtu():
    packet = {"dl_src": 1, "dl_dst": 2, "dl_type": 0x86DD, "ipv6_src": 1, "ipv6_dst": 2,
              "nw_proto": 58, "nw_ttl": 255, "tp_src": 2, "tp_dst": 0}
    frame, answer = _resumed_frame(ICMP6_MTU, packet)
    assert answer is not None and frame["icmp_frag_mtu"] == 1380


def test_a_packet_that_is_no_icmp_resumes_unchanged():
    """Negative control: pinctrl only warns and resumes; no MTU appears."""
    udp = {**NEEDS_FRAG, "nw_proto": 17, "tp_src": 1000, "tp_dst": 2000}
    frame, answer = _resumed_frame(ICMP4_MTU, udp)
    assert answer is not None and "not answered" in answer.entry
    assert "icmp_frag_mtu" not in frame


def test_only_frag_needed_errors_carry_an_mtu():
    """Negative control for the frame codec: a port unreachable has no MTU field, and two
    needs-frag frames that differ only in the MTU do not decode equal."""
    unreachable = decode(encode({**NEEDS_FRAG, "tp_dst": 3}, {"icmp_frag_mtu": 1400}))
    assert "icmp_frag_mtu" not in unreachable
    a = decode(encode(NEEDS_FRAG, {"icmp_frag_mtu": 1400}))
    b = decode(encode(NEEDS_FRAG, {"icmp_frag_mtu": 1500}))
    assert a["icmp_frag_mtu"] == 1400 and a != b


def test_a_pause_in_a_packet_out_resumes_the_rest_of_its_actions():
    """The pause sits in the packet-out pinctrl sends for icmp4_error{} (its nested
    actions), not in a flow: the actions after it run on resume, with the MTU."""
    from ofrace.openflow.actions import Controller, Output

    dp = _datapath(ICMP4_MTU)
    actions = [Controller(userdata=bytes.fromhex(ICMP4_MTU), pause=True), Output(2)]
    _, exits = dp.execute("br0", {"in_port": 0xFFFD, **NEEDS_FRAG}, actions, None, 64)
    assert "output" not in [e.kind for e in exits]       # nothing ran past the pause
    exits = [e for e in exits if e.kind == "controller"]
    answer = resumed.resumed_answer([], "hv", exits[0], FACTS, None, 64)
    _, outs = dp.resume(answer.continuation, {**answer.continuation.packet, **answer.packet},
                        payload_length=answer.payload_length)
    [out] = [e for e in outs if e.kind == "output"]
    assert out.port == 2 and out.packet["icmp_frag_mtu"] == 1400
