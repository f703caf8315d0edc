"""Load balancer health checks on the wire (openstack's Octavia LB with a health monitor).

ovn-controller on each backend's chassis sends a TCP SYN probe from the monitor's MAC and
source address (controller/pinctrl.c ``svc_monitor_send_tcp_health_check__``); the lab's
interval is an hour, so the module makes a fresh probe now: it takes the health check off
the load balancer and puts an equal one back, so northd rewrites the SB Service_Monitor
rows and pinctrl starts each monitor again (``SVC_MON_S_INIT`` sends at once).  The
captured probe must equal ``ofrace trace --probe``'s in every field but the two pinctrl
draws at random: the TCP source port (``get_random_src_port``) and sequence number
(``random_uint32``).  Nothing answers in the lab, so the test injects the backend's
SYN-ACK at its VIF: ofrace says ovn-controller consumes it; the wire shows it nowhere,
only pinctrl's RST-ACK back to the backend (``pinctrl_handle_tcp_svc_check``), and the
SB row turns online.  Afterwards the health check is put back once more (status reset)
and its probes are awaited, so no later test captures them.
"""

from __future__ import annotations

import json
import struct
import time

import pytest

from ofrace.collect.cluster import collect_cluster
from ofrace.compare.sweep import Expectation
from ofrace.compare.verify import is_noise
from ofrace.lab.verify import Captures, lab_inventory
from ofrace.lab.wire import read_pcap
from ofrace.openflow.frames import decode, encode, internet_checksum
from ofrace.ovn import service_monitor
from ofrace.trace.cluster import ClusterTracer
from ofrace.trace.health_probe import probe_start

pytestmark = pytest.mark.lab

TOPOLOGY = "openstack"
DEADLINE = 15.0
ETH = 14
RANDOM = ("tp_src", "tcp_seq")            # drawn by pinctrl per probe: not compared
# every field of the probe's headers ofrace states (OpenFlow's and the frame's)
PROBE_FIELDS = ("dl_src", "dl_dst", "dl_type", "nw_src", "nw_dst", "nw_proto", "nw_ttl",
                "nw_tos", "tp_dst", "tcp_flags", "tcp_ack", "payload_len", "tcp_window")
REPLY_SEQ = 7000
SB_KEYS = ("ip", "port", "protocol", "logical_port", "src_ip", "src_mac")


def lab_made(frame: bytes) -> bool:
    """Frames the lab sends on its own, whatever the test does: BFD, and the gateways'
    gratuitous ARPs for their NAT addresses (ovn-controller repeats them for ~30 s after
    a port is bound); ``ofrace.compare.sweep.observe`` leaves them out too."""
    fields = decode(frame)
    return is_noise(fields) or (fields.get("dl_type") == 0x0806
                                and fields.get("nw_src") == fields.get("nw_dst"))


def _ovsdb(value):
    if isinstance(value, list) and len(value) == 2 and value[0] in ("set", "map", "uuid"):
        kind, inner = value
        if kind == "set":
            return [_ovsdb(v) for v in inner]
        if kind == "map":
            return {_ovsdb(k): _ovsdb(v) for k, v in inner}
        return inner
    return value


def _rows(output: str) -> list[dict]:
    doc = json.loads(output)
    return [dict(zip(doc["headings"], (_ovsdb(c) for c in row), strict=True))
            for row in doc["data"]]


def sb_monitors(lab) -> list[dict]:
    return _rows(lab.sbctl("--format=json", "list", "Service_Monitor"))


def _smap(value: dict) -> str:
    return "{" + ",".join(f'"{k}"="{v}"' for k, v in sorted(value.items())) + "}"


def _frame_fields(frame: bytes) -> dict:
    """decode's fields, and the IPv4 TOS and TCP window it does not give."""
    out = decode(frame)
    out["nw_tos"] = frame[ETH + 1]
    ihl = (frame[ETH] & 0x0F) * 4
    out["tcp_window"] = struct.unpack("!H", frame[ETH + ihl + 14:ETH + ihl + 16])[0]
    return out


def _wait(condition, what: str):
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"no {what} within {DEADLINE} s")


# -- the lab, and fresh probes --------------------------------------------------------------

@pytest.fixture(scope="module")
def cloud(lab_slot):
    return lab_slot.ensure(TOPOLOGY)


