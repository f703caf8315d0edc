"""ovn-controller's DHCP, DHCPv6, RA and DNS answers on the acl lab's wire, against ofrace's.

ofrace traces ``--from vm1 --dhcp discover`` (and request, DHCPv6 solicit/request, a
Router Solicitation): the trace pauses at put_dhcp_opts, builds the answer as pinctrl
does and resumes it.  The request is then injected as a real frame on vm1's interface
and the answer vm1 receives is read from its pcap: headers and every option must equal
the prediction.
"""

from __future__ import annotations

import time

import pytest
from lab_inventory import local_inventory

from ofrace.annotate.session import TraceRequest, run_trace
from ofrace.collect.cluster import collect_cluster
from ofrace.compare.verify import WirePacket
from ofrace.lab.wire import read_pcap
from ofrace.openflow.frames import WIRE_KEYS, encode
from ofrace.ovn.microflow import link_local
from ofrace.trace.cluster import TraceStart

pytestmark = pytest.mark.lab
PORT = "vm1"          # acl: ls1 with dhcpv4 and dhcpv6 options, lr1 with RA
DNS_NAME, DNS_ADDRESSES = "vm9.ofrace.test", "10.0.1.99 fd00:1::99"
DNS_SERVER = "10.0.1.1"    # any address: ls_in_dns_lookup matches udp.dst == 53 alone


@pytest.fixture(scope="module")
def acl(lab_slot):
    lab = lab_slot.ensure("acl")
    return lab, collect_cluster(local_inventory(lab))


def _send(lab, snapshot, start: TraceStart, wanted, wait: float = 5.0) -> list[dict]:
    """Inject ``start``'s packet as a frame on its interface; what that interface then
    sent back that ``wanted`` picks."""
    iface = next(i.name for i in snapshot.chassis[start.chassis].interfaces
                 if i.bridge == start.bridge and i.ofport == start.packet["in_port"])
    fields = {k: v for k, v in start.packet.items() if k not in WIRE_KEYS}
    wire = {k: v for k, v in start.packet.items() if k in WIRE_KEYS}
    path = lab.layout.pcap(start.chassis, iface, "tx")
    _, offset = read_pcap(path, 0)
    lab.run_on(start.chassis, ["ovs-appctl", "netdev-dummy/receive", iface,
                               encode(fields, wire).hex()])
    deadline, seen = time.monotonic() + wait, []
    while time.monotonic() < deadline and not seen:
        time.sleep(0.1)
        frames, _ = read_pcap(path, offset)
        seen = [f for f in frames if wanted(f)]
    return seen


def _predicted(result) -> WirePacket:
    (verdict,) = result.forward.verdicts()
    assert verdict.kind == "delivered" and verdict.logical_port == PORT, verdict.text
    return WirePacket.of(verdict.chassis, verdict.port, verdict.packet)


@pytest.mark.parametrize("kind, message", [("discover", "DHCPOFFER"),
                                           ("request", "DHCPACK")])
def test_dhcp_answer_equals_the_wire_option_by_option(acl, kind, message):
    lab, snapshot = acl
    result = run_trace(snapshot, TraceRequest(source=PORT, body=("dhcp", kind)))
    answered = result.forward.root.children[0].start
    assert answered.entry.startswith(f"answered by ovn-controller on {answered.chassis} "
                                     f"({message} ")
    want = _predicted(result)
    assert dict(want.fields)["dhcp_reply"][8] == ("53=02" if kind == "discover" else "53=05")
    seen = _send(lab, snapshot, result.start, lambda f: "dhcp_reply" in f)
    assert seen, f"no DHCP answer on {PORT}'s interface"
    got = WirePacket.of(want.chassis, want.port, seen[0])
    assert got == want, f"\npredicted {want.text()}\nwire      {got.text()}"


@pytest.mark.parametrize("kind", ["solicit", "request"])
def test_dhcpv6_answer_equals_the_wire(acl, kind):
    lab, snapshot = acl
    result = run_trace(snapshot, TraceRequest(source=PORT, body=("dhcpv6", kind)))
    want = _predicted(result)
    seen = _send(lab, snapshot, result.start, lambda f: "dhcp_reply" in f)
    assert seen, f"no DHCPv6 answer on {PORT}'s interface"
    assert WirePacket.of(want.chassis, want.port, seen[0]) == want


def test_router_solicitation_gets_the_predicted_advertisement(acl):
    lab, snapshot = acl
    probe = run_trace(snapshot, TraceRequest(source=PORT, body=("dhcpv6", "solicit")))
    mac = probe.start.packet["dl_src"]
    rs = (f'inport == "{PORT}" && eth.src == {_mac(mac)} && eth.dst == 33:33:00:00:00:02 && '
          f"ip6.src == {_ip6(link_local(mac))} && ip6.dst == ff02::2 && ip.ttl == 255 && "
          "icmp6.type == 133 && icmp6.code == 0")
    result = run_trace(snapshot, TraceRequest(expression=rs))
    want = _predicted(result)
    assert dict(want.fields).get("nd_ra"), "the prediction carries no RA body"
    seen = _send(lab, snapshot, result.start, lambda f: "nd_ra" in f)
    assert seen, f"no Router Advertisement on {PORT}'s interface"
    assert WirePacket.of(want.chassis, want.port, seen[0]) == want


def _mac(value: int) -> str:
    return ":".join(f"{value >> s & 0xFF:02x}" for s in range(40, -1, -8))


def _ip6(value: int) -> str:
    import ipaddress
    return str(ipaddress.IPv6Address(value))


@pytest.fixture
def acl_with_dns(lab_slot):
    """The acl lab with a DNS record on ls1 (none of the topologies has one), removed after."""
    lab = lab_slot.ensure("acl")
    uuid = lab.nbctl("--", "--id=@d", "create", "DNS",
                     f'records={{"{DNS_NAME}"="{DNS_ADDRESSES}"}}', "--", "add",
                     "Logical_Switch", "ls1", "dns_records", "@d").strip()
    lab.nbctl("--wait=hv", "sync")
    yield lab, collect_cluster(local_inventory(lab))
    lab.nbctl("remove", "Logical_Switch", "ls1", "dns_records", uuid)
    lab.nbctl("--wait=hv", "sync")


@pytest.mark.parametrize("qtype, answers", [("a", 1), ("aaaa", 1), ("any", 2)])
def test_dns_answer_equals_the_wire(acl_with_dns, qtype, answers):
    lab, snapshot = acl_with_dns
    # the name asked in capitals: pinctrl looks it up lowercased, answers it as asked
    request = TraceRequest.from_options(None, PORT, DNS_SERVER, "udp", None, False,
                                        body=("dns", f"{DNS_NAME.upper()}:{qtype}"))
    result = run_trace(snapshot, request)
    want = _predicted(result)
    assert f"an={answers}" in dict(want.fields)["dns_reply"]
    seen = _send(lab, snapshot, result.start, lambda f: "dns_reply" in f)
    assert seen, f"no DNS answer on {PORT}'s interface"
    assert WirePacket.of(want.chassis, want.port, seen[0]) == want
