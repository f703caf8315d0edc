"""BFD on a chassis' tunnels, and what a session that is down costs the gateways.

ovn-controller turns BFD on for every tunnel to a chassis that shares an HA
chassis group with this one (controller/bfd.c bfd_calculate_active_tunnels,
bfd_run); a tunnel whose session is not up is a peer this chassis treats as
dead: the active_backup bundle towards a gateway skips it
(ofproto/bond.c / ofproto-dpif-xlate.c xlate_bundle_action uses the member's
``may_enable``), and ``ha_chassis_group_is_active()`` (controller/ha-chassis.c)
lets a lower-priority member claim the chassisredirect port only when every
higher-priority member's session is down.

So a session down is a finding, and its consequence is told per gateway port
(SB Port_Binding of type chassisredirect, its HA_Chassis_Group or
Gateway_Chassis rows):

* the port is bound to a chassis this one cannot reach: traffic from here is
  still sent to a dead gateway (nobody took over, or the SB binding is stale):
  **broken**;
* this chassis reaches no BFD peer at all and still holds a gateway port, or
  has VIFs bound on it: it is the one cut off, and what it serves is lost:
  **broken**;
* the port is bound to another member this chassis reaches: OVN failed over:
  a **notice**, which does not change the exit code.
"""

from __future__ import annotations

from dataclasses import dataclass

from ofrace.audit.health import HealthProblem
from ofrace.ovn.southbound import SouthboundIndex
from ofrace.snapshot import Chassis, Interface, unwrap_optional


@dataclass
class DownSession:
    """One tunnel of this chassis whose BFD is on and not up."""

    port: str
    peer: str            # the remote chassis' hostname (or system-id, or remote_ip)
    peer_uuid: str | None
    state: str
    remote_state: str
    diagnostic: str

    def describe(self) -> str:
        return (f"BFD on tunnel {self.port} to {self.peer} is {self.state} (remote state "
                f"{self.remote_state}, diagnostic: {self.diagnostic})")


def bfd_enabled(iface: Interface) -> bool:
    return (iface.bfd or {}).get("enable") == "true"


def session_down(iface: Interface) -> bool:
    """BFD on and its state read and not up.  A session whose state was not read
    (older snapshot, status not yet written) is no finding: it is not known to be down."""
    status = iface.bfd_status or {}
    state = status.get("state")
    if not bfd_enabled(iface) or state is None:
        return False
    return state != "up" or status.get("forwarding") == "false"


