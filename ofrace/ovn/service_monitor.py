"""Load balancer health checks: the probes ovn-controller sends and the replies it consumes.

northd makes one SB Service_Monitor row per backend of a load balancer that has a
health check and an ``ip_port_mappings`` entry for it (northd.c ``ovn_lb_svc_create``:
ip and port of the backend, protocol, logical_port and src_ip from the mapping, src_mac
NB_Global options:svc_monitor_mac).  The SB rows are what ovn-controller reads, so they
win whenever the snapshot recorded the table (even empty: then northd wrote none); only
a snapshot recorded without it gets the rows northd would write, from the NB.

The ovn-controller of the chassis the backend's port is bound to sends the probes
(controller/pinctrl.c ``sync_svc_monitors``, ``svc_monitor_send_tcp_health_check__`` /
``svc_monitor_send_udp_health_check``): a TCP SYN (window 65160) or an 8-byte UDP
datagram, TTL 63, from src_mac/src_ip to the MAC of the port's address that is the
backend's; its packet-out loads the datapath, the outport and MLF_LOCAL_ONLY and
resubmits to OFTABLE_LOCAL_OUTPUT.  The source port is random in pinctrl
(``get_random_src_port``), and so is a TCP probe's sequence number (``random_uint32``);
ofrace uses ``PROBE_SOURCE_PORT`` and sequence 0.  A reply that meets
``handle_svc_check`` is consumed (``pinctrl_handle_svc_check``: TCP keyed by the
reply's source address and port, UDP by an ICMP port unreachable quoting the probe).
A SYN-ACK that acknowledges the probe (to its source port, ack = seq + 1) marks the
backend online and is answered with a RST-ACK to the backend, sent like a probe
(``pinctrl_handle_tcp_svc_check``: seq = the reply's ack + 1, ack = the reply's seq + 1);
a RST counts a failure and nothing is sent.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ofrace.openflow.actions import FieldRef, Resubmit, SetField
from ofrace.openflow.fields import SPECIAL_PORTS

PROBE_SOURCE_PORT = 49152
SEQ_MASK = 0xFFFFFFFF
TCP_SYN_ACK, TCP_RST, TCP_RST_ACK = 0x012, 0x004, 0x014
PROBE_TTL = 63
TCP_WINDOW = 65160
MLF_LOCAL_ONLY_BIT = 4          # include/ovn/logical-fields.h, 22.03 … 26.03
# OFTABLE_LOCAL_OUTPUT (controller/lflow.h) by release
LOCAL_OUTPUT = ((22, 3, 38), (23, 9, 40), (24, 9, 43), (26, 3, 46))


@dataclass(frozen=True)
class Monitor:
    """One backend's health check, as its Service_Monitor row says it."""

    ip: str
    port: int
    protocol: str               # tcp or udp
    logical_port: str
    src_mac: str
    src_ip: str
    recorded: bool              # from the SB row (else what northd would write)

    @property
    def name(self) -> str:
        ip = ipaddress.ip_address(self.ip)
        return f"{ip}:{self.port}" if ip.version == 4 else f"[{ip}]:{self.port}"


def monitors(sb: dict, nb: dict) -> list[Monitor]:
    """The Service_Monitor rows, or, when the snapshot did not record that table, northd's
    from the NB."""
    if "Service_Monitor" in sb:
        rows = sb["Service_Monitor"] or []
        return [Monitor(r["ip"], int(r["port"]), r.get("protocol") or "tcp",
                        r["logical_port"], r["src_mac"], r["src_ip"], True) for r in rows]
    mac = next(iter((g.get("options") or {}).get("svc_monitor_mac", "")
                    for g in nb.get("NB_Global", [])), "")
    found: dict[tuple, Monitor] = {}
    for lb in nb.get("Load_Balancer", []):
        if not lb.get("health_check") or not mac:
            continue
        mappings = lb.get("ip_port_mappings") or {}
        for backends in (lb.get("vips") or {}).values():
            for backend in filter(None, backends.split(",")):
                ip, _, port = backend.strip().rpartition(":")
                ip = ip.strip("[]")
                port_name, _, src = mappings.get(ip, "").partition(":")
                if port_name and port:
                    monitor = Monitor(ip, int(port), lb.get("protocol") or "tcp", port_name,
                                      mac, src.strip("[]"), False)
                    found[(ip, int(port), monitor.protocol, port_name)] = monitor
    return list(found.values())