class HealthCheck:
    """The load balancer's health check, taken off and put back (new SB rows, new probes)."""

    def __init__(self, lab):
        self.lab = lab
        lbs = _rows(lab.nbctl("--format=json", "--columns=name,health_check", "list",
                              "Load_Balancer"))
        (self.lb,) = [lb for lb in lbs if lb["health_check"]]
        self.ref = self.lb["health_check"]
        self.ref = self.ref[0] if isinstance(self.ref, list) else self.ref
        (self.row,) = _rows(lab.nbctl("--format=json", "--columns=vip,options,external_ids",
                                      "list", "Load_Balancer_Health_Check", self.ref))

    def renew(self, backend_pcaps: dict) -> dict:
        """Put the health check back anew; return each backend VIF's first new frame."""
        self.lab.nbctl("--wait=hv", "remove", "Load_Balancer", self.lb["name"],
                       "health_check", self.ref)
        _wait(lambda: not sb_monitors(self.lab), "Service_Monitor rows deleted")
        offsets = {port: read_pcap(path, 0, raw=True)[1]
                   for port, path in backend_pcaps.items()}
        self.ref = self.lab.nbctl(
            "--wait=hv", "--", "--id=@hc", "create", "Load_Balancer_Health_Check",
            f'vip="{self.row["vip"]}"', f"options={_smap(self.row['options'])}",
            f"external_ids={_smap(self.row['external_ids'])}", "--", "add",
            "Load_Balancer", self.lb["name"], "health_check", "@hc").strip()

        def probes():
            got = {port: read_pcap(path, offsets[port], raw=True)[0]
                   for port, path in backend_pcaps.items()}
            return {port: frames[0] for port, frames in got.items() if frames} \
                if all(got.values()) else None
        return _wait(probes, "probe on every backend's VIF")


@pytest.fixture(scope="module")
def backends(cloud):
    """logical port -> (chassis, VIF name) of every monitored backend."""
    snapshot = collect_cluster(lab_inventory(cloud))
    tracer = ClusterTracer(snapshot)
    out = {}
    for row in snapshot.southbound.tables["Service_Monitor"]:
        start = tracer.locate(row["logical_port"])
        iface = next(i.name for i in snapshot.chassis[start.chassis].interfaces
                     if i.ofport == start.packet["in_port"]
                     and i.bridge == snapshot.chassis[start.chassis].integration_bridge)
        out[row["logical_port"]] = (start.chassis, iface)
    return out


@pytest.fixture(scope="module")
def probes(cloud, backends):
    """(captured probe frames by logical port, the capture points' frames meanwhile,
    a snapshot taken after)."""
    check = HealthCheck(cloud)
    pcaps = {port: cloud.layout.pcap(ch, iface, "tx") for port, (ch, iface) in
             backends.items()}
    captures = Captures(collect_cluster(lab_inventory(cloud)))
    try:
        frames = check.renew(pcaps)
        meanwhile = [c for c in captures.settle(Expectation(frames=len(frames)))
                     if not c.underlay and not lab_made(c.frame)]
        yield frames, meanwhile, collect_cluster(lab_inventory(cloud))
    finally:
        check.renew(pcaps)          # status back to none; its probes read, not left over


# -- the tests ------------------------------------------------------------------------------

def test_sb_has_the_service_monitors_and_the_snapshot_recorded_them(cloud):
    sb = sb_monitors(cloud)
    assert len(sb) >= 2, sb
    snapshot = collect_cluster(lab_inventory(cloud))
    recorded = snapshot.southbound.tables.get("Service_Monitor")
    assert recorded is not None, "the snapshot did not record Service_Monitor"
    key = lambda r: tuple(str(r[k]) for k in SB_KEYS)       # noqa: E731
    assert sorted(map(key, recorded)) == sorted(map(key, sb))
    used = service_monitor.monitors(snapshot.southbound.tables, snapshot.northbound.tables)
    assert all(m.recorded for m in used)
    assert sorted((m.ip, str(m.port), m.protocol, m.logical_port, m.src_ip, m.src_mac)
                  for m in used) == sorted(map(key, sb))


def test_real_probe_equals_ofraces_probe(probes, backends):
    frames, meanwhile, snapshot = probes
    tracer = ClusterTracer(snapshot)
    assert set(frames) == set(backends)
    predicted_points = []
    for monitor in service_monitor.monitors(snapshot.southbound.tables,
                                            snapshot.northbound.tables):
        start = probe_start(tracer, monitor.name)
        assert "northd" not in start.entry           # built from the SB row
        (verdict,) = tracer.trace(start).all_verdicts()
        assert verdict.kind == "delivered" and verdict.logical_port == monitor.logical_port
        predicted_points.append((verdict.chassis, verdict.port))
        want = {**verdict.packet, "payload_len": start.payload_length,
                "tcp_window": service_monitor.TCP_WINDOW}
        seen = _frame_fields(frames[monitor.logical_port])
        assert {k: seen.get(k, 0) for k in PROBE_FIELDS} == \
            {k: want.get(k, 0) for k in PROBE_FIELDS}, monitor.name
        # the random ones are real values, not what ofrace shows
        assert seen["tp_src"] >= 1024 and set(RANDOM) <= set(seen)
        # IP id 0 and DF: not fields ofrace states (OpenFlow matches neither), what
        # pinctrl_compose_ipv4 writes (docs/ovs-xlate-semantics.md §8)
        assert frames[monitor.logical_port][ETH + 4:ETH + 8] == b"\x00\x00\x40\x00"
    # the probes appeared at the backends' VIFs and at no other capture point
    assert sorted((c.chassis, c.port) for c in meanwhile) == sorted(predicted_points)
    assert sorted(predicted_points) == sorted(backends.values())


