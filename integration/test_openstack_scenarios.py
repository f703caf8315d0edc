"""Issue 14's checks as named scenarios on the openstack lab: real frames, ofrace's
prediction of every step equal to every capture point, and what the wire must show.

Each scenario is one conversation sent by the sweep's machinery (``run_sweep`` with the
lab as its wire side, ``ofrace.lab.verify.LabSide``), so "equal" means what ``ofrace lab
verify`` means: every VIF and uplink copy and every tunnel copy, step by step, and the
connections conntrack holds after.  On top, each scenario asserts the property it is
named for on the captures themselves (the SNAT address on the gateway's uplink, the VLAN
tag, the answer ovn-controller sent), so a scenario cannot pass by both sides doing
nothing.  Values come from the topology's NB rows (ofrace.lab.catalog), found by the
Neutron names a user knows.

One lab for the module (warmed as ``ofrace lab up --warm`` does); the failover variant
comes last and brings its own lab up.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from unittest import mock

import pytest

import ofrace.simulate.conntrack as conntrack
from ofrace.collect.cluster import collect_cluster
from ofrace.compare.generator import (
    UNKNOWN_IP4,
    Conversation,
    Entry,
    PacketClass,
    Step,
    conversation_steps,
    generate,
)
from ofrace.compare.sweep import Capture, observe, run_sweep
from ofrace.compare.verify import VerifyReport, WirePacket
from ofrace.lab.catalog import load
from ofrace.lab.lab import Lab
from ofrace.lab.traffic import warm_up
from ofrace.lab.verify import LabSide, lab_inventory
from ofrace.openflow.frames import decode

pytestmark = pytest.mark.lab

TOPOLOGY = "openstack"
FAILOVER = "openstack-failover"
REJECT_PORT = 8081      # no security group rule opens it


def ip4(text: str) -> int:
    return int.from_bytes(bytes(int(x) for x in text.split(".")), "big")


def mac(text: str) -> int:
    return int(text.replace(":", ""), 16)


# -- the topology, by Neutron names ---------------------------------------------------------

@pytest.fixture(scope="module")
def topology():
    return load(TOPOLOGY)


def neutron_port(topology, port_name: str):
    """The LSP whose neutron:port_name is ``port_name``."""
    (port,) = [p for s in topology.switch for p in s.ports
               if p.external_ids.get("neutron:port_name") == port_name]
    return port


def metadata_port(topology, of_port):
    """The metadata localport on the switch of ``of_port``."""
    switch = next(s for s in topology.switch if of_port in s.ports)
    return next(p for p in switch.ports if p.type == "localport"
                and p.external_ids.get("neutron:device_owner") == "network:distributed")


def router(topology):
    (only,) = topology.router
    return only


def gateway_port(topology):
    return next(p for p in router(topology).ports if p.gateway_chassis)


def nat(topology, kind: str, logical_ip: str):
    return next(n for n in router(topology).nat
                if n.type == kind and n.logical_ip.split("/")[0] == logical_ip)


def snat_for(topology, address: str):
    """The snat row covering ``address``."""
    return next(n for n in router(topology).nat if n.type == "snat" and
                ipaddress.ip_address(address) in ipaddress.ip_network(n.logical_ip))


def gateway_order(topology) -> list[str]:
    by_id = {c.system_id: c.name for c in topology.chassis}
    return [by_id[s] for s in gateway_port(topology).gateway_chassis]


def addresses(port) -> tuple[str, list[str]]:
    mac_text, *ips = port.addresses[0].split()
    return mac_text, ips


# -- the lab, and a scenario sent on it -----------------------------------------------------

@pytest.fixture(scope="module")
def cloud(lab_slot) -> Lab:
    lab = lab_slot.ensure(TOPOLOGY)
    warm_up(lab)        # the outside host announced, the VRRP VIP bound (as --warm)
    read_ofports(lab)
    return lab


class CapturingSide(LabSide):
    """The lab as a sweep's wire side that keeps every step's captures for the asserts."""

    def __init__(self, lab, snapshot):
        super().__init__(lab, snapshot)
        self.steps: list[tuple[str, Entry, list[Capture]]] = []

    def send(self, entry, packet, step, expect):
        captures = super().send(entry, packet, step, expect)
        self.steps.append((step.name, entry, captures))
        return captures


@dataclass
class Outcome:
    report: VerifyReport
    side: CapturingSide
    snapshot: object

    def wire(self, step: str) -> list[WirePacket]:
        """What VIFs and uplinks sent after ``step`` (the sweep's own reading)."""
        caps = [c for name, _, cs in self.side.steps if name == step for c in cs]
        return observe(caps)[0]

    def frames(self, step: str) -> list[tuple[str, str, dict]]:
        """(chassis, port, decoded frame) at VIFs and uplinks after ``step``."""
        return [(c.chassis, c.port, decode(c.frame)) for name, _, cs in self.side.steps
                if name == step for c in cs if not c.underlay]

    def assert_equal(self, steps: int) -> None:
        report = self.report
        assert sum(report.sent.values()) == steps, (dict(report.sent), report.skipped)
        assert report.mismatches == [], "\n".join(
            f"{m.step} at {m.where} [{m.gap}]: predicted {m.predicted}; wire {m.wire}"
            for _, m in report.mismatches[:6])


def send(lab: Lab, *conversations: Conversation) -> Outcome:
    snapshot = collect_cluster(lab_inventory(lab))
    side = CapturingSide(lab, snapshot)
    report = run_sweep(side, list(conversations), VerifyReport(TOPOLOGY))
    return Outcome(report, side, snapshot)


def generated(lab: Lab, label: str) -> Conversation:
    """The one conversation the sweep's generator made with this label."""
    snapshot = collect_cluster(lab_inventory(lab))
    found = [c for c in generate(snapshot) if c.label == label]
    assert found, f"the generator made no conversation {label!r}"
    return found[0]


def vif_entry(port) -> Entry:
    return Entry(port.vif.chassis, "br-int", port.vif.iface, port.vif.ofport)


def uplink_entry(topology, chassis: str) -> Entry:
    """The provider uplink of ``chassis`` (its one bridge mapping's uplink)."""
    spec = next(c for c in topology.chassis if c.name == chassis)
    (bridge,) = set(spec.bridge_mappings.values())
    iface = spec.uplinks[bridge]
    return Entry(chassis, bridge, iface, _ofport(chassis, iface))


_OFPORTS: dict[tuple[str, str], int] = {}


def _ofport(chassis: str, iface: str) -> int:
    return _OFPORTS[(chassis, iface)]


def read_ofports(lab: Lab) -> None:
    """Uplink ofports, read from the lab (they are not in the TOML)."""
    snapshot = collect_cluster(lab_inventory(lab))
    _OFPORTS.clear()
    for chassis in snapshot.chassis.values():
        for iface in chassis.interfaces:
            if iface.ofport not in (None, -1):
                _OFPORTS[(chassis.name, iface.name)] = iface.ofport


def tcp(label: str, entry: Entry, src_mac, dst_mac, src, dst, dport: int,
        sport: int = 41000) -> Conversation:
    request = {"dl_src": src_mac, "dl_dst": dst_mac, "dl_type": 0x0800, "nw_src": src,
               "nw_dst": dst, "nw_proto": 6, "nw_ttl": 64, "tp_src": sport, "tp_dst": dport}
    return Conversation((PacketClass.NAT,), label, entry,
                        conversation_steps("tcp", request, None, label), kind="tcp")


def outside_host(cloud, topology) -> tuple[int, int]:
    """(MAC, IP) of the default route's next hop, as the lab's warm-up announced it."""
    (route,) = [r for r in router(topology).route if r.prefix.startswith("0.0.0.0")]
    snapshot = collect_cluster(lab_inventory(cloud))
    for row in snapshot.southbound.tables.get("MAC_Binding", []):
        if row.get("ip") == route.nexthop:
            return mac(row["mac"]), ip4(route.nexthop)
    pytest.fail(f"nobody announced {route.nexthop}: warm-up did not run")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ofrace", *args], capture_output=True,
                          text=True, timeout=120)


