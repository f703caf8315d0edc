"""`lab verify`'s driver end to end without a lab: a stand-in lab whose "wire" is
ofrace's own engine writing real pcap frames (VIFs, uplinks, Geneve on the underlay)
into a temporary directory.  With the same engine on both sides every step is equal;
with the wire's NAT broken the sweep reports unexplained mismatches.  This checks the
plumbing (frames sent, offsets, quiet detection, replies from the delivered packet,
flushes), not OVN: integration/test_verify.py does that on the real lab."""

from __future__ import annotations

import copy
import ipaddress
import struct
from unittest import mock

import pytest
from conftest import recorded

import ofrace.lab.verify as lab_verify
import ofrace.simulate.conntrack as conntrack
from ofrace.compare.generator import PacketClass, generate
from ofrace.compare.sweep import run_sweep
from ofrace.compare.verify import VerifyReport
from ofrace.openflow.frames import decode, encode
from ofrace.simulate.steps import ExitKind
from ofrace.trace.cluster import ClusterTracer, TraceStart


def frame(f: dict) -> bytes:
    return encode(f)


def geneve(inner: bytes, vni: int, options: dict, remote_ip: str = "0.0.0.0") -> bytes:
    opts = b"".join(struct.pack("!HBBI", c, t, 1, v) for (c, t), v in sorted(options.items()))
    udp = struct.pack("!HHHH", 50000, 6081, 16 + len(opts) + len(inner), 0) + \
        struct.pack("!BBHI", len(opts) // 4, 0, 0x6558, vni << 8) + opts + inner
    return frame({"dl_dst": 1, "dl_src": 2, "dl_type": 0x0800, "nw_src": 1, "nw_dst": 2,
                  "nw_proto": 17, "tp_src": 0, "tp_dst": 0})[:14] + struct.pack(
        "!BBHHHBBH", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0) + bytes(4) + \
        ipaddress.IPv4Address(remote_ip).packed + udp


class StandInLab:
    """inject() runs the packet through ``wire_engine`` and appends what comes out to
    the tx pcaps of the ports it leaves by."""

    def __init__(self, snapshot, tmp_path, broken_nat: bool = False, hub_loses: bool = False):
        self.snapshot, self.broken, self.hub_loses = snapshot, broken_nat, hub_loses
        self.state = {"chassis": [{"name": n} for n in snapshot.chassis]}
        self.flushes, self.tracer = 0, None
        self.paths = {}
        for chassis in snapshot.chassis.values():
            for iface in chassis.interfaces:
                if "tx_pcap" in iface.options:
                    path = tmp_path / f"{chassis.name}-{iface.name}.pcap"
                    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0,
                                                 65535, 1))
                    iface.options["tx_pcap"] = str(path)
                    self.paths[(chassis.name, iface.name)] = path
        self.hub = {}
        for name in snapshot.chassis:
            path = tmp_path / f"hub-{name}.pcap"
            path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
            self.hub[f"{name}_br-phys"] = path
        self.layout = mock.Mock(hub_pcap=lambda port, direction: self.hub[port])
        self.underlay = {c.name: next(i.name for i in c.interfaces if "tx_pcap" in i.options
                                      and i.bridge not in c.bridges)
                         for c in snapshot.chassis.values()}

    def settle_learning(self):
        """Nothing to wait for: the stand-in's flows never change."""

    def run_on(self, chassis, argv, check=True):
        if "netdev-dummy/receive" in argv:
            self.inject(chassis, argv[-2], decode(bytes.fromhex(argv[-1])))
        if "dpctl/flush-conntrack" in argv and chassis == self.state["chassis"][0]["name"]:
            self.flushes += 1
            self.tracer = ClusterTracer(self.snapshot)   # a fresh conntrack, as flushed
        if "dpctl/dump-conntrack" in argv:
            return mock.Mock(stdout=self._dump(chassis))
        return mock.Mock(stdout="")

    def _dump(self, chassis) -> str:
        """The wire engine's connections as dpctl/dump-conntrack prints them."""
        lines = []
        table = self.tracer.conntrack.get(chassis)
        for conn, _ in (table.entries.values() if table else []):
            o, r = conn.original, conn.reply
            proto = {6: "tcp", 17: "udp"}.get(o.proto)
            if proto and conn.committed:
                ip = ipaddress.ip_address
                lines.append(f"{proto},orig=(src={ip(o.src)},dst={ip(o.dst)},sport={o.sport},"
                             f"dport={o.dport}),reply=(src={ip(r.src)},dst={ip(r.dst)},"
                             f"sport={r.sport},dport={r.dport})"
                             + (f",zone={conn.zone}" if conn.zone else "")
                             + ",protoinfo=(state=ESTABLISHED)")
        return "\n".join(lines)

    def _write(self, chassis, port, data, path=None):
        with open(path or self.paths[(chassis, port)], "ab") as fh:
            fh.write(struct.pack("<IIII", 0, 0, len(data), len(data)) + data)

    def inject(self, chassis, iface, packet):
        entry = next(i for i in self.snapshot.chassis[chassis].interfaces if i.name == iface)
        with mock.patch.object(conntrack, "nat_translate", lambda tup, nat: tup) \
                if self.broken else mock.patch.object(conntrack, "__name__", conntrack.__name__):
            trace = self.tracer.trace(TraceStart(chassis, entry.bridge,
                                                 {"in_port": entry.ofport, **packet}, iface))
        for hop in trace.hops:
            for exit_ in hop.exits:
                if exit_.kind == ExitKind.TUNNEL:
                    self._write(hop.start.chassis, self.underlay[hop.start.chassis],
                                geneve(frame(exit_.packet), exit_.data.get("tun_id", 0),
                                       exit_.data.get("geneve") or {}))
            for child in hop.children:     # the hub delivers each copy to its chassis
                exit_ = hop.exits[child.parent_exit]
                if exit_.kind == ExitKind.TUNNEL and not self.hub_loses:
                    self._write(None, None, geneve(frame(exit_.packet),
                                                   exit_.data.get("tun_id", 0),
                                                   exit_.data.get("geneve") or {},
                                                   exit_.data.get("remote_ip")),
                                self.hub[f"{child.start.chassis}_br-phys"])
        for verdict in trace.verdicts():
            if verdict.exit and verdict.exit.kind == ExitKind.OUTPUT and verdict.port \
                    and (verdict.chassis, verdict.port) in self.paths:
                self._write(verdict.chassis, verdict.port, frame(verdict.packet))


