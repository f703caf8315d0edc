"""controller(pause) continuations, and pinctrl's answers to put_dhcp_opts,
put_dhcpv6_opts and put_nd_ra_opts built and resumed (issue 14 item 3)."""

import struct
from pathlib import Path

import pytest

from ofrace.annotate.session import TraceRequest, run_trace
from ofrace.compare.recording import replay
from ofrace.compare.verify import Prediction, WirePacket, compare_step
from ofrace.errors import InputError
from ofrace.openflow.bridge import BridgeIndex
from ofrace.openflow.frames import decode, dhcp_body, encode
from ofrace.ovn import pinctrl_answers
from ofrace.ovn.microflow import dhcp_request_fields, link_local
from ofrace.ovn.pinctrl_answers import UserdataError, answer, result_field
from ofrace.render.trace_json import packet_json
from ofrace.simulate.engine import ChassisDatapath
from ofrace.snapshot import Bridge, Interface, Snapshot
from ofrace.trace import resumed
from ofrace.trace.cluster import TraceStart

FIXTURES = Path(__file__).parent / "fixtures"
MAC = 0x505400000111
OFFER = 0x0A00010B
# put_dhcp_opts as OVN 23.03 encodes it (the acl lab): result reg0[3] as xxreg0 bit 99,
# offer 10.0.1.11, then dns_server, lease_time, netmask, router, server_id.
DHCP_USERDATA = ("00000002000000000001de10000000630a00010b0604ac100035330400000e100104ffffff00"
                 "03040a00010136040a000101")
DHCPV6_USERDATA = ("00000005000000000001de100000006300050010fd000001000000000000000000000011"
                   "00020006505400000101")


def _datapath(lines):
    ports = [Interface(name=f"p{n}", bridge="br0", type="", ofport=n, options={},
                       external_ids={}, error=None, mac_in_use=None) for n in (1, 2, 3)]
    return ChassisDatapath("hv", {"br0": BridgeIndex(Bridge(name="br0", flows=lines), ports)})


PAUSING_FLOWS = [
    "table=0, priority=1,in_port=1 actions=load:0x1->NXM_NX_REG3[],resubmit(,1),"
    "load:0x9->NXM_NX_REG4[],output:3",
    "table=1, priority=1 actions=controller(userdata=00.00.00.02.00.00.00.00,pause),"
    "load:0x2->NXM_NX_REG5[],resubmit(,2)",
    "table=2, priority=2,reg6=0x1 actions=output:2",
    "table=2, priority=1 actions=drop",
]


def test_pause_freezes_the_rest_of_every_flow_on_the_way():
    dp = _datapath(PAUSING_FLOWS)
    _, exits = dp.inject("br0", {"in_port": 1})
    assert [e.kind for e in exits] == ["controller", "drop"]   # nothing after the pause ran
    continuation = exits[0].data["continuation"]
    assert [(table, len(actions)) for table, actions, _ in continuation.frames] == [(1, 2), (0, 2)]
    assert continuation.packet["reg3"] == 1 and "reg5" not in continuation.packet
    _, resumed_exits = dp.resume(continuation, {**continuation.packet, "reg6": 1})
    assert [(e.kind, e.port) for e in resumed_exits] == [("output", 2), ("output", 3)]
    assert resumed_exits[1].packet["reg4"] == 9 and resumed_exits[1].packet["reg5"] == 2


def test_resume_runs_with_the_packet_the_controller_gave():
    dp = _datapath(PAUSING_FLOWS)
    _, exits = dp.inject("br0", {"in_port": 1})
    continuation = exits[0].data["continuation"]
    # without the bit the controller sets, table 2 drops; the outer flow still outputs
    _, resumed_exits = dp.resume(continuation, dict(continuation.packet))
    assert [(e.kind, e.port) for e in resumed_exits] == [("output", 3)]


def test_a_pause_inside_a_clone_freezes_only_the_clone():
    """clone_xlate_actions finishes the freeze at the clone's end, and ctx->exit (set by
    ctx_trigger_freeze) ends the translation: what follows the clone never runs."""
    dp = _datapath(["table=0, priority=1 actions=clone(controller(userdata=00.00.00.02.00.00."
                    "00.00,pause),output:2),output:3"])
    _, exits = dp.inject("br0", {"in_port": 1})
    assert [e.kind for e in exits] == ["controller", "drop"]
    frames = exits[0].data["continuation"].frames
    assert len(frames) == 1 and len(frames[0][1]) == 1


