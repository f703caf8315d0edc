"""A load balancer health-check probe, traced from where ovn-controller sends it.

The probe is built from the backend's Service_Monitor row (``ofrace.ovn.
service_monitor``) on the chassis the row's logical port is bound to, and starts on its
integration bridge with the packet-out's actions, as pinctrl's probes do.
"""

from __future__ import annotations

import ipaddress

from ofrace.errors import InputError
from ofrace.openflow.fields import format_mac
from ofrace.ovn import service_monitor
from ofrace.trace.cluster import TraceStart


def probe_start(tracer, backend: str) -> TraceStart:
    """The probe ovn-controller sends to ``backend`` (IP:PORT, [IPv6]:PORT or an IP)."""
    ip, _, port = backend.rpartition(":") if backend.count(":") == 1 or "]" in backend \
        else (backend, "", "")
    ip = ip.strip("[]")
    monitors = service_monitor.monitors(tracer.names.sb, tracer.names.nb)
    chosen = [m for m in monitors if _same_ip(m.ip, ip) and (not port or m.port == int(port))]
    if not chosen:
        known = ", ".join(m.name for m in monitors) or "none"
        raise InputError(f"no service monitor for {backend} (known: {known})")
    monitor = chosen[0]
    pb = tracer.names.ports_by_name.get(monitor.logical_port)
    if pb is None:
        raise InputError(f"the service monitor's port {monitor.logical_port} has no "
                         "Port_Binding")
    mac = service_monitor.backend_mac(pb, monitor.ip)
    if mac is None:
        raise InputError(f"{monitor.logical_port} has no MAC for {monitor.ip}: "
                         "pinctrl sends no probe")
    where = tracer.locate(monitor.logical_port)
    facts = tracer.facts(where.chassis)
    packet, actions = service_monitor.probe(
        monitor, tracer.names.datapath_key(pb["datapath"]), pb["tunnel_key"], mac, facts)
    how = "" if monitor.recorded else " (Service_Monitor as northd writes it from the NB)"
    entry = (f"health-check probe sent by ovn-controller on {where.chassis}: "
             f"{monitor.protocol.upper()} {'SYN ' if monitor.protocol != 'udp' else ''}"
             f"{monitor.src_ip} ({monitor.src_mac}) -> {monitor.name} "
             f"({format_mac(mac)}, {monitor.logical_port}){how}; pinctrl draws its "
             f"source port{' and sequence number' if monitor.protocol != 'udp' else ''} "
             f"at random (shown: {service_monitor.PROBE_SOURCE_PORT}"
             f"{', 0' if monitor.protocol != 'udp' else ''})")
    return TraceStart(where.chassis, tracer.chassis(where.chassis).integration_bridge,
                      packet, entry, payload_length=0 if monitor.protocol != "udp" else 8,
                      actions=actions)


def _same_ip(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False