def _reply(probe: dict, ack: int) -> tuple[dict, dict]:
    """The backend's SYN-ACK to ``probe`` (fields, and the seq/ack its frame carries)."""
    packet = {"dl_src": probe["dl_dst"], "dl_dst": probe["dl_src"], "dl_type": 0x0800,
              "nw_src": probe["nw_dst"], "nw_dst": probe["nw_src"], "nw_proto": 6,
              "nw_ttl": 64, "tp_src": probe["tp_dst"], "tp_dst": probe["tp_src"],
              "tcp_flags": 0x012}
    return packet, {"tcp_seq": REPLY_SEQ, "tcp_ack": ack}


def test_backend_reply_is_consumed_by_ovn_controller(cloud, probes, backends):
    frames, _, snapshot = probes
    port = sorted(frames)[0]
    chassis, iface = backends[port]
    probe = decode(frames[port])
    tracer = ClusterTracer(snapshot)        # holds the probe's connection (conntrack)

    def send(ack: int):
        packet, wire = _reply(probe, ack)
        start = tracer.locate(port)
        start.packet.update(packet, **wire)
        trace = tracer.trace(start)
        captures = Captures(snapshot)
        cloud.run_on(chassis, ["ovs-appctl", "netdev-dummy/receive", iface,
                               encode(packet, wire).hex()])
        seen = [c for c in captures.settle(Expectation(controller=True))
                if not c.underlay and not lab_made(c.frame)]
        return trace, seen

    status = lambda: {r["logical_port"]: r["status"] for r in sb_monitors(cloud)}  # noqa
    # negative control first: a SYN-ACK that does not acknowledge the probe's sequence
    # number is consumed as well, and pinctrl sends nothing and marks nothing
    trace, seen = send(probe["tcp_seq"])
    assert [v.text for v in trace.verdicts()] == [
        f"consumed by ovn-controller on {chassis}: service monitor reply for "
        f"{_name(probe)} (tcp, {port}): SYN-ACK, the backend is online if it acknowledges "
        "the probe (then its RST-ACK is traced from here)"]
    assert seen == []
    assert status()[port] in ([], "")

    trace, seen = send(probe["tcp_seq"] + 1)
    (own,) = trace.verdicts()
    assert own.kind == "controller" and own.text.startswith(
        f"consumed by ovn-controller on {chassis}: service monitor reply")
    # the reply itself reaches no capture point; pinctrl's RST-ACK reaches the backend
    assert [(c.chassis, c.port) for c in seen] == [(chassis, iface)]
    reset = decode(seen[0].frame)
    [hop] = [h for h in trace.hops if h.start.entry.startswith(
        f"built by ovn-controller on {chassis}: RST-ACK")]
    (delivered,) = hop.verdicts
    assert (delivered.chassis, delivered.port) == (chassis, iface)
    fields = ("dl_src", "dl_dst", "nw_src", "nw_dst", "nw_ttl", "tp_src", "tp_dst",
              "tcp_flags", "tcp_seq", "tcp_ack")
    assert {k: reset.get(k) for k in fields} == {k: delivered.packet.get(k) for k in fields}
    assert reset["tcp_flags"] == 0x014 and reset["tp_src"] == probe["tp_src"]
    _wait(lambda: status()[port] == "online", "online status in the SB")


def _name(probe: dict) -> str:
    ip = ".".join(str(b) for b in probe["nw_dst"].to_bytes(4, "big"))
    return f"{ip}:{probe['tp_dst']}"


# -- UDP health checks ----------------------------------------------------------------------