# -- audit (first: before any scenario adds or removes a row) -------------------------------

def test_audit_of_the_healthy_cloud_is_clean(cloud):
    """`ofrace audit` exits 0 with no finding on any chassis: localports, same-match
    logical flows, gateway-only flows on computes all explained (issue 14's zero false
    alarms)."""
    done = cli("audit", "-i", str(cloud.dir / "inventory.toml"), "--json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    doc = json.loads(done.stdout)
    assert doc["clean"] and doc["complete"]
    assert set(doc["chassis"]) == {c["name"] for c in cloud.state["chassis"]}
    findings = {name: {k: c[k] for k in ("missing", "stale", "broken", "garbled") if c[k]}
                for name, c in doc["chassis"].items()}
    assert findings == dict.fromkeys(doc["chassis"], {})
    # not vacuous: every chassis has flows installed and gaps with reasons
    assert all(c["counts"]["installed"] > 100 and c["counts"]["expected"] > 0
               for c in doc["chassis"].values())


# -- north-south ----------------------------------------------------------------------------

def _snat_out_and_back(lab, topology, active: str):
    vm = neutron_port(topology, "vm-b-port")        # no floating IP: SNAT
    _, ips = addresses(vm)
    conv = generated(lab, f"{vm.name} -> outside via {router(topology).name} tcp")
    outcome = send(lab, conv)
    outcome.assert_equal(len(conv.steps))
    snat = snat_for(topology, ips[0])
    uplink = uplink_entry(topology, active)
    syn = outcome.wire("SYN")     # out of the active gateway's uplink only, SNATed
    assert [(p.chassis, p.port) for p in syn] == [(active, uplink.iface)]
    assert [dict(p.fields)["nw_src"] for p in syn] == [ip4(snat.external_ip)]
    back = [p for p in outcome.wire("SYN-ACK") if p.port == vm.vif.iface]
    assert [dict(p.fields)["nw_dst"] for p in back] == [ip4(ips[0])]


def test_snat_out_through_the_ha_gateway_and_the_reply_in(cloud, topology):
    _snat_out_and_back(cloud, topology, gateway_order(topology)[0])


def test_centralized_fip_of_the_vrrp_vip_is_nated_on_the_gateway(cloud, topology):
    """vm-a (the VRRP master) sends from the VIP: the FIP without external_mac is SNATed
    on the gateway chassis, not on the compute."""
    vip = next(p for s in topology.switch for p in s.ports if p.type == "virtual")
    parent = neutron_port(topology, "vm-a-port")
    fip = nat(topology, "dnat_and_snat", vip.options["virtual-ip"])
    assert not fip.external_mac
    gw = gateway_port(topology)
    outside_host(cloud, topology)           # the default route's next hop is resolved
    conv = tcp("vip -> outside", vif_entry(parent), mac(addresses(parent)[0]),
               mac(_router_port_on(topology, parent).mac), ip4(fip.logical_ip),
               UNKNOWN_IP4, 80)
    outcome = send(cloud, conv)
    outcome.assert_equal(len(conv.steps))
    active = gateway_order(topology)[0]
    syn = [dict(p.fields) for p in outcome.wire("SYN")]
    assert [(f["nw_src"], f["dl_src"]) for f in syn] == [(ip4(fip.external_ip),
                                                          mac(gw.mac))]
    assert [p.chassis for p in outcome.wire("SYN")] == [active]


def _router_port_on(topology, vm):
    switch = next(s for s in topology.switch if vm in s.ports)
    lsp = next(p for p in switch.ports if p.type == "router")
    return next(p for p in router(topology).ports if p.name == lsp.options["router-port"])


def test_distributed_fip_out_and_back_on_the_compute(cloud, topology):
    vm = neutron_port(topology, "vm-a-port")
    _, ips = addresses(vm)
    fip = nat(topology, "dnat_and_snat", ips[0])
    conv = generated(cloud, f"{vm.name} -> outside via {router(topology).name} tcp")
    outcome = send(cloud, conv)
    outcome.assert_equal(len(conv.steps))
    uplink = uplink_entry(topology, vm.vif.chassis)
    syn = [dict(p.fields) for p in outcome.wire("SYN")]
    assert [(f["nw_src"], f["dl_src"]) for f in syn] == [(ip4(fip.external_ip),
                                                          mac(fip.external_mac))]
    assert [(p.chassis, p.port) for p in outcome.wire("SYN")] == [(vm.vif.chassis,
                                                                   uplink.iface)]
    back = [dict(p.fields)["nw_dst"] for p in outcome.wire("SYN-ACK")
            if p.port == vm.vif.iface]
    assert back == [ip4(ips[0])]


def test_a_prediction_ignoring_nat_is_caught(cloud, topology):
    """Negative control: the distributed FIP's conversation, predicted with nat() that
    translates nothing, is not equal to the wire."""
    vm = neutron_port(topology, "vm-a-port")
    conv = generated(cloud, f"{vm.name} -> outside via {router(topology).name} tcp")
    with mock.patch.object(conntrack, "nat_translate", lambda tup, nat: tup):
        outcome = send(cloud, conv)
    assert len(outcome.report.mismatches) >= 1


def test_distributed_fip_in_on_the_compute(cloud, topology):
    """The physical network delivers the FIP's external_mac to the VM's compute: DNAT
    there, to the VM (web allows tcp/80 from anywhere), the answer out of the same
    uplink from the FIP."""
    vm = neutron_port(topology, "vm-a-port")
    _, ips = addresses(vm)
    fip = nat(topology, "dnat_and_snat", ips[0])
    outside_mac, outside_ip = outside_host(cloud, topology)
    conv = tcp("outside -> distributed fip", uplink_entry(topology, vm.vif.chassis),
               outside_mac, mac(fip.external_mac), outside_ip, ip4(fip.external_ip), 80)
    outcome = send(cloud, conv)
    outcome.assert_equal(len(conv.steps))
    syn = [dict(p.fields) for p in outcome.wire("SYN") if p.port == vm.vif.iface]
    assert [f["nw_dst"] for f in syn] == [ip4(ips[0])]
    answer = [dict(p.fields) for p in outcome.wire("SYN-ACK")]
    assert [(f["nw_src"], f["dl_src"]) for f in answer] == [(ip4(fip.external_ip),
                                                             mac(fip.external_mac))]
    assert [p.chassis for p in outcome.wire("SYN-ACK")] == [vm.vif.chassis]


def test_vlan_provider_traffic_carries_its_tag(cloud, topology):
    vm = neutron_port(topology, "vm-e-port")
    switch = next(s for s in topology.switch if vm in s.ports)
    (localnet,) = [p for p in switch.ports if p.type == "localnet"]
    assert localnet.tag
    conv = generated(cloud, f"{vm.name}: unknown destination mac")
    outcome = send(cloud, conv)
    outcome.assert_equal(len(conv.steps))
    uplink = uplink_entry(topology, vm.vif.chassis)
    out = [f for chassis, port, f in outcome.frames("SYN")
           if (chassis, port) == (vm.vif.chassis, uplink.iface)]
    assert len(out) == 1
    assert out[0].get("vlan_tci", 0) & 0x0FFF == localnet.tag
    # and ofrace says so too: the trace's packet at the uplink carries the tag
    from ofrace.trace.cluster import ClusterTracer, TraceStart
    tracer = ClusterTracer(outcome.snapshot)
    trace = tracer.trace(TraceStart(vm.vif.chassis, "br-int",
                                    {"in_port": vm.vif.ofport, **conv.steps[0].packet},
                                    conv.label))
    (left,) = [v for v in trace.verdicts() if v.port == uplink.iface]
    assert left.packet.get("vlan_tci", 0) & 0x0FFF == localnet.tag


# -- packets ovn-controller answers ---------------------------------------------------------

def _answered(cloud, label: str, vm, want: dict, body: str = "") -> Outcome:
    """The generated packet ``label`` answered at ``vm``'s VIF with ``want``'s fields;
    ``body``: the field that carries the answer's options (compared option by option by
    the sweep), which must not be empty, so the equality is not vacuous."""
    conv = generated(cloud, label)
    outcome = send(cloud, conv)
    answers = [f for chassis, port, f in outcome.frames(conv.steps[0].name)
               if port == vm.vif.iface]
    assert any(all(f.get(k) == v for k, v in want.items()) for f in answers), answers
    outcome.assert_equal(len(conv.steps))
    if body:
        bodies = [dict(p.fields).get(body) for p in outcome.wire(conv.steps[0].name)
                  if p.port == vm.vif.iface]
        assert bodies and all(bodies), bodies
    return outcome


def test_dhcp_discover_is_offered(cloud, topology):
    vm = neutron_port(topology, "vm-c-port")
    _answered(cloud, f"{vm.name}: dhcp discover", vm,
              {"nw_proto": 17, "tp_src": 67, "tp_dst": 68, "dhcp_msg": 2}, "dhcp_reply")


def test_dhcp_request_is_acked(cloud, topology):
    vm = neutron_port(topology, "vm-c-port")
    _, ips = addresses(vm)
    discover = generated(cloud, f"{vm.name}: dhcp discover")
    request = Conversation(discover.classes, f"{vm.name}: dhcp request", discover.entry,
                           [Step("DHCPREQUEST", False, dict(discover.steps[0].packet),
                                 wire={"dhcp_msg": 3, "dhcp_requested_ip": ip4(ips[0])})])
    outcome = send(cloud, request)
    answers = [f for _, port, f in outcome.frames("DHCPREQUEST") if port == vm.vif.iface]
    assert [f.get("dhcp_msg") for f in answers] == [5]          # ACK
    outcome.assert_equal(1)
    (ack,) = [dict(p.fields) for p in outcome.wire("DHCPREQUEST") if p.port == vm.vif.iface]
    assert ack.get("dhcp_reply"), ack


def test_dhcpv6_solicit_is_advertised(cloud, topology):
    vm = neutron_port(topology, "vm-d-port")
    _answered(cloud, f"{vm.name}: dhcpv6 solicit", vm,
              {"nw_proto": 17, "tp_src": 547, "tp_dst": 546, "dhcp_msg": 2}, "dhcp_reply")


def test_router_solicitation_is_answered_with_an_advertisement(cloud, topology):
    vm = neutron_port(topology, "vm-a-port")
    _answered(cloud, f"{vm.name}: router solicitation", vm, {"nw_proto": 58, "tp_src": 134},
              "nd_ra")


def test_neighbour_solicitation_for_the_router_is_answered(cloud, topology):
    vm = neutron_port(topology, "vm-a-port")
    rp = _router_port_on(topology, vm)
    _answered(cloud, f"{vm.name}: nd ns for {rp.name}", vm,
              {"nw_proto": 58, "tp_src": 136, "dl_src": mac(rp.mac)})


def test_ttl_expiry_is_answered_with_time_exceeded(cloud, topology):
    vm = neutron_port(topology, "vm-b-port")
    rp = _router_port_on(topology, vm)
    _answered(cloud, f"{vm.name}: ttl 1 towards {router(topology).name} (icmp time exceeded)",
              vm, {"nw_proto": 1, "tp_src": 11, "nw_src": ip4(rp.networks[0].split("/")[0])})


@pytest.fixture
def reject_acl(cloud, topology):
    """A reject rule Neutron never writes, added by hand on the web group (to-lport)."""
    web = next(g for g in topology.port_group
               if any("tcp.dst == 80" in a.match for a in g.acl))
    match = f"outport == @{web.name} && ip4 && (tcp.dst == {REJECT_PORT} || " \
            f"udp.dst == {REJECT_PORT})"
    cloud.nbctl("--wait=hv", "acl-add", web.name, "to-lport", "1003", match, "reject")
    yield web
    cloud.nbctl("--wait=hv", "acl-del", web.name, "to-lport", "1003", match)


@pytest.mark.parametrize("proto, answer", [
    (6, {"nw_proto": 6, "tcp_flags": 0x014}),            # RST-ACK
    (1 + 16, {"nw_proto": 1, "tp_src": 3, "tp_dst": 3}),   # ICMP port unreachable
])
def test_reject_acl_answers_the_sender(cloud, topology, reject_acl, proto, answer):
    src, dst = neutron_port(topology, "vm-c-port"), neutron_port(topology, "vm-b-port")
    smac, sips = addresses(src)
    dmac, dips = addresses(dst)
    label = f"vm-c -> vm-b :{REJECT_PORT} rejected"
    if proto == 6:
        conv = tcp(label, vif_entry(src), mac(smac), mac(dmac), ip4(sips[0]), ip4(dips[0]),
                   REJECT_PORT)
        conv.steps = conv.steps[:1]
    else:
        packet = {"dl_src": mac(smac), "dl_dst": mac(dmac), "dl_type": 0x0800,
                  "nw_src": ip4(sips[0]), "nw_dst": ip4(dips[0]), "nw_proto": 17,
                  "nw_ttl": 64, "tp_src": 41001, "tp_dst": REJECT_PORT}
        conv = Conversation((PacketClass.ACL,), label, vif_entry(src),
                            [Step("request", False, packet, wire={"payload_len": 16})])
    outcome = send(cloud, conv)
    back = [f for _, port, f in outcome.frames(conv.steps[0].name) if port == src.vif.iface]
    assert any(all(f.get(k) == v for k, v in answer.items()) for f in back), back
    assert not [p for p in outcome.wire(conv.steps[0].name) if p.port == dst.vif.iface]
    outcome.assert_equal(1)


# -- security groups ------------------------------------------------------------------------

def test_remote_group_rule_allows_and_the_trace_names_it(cloud, topology):
    """vm-d (private2, default group) to vm-c (default only) on a port no rule opens but
    the default group's remote-group rule: delivered, on the wire and by ofrace, which
    names the ACL and its Neutron security group."""
    src, dst = neutron_port(topology, "vm-d-port"), neutron_port(topology, "vm-c-port")
    _, dips = addresses(dst)
    default = next(g for g in topology.port_group
                   if any("$" + g.name + "_ip4" in a.match for a in g.acl))
    sg_id = default.external_ids["neutron:security_group_id"]
    rp = _router_port_on(topology, src)
    smac, sips = addresses(src)
    conv = tcp("vm-d -> vm-c :5000", vif_entry(src), mac(smac), mac(rp.mac), ip4(sips[0]),
               ip4(dips[0]), 5000)
    outcome = send(cloud, conv)
    outcome.assert_equal(len(conv.steps))
    assert [p.port for p in outcome.wire("SYN")] == [dst.vif.iface]
    done = cli("trace", "-i", str(cloud.dir / "inventory.toml"), "--from", "vm-d-port",
               "--to", f"{dips[0]}:5000", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["request"]["ports"] == {"vm-d-port": src.name}
    (verdict,) = doc["verdicts"]
    assert verdict["kind"] == "delivered" and verdict["cms"]["name"] == "vm-c-port"
    acls = [nb for hop in _hops(doc["trace"]) for e in hop["events"]
            for nb in e.get("northbound") or [] if nb.startswith("ACL to-lport")]
    assert any(f"${default.name}_ip4" in nb and f"Neutron security group (id {sg_id})" in nb
               for nb in acls), acls


def _hops(hop):
    yield hop
    for child in hop["next_hops"]:
        yield from _hops(child)


def test_default_drop_from_outside_the_groups(cloud, topology):
    """The metadata localport (in no security group) to vm-c: dropped by neutron_pg_drop's
    to-lport ACL on vm-c's chassis, on the wire and by ofrace, whose text names the ACL
    and the Neutron port names."""
    dst = neutron_port(topology, "vm-c-port")
    meta = metadata_port(topology, dst)
    tap = next(t for t in meta.taps if t.chassis == dst.vif.chassis)
    mmac, mips = addresses(meta)
    dmac, dips = addresses(dst)
    conv = tcp("metadata -> vm-c :5000", Entry(tap.chassis, "br-int", tap.iface, tap.ofport),
               mac(mmac), mac(dmac), ip4(mips[0]), ip4(dips[0]), 5000)
    conv.steps = conv.steps[:1]
    outcome = send(cloud, conv)
    outcome.assert_equal(1)
    assert outcome.wire("SYN") == []
    done = cli("trace", "-i", str(cloud.dir / "inventory.toml"), "--from", meta.name,
               "--to", f"{dips[0]}:5000", "--chassis", tap.chassis)
    assert done.returncode == 1, done.stderr
    assert "by ACL to-lport priority 1001 outport == @neutron_pg_drop && ip → drop" in \
        " ".join(done.stdout.split())
    assert "network:distributed" in done.stdout


def test_neutron_names_in_text_and_json(cloud, topology):
    vm = neutron_port(topology, "vm-a-port")
    network = next(s for s in topology.switch if vm in s.ports)
    text = cli("trace", "-i", str(cloud.dir / "inventory.toml"), "--from", "vm-a-port",
               "--to", "10.0.0.12:22")
    assert text.returncode == 0, text.stderr
    flat = " ".join(text.stdout.split())
    assert 'Neutron port "vm-a-port"' in flat and 'Neutron port "vm-b-port"' in flat
    doc = json.loads(cli("trace", "-i", str(cloud.dir / "inventory.toml"), "--from",
                         "vm-a-port", "--to", "10.0.0.12:22", "--json").stdout)
    datapaths = {json.dumps(e["cms"]["datapath"], sort_keys=True)
                 for hop in _hops(doc["trace"]) for e in hop["events"]
                 if (e.get("cms") or {}).get("datapath")}
    assert any(network.external_ids["neutron:network_name"] in d for d in datapaths), \
        datapaths
    # negative control: a name no port carries is refused as bad input
    wrong = cli("trace", "-i", str(cloud.dir / "inventory.toml"), "--from", "vm-z-port",
                "--to", "10.0.0.12:22")
    assert wrong.returncode == 2


# -- --check-logical on the generated scenarios ----------------------------------------------

def test_check_logical_classifies_every_disagreement(cloud):
    """Issue 14: --check-logical on every named scenario of openstack, every disagreement
    a named ovn-trace limitation (the wire agrees with ofrace here: the sweep)."""
    from ofrace.compare.ovn_trace import LIMITATIONS, REAL_DIVERGENCE, check_scenarios
    checks = check_scenarios(collect_cluster(lab_inventory(cloud)))
    assert len(checks) >= 300
    causes = [(c.answer.get("cause") or {}).get("name", "agree") for c in checks]
    print("check-logical on openstack:", len(causes), "steps", Counter(causes).most_common())
    assert REAL_DIVERGENCE not in causes, [(c.label, c.answer["detail"]) for c in checks
                                           if c.answer.get("cause", {}).get("name")
                                           == REAL_DIVERGENCE][:5]
    assert set(causes) - {"agree"} <= set(LIMITATIONS)


# -- the failover variant (last: brings its own lab up) -------------------------------------

def test_failover_snat_goes_through_the_surviving_gateway(lab_slot, topology):
    lab = lab_slot.ensure(FAILOVER)
    try:
        warm_up(lab)
        read_ofports(lab)
        _snat_out_and_back(lab, topology, gateway_order(topology)[1])
    finally:
        lab.down()
