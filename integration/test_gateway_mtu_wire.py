"""needs-frag on the wire: a router gateway port with ``options:gateway_mtu``, real
oversized packets from VMs, and ofrace's predicted ICMP errors against what arrives back.

No lab topology sets a gateway MTU, so the module sets one at run time on the openstack
lab: on the router port that has gateway chassis, found in the NB (not named here), and
restores the NB afterwards.  The lab's public network is IPv4 only, so for as long as the
module runs the gateway port also gets an IPv6 address, a default route and a static MAC
binding for that route's next hop (what Neutron writes for a dual-stack external network;
the binding lets the IPv6 packet under the MTU go out instead of waiting for an NS answer
no outside host gives).

northd (``build_check_pkt_len_flows_for_lrp``, ``build_icmperr_pkt_big_flows``) makes the
router check ``check_pkt_larger(gateway_mtu + 14)`` (the public network is flat: no VLAN
header counted) on packets routed to the gateway port, and answer a larger one with
``icmp4_error``/``icmp6_error`` from the inport's first address, whose MTU field pinctrl
fills in (``put_icmp4/6_frag_mtu``).  So the test sends, per family, a packet whose IP
length is the MTU + 1 (answered) and one of exactly the MTU (forwarded: the negative
control), and compares ofrace's prediction with every VIF and uplink capture.
"""

from __future__ import annotations

import ipaddress
import json
import struct
import time

import pytest

from ofrace.collect.cluster import collect_cluster
from ofrace.compare.generator import generate
from ofrace.compare.sweep import Expectation, run_sweep
from ofrace.compare.verify import VerifyReport, is_noise
from ofrace.lab.catalog import load
from ofrace.lab.traffic import warm_up
from ofrace.lab.verify import Captures, LabSide, flush_conntrack, lab_inventory
from ofrace.openflow.frames import decode, encode, internet_checksum
from ofrace.trace.cluster import ClusterTracer, TraceStart

pytestmark = pytest.mark.lab

TOPOLOGY = "openstack"
MTU = 1400
ETH = 14
IP_DF = 0x4000
OUTSIDE4 = "203.0.113.77"
OUTSIDE6 = "2001:db8:ff::1"
GATEWAY6 = "2001:db8:24::10/64"          # given to the gateway port while the module runs
NEXT_HOP6, NEXT_HOP6_MAC = "2001:db8:24::1", "02:00:00:24:00:01"
# What the error's wire copy must carry as ofrace predicted it.
ERROR_FIELDS = ("dl_src", "dl_dst", "dl_type", "nw_proto", "nw_ttl", "tp_src", "tp_dst",
                "icmp_frag_mtu")
FORWARD_FIELDS = ("dl_src", "dl_dst", "dl_type", "nw_proto", "nw_ttl", "tp_src", "tp_dst")
DEADLINE = 5.0


def lab_made(frame: bytes) -> bool:
    """Frames the lab sends on its own, whatever the test does: BFD, and the gateways'
    gratuitous ARPs for their NAT addresses (ovn-controller repeats them for ~30 s after
    a port is bound); ``ofrace.compare.sweep.observe`` leaves them out too."""
    fields = decode(frame)
    return is_noise(fields) or (fields.get("dl_type") == 0x0806
                                and fields.get("nw_src") == fields.get("nw_dst"))


def _ovsdb(value):
    """An OVSDB JSON cell as Python: sets as lists, maps as dicts."""
    if isinstance(value, list) and len(value) == 2 and value[0] in ("set", "map", "uuid"):
        kind, inner = value
        if kind == "set":
            return [_ovsdb(v) for v in inner]
        if kind == "map":
            return {_ovsdb(k): _ovsdb(v) for k, v in inner}
        return inner
    return value


def _rows(lab, table: str, *columns: str, sb: bool = False) -> list[dict]:
    ctl = lab.sbctl if sb else lab.nbctl
    doc = json.loads(ctl("--format=json", f"--columns={','.join(columns)}", "list", table))
    return [dict(zip(doc["headings"], (_ovsdb(c) for c in row), strict=True))
            for row in doc["data"]]


