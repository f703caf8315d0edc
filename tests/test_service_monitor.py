"""Load balancer health checks on the recorded openstack snapshot (an Octavia LB with a
health monitor): the probe ovn-controller sends, and the backend's reply it consumes
(controller/pinctrl.c svc_monitor_send_tcp_health_check__, pinctrl_handle_svc_check;
issue 14 item 3)."""

from pathlib import Path

import pytest

from ofrace.errors import InputError
from ofrace.ovn import service_monitor
from ofrace.snapshot import Snapshot
from ofrace.trace.cluster import ClusterTracer
from ofrace.trace.health_probe import probe_start

SNAPSHOT = Path(__file__).parent / "fixtures/openstack/snapshot.ofr"
BACKEND_PORT = "774daafe-a537-5a8c-9d7b-55534d278ab4"   # the lab's 10.0.0.11 (vm-a)
SVC_MAC = 0x0A000000FEFE


@pytest.fixture(scope="module")
def tracer():
    return ClusterTracer(Snapshot.load(SNAPSHOT))


def _reply(tracer, source_port: int, dl_dst: int = SVC_MAC, flags: int = 0x12):
    start = tracer.locate(BACKEND_PORT)
    start.packet.update({"dl_src": 0xFA163E3C0011, "dl_dst": dl_dst, "dl_type": 0x0800,
                         "nw_src": 0x0A00000B, "nw_dst": 0x0A000003, "nw_proto": 6,
                         "nw_ttl": 64, "tp_src": source_port,
                         "tp_dst": service_monitor.PROBE_SOURCE_PORT, "tcp_flags": flags})
    return [v.text for v in tracer.trace(start).all_verdicts()]


def test_monitors_are_northds_rows_when_the_snapshot_has_none(tracer):
    found = service_monitor.monitors(tracer.names.sb, tracer.names.nb)
    assert sorted((m.name, m.protocol, m.src_ip, m.src_mac, m.recorded) for m in found) == [
        ("10.0.0.11:80", "tcp", "10.0.0.3", "0a:00:00:00:fe:fe", False),
        ("10.0.0.12:80", "tcp", "10.0.0.3", "0a:00:00:00:fe:fe", False)]


def test_syn_ack_to_the_monitor_mac_is_consumed_as_a_service_monitor_reply(tracer):
    """Consumed; pinctrl's RST-ACK to the backend (seen on the lab's wire:
    integration/test_service_monitor_wire.py) is traced as a hop that may happen."""
    assert _reply(tracer, 80) == [
        f"consumed by ovn-controller on compute-0: service monitor reply for 10.0.0.11:80 "
        f"(tcp, {BACKEND_PORT}): SYN-ACK, the backend is online if it acknowledges the "
        "probe (then its RST-ACK is traced from here)",
        f"delivered to {BACKEND_PORT} on compute-0"]


def test_rst_to_the_monitor_mac_is_a_failure_and_nothing_is_sent(tracer):
    assert _reply(tracer, 80, flags=0x14) == [
        f"consumed by ovn-controller on compute-0: service monitor reply for 10.0.0.11:80 "
        f"(tcp, {BACKEND_PORT}): RST, a failure"]


def test_a_reply_from_a_port_no_monitor_checks_is_not_a_service_monitor_reply(tracer):
    """Negative controls: another source port meets handle_svc_check but no monitor; a
    reply to another MAC never reaches handle_svc_check."""
    [text] = _reply(tracer, 81)
    assert "no service monitor" in text and "reply for" not in text
    assert not any("ovn-controller" in t for t in _reply(tracer, 80, 0xFA163E000003))


def test_probe_is_built_as_pinctrl_builds_it_and_reaches_the_backend(tracer):
    start = probe_start(tracer, "10.0.0.11:80")
    p = start.packet
    assert start.chassis == "compute-0" and start.actions
    assert (p["dl_src"], p["dl_dst"], p["nw_src"], p["nw_dst"], p["nw_ttl"], p["tp_dst"],
            p["tcp_flags"]) == (SVC_MAC, 0xFA163E3C0011, 0x0A000003, 0x0A00000B, 63, 80, 2)
    assert [v.text for v in tracer.trace(start).all_verdicts()] == [
        f"delivered to {BACKEND_PORT} on compute-0"]


def test_probe_to_an_unmonitored_backend_is_refused(tracer):
    with pytest.raises(InputError, match="no service monitor for 10.0.0.99:80"):
        probe_start(tracer, "10.0.0.99:80")
    assert service_monitor.local_output_table("23.03") == 38
    assert service_monitor.local_output_table("26.03") == 46


def test_trace_probe_option_and_its_mistakes():
    from click.testing import CliRunner

    from ofrace.cli.trace import trace

    ok = CliRunner().invoke(trace, ["--snapshot", str(SNAPSHOT), "--probe", "10.0.0.12:80",
                                    "--summary"])
    assert ok.exit_code == 0 and "health-check probe sent by ovn-controller on compute-1" \
        in ok.output
    both = CliRunner().invoke(trace, ["--snapshot", str(SNAPSHOT), "--probe", "10.0.0.12:80",
                                      "--from", "x", "--to", "10.0.0.1"])
    assert isinstance(both.exception, InputError) and "--probe" in str(both.exception)