def _discover(kind=1, requested=None, **extra):
    packet = {"in_port": 5, "dl_src": MAC, "dl_dst": 0xFFFFFFFFFFFF, "dl_type": 0x0800,
              "nw_src": 0, "nw_dst": 0xFFFFFFFF, "nw_proto": 17, "nw_ttl": 64, "tp_src": 68,
              "tp_dst": 67, "dhcp_msg": kind, "reg0": 0x5, "reg14": 1, **extra}
    if requested is not None:
        packet["dhcp_requested_ip"] = requested
    return packet


def test_result_field_reads_registers_and_their_wide_views():
    assert result_field(bytes.fromhex(DHCP_USERDATA))[:2] == ("xxreg0", 99)
    assert result_field(bytes(8) + struct.pack("!II", 0x00010604, 7))[:2] == ("reg3", 7)
    with pytest.raises(UserdataError):
        result_field(bytes(8) + struct.pack("!II", 0x80000004, 0))  # in_port: no register


def test_discover_gets_an_offer_with_every_option_in_order():
    result = answer("put_dhcp_opts", DHCP_USERDATA, _discover())
    assert result.answered and result.summary == "DHCPOFFER 10.0.1.11"
    assert result.options == ["dns_server=172.16.0.53", "lease_time=3600",
                              "netmask=255.255.255.0", "router=10.0.1.1", "server_id=10.0.1.1"]
    body = result.resume_with["dhcp_reply"]
    assert body[0] == "op=2" and "yiaddr=10.0.1.11" in body and "chaddr=505400000111" in body
    assert body[8:] == ("53=02", "6=ac100035", "51=00000e10", "1=ffffff00", "3=0a000101",
                        "54=0a000101")
    # the request asked for a broadcast answer; the bit pinctrl sets is reg0[3]
    assert result.resume_with["nw_dst"] == 0xFFFFFFFF
    assert result.resume_with["reg0"] == 0x5 | 0x8 and result.resume_with["reg1"] == 0


def test_request_for_the_offer_is_acked_and_for_another_address_nacked():
    ack = answer("put_dhcp_opts", DHCP_USERDATA, _discover(3, OFFER))
    assert ack.summary == "DHCPACK 10.0.1.11" and "53=05" in ack.resume_with["dhcp_reply"]
    nak = answer("put_dhcp_opts", DHCP_USERDATA, _discover(3, OFFER + 1))
    body = nak.resume_with["dhcp_reply"]
    assert nak.summary.startswith("DHCPNAK") and body[8:] == ("53=06",)
    assert "yiaddr=0.0.0.0" in body


def test_inform_is_acked_without_address_or_lease():
    result = answer("put_dhcp_opts", DHCP_USERDATA, _discover(8))
    body = result.resume_with["dhcp_reply"]
    assert "53=05" in body and "yiaddr=0.0.0.0" in body
    assert not [o for o in body if o.split("=")[0] in ("1", "51", "58", "59")]


def test_no_dhcp_message_is_resumed_unanswered_with_the_bit_clear():
    result = answer("put_dhcp_opts", DHCP_USERDATA, _discover(reg0=0xF, tp_src=1234))
    assert not result.answered
    assert {k: result.resume_with[k] for k in ("reg0", "reg1", "reg2", "reg3")} == \
        {"reg0": 0x7, "reg1": 0, "reg2": 0, "reg3": 0}
    assert result.resume_with["tp_src"] == 1234 and "dhcp_reply" not in result.resume_with


def test_bootfile_alt_replaces_bootfile_for_a_client_that_is_not_ipxe():
    options = bytes([67, 3]) + b"a.0" + bytes([254, 3]) + b"b.0" + bytes([253, 4]) + bytes(
        [10, 0, 0, 9])
    userdata = bytes.fromhex(DHCP_USERDATA[:32]) + struct.pack("!I", OFFER) + options
    result = answer("put_dhcp_opts", userdata.hex(), _discover())
    body = result.resume_with["dhcp_reply"]
    assert "67=622e30" in body and "67=612e30" not in body and "siaddr=10.0.0.9" in body


def test_dhcpv6_solicit_gets_an_advertise_and_request_a_reply():
    solicit = {"in_port": 5, "dl_src": MAC, "dl_dst": 0x333300010002, "dl_type": 0x86DD,
               "ipv6_src": link_local(MAC), "ipv6_dst": 0xFF020000000000000000000000010002,
               "nw_proto": 17, "nw_ttl": 1, "tp_src": 546, "tp_dst": 547, "dhcp_msg": 1}
    result = answer("put_dhcpv6_opts", DHCPV6_USERDATA, solicit)
    body = result.resume_with["dhcp_reply"]
    assert result.summary == "DHCPv6 ADVERTISE" and body[0] == "msg=2"
    assert body[2] == "1=00030001505400000111"           # the client id, copied
    assert body[3].startswith("3=00000001ffffffffffffffff0005")   # IA_NA around the address
    assert body[4] == "2=00030001505400000101"           # server id as a DUID-LL
    reply = answer("put_dhcpv6_opts", DHCPV6_USERDATA, {**solicit, "dhcp_msg": 3})
    assert reply.resume_with["dhcp_reply"][0] == "msg=7"