class BfdAuditor:
    def __init__(self, names: SouthboundIndex):
        self.names = names
        self._chassis_by_ip = {}
        for encap in names.rows("Encap"):
            row = names.chassis_row(encap["chassis_name"])
            if row is not None:
                self._chassis_by_ip[encap["ip"]] = row

    def _peer(self, iface: Interface) -> tuple[str, str | None]:
        """The chassis at the far end of a tunnel: its remote_ip's SB Encap row, else
        the ``ovn-chassis-id`` ovn-controller writes on the tunnel port (``id@ip``)."""
        row = self._chassis_by_ip.get(iface.options.get("remote_ip", ""))
        if row is None:
            system_id = iface.external_ids.get("ovn-chassis-id", "").split("@")[0]
            row = self.names.chassis_row(system_id) if system_id else None
        if row is None:
            return iface.options.get("remote_ip") or iface.name, None
        return row.get("hostname") or row["name"], row["_uuid"]

    def down_sessions(self, ch: Chassis) -> tuple[list[DownSession], int]:
        """The sessions down here, and how many tunnels run BFD at all."""
        tunnels = [i for i in ch.interfaces if i.bridge == ch.integration_bridge
                   and bfd_enabled(i)]
        down = []
        for iface in sorted(tunnels, key=lambda i: i.name):
            if not session_down(iface):
                continue
            status = iface.bfd_status or {}
            peer, peer_uuid = self._peer(iface)
            down.append(DownSession(iface.name, peer, peer_uuid, status.get("state", "?"),
                                    status.get("remote_state", "?"),
                                    status.get("diagnostic", "?")))
        return down, len(tunnels)

    def _gateway_ports(self) -> list[tuple[dict, str, dict[str, int]]]:
        """Each chassisredirect port, the name of its group, and its members
        (Chassis uuid → priority) from HA_Chassis_Group or Gateway_Chassis rows."""
        ha = {r["_uuid"]: r for r in self.names.rows("HA_Chassis")}
        groups = {g["_uuid"]: g for g in self.names.rows("HA_Chassis_Group")}
        gateways = {g["_uuid"]: g for g in self.names.rows("Gateway_Chassis")}
        out = []
        for pb in self.names.rows("Port_Binding"):
            if pb.get("type") != "chassisredirect":
                continue
            members: dict[str, int] = {}
            group = groups.get(unwrap_optional(pb.get("ha_chassis_group")))
            if group is not None:
                name = f"HA_Chassis_Group {group.get('name') or group['_uuid'][:8]}"
                for ref in group.get("ha_chassis") or []:
                    row = ha.get(ref)
                    if row and unwrap_optional(row.get("chassis")):
                        members[unwrap_optional(row["chassis"])] = row.get("priority", 0)
            else:
                name = "Gateway_Chassis"
                for ref in pb.get("gateway_chassis") or []:
                    row = gateways.get(ref)
                    if row and unwrap_optional(row.get("chassis")):
                        members[unwrap_optional(row["chassis"])] = row.get("priority", 0)
            out.append((pb, name, members))
        return out

    def _name(self, uuid: str | None) -> str:
        row = self.names.chassis_row_by_uuid(uuid)
        return (row.get("hostname") or row["name"]) if row else "no chassis"

    def _has_vifs(self, me_uuid: str | None) -> bool:
        return me_uuid is not None and any(
            (pb.get("type") or "") == "" and unwrap_optional(pb.get("chassis")) == me_uuid
            for pb in self.names.rows("Port_Binding"))

    def audit_chassis(self, ch: Chassis) -> tuple[list[HealthProblem], list[HealthProblem]]:
        """(broken, notices) for ``ch``: one entry per session down, with its consequence."""
        down, running = self.down_sessions(ch)
        if not down:
            return [], []
        me = self.names.chassis_row(ch.system_id or "")
        me_uuid = me["_uuid"] if me else None
        isolated = len(down) == running
        ports = self._gateway_ports()
        broken: list[HealthProblem] = []
        notices: list[HealthProblem] = []
        if isolated:
            held = [pb["logical_port"] for pb, _, _ in ports
                    if me_uuid and unwrap_optional(pb.get("chassis")) == me_uuid]
            what = (f"every BFD session here is down ({running}): this chassis is cut off "
                    "from its peers")
            if held:
                broken.append(HealthProblem(ch.name, "bfd", f"{what}, yet it still holds "
                                            f"{', '.join(held)}: traffic for them is sent to a "
                                            "chassis that reaches nobody"))
            elif self._has_vifs(me_uuid):
                broken.append(HealthProblem(ch.name, "bfd", f"{what}, and VIFs are bound here: "
                                            "their traffic through the gateways is lost"))
            else:
                notices.append(HealthProblem(ch.name, "bfd", f"{what}; it holds no gateway "
                                             "port and binds no VIF (its peers failed over)"))
        for session in down:
            consequences = []
            stranded = []
            for pb, group, members in ports:
                if session.peer_uuid not in members:
                    continue
                bound = unwrap_optional(pb.get("chassis"))
                lose = (f"{group} loses {session.peer} (priority {members[session.peer_uuid]}) "
                        f"for {pb['logical_port']}")
                if bound == session.peer_uuid and not isolated:
                    stranded.append(f"{lose}, and {pb['logical_port']} is still bound to "
                                    f"{session.peer}: traffic from here is sent to a gateway "
                                    "this chassis cannot reach")
                elif bound is None and not isolated:
                    stranded.append(f"{lose}, and {pb['logical_port']} is bound to no chassis")
                else:
                    consequences.append(f"{lose}; it is bound to {self._name(bound)}"
                                        + ("" if isolated else " (failed over)"))
            if stranded:
                broken.append(HealthProblem(ch.name, "bfd", f"{session.describe()}: "
                                            + "; ".join(stranded + consequences)))
            else:
                notices.append(HealthProblem(ch.name, "bfd", f"{session.describe()}: "
                                             + ("; ".join(consequences)
                                                or "no gateway port has it as a member")))
        return broken, notices
