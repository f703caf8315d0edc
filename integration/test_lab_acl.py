"""The acl lab: the OVN features kind lacks really compile into OpenFlow, and really act.

Conjunctions from port-group ACLs with address sets, select groups from a
switch load balancer, DHCP and IPv6 responders, ARP responders, routing and
flooding -- each checked on a real chassis, and the ACLs with real packets.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import pytest
from test_lab import flow_state

from ofrace.lab.lab import Lab

pytestmark = pytest.mark.lab

# ovn-controller's controller(userdata=...) opcodes (OVN 23.03 actions.h).
PUT_DHCP_OPTS = "controller(userdata=00.00.00.02"
PUT_DHCPV6_OPTS = "controller(userdata=00.00.00.05"
ACL_LOG = "controller(userdata=00.00.00.07"
PUT_ND_RA_OPTS = "controller(userdata=00.00.00.08"

VM1 = ("50:54:00:00:01:11", "10.0.1.11")  # hv1, ls1, pg_web
VM3 = ("50:54:00:00:01:13", "10.0.1.13")  # hv2, ls1, pg_clients / as_clients
VM5 = ("50:54:00:00:02:11", "10.0.2.11")  # hv1, ls2, pg_clients / as_clients
LR1_LS1_MAC = "50:54:00:00:01:01"
LR1_LS2_MAC = "50:54:00:00:02:01"


@pytest.fixture
def acl_lab(lab_slot) -> Lab:
    """Three chassis, two switches and a router, ACLs on port groups, up."""
    return lab_slot.ensure("acl")


def tcp_syn(src: tuple[str, str], dst_mac: str, dst_ip: str, sport: int, dport: int) -> str:
    """A TCP SYN in the datapath flow format netdev-dummy/receive takes."""
    return (f"eth(src={src[0]},dst={dst_mac}),eth_type(0x0800),"
            f"ipv4(src={src[1]},dst={dst_ip},proto=6,tos=0,ttl=64,frag=no),"
            f"tcp(src={sport},dst={dport}),tcp_flags(syn)")


def arp_request(src: tuple[str, str], target_ip: str) -> str:
    return (f"eth(src={src[0]},dst=ff:ff:ff:ff:ff:ff),eth_type(0x0806),"
            f"arp(sip={src[1]},tip={target_ip},op=1,sha={src[0]},tha=00:00:00:00:00:00)")


def packet_fields(flow: str) -> dict[str, str]:
    """``ovs-ofctl parse-pcap`` output as a dict; the leading protocol word maps to ''."""
    return dict(item.partition("=")[::2] for item in flow.split(","))


def flows(lab: Lab, chassis: str) -> str:
    return lab.run_on(chassis, ["ovs-ofctl", "dump-flows", "br-int", "--no-stats"]).stdout


def select_groups(lab: Lab, chassis: str) -> list[str]:
    groups = lab.run_on(chassis, ["ovs-ofctl", "dump-groups", "br-int"]).stdout
    return [g for g in groups.splitlines() if "type=select" in g]


def arrivals(lab: Lab, chassis: str, vif: str, before: int, expected: int,
             timeout: float = 5.0) -> list[dict[str, str]]:
    """Packets a VIF was sent since ``before``, waiting for ``expected`` of them."""
    packets = lab.wait_for_packets(chassis, vif, before + expected, timeout=timeout)
    return [packet_fields(p) for p in packets[before:]]


def without_run_specific_numbers(lines: list[str]) -> list[str]:
    """Flows with conj_ids and datapath conntrack zones replaced by what does not vary.

    ovn-controller derives a conjunction's id from its logical flow's UUID,
    so each id is replaced by a digest of the flows that name it.  The
    DNAT/SNAT zones of datapaths (loaded into reg11/reg12) are blanked: the
    lab renumbers zones with ovn-controller stopped, but on restart
    ovn-controller (conditional SB monitoring) computes zones before it has
    the datapaths, frees their zones and hands them out again in hash order
    of their UUIDs.  The acl topology meets all its datapaths at once on
    every chassis, so that order shows; kind's chassis meet them one by one.
    """
    members: dict[str, list[str]] = {}
    for line in lines:
        for conj_id in re.findall(r"conjunction\((\d+),", line):
            members.setdefault(conj_id, []).append(
                re.sub(r"conjunction\(\d+,", "conjunction(*,", line))
    names = {conj_id: hashlib.sha1("\n".join(sorted(flows)).encode()).hexdigest()[:12]
             for conj_id, flows in members.items()}

    def rename(match: re.Match) -> str:
        return match.group(1) + names.get(match.group(2), "?")

    result = []
    for line in lines:
        line = re.sub(r"(conjunction\(|conj_id=)(\d+)", rename, line)
        line = re.sub(r"load:0x[0-9a-f]+->NXM_NX_REG1[12]\[\]", "load:*->zone", line)
        result.append(line)
    return sorted(result)


def test_two_ups_give_the_same_flows(lab_slot, acl_lab):
    first = flow_state(acl_lab)  # packets leave no flows behind here: no MAC learning
    second = flow_state(lab_slot.up("acl"))
    assert first.keys() == second.keys()
    for key in first:
        if key.endswith(" flows"):
            first[key], second[key] = map(without_run_specific_numbers, (first[key], second[key]))
        assert first[key] == second[key], f"{key} differs between two ups"
    assert len(first["hv1 br-int flows"]) > 500



def test_port_group_acls_compile_into_conjunctions(acl_lab):
    """hv1 holds both pg_web ports, so web-from-clients becomes a 3-dimension conjunction."""
    dump = flows(acl_lab, "hv1")
    clauses = re.findall(r"conjunction\((\d+),(\d)/(\d)\)", dump)
    assert clauses, "no conjunction() flows on hv1"
    conj_ids = set(re.findall(r"conj_id=(\d+)", dump))
    assert {clause[0] for clause in clauses} == conj_ids, "every conjunction has its conj_id flow"
    assert any(n_clauses == "3" for _, _, n_clauses in clauses)
    # The dimensions of web-from-clients: pg_web's ports, as_clients, tcp.dst {80, 443}.
    for dimension in ("reg15=0x2", "reg15=0x3", "nw_src=10.0.1.13", "nw_src=10.0.2.11",
                      "tp_dst=80", "tp_dst=443"):
        assert re.search(rf"{dimension}\b.*actions=conjunction\(", dump), dimension


def test_drop_acl_logs_through_the_controller(acl_lab):
    assert ACL_LOG in flows(acl_lab, "hv1"), "web-deny has log=true"


def test_switch_load_balancer_gives_select_groups(acl_lab):
    for chassis in ("hv1", "hv2", "hv3"):
        groups = select_groups(acl_lab, chassis)
        assert len(groups) == 3, f"{chassis}: one group per VIP"
        assert all(g.count("bucket=") >= 2 for g in groups), groups


def test_dhcp_and_ipv6_responder_flows(acl_lab):
    hv1 = flows(acl_lab, "hv1")
    assert PUT_DHCP_OPTS in hv1 and PUT_DHCPV6_OPTS in hv1, "vm1 has DHCPv4 and DHCPv6 options"
    assert PUT_ND_RA_OPTS in hv1, "lr1-ls1 has ipv6_ra_configs"
    assert "nd_target=fd00:1::11" in hv1, "the ND responder answers for vm1"
    assert PUT_DHCP_OPTS in flows(acl_lab, "hv2"), "vm3 has DHCPv4 options"
    assert PUT_DHCP_OPTS not in flows(acl_lab, "hv3"), "no port on hv3 has DHCP options"


def test_allowed_syn_arrives_and_denied_syn_does_not(acl_lab):
    """vm3 -> vm1 on one switch: tcp/80 is web-from-clients, tcp/22 falls to web-deny."""
    before = len(acl_lab.pcap_packets("hv1", "vm1"))
    acl_lab.inject("hv2", "vm3", tcp_syn(VM3, VM1[0], VM1[1], sport=40080, dport=80))
    allowed = arrivals(acl_lab, "hv1", "vm1", before, 1)
    assert len(allowed) == 1
    assert (allowed[0]["nw_src"], allowed[0]["tp_src"], allowed[0]["tp_dst"]) == \
        (VM3[1], "40080", "80")

    acl_lab.inject("hv2", "vm3", tcp_syn(VM3, VM1[0], VM1[1], sport=40022, dport=22))
    log = Path(acl_lab.chassis("hv1")["rundir"]) / "ovn-controller.log"
    deadline = time.monotonic() + 5
    while "tp_src=40022" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    logged = [line for line in log.read_text().splitlines() if "tp_src=40022" in line]
    assert logged and 'name="web-deny", verdict=drop' in logged[0], "dropped by web-deny"
    time.sleep(0.3)
    assert len(acl_lab.pcap_packets("hv1", "vm1")) == before + 1, "the tcp/22 SYN was dropped"


def test_routed_client_reaches_web_through_the_router(acl_lab):
    """vm5 (ls2, as_clients) -> vm1:443 via lr1: routed on hv1, allowed by web-from-clients."""
    before = len(acl_lab.pcap_packets("hv1", "vm1"))
    acl_lab.inject("hv1", "vm5", tcp_syn(VM5, LR1_LS2_MAC, VM1[1], sport=41443, dport=443))
    arrived = arrivals(acl_lab, "hv1", "vm1", before, 1)
    assert len(arrived) == 1
    syn = arrived[0]
    assert (syn["dl_src"], syn["dl_dst"]) == (LR1_LS1_MAC, VM1[0])
    assert (syn["nw_src"], syn["tp_dst"], syn["nw_ttl"]) == (VM5[1], "443", "63")


def test_arp_for_a_known_address_is_answered_by_ovn(acl_lab):
    before = len(acl_lab.pcap_packets("hv2", "vm3"))
    vm1_before = len(acl_lab.pcap_packets("hv1", "vm1"))
    acl_lab.inject("hv2", "vm3", arp_request(VM3, VM1[1]))
    replies = arrivals(acl_lab, "hv2", "vm3", before, 1)
    assert len(replies) == 1
    assert (replies[0]["arp_op"], replies[0]["arp_sha"], replies[0]["arp_spa"]) == \
        ("2", VM1[0], VM1[1])
    time.sleep(0.3)
    assert len(acl_lab.pcap_packets("hv1", "vm1")) == vm1_before, "answered, not flooded"


def test_arp_for_an_unknown_address_floods_across_chassis(acl_lab):
    """ls1's _MC_flood: vm1 and vm2 on hv1, vm4 and ext1 on hv3, not back to vm3."""
    receivers = [("hv1", "vm1"), ("hv1", "vm2"), ("hv3", "vm4"), ("hv3", "ext1")]
    before = {r: len(acl_lab.pcap_packets(*r)) for r in receivers}
    sender_before = len(acl_lab.pcap_packets("hv2", "vm3"))
    acl_lab.inject("hv2", "vm3", arp_request(VM3, "10.0.1.200"))
    for chassis, vif in receivers:
        flooded = arrivals(acl_lab, chassis, vif, before[chassis, vif], 1)
        assert [p["arp_tpa"] for p in flooded] == ["10.0.1.200"], (chassis, vif)
    assert len(acl_lab.pcap_packets("hv2", "vm3")) == sender_before