def backend_mac(port_binding: dict, ip: str) -> int | None:
    """The MAC of the port's address entry that holds ``ip`` (or of the first entry with
    no addresses), as ``sync_svc_monitors`` picks ``svc_mon->ea``."""
    macs = port_binding.get("mac") or []
    for entry in [macs] if isinstance(macs, str) else macs:
        words = entry.split()
        if not words or words[0] in ("unknown", "router", "dynamic"):
            continue
        addresses = [w.split("/")[0] for w in words[1:]]
        if ip in addresses or not addresses:
            return parse_mac(words[0])
    return None


def parse_mac(text: str) -> int:
    return int(text.replace(":", ""), 16)


def local_output_table(release: str) -> int:
    major, minor = (int(x) for x in release.split(".")[:2])
    return [t for a, b, t in LOCAL_OUTPUT if (a, b) <= (major, minor)][-1]


def probe(monitor: Monitor, datapath_key: int, port_key: int, mac: int,
          facts) -> tuple[dict, list]:
    """The probe's headers and its packet-out's actions."""
    v4 = ipaddress.ip_address(monitor.ip).version == 4
    src, dst = ("nw_src", "nw_dst") if v4 else ("ipv6_src", "ipv6_dst")
    tcp = monitor.protocol != "udp"
    packet = {"in_port": SPECIAL_PORTS["CONTROLLER"], "dl_src": parse_mac(monitor.src_mac),
              "dl_dst": mac, "dl_type": 0x0800 if v4 else 0x86DD,
              src: int(ipaddress.ip_address(monitor.src_ip)),
              dst: int(ipaddress.ip_address(monitor.ip)), "nw_proto": 6 if tcp else 17,
              "nw_ttl": PROBE_TTL, "tp_src": PROBE_SOURCE_PORT, "tp_dst": monitor.port}
    if tcp:
        packet["tcp_flags"] = 0x002
    flags = facts.register("flags")
    actions = [SetField(FieldRef("metadata", 0, 63), datapath_key, (1 << 64) - 1),
               SetField(FieldRef(facts.register("outport"), 0, 31), port_key, 0xFFFFFFFF),
               SetField(FieldRef(flags, 0, 31), 1 << MLF_LOCAL_ONLY_BIT,
                        1 << MLF_LOCAL_ONLY_BIT),
               Resubmit(SPECIAL_PORTS["CONTROLLER"], local_output_table(facts.release))]
    return packet, actions


def reset_after_syn_ack(probe_packet: dict, reply: dict) -> dict:
    """The RST-ACK pinctrl sends the backend for a SYN-ACK that acknowledges its probe
    (``pinctrl_handle_tcp_svc_check`` → ``svc_monitor_send_tcp_health_check__``): the
    probe's headers, from the port the reply was sent to, seq the reply's ack + 1, ack
    the reply's seq + 1 (``tcp_seq``/``tcp_ack``: ofrace.openflow.frames.WIRE_KEYS)."""
    return {**probe_packet, "tp_src": reply.get("tp_dst", PROBE_SOURCE_PORT),
            "tcp_flags": TCP_RST_ACK, "tcp_seq": (reply.get("tcp_ack", 0) + 1) & SEQ_MASK,
            "tcp_ack": (reply.get("tcp_seq", 0) + 1) & SEQ_MASK}


def replied(monitor_list: list[Monitor], packet: dict) -> Monitor | None:
    """The monitor a reply that met handle_svc_check answers: a TCP segment from the
    backend's address and port, or an ICMP port unreachable from the backend's address
    quoting a UDP probe to its port.  pinctrl keys both by the reply's own source address
    (``ip_flow->nw_src`` / ``ipv6_src``), so an unreachable that some other host sent
    about the probe finds no monitor.  (pinctrl also wants the quoted source port to be
    the probe's random one: not in the snapshot.)"""
    proto = packet.get("nw_proto")
    v4 = packet.get("dl_type") == 0x0800
    source = packet.get("nw_src" if v4 else "ipv6_src")
    if proto == 6:
        port, protocol = packet.get("tp_src"), "tcp"
    elif proto in (1, 58) and (packet.get("tp_src"), packet.get("tp_dst")) == \
            ((3, 3) if v4 else (1, 4)):
        port, protocol = (packet.get("icmp_inner") or {}).get("tp_dst"), "udp"
    else:
        return None
    for monitor in monitor_list:
        if monitor.protocol == protocol and monitor.port == port and \
                source == int(ipaddress.ip_address(monitor.ip)):
            return monitor
    return None