# -- the lab, with a gateway MTU ------------------------------------------------------------

@pytest.fixture(scope="module")
def cloud(lab_slot):
    lab = lab_slot.ensure(TOPOLOGY)
    warm_up(lab)            # the outside host is announced: packets under the MTU go out
    return lab


@pytest.fixture(scope="module")
def gateway(cloud):
    """The router port with gateway chassis (from the NB), given ``gateway_mtu`` (and IPv6)
    for the module; the NB as it was afterwards."""
    ports = _rows(cloud, "Logical_Router_Port", "_uuid", "name", "mac", "gateway_chassis",
                  "networks", "options")
    (gw,) = [p for p in ports if p["gateway_chassis"]]
    (router,) = [r["name"] for r in _rows(cloud, "Logical_Router", "name", "ports")
                 if gw["_uuid"] in (r["ports"] if isinstance(r["ports"], list)
                                    else [r["ports"]])]
    networks = gw["networks"] if isinstance(gw["networks"], list) else [gw["networks"]]
    assert "gateway_mtu" not in gw["options"], "the lab already sets a gateway MTU"
    assert not any(":" in n for n in networks), "the public network has IPv6 now: use it"
    try:
        cloud.nbctl("set", "Logical_Router_Port", gw["name"], f"options:gateway_mtu={MTU}")
        cloud.nbctl("add", "Logical_Router_Port", gw["name"], "networks", f'"{GATEWAY6}"')
        cloud.nbctl("lr-route-add", router, "::/0", NEXT_HOP6)
        cloud.nbctl("--wait=hv", "static-mac-binding-add", gw["name"], NEXT_HOP6,
                    NEXT_HOP6_MAC)
        yield {"name": gw["name"], "router": router, "mac": _mac(gw["mac"]),
               "ip4": str(ipaddress.ip_interface(networks[0]).ip)}
    finally:
        cloud.nbctl("--if-exists", "static-mac-binding-del", gw["name"], NEXT_HOP6,
                    check=False)
        cloud.nbctl("--if-exists", "lr-route-del", router, "::/0", check=False)
        cloud.nbctl("remove", "Logical_Router_Port", gw["name"], "networks",
                    f'"{GATEWAY6}"', check=False)
        cloud.nbctl("--wait=hv", "remove", "Logical_Router_Port", gw["name"], "options",
                    "gateway_mtu", check=False)


@pytest.fixture(scope="module")
def topology():
    return load(TOPOLOGY)


def _vm(topology, port_name: str):
    (port,) = [p for s in topology.switch for p in s.ports
               if p.external_ids.get("neutron:port_name") == port_name]
    switch = next(s for s in topology.switch if port in s.ports)
    lsp = next(p for p in switch.ports if p.type == "router")
    (router,) = topology.router
    rp = next(p for p in router.ports if p.name == lsp.options["router-port"])
    return port, rp


def _vif(port) -> tuple:
    return port.vif.chassis, "br-int", port.vif.iface, port.vif.ofport


def _mac(text: str) -> int:
    return int(text.replace(":", ""), 16)


# -- one packet, predicted and sent ---------------------------------------------------------

def echo(src_mac: int, dst_mac: int, src: str, dst: str) -> dict:
    """An ICMP / ICMPv6 echo request's headers."""
    a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    v6 = a.version == 6
    return {"dl_src": src_mac, "dl_dst": dst_mac, "dl_type": 0x86DD if v6 else 0x0800,
            ("ipv6_src" if v6 else "nw_src"): int(a), ("ipv6_dst" if v6 else "nw_dst"): int(b),
            "nw_proto": 58 if v6 else 1, "nw_ttl": 64, "tp_src": 128 if v6 else 8,
            "tp_dst": 0}


def vm_echo(vm, rp, v6: bool) -> dict:
    """From ``vm`` through its router port ``rp`` to an outside address."""
    mac, *ips = vm.addresses[0].split()
    src = next(i for i in ips if ipaddress.ip_address(i).version == (6 if v6 else 4))
    return echo(_mac(mac), _mac(rp.mac), src, OUTSIDE6 if v6 else OUTSIDE4)