def test_router_solicitation_gets_the_advertisement_in_the_userdata():
    ra = bytes([134, 0, 0, 0, 255, 0x80, 0xFF, 0xFF]) + bytes(8) + bytes([1, 1]) + bytes(6)
    userdata = (bytes.fromhex("00000008000000000001de1000000063") + ra).hex()
    rs = {"in_port": 5, "dl_src": MAC, "dl_dst": 0x333300000002, "dl_type": 0x86DD,
          "ipv6_src": link_local(MAC), "ipv6_dst": 0xFF020000000000000000000000000002,
          "nw_proto": 58, "nw_ttl": 255, "tp_src": 133, "tp_dst": 0}
    result = answer("put_nd_ra_opts", userdata, rs)
    assert result.resume_with["tp_src"] == 134
    assert result.resume_with["nd_ra"][:3] == ("hop_limit=255", "flags=0x80",
                                               "router_lifetime=65535")
    assert not answer("put_nd_ra_opts", userdata, {**rs, "tp_src": 135}).answered


def test_frames_write_and_read_the_message_type():
    packet = dhcp_request_fields("request", 4, MAC)
    frame = encode(packet, {"dhcp_requested_ip": OFFER})
    assert decode(frame)["dhcp_msg"] == 3 and "dhcp_reply" not in decode(frame)
    body = dhcp_body(frame[42:])
    assert body[-2:] == ("53=03", "50=0a00010b")
    with pytest.raises(InputError, match="UDP packet from port 68 to 67"):
        dhcp_request_fields("discover", 4, MAC, {"tp_dst": 80})
    assert link_local(MAC) == 0xFE80000000000000525400FFFE000111


def test_answers_that_differ_in_one_option_do_not_compare_equal():
    body = answer("put_dhcp_opts", DHCP_USERDATA, _discover()).resume_with["dhcp_reply"]
    headers = {"dl_src": 1, "dl_dst": MAC, "dl_type": 0x800, "nw_proto": 17}
    want = WirePacket.of("hv1", "vm1", {**headers, "dhcp_reply": body})
    other = WirePacket.of("hv1", "vm1", {**headers, "dhcp_reply": body[:-1]})
    prediction = Prediction(outputs=[want])
    assert compare_step("s", prediction, [want]) == []
    assert compare_step("s", prediction, [other])      # negative control: one option less


def test_short_form_dhcp_trace_is_answered_and_delivered_back():
    snapshot = Snapshot.load(str(next((FIXTURES / "acl" / "sweep").glob("snapshot-13c*.ofr"))))
    request = TraceRequest.from_options(None, "vm1", None, "udp", None, False,
                                        body=("dhcp", "discover"))
    result = run_trace(snapshot, request)
    child = result.forward.root.children[0]
    assert child.start.entry.startswith("answered by ovn-controller on hv1 (DHCPOFFER ")
    assert "lease_time=3600" in child.start.entry
    assert [v.text for v in result.forward.verdicts()] == ["delivered to vm1 on hv1"]
    body = packet_json(result.forward.verdicts()[0].packet)["body"]["dhcp_reply"]
    assert "53=02" in body and "51=00000e10" in body       # --json shows every option
    with pytest.raises(InputError, match="no --to"):
        TraceRequest.from_options(None, "vm1", "10.0.0.1", "udp", None, False,
                                  body=("dhcp", "discover"))


def test_the_recorded_acl_sweep_agrees_on_every_dhcp_and_ra_answer(monkeypatch):
    steps = ("dhcp discover", "dhcpv6 solicit", "router solicitation")
    report = replay(FIXTURES / "acl" / "sweep", classes={"controller-answered"})
    assert report.equal["controller-answered"] >= 8
    assert not [m for _, m in report.mismatches if any(s in m.step for s in steps)]

    # Negative control: an answer one option short is a mismatch, so options are compared.
    real = pinctrl_answers.answer

    def short(*args):
        result = real(*args)
        if "dhcp_reply" in result.resume_with:
            result.resume_with["dhcp_reply"] = result.resume_with["dhcp_reply"][:-1]
        return result

    monkeypatch.setattr(resumed, "answer", short)
    broken = replay(FIXTURES / "acl" / "sweep", classes={"controller-answered"})
    assert [m for _, m in broken.mismatches if "dhcp discover" in m.step]


