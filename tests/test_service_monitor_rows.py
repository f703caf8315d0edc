"""Health checks read from the SB Service_Monitor rows ovn-controller reads, and the
RST-ACK pinctrl answers a probe's SYN-ACK with (controller/pinctrl.c sync_svc_monitors,
pinctrl_handle_tcp_svc_check; the lab's wire showed both: integration/
test_service_monitor_wire.py)."""

import copy
from pathlib import Path

import pytest

from ofrace.ovn import service_monitor
from ofrace.snapshot import Snapshot
from ofrace.trace.cluster import ClusterTracer
from ofrace.trace.health_probe import probe_start

SNAPSHOT = Path(__file__).parent / "fixtures/openstack/snapshot.ofr"
BACKEND_PORT = "774daafe-a537-5a8c-9d7b-55534d278ab4"   # the lab's 10.0.0.11 (vm-a)
SVC_MAC = 0x0A000000FEFE
# an SB row whose source differs from what northd would write from the NB (10.0.0.3):
# which one ofrace used is visible
SB_ROW = {"ip": "10.0.0.11", "port": 80, "protocol": "tcp", "logical_port": BACKEND_PORT,
          "src_mac": "0a:00:00:00:fe:fe", "src_ip": "10.0.0.4", "status": [],
          "options": {"interval": "3600"}, "external_ids": {}}


@pytest.fixture(scope="module")
def snapshot():
    return Snapshot.load(SNAPSHOT)


def _with_rows(snapshot, rows):
    changed = copy.copy(snapshot)
    changed.southbound = copy.copy(snapshot.southbound)
    changed.southbound.tables = {**snapshot.southbound.tables, "Service_Monitor": rows}
    return changed


def test_sb_rows_win_over_northds_rows_from_the_nb(snapshot):
    nb = snapshot.northbound.tables
    recorded = service_monitor.monitors({"Service_Monitor": [SB_ROW]}, nb)
    assert [(m.name, m.src_ip, m.recorded) for m in recorded] == [
        ("10.0.0.11:80", "10.0.0.4", True)]
    # negative control: a snapshot without the table gets northd's rows from the NB
    rebuilt = service_monitor.monitors({}, nb)
    assert {(m.name, m.src_ip, m.recorded) for m in rebuilt} == {
        ("10.0.0.11:80", "10.0.0.3", False), ("10.0.0.12:80", "10.0.0.3", False)}
    # the table recorded empty: northd wrote none, so there is none
    assert service_monitor.monitors({"Service_Monitor": []}, nb) == []


def test_probe_is_built_from_the_sb_row(snapshot):
    tracer = ClusterTracer(_with_rows(snapshot, [SB_ROW]))
    start = probe_start(tracer, "10.0.0.11:80")
    assert start.packet["nw_src"] == 0x0A000004
    assert "10.0.0.4 (0a:00:00:00:fe:fe) -> 10.0.0.11:80" in start.entry
    assert "northd" not in start.entry
    nb_only = probe_start(ClusterTracer(snapshot), "10.0.0.11:80")
    assert nb_only.packet["nw_src"] == 0x0A000003 and "from the NB" in nb_only.entry


def test_syn_ack_is_answered_with_a_rst_ack_to_the_backend(snapshot):
    """As the wire showed: RST|ACK from the monitor's MAC and address to the backend,
    from the port the SYN-ACK went to, seq = its ack + 1, ack = its seq + 1."""
    tracer = ClusterTracer(snapshot)
    start = tracer.locate(BACKEND_PORT)
    start.packet.update({"dl_src": 0xFA163E3C0011, "dl_dst": SVC_MAC, "dl_type": 0x0800,
                         "nw_src": 0x0A00000B, "nw_dst": 0x0A000003, "nw_proto": 6,
                         "nw_ttl": 64, "tp_src": 80, "tp_dst": 42280, "tcp_flags": 0x12,
                         "tcp_seq": 1000, "tcp_ack": 2463740515})
    trace = tracer.trace(start)
    [reset] = [h for h in trace.hops if "RST-ACK to 10.0.0.11:80" in h.start.entry]
    assert reset.start.maybe and reset.start.answer and reset.start.chassis == "compute-0"
    p = reset.start.packet
    assert (p["dl_src"], p["dl_dst"], p["nw_src"], p["nw_dst"], p["nw_ttl"], p["tp_src"],
            p["tp_dst"], p["tcp_flags"], p["tcp_seq"], p["tcp_ack"]) == (
        SVC_MAC, 0xFA163E3C0011, 0x0A000003, 0x0A00000B, 63, 42280, 80, 0x014,
        2463740516, 1001)
    [delivered] = reset.verdicts
    assert delivered.kind == "delivered" and delivered.logical_port == BACKEND_PORT
    # negative control: a SYN alone (not a reply pinctrl answers) builds nothing
    start = tracer.locate(BACKEND_PORT)
    start.packet.update({"dl_src": 0xFA163E3C0011, "dl_dst": SVC_MAC, "dl_type": 0x0800,
                         "nw_src": 0x0A00000B, "nw_dst": 0x0A000003, "nw_proto": 6,
                         "nw_ttl": 64, "tp_src": 80, "tp_dst": 42280, "tcp_flags": 0x02})
    texts = [v.text for v in tracer.trace(start).all_verdicts()]
    assert len(texts) == 1 and texts[0].endswith("neither SYN-ACK nor RST, ignored")


def test_port_unreachable_is_keyed_by_its_own_source_address():
    """pinctrl_handle_svc_check looks a UDP monitor up by the ICMP packet's source address
    (as the wire showed: the backend's own unreachable turned its row offline)."""
    monitor = service_monitor.Monitor("10.0.0.11", 80, "udp", BACKEND_PORT,
                                      "0a:00:00:00:fe:fe", "10.0.0.3", True)
    quoted = {"nw_src": 0x0A000003, "nw_dst": 0x0A00000B, "nw_proto": 17, "tp_src": 65098,
              "tp_dst": 80}
    unreachable = {"dl_type": 0x0800, "nw_proto": 1, "tp_src": 3, "tp_dst": 3,
                   "nw_src": 0x0A00000B, "nw_dst": 0x0A000003, "icmp_inner": quoted}
    assert service_monitor.replied([monitor], unreachable) is monitor
    # negative controls: the same error from another host; another port quoted
    assert service_monitor.replied([monitor], {**unreachable, "nw_src": 0x0A000001}) is None
    assert service_monitor.replied([monitor], {**unreachable, "icmp_inner": {
        **quoted, "tp_dst": 81}}) is None