class Sent:
    """A packet sent where ``entry`` (chassis, bridge, interface, ofport) is: ofrace's
    trace of it and what every VIF and uplink sent."""

    def __init__(self, lab, entry: tuple, packet: dict, ip_length: int, icmp_id: int):
        chassis, bridge, iface, ofport = entry
        self.v6 = packet["dl_type"] == 0x86DD
        self.payload = ip_length - (40 if self.v6 else 20) - 8
        self.packet, self.icmp_id = packet, icmp_id
        flush_conntrack(lab)
        snapshot = collect_cluster(lab_inventory(lab))
        self.snapshot = snapshot
        self.trace = ClusterTracer(snapshot).trace(TraceStart(
            chassis, bridge, {"in_port": ofport, **packet},
            f"{ip_length}-byte echo request", payload_length=self.payload))
        captures = Captures(snapshot)
        self.points = captures.seen_at
        lab.run_on(chassis, ["ovs-appctl", "netdev-dummy/receive", iface,
                             self.frame().hex()])
        # until one frame came (the error or the forwarded packet) and the points were
        # quiet after it, or the deadline
        self.wire = []
        deadline = time.monotonic() + DEADLINE
        while not self.wire and time.monotonic() < deadline:
            self.wire += [c for c in captures.settle(Expectation(frames=1, controller=True))
                          if not c.underlay and not lab_made(c.frame)]

    def frame(self) -> bytes:
        """The echo request as bytes; IPv4 with DF set (header checksum redone)."""
        frame = bytearray(encode(self.packet, {"icmp_id": self.icmp_id, "icmp_seq": 1,
                                               "payload_len": self.payload}))
        if not self.v6:
            frame[ETH + 6:ETH + 8] = struct.pack("!H", IP_DF)
            frame[ETH + 10:ETH + 12] = b"\0\0"
            frame[ETH + 10:ETH + 12] = struct.pack(
                "!H", internet_checksum(bytes(frame[ETH:ETH + 20])))
        return bytes(frame)

    def predicted(self) -> list:
        """The trace's verdicts at ports with a capture (VIFs, uplinks)."""
        return [v for v in self.trace.all_verdicts() if (v.chassis, v.port) in self.points]

    def where(self) -> tuple[list, list]:
        """(predicted, wire) capture points, sorted."""
        return (sorted((v.chassis, v.port) for v in self.predicted()),
                sorted((c.chassis, c.port) for c in self.wire))


def _addresses(v6: bool) -> tuple[str, str]:
    return ("ipv6_src", "ipv6_dst") if v6 else ("nw_src", "nw_dst")


def _quoted(frame: bytes, v6: bool) -> dict:
    """The header an ICMP error quotes, from the wire: addresses, protocol, TTL, ICMP type
    and code and echo id, IP length and (IPv4) DF."""
    l3 = frame[ETH:]
    if v6:
        l4 = l3[40:40 + struct.unpack("!H", l3[4:6])[0]]
    else:
        l4 = l3[(l3[0] & 0x0F) * 4:struct.unpack("!H", l3[2:4])[0]]   # no Ethernet padding
    inner = l4[8:]
    if v6:
        return {"ipv6_src": int.from_bytes(inner[8:24], "big"),
                "ipv6_dst": int.from_bytes(inner[24:40], "big"), "nw_proto": inner[6],
                "nw_ttl": inner[7], "tp_src": inner[40], "tp_dst": inner[41],
                "icmp_id": struct.unpack("!H", inner[44:46])[0],
                "ip_length": 40 + struct.unpack("!H", inner[4:6])[0],
                "quoted_bytes": len(inner)}
    ihl = (inner[0] & 0x0F) * 4
    return {"nw_src": int.from_bytes(inner[12:16], "big"),
            "nw_dst": int.from_bytes(inner[16:20], "big"), "nw_proto": inner[9],
            "nw_ttl": inner[8], "tp_src": inner[ihl], "tp_dst": inner[ihl + 1],
            "icmp_id": struct.unpack("!H", inner[ihl + 4:ihl + 6])[0],
            "ip_length": struct.unpack("!H", inner[2:4])[0],
            "df": bool(struct.unpack("!H", inner[6:8])[0] & IP_DF),
            "quoted_bytes": len(inner)}