@pytest.fixture
def udp_probes(cloud, backends):
    """The load balancer made UDP for the test (northd writes UDP Service_Monitor rows,
    pinctrl starts them and probes at once); TCP again afterwards, its probes awaited."""
    lbs = _rows(cloud.nbctl("--format=json", "--columns=name,protocol,health_check", "list",
                            "Load_Balancer"))
    (lb,) = [lb for lb in lbs if lb["health_check"]]
    pcaps = {port: cloud.layout.pcap(ch, iface, "tx") for port, (ch, iface) in
             backends.items()}

    def switch(protocol: str) -> dict:
        offsets = {port: read_pcap(path, 0, raw=True)[1] for port, path in pcaps.items()}
        cloud.nbctl("--wait=hv", "set", "Load_Balancer", lb["name"], f"protocol={protocol}")

        def probes():
            got = {port: [f for f in read_pcap(path, offsets[port], raw=True)[0]
                          if decode(f).get("nw_proto") == (17 if protocol == "udp" else 6)]
                   for port, path in pcaps.items()}
            return {port: frames[0] for port, frames in got.items()} \
                if all(got.values()) else None
        return _wait(probes, f"{protocol} probe on every backend's VIF")

    captures = Captures(collect_cluster(lab_inventory(cloud)))
    try:
        frames = switch("udp")
        meanwhile = [c for c in captures.settle(Expectation(frames=len(frames)))
                     if not c.underlay and not lab_made(c.frame)]
        yield frames, meanwhile, collect_cluster(lab_inventory(cloud))
    finally:
        switch(lb["protocol"] or "tcp")


def _port_unreachable(probe_frame: bytes) -> bytes:
    """The backend's ICMP port unreachable for a UDP probe, quoting its IP header, UDP
    header and 8 bytes (the 36 bytes pinctrl_handle_svc_check insists on)."""
    probe = decode(probe_frame)
    icmp = bytearray(struct.pack("!BBHI", 3, 3, 0, 0) + probe_frame[ETH:ETH + 36])
    icmp[2:4] = struct.pack("!H", internet_checksum(bytes(icmp)))
    ip = bytearray(struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(icmp), 0, 0, 64, 1, 0)
                   + probe["nw_dst"].to_bytes(4, "big") + probe["nw_src"].to_bytes(4, "big"))
    ip[10:12] = struct.pack("!H", internet_checksum(bytes(ip)))
    return probe_frame[6:12] + probe_frame[0:6] + b"\x08\x00" + bytes(ip) + bytes(icmp)


def test_udp_probe_and_its_port_unreachable(cloud, backends, udp_probes):
    """A UDP probe (8 zero bytes, no checksum over IPv4; only its source port is random)
    equals ofrace's; the backend's port unreachables are consumed by ovn-controller (no
    capture point sees them) and, failure_count of them, turn the SB row offline."""
    frames, meanwhile, snapshot = udp_probes
    tracer = ClusterTracer(snapshot)
    monitors = service_monitor.monitors(snapshot.southbound.tables,
                                        snapshot.northbound.tables)
    assert {m.protocol for m in monitors} == {"udp"}
    points = []
    fields = [f for f in PROBE_FIELDS if not f.startswith("tcp_")]
    for monitor in monitors:
        start = probe_start(tracer, monitor.name)
        (verdict,) = tracer.trace(start).all_verdicts()
        points.append((verdict.chassis, verdict.port))
        frame = frames[monitor.logical_port]
        seen = _frame_fields(frame)
        want = {**verdict.packet, "payload_len": start.payload_length}
        assert {k: seen.get(k, 0) for k in fields} == {k: want.get(k, 0) for k in fields}
        udp = frame[ETH + 20:ETH + 36]
        assert udp[6:8] == b"\0\0" and udp[8:] == bytes(8)      # no checksum, zero payload
    assert sorted((c.chassis, c.port) for c in meanwhile) == sorted(points)

    port = sorted(frames)[0]
    chassis, iface = backends[port]
    probe = decode(frames[port])
    row = next(r for r in sb_monitors(cloud) if r["logical_port"] == port)
    assert row["status"] != "offline"
    start = tracer.locate(port)
    start.packet.update(dl_src=probe["dl_dst"], dl_dst=probe["dl_src"], dl_type=0x0800,
                        nw_src=probe["nw_dst"], nw_dst=probe["nw_src"], nw_proto=1,
                        nw_ttl=64, tp_src=3, tp_dst=3,
                        icmp_inner={k: probe[k] for k in ("nw_src", "nw_dst", "nw_proto",
                                                          "tp_src", "tp_dst")})
    assert [v.text for v in tracer.trace(start).all_verdicts()] == [
        f"consumed by ovn-controller on {chassis}: service monitor reply for "
        f"{_name(probe)} (udp, {port}): port unreachable, a failure"]
    for _ in range(int(row["options"].get("failure_count", 1))):
        captures = Captures(snapshot)
        cloud.run_on(chassis, ["ovs-appctl", "netdev-dummy/receive", iface,
                               _port_unreachable(frames[port]).hex()])
        assert [c for c in captures.settle(Expectation(controller=True))
                if not c.underlay and not lab_made(c.frame)] == []
    _wait(lambda: next(r["status"] for r in sb_monitors(cloud)
                       if r["logical_port"] == port) == "offline", "offline status in the SB")