def test_dhcpv6_bootfile_is_a_release_fact():
    from ofrace.ovn.versions import facts_for

    userdata = bytes.fromhex(DHCPV6_USERDATA) + struct.pack("!HH", 254, 3) + b"b.0" + \
        struct.pack("!HH", 59, 3) + b"a.0"
    solicit = {"in_port": 5, "dl_src": MAC, "dl_dst": 0x333300010002, "dl_type": 0x86DD,
               "ipv6_src": link_local(MAC), "ipv6_dst": 0xFF020000000000000000000000010002,
               "nw_proto": 17, "nw_ttl": 1, "tp_src": 546, "tp_dst": 547, "dhcp_msg": 1}
    old = answer("put_dhcpv6_opts", userdata.hex(), solicit, facts_for("23.03.1"))
    assert not old.answered and "option 254" in old.summary   # 23.03 fails the answer
    new = answer("put_dhcpv6_opts", userdata.hex(), solicit, facts_for("23.09.0"))
    # not an iPXE client: bootfile_name_alt's value, sent as option 59
    assert new.resume_with["dhcp_reply"][-1] == "59=622e30"


def _dns_query(name, qtype, datapath=3):
    return {"in_port": 5, "dl_src": MAC, "dl_dst": 0x505400000101, "dl_type": 0x0800,
            "nw_src": 0x0A00010B, "nw_dst": 0xAC100035, "nw_proto": 17, "nw_ttl": 64,
            "tp_src": 40000, "tp_dst": 53, "metadata": datapath, "dns_query": (name, qtype)}


DNS_USERDATA = "00000006000000000001de1000000064"     # dns_lookup, result reg0[4]
RECORDS = [({3}, {"vm1.ovn.org": "10.0.1.11 fd00::11", "11.1.0.10.in-addr.arpa": "vm1.ovn.org"})]


def test_dns_lookup_answers_from_the_datapaths_records():
    result = answer("dns_lookup", DNS_USERDATA, _dns_query("VM1.ovn.org", 255), dns=RECORDS)
    assert result.answered and result.options == ["A 10.0.1.11", "AAAA fd00::11"]
    body = result.resume_with["dns_reply"]
    assert body[:6] == ("id=0xf0a", "flags=0x8100", "qd=1", "an=2", "ns=0", "ar=0")
    assert body[7] == "rr VM1.ovn.org 1 1 3600 0a00010b"     # the name as asked
    assert result.resume_with["reg0"] & 0x10
    only_a = answer("dns_lookup", DNS_USERDATA, _dns_query("vm1.ovn.org", 1), dns=RECORDS)
    assert only_a.options == ["A 10.0.1.11"]
    ptr = answer("dns_lookup", DNS_USERDATA, _dns_query("11.1.0.10.in-addr.arpa", 12),
                 dns=RECORDS)
    assert ptr.resume_with["dns_reply"][-1].endswith("03766d31036f766e036f726700")


def test_dns_lookup_of_another_datapath_or_name_is_unanswered():
    other = answer("dns_lookup", DNS_USERDATA, _dns_query("vm1.ovn.org", 1, datapath=4),
                   dns=RECORDS)
    assert not other.answered and "no DNS record" in other.summary
    assert not other.resume_with["reg0"] & 0x10
    assert not answer("dns_lookup", DNS_USERDATA, _dns_query("vm2.ovn.org", 1),
                      dns=RECORDS).answered
    assert not answer("dns_lookup", DNS_USERDATA, _dns_query("vm1.ovn.org", 15),
                      dns=RECORDS).answered                 # MX: not a type pinctrl answers


def test_dns_short_form_names_a_question_in_a_udp_packet_to_port_53():
    from ofrace.ovn.microflow import dns_question
    from ofrace.trace.request import with_dns_query

    assert dns_question("vm1.ovn.org") == ("vm1.ovn.org", 1)
    assert dns_question("11.1.0.10.in-addr.arpa:PTR") == ("11.1.0.10.in-addr.arpa", 12)
    for bad in ("vm1.ovn.org:mx", "", "a..b"):
        with pytest.raises(InputError):
            dns_question(bad)
    start = TraceStart("hv1", "br-int", {"nw_proto": 6, "tp_dst": 53}, "x")
    with pytest.raises(InputError, match="UDP packet to port 53"):
        with_dns_query(start, "vm1.ovn.org")
    request = TraceRequest.from_options(None, "vm1", "10.0.1.1", "tcp", None, False,
                                        body=("dns", "vm1.ovn.org"))
    assert request.protocol == "udp"


def test_a_request_body_is_one_packet_and_its_answer():
    with pytest.raises(InputError, match="no --reply"):
        TraceRequest.from_options(None, "vm1", None, "udp", None, True,
                                  body=("dhcp", "discover"))