# -- the tests ------------------------------------------------------------------------------

FAMILIES = [pytest.param(False, "vm-b-port", id="ipv4-snat"),
            pytest.param(True, "vm-a-port", id="ipv6")]


@pytest.mark.parametrize("v6, vm_name", FAMILIES)
def test_packet_over_the_gateway_mtu_is_answered_as_predicted(cloud, gateway, topology,
                                                              v6, vm_name):
    vm, rp = _vm(topology, vm_name)
    sent = Sent(cloud, _vif(vm), vm_echo(vm, rp, v6), MTU + 1, 0x6601 + v6)
    predicted, wire = sent.where()
    assert wire == [(vm.vif.chassis, vm.vif.iface)], wire     # only the error, back
    assert predicted == wire
    (verdict,) = sent.predicted()
    (capture,) = sent.wire
    seen = decode(capture.frame)
    want = verdict.packet
    src, dst = _addresses(v6)
    assert {k: seen.get(k) for k in (*ERROR_FIELDS, src, dst)} == \
        {k: want.get(k) for k in (*ERROR_FIELDS, src, dst)}
    # not vacuous: what northd and pinctrl say the error is
    router_ip = next(ipaddress.ip_interface(n).ip for n in rp.networks
                     if ipaddress.ip_interface(n).version == (6 if v6 else 4))
    assert (seen["tp_src"], seen["tp_dst"]) == ((2, 0) if v6 else (3, 4))
    assert seen["icmp_frag_mtu"] == MTU
    assert (seen[src], seen[dst]) == (int(router_ip), sent.packet[src])
    # the quoted header: ofrace's icmp_inner, field by field, against the wire's
    quoted = _quoted(capture.frame, v6)
    inner = want["icmp_inner"]
    assert {src, dst, "nw_proto", "nw_ttl", "tp_src", "tp_dst"} <= set(inner), inner
    assert {k: quoted[k] for k in inner} == inner
    assert quoted["nw_ttl"] == 63               # quoted after the router's TTL decrement
    # the wire quotes what was sent: our echo, its full length, DF kept
    assert (quoted["icmp_id"], quoted["ip_length"]) == (sent.icmp_id, MTU + 1)
    assert v6 or quoted["df"]
    # as many bytes as ofrace said pinctrl quotes (576 / 1280-byte errors)
    hop = next(h for h in sent.trace.hops if verdict in h.verdicts)
    assert hop.start.payload_length == quoted["quoted_bytes"]
    assert len(capture.frame) == (1280 if v6 else 576)


@pytest.mark.parametrize("v6, vm_name", FAMILIES)
def test_packet_of_the_gateway_mtu_is_forwarded(cloud, gateway, topology, v6, vm_name):
    """Negative control: one byte less (the IP length equal to the MTU) goes out of the
    gateway's uplink, as ofrace predicts; nothing comes back to the VM."""
    vm, rp = _vm(topology, vm_name)
    sent = Sent(cloud, _vif(vm), vm_echo(vm, rp, v6), MTU, 0x6611 + v6)
    predicted, wire = sent.where()
    assert len(wire) == 1 and wire[0][1] != vm.vif.iface, wire
    assert predicted == wire
    (verdict,) = sent.predicted()
    (capture,) = sent.wire
    seen = decode(capture.frame)
    src, dst = _addresses(v6)
    assert {k: seen.get(k) for k in (*FORWARD_FIELDS, src, dst)} == \
        {k: verdict.packet.get(k) for k in (*FORWARD_FIELDS, src, dst)}
    assert (seen["tp_src"], seen["icmp_id"], seen["payload_len"]) == \
        ((128 if v6 else 8), sent.icmp_id, sent.payload)
    assert seen[dst] == sent.packet[dst]
    # SNAT for IPv4 (vm-b has no floating IP), none for IPv6
    assert (seen[src] == sent.packet[src]) == v6


