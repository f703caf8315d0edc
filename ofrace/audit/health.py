"""Port, tunnel and sync health of each chassis, from its OVSDB rows and the SB.

Checks what users otherwise find by hand: a Port_Binding claimed by one
chassis while the interface is on another, interfaces with no OpenFlow port
(ofport -1 or an error), chassis that need a tunnel to each other (a local
datapath has ports bound there) but have none, encap IPs that disagree
between the node and the SB, and ovn-controller lagging behind northd's
``nb_cfg``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ofrace.audit.logical import LocalDatapaths, LogicalAuditor
from ofrace.ovn.southbound import SouthboundIndex
from ofrace.snapshot import Chassis, Snapshot, unwrap_optional


@dataclass
class HealthProblem:
    chassis: str
    kind: str        # binding | interface | tunnel | encap | sync
    message: str


class HealthAuditor:
    def __init__(self, snapshot: Snapshot, logical: LogicalAuditor | None = None):
        """``logical``: the logical auditor of the same snapshot, whose SB index and
        local datapaths per chassis are shared rather than built again."""
        self.snapshot = snapshot
        self.names = logical.names if logical is not None else SouthboundIndex(snapshot)
        self._local = logical.local if logical is not None else (
            lambda ch: LocalDatapaths(self.names, ch))
        self._by_system_id = {c.system_id: c for c in snapshot.chassis.values()
                              if c.reachable and c.system_id}

    def audit_chassis(self, chassis: Chassis) -> list[HealthProblem]:
        problems: list[HealthProblem] = []
        problems += self._interfaces(chassis)
        problems += self._bindings(chassis)
        problems += self._tunnels(chassis)
        problems += self._encaps(chassis)
        problems += self._sync(chassis)
        return problems

    def _interfaces(self, ch: Chassis) -> list[HealthProblem]:
        out = []
        for iface in ch.interfaces:
            if iface.type == "patch" and iface.bridge != ch.integration_bridge:
                continue
            if iface.ofport in (None, -1) or iface.error:
                what = iface.error or "no OpenFlow port (ofport -1)"
                port = f" (logical port {iface.iface_id})" if iface.iface_id else ""
                out.append(HealthProblem(ch.name, "interface",
                                         f"interface {iface.name} on {iface.bridge}{port}: "
                                         f"{what}"))
        return out

    def _bindings(self, ch: Chassis) -> list[HealthProblem]:
        out = []
        me = self.names.chassis_row(ch.system_id or "")
        here = {i.iface_id: i for i in ch.interfaces
                if i.bridge == ch.integration_bridge and i.iface_id}
        for iface_id, iface in sorted(here.items()):
            pb = self.names.ports_by_name.get(iface_id)
            if pb is None:
                out.append(HealthProblem(ch.name, "binding", f"interface {iface.name} has "
                                         f"iface-id {iface_id}, which is no logical port"))
                continue
            bound = self.names.chassis_row_by_uuid(unwrap_optional(pb.get("chassis")))
            if me is None or pb.get("type") == "localport":
                continue  # a localport is never bound: every chassis may have its VIF
                # (binding.c consider_localport releases it if claimed)
            if bound is None:
                out.append(HealthProblem(ch.name, "binding",
                                         f"{iface_id} has its interface {iface.name} here but "
                                         "is bound to no chassis"))
            elif bound["_uuid"] != me["_uuid"]:
                where = bound.get("hostname") or bound["name"]
                requested = (pb.get("options") or {}).get("requested-chassis")
                note = f" (requested-chassis={requested})" if requested else ""
                out.append(HealthProblem(ch.name, "binding",
                                         f"{iface_id} has its interface {iface.name} here but "
                                         f"is bound to {where}{note}"))
        if me is not None:
            for pb in self.names.rows("Port_Binding"):
                bound = unwrap_optional(pb.get("chassis"))
                if (pb.get("type") or "") != "" or bound != me["_uuid"]:
                    continue
                if pb["logical_port"] not in here:
                    out.append(HealthProblem(ch.name, "binding",
                                             f"{pb['logical_port']} is bound here but no "
                                             "interface here has its iface-id"))
        return out

    def _needed_peers(self, ch: Chassis) -> set[str]:
        """System-ids of chassis that bind ports on this chassis' local datapaths."""
        local = self._local(ch)
        needed = set()
        for pb in self.names.rows("Port_Binding"):
            if pb["datapath"] not in local.datapaths:
                continue
            row = self.names.chassis_row_by_uuid(unwrap_optional(pb.get("chassis")))
            if row is not None and row["name"] != ch.system_id:
                needed.add(row["name"])
        return needed

    def _tunnels(self, ch: Chassis) -> list[HealthProblem]:
        out = []
        tunnels = [i for i in ch.interfaces
                   if i.bridge == ch.integration_bridge
                   and i.type in self.names.facts(ch.name).encaps]
        remote_ips = {i.options.get("remote_ip") for i in tunnels}
        if "flow" in remote_ips:
            # OVN 26.03 flow-based tunnels: one port, the peer set by each flow
            remote_ips |= _flow_tunnel_destinations(ch)
        encaps: dict[str, list[str]] = {}
        for encap in self.names.rows("Encap"):
            encaps.setdefault(encap["chassis_name"], []).append(encap["ip"])
        for system_id in sorted(self._needed_peers(ch)):
            row = self.names.chassis_row(system_id) or {}
            name = row.get("hostname") or system_id
            ips = encaps.get(system_id, [])
            if not ips:
                out.append(HealthProblem(ch.name, "tunnel", f"needs a tunnel to {name}, "
                                         "which has no Encap row in the SB"))
            elif not set(ips) & remote_ips:
                out.append(HealthProblem(ch.name, "tunnel",
                                         f"needs a tunnel to {name} ({', '.join(ips)}: ports "
                                         "on a local datapath are bound there) but has none"))
        return out

    def _encaps(self, ch: Chassis) -> list[HealthProblem]:
        sb_ips = sorted(e["ip"] for e in self.names.rows("Encap")
                        if e["chassis_name"] == ch.system_id)
        node_ips = sorted(ch.encap_ips)
        if sb_ips and node_ips and sb_ips != node_ips:
            return [HealthProblem(ch.name, "encap", f"ovn-encap-ip is {', '.join(node_ips)} on "
                                  f"the node but {', '.join(sb_ips)} in the SB Encap rows")]
        return []

    def _sync(self, ch: Chassis) -> list[HealthProblem]:
        sb_global = (self.names.rows("SB_Global") or [{}])[0]
        target = sb_global.get("nb_cfg")
        private = next((r for r in self.names.rows("Chassis_Private")
                        if r.get("name") == ch.system_id), None)
        reached = private.get("nb_cfg") if private else None
        if target is None or reached is None or reached >= target:
            return []
        return [HealthProblem(ch.name, "sync", f"ovn-controller is behind: it reached nb_cfg "
                              f"{reached}, northd is at {target} (is it running and "
                              "connected?)")]


# dump-flows writes the action as set_field (OpenFlow 1.5) or load (1.0)
_TUN_DST = re.compile(r"set_field:([0-9a-fA-F.:]+)->tun_(?:ipv6_)?dst\b"
                      r"|load:(0x[0-9a-fA-F]+)->NXM_NX_TUN_IPV(4|6)_DST\[\]")


def _flow_tunnel_destinations(ch: Chassis) -> set[str]:
    """The tunnel endpoints br-int's flows send to through a ``remote_ip=flow`` port
    (controller/physical.c sets ``tun_dst`` in each flow that leaves for a chassis)."""
    bridge = ch.bridges.get(ch.integration_bridge)
    if bridge is None:
        return set()
    found = set()
    for line in bridge.flows:
        if "TUN_IPV" not in line and "tun_" not in line:
            continue
        for m in _TUN_DST.finditer(line):
            if m.group(1):
                found.add(m.group(1))
            else:
                found.add(str(ipaddress.ip_address(int(m.group(2), 16)) if m.group(3) == "4"
                              else ipaddress.IPv6Address(int(m.group(2), 16))))
    return found