def _sweep(topology, tmp_path, classes, broken=False, limit=12, hub_loses=False):
    snapshot = copy.deepcopy(recorded(topology)[0])
    lab = StandInLab(snapshot, tmp_path, broken, hub_loses)
    report = VerifyReport(topology)
    conversations = [c for c in generate(snapshot) if set(c.classes) & classes][:limit]
    with mock.patch.object(lab_verify, "collect_cluster", lambda inventory: snapshot), \
            mock.patch.object(lab_verify, "lab_inventory", lambda lab: None), \
            mock.patch.object(lab_verify, "QUIET", 0.0), \
            mock.patch.object(lab_verify, "STEP_TIMEOUT", 0.0):
        run_sweep(lab_verify.LabSide(lab, snapshot), conversations, report)
    return report, lab, conversations


@pytest.mark.parametrize("topology, classes", [
    ("acl", {PacketClass.L2, PacketClass.ROUTED}),
    ("kind", {PacketClass.LB, PacketClass.ROUTED}),
])
def test_a_wire_that_does_what_ofrace_predicts_is_equal(topology, classes, tmp_path):
    report, lab, conversations = _sweep(topology, tmp_path, classes)
    assert lab.flushes == len(conversations)
    steps = sum(len(c.steps) for c in conversations)
    assert sum(report.sent.values()) + len(report.skipped) == steps
    assert len(report.skipped) <= steps // 10      # replies built from the delivered packet
    assert report.mismatches == [], report.mismatches[:3]
    assert sum(report.equal.values()) >= 30
    assert report.connections["checked"] == len(conversations) == report.connections["equal"]


def test_a_wire_with_nat_broken_is_caught(tmp_path):
    report, _, _ = _sweep("kind", tmp_path, {PacketClass.LB}, broken=True, limit=20)
    assert len(report.unexplained) >= 3


def test_copies_the_hub_never_delivered_are_caught(tmp_path):
    """The underlay network between the chassis (the lab's hub) is a capture point too:
    a copy each sender sent but the hub did not deliver is an unexplained mismatch."""
    report, _, _ = _sweep("kind", tmp_path, {PacketClass.ROUTED}, hub_loses=True, limit=30)
    lost = [m for m in report.unexplained if m.where.startswith("hub to ")]
    assert lost, report.mismatches[:3]


def test_a_short_sweep_reaches_every_class():
    """CI's live sweep takes the first conversations of each class, not the first ones
    overall (which are all L2 and routed on kind)."""
    snapshot = recorded("kind")[0]
    conversations = generate(snapshot)
    sample = lab_verify.sample_per_class(conversations, 3)
    classes = {c.packet_class for c in conversations}
    assert {c.packet_class for c in sample} == classes
    assert all(sum(c.packet_class == k for c in sample) <= 3 for k in classes)
    assert {c.packet_class for c in conversations[:len(sample)]} != classes


def test_a_copy_the_hub_floods_to_a_chassis_it_is_not_for_does_not_count():
    """An L2 underlay floods a frame for an unlearned MAC to every port; only the chassis
    owning the outer destination takes it (measured on kind: one Geneve copy from
    ovn-worker reached both other chassis' hub ports)."""
    from ofrace.compare.sweep import HUB, Capture, observe

    inner = frame({"dl_dst": 1, "dl_src": 2, "dl_type": 0x0800, "nw_src": 1, "nw_dst": 2,
                   "nw_proto": 1, "tp_src": 8, "tp_dst": 0})
    copy_ = geneve(inner, 5, {(0x102, 0x80): 7}, "192.0.2.2")
    endpoints = {"b": {int(ipaddress.IPv4Address("192.0.2.2"))},
                 "c": {int(ipaddress.IPv4Address("192.0.2.3"))}}
    _, underlay = observe([Capture(HUB, "b", True, copy_), Capture(HUB, "c", True, copy_)],
                          endpoints)
    assert dict(underlay) == {("hub to b", 5, ((0x102, 0x80, 7),)): 1}
    _, flooded = observe([Capture(HUB, "b", True, copy_), Capture(HUB, "c", True, copy_)])
    assert sum(flooded.values()) == 2        # without endpoints, both would count