def _outside(lab, gateway) -> tuple[tuple, int, str]:
    """The uplink of the chassis that holds the gateway port now (its cr-port's binding in
    the SB), and the outside host the warm-up announced: the default route's next hop, as
    the router learned it (MAC, IP)."""
    (route,) = [r for r in _rows(lab, "Logical_Router_Static_Route", "ip_prefix", "nexthop")
                if r["ip_prefix"] == "0.0.0.0/0"]
    (binding,) = [b for b in _rows(lab, "MAC_Binding", "ip", "mac", "logical_port", sb=True)
                  if b["ip"] == route["nexthop"] and b["logical_port"] == gateway["name"]]
    (cr,) = [b for b in _rows(lab, "Port_Binding", "logical_port", "chassis", sb=True)
             if b["logical_port"] == f"cr-{gateway['name']}"]
    (chassis,) = [c["hostname"] for c in _rows(lab, "Chassis", "_uuid", "hostname", sb=True)
                  if c["_uuid"] == cr["chassis"]]
    spec = next(c for c in lab.state["chassis"] if c["name"] == chassis)
    (bridge, iface), = spec["uplinks"].items()
    ofport = int(lab.run_on(chassis, ["ovs-vsctl", "get", "Interface", iface,
                                      "ofport"]).stdout)
    return (chassis, bridge, iface, ofport), _mac(binding["mac"]), route["nexthop"]


@pytest.mark.parametrize("ip_length, answered", [(MTU + 1, True), (MTU, False)],
                         ids=["over", "equal"])
def test_packet_from_outside_to_the_gateway_is_checked_too(cloud, gateway, ip_length,
                                                           answered):
    """The other direction (northd's S_ROUTER_IN_IP_INPUT flows, inport the gateway port):
    the outside host's echo to the gateway port's own address one byte over the MTU is
    answered with needs-frag out of the active gateway's uplink; one of exactly the MTU
    gets the router's echo reply there instead (the negative control)."""
    entry, outside_mac, outside_ip = _outside(cloud, gateway)
    sent = Sent(cloud, entry, echo(outside_mac, gateway["mac"], outside_ip, gateway["ip4"]),
                ip_length, 0x6621 + answered)
    predicted, wire = sent.where()
    assert wire == [(entry[0], entry[2])], wire
    assert predicted == wire
    (verdict,) = sent.predicted()
    (capture,) = sent.wire
    seen = decode(capture.frame)
    fields = (*ERROR_FIELDS, "nw_src", "nw_dst")
    assert {k: seen.get(k) for k in fields} == {k: verdict.packet.get(k) for k in fields}
    assert (seen["nw_src"], seen["nw_dst"]) == (sent.packet["nw_dst"], sent.packet["nw_src"])
    assert (seen["tp_src"], seen["tp_dst"], seen.get("icmp_frag_mtu")) == \
        ((3, 4, MTU) if answered else (0, 0, None))
    if answered:
        quoted = _quoted(capture.frame, False)
        inner = verdict.packet["icmp_inner"]
        assert {k: quoted[k] for k in inner} == inner
        assert (quoted["icmp_id"], quoted["ip_length"], quoted["df"]) == \
            (sent.icmp_id, MTU + 1, True)


def test_generated_oversized_conversation_agrees_with_the_wire(cloud, gateway):
    """The sweep's own oversized echo (generator: the MTU + 100 bytes) with the gateway
    MTU set, compared as ``ofrace lab verify`` compares, copy by copy."""
    snapshot = collect_cluster(lab_inventory(cloud))
    found = [c for c in generate(snapshot) if "oversized towards" in c.label
             and f"(gateway mtu {MTU})" in c.label]
    assert found, "the generator made no oversized conversation"
    report = run_sweep(LabSide(cloud, snapshot), found[:1], VerifyReport(TOPOLOGY))
    assert sum(report.sent.values()) == 1, (dict(report.sent), report.skipped)
    assert report.mismatches == [], [str(m) for m in report.mismatches]
