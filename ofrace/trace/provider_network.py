"""Frames between uplinks: which chassis a frame sent onto a provider network reaches.

Why: a packet that leaves a chassis through an uplink (a port of a bridge that
``ovn-bridge-mappings`` maps to a physical network: a localnet switch, a gateway
router's external network) does not leave the cluster when another chassis shares that
network: the physical switch carries it there (kind: a pod's echo SNATed by its node's
gateway router to another node's gateway router, and the answer back).

The physical network is modelled as a learned L2 switch, per VLAN: a unicast frame goes
to the one chassis that owns its destination MAC, and never back out the port it came
in by; a broadcast or multicast frame goes to every other chassis on the network; a MAC
no chassis owns leaves the cluster.  Who owns a MAC is read from the snapshot only:

* a logical port bound to a chassis on a switch with a localnet port (a VIF, an
  external or a virtual port): its binding's MAC, on that chassis;
* an ``l3gateway`` port (a gateway router's port, or its peer on the switch): its MAC,
  on its ``l3gateway-chassis``;
* a ``chassisredirect`` port: the MAC of its distributed port, on the chassis it is
  bound to (its peer's switch must have a localnet port);
* a distributed floating IP (NB NAT ``dnat_and_snat`` with ``external_mac`` and
  ``logical_port``): that MAC, on the chassis ``logical_port`` is bound to (northd has
  the FIP answered there: ``is_chassis_resident(logical_port)``);
* ``ovn-chassis-mac-mappings``: the MAC a chassis writes as the source of what its
  distributed routers send to that network;
* the host stack behind a provider bridge (its internal port's ``mac_in_use``).

Which switch ports sit on which network (and VLAN) comes from the SB localnet ports
(``options:network_name``, ``tag``); which bridge a chassis maps a network to, from its
``ovn-bridge-mappings``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from ofrace.openflow.fields import FIELDS, format_mac
from ofrace.openflow.frames import WIRE_KEYS
from ofrace.ovn.southbound import SouthboundIndex, port_addresses
from ofrace.simulate.engine import CT_FIELDS
from ofrace.snapshot import Chassis, Interface, Snapshot, unwrap_optional

UPLINK_TYPES = ("", "system", "dpdk", "afxdp", "tap")
ANY_VLAN = -1          # an owner reached whatever the frame's VLAN (host stack, chassis MAC)
VLAN_PRESENT = 0x1000  # the CFI bit OVS sets in vlan_tci for a tagged frame
PORT_TYPES_BOUND_HERE = ("", "external", "virtual")


@dataclass(frozen=True)
class MacOwner:
    """One holder of a MAC on the physical network."""

    system_id: str        # the SB Chassis name (a chassis' system-id)
    attachments: frozenset  # (network, VLAN or None for untagged, or ANY_VLAN)
    what: str             # in words: "l3gateway port etor-GR_x"

    def reached_by(self, networks: list[str], vlan: int | None) -> bool:
        return any(net in networks and tag in (vlan, ANY_VLAN)
                   for net, tag in self.attachments)


@dataclass
class Receiver:
    """A chassis the frame reaches, and where it enters."""

    chassis: str
    bridge: str
    uplink: Interface
    network: str
    why: str               # "owner of 02:42:…: l3gateway port …" or "broadcast"
    packet: dict


@dataclass
class Crossing:
    """What the physical network does with one frame sent out of an uplink."""

    networks: list[str]
    receivers: list[Receiver] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)   # receivers whose tables are not read
    left: str = ""        # why no chassis receives it, when none does


def frame_vlan(packet: dict) -> int | None:
    """The VLAN a frame carries on the wire (None: untagged)."""
    tci = packet.get("vlan_tci", 0)
    return tci & 0xFFF if tci & VLAN_PRESENT else None


def is_group_address(mac: int) -> bool:
    """Broadcast or multicast: the I/G bit, the lowest bit of the first octet."""
    return bool((mac >> 40) & 1)


def frame_headers(packet: dict) -> dict:
    """What another chassis receives of a packet: its headers and what only the frame
    carries (TCP seq/ack, payload, echo id), not the sender's registers, metadata,
    tunnel fields or conntrack state."""
    return {k: v for k, v in packet.items()
            if k in WIRE_KEYS or k in FIELDS and not (
                k.startswith("reg") or k.startswith("tun_") or k in CT_FIELDS
                or k in ("metadata", "in_port", "conj_id"))}


def uplinks_of(chassis: Chassis, bridge: str) -> list[Interface]:
    """The physical-network side of a provider bridge: ports that are neither patch nor
    internal (nor the bridge's LOCAL port), with an OpenFlow port."""
    return [i for i in chassis.interfaces if i.bridge == bridge and i.type in UPLINK_TYPES
            and i.name != bridge and i.ofport not in (None, -1)]


class ChassisBySystemId:
    """The snapshot's chassis by the SB's name for them, looked up one at a time: a live
    trace reads only the chassis it asks for."""

    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot

    def get(self, system_id: str | None) -> Chassis | None:
        return self.snapshot.find_chassis(system_id) if system_id else None

    def __contains__(self, system_id: object) -> bool:
        return isinstance(system_id, str) and self.get(system_id) is not None

    def __getitem__(self, system_id: str) -> Chassis:
        found = self.get(system_id)
        if found is None:
            raise KeyError(system_id)
        return found


class ProviderNetworks:
    """The physical networks the chassis share, and who owns which MAC on them."""

    def __init__(self, snapshot: Snapshot, names: SouthboundIndex):
        self.snapshot = snapshot
        self.names = names
        self._by_system_id = ChassisBySystemId(snapshot)

    # ------------------------------------------------------------ networks

    @staticmethod
    def networks_of(chassis: Chassis, bridge: str) -> list[str]:
        """The physical networks ``chassis`` maps to ``bridge`` (ovn-bridge-mappings)."""
        return sorted(net for net, br in chassis.bridge_mappings.items() if br == bridge)

    def chassis_name(self, system_id: str) -> str:
        ch = self._by_system_id.get(system_id)
        if ch is not None:
            return ch.name
        row = self.names.chassis_row(system_id)
        return (row or {}).get("hostname") or system_id

    @cached_property
    def localnets(self) -> dict[str, frozenset]:
        """SB datapath UUID → its localnet ports' (network, VLAN tag or None)."""
        found: dict[str, set] = {}
        for pb in self.names.rows("Port_Binding"):
            if pb.get("type") == "localnet":
                network = (pb.get("options") or {}).get("network_name")
                if network:
                    tag = unwrap_optional(pb.get("tag"))
                    found.setdefault(pb["datapath"], set()).add(
                        (network, int(tag) if tag else None))
        return {dp: frozenset(v) for dp, v in found.items()}

    def _peer_attachments(self, pb: dict | None) -> frozenset:
        """Where a router port meets the physical network: its peer switch's localnets."""
        if pb is None:
            return frozenset()
        own = self.localnets.get(pb["datapath"])
        if own:
            return own
        peer = self.names.ports_by_name.get((pb.get("options") or {}).get("peer", ""))
        return self.localnets.get(peer["datapath"], frozenset()) if peer else frozenset()

    # --------------------------------------------------------------- owners

    @cached_property
    def owners(self) -> dict[int, list[MacOwner]]:
        """MAC → who holds it on a physical network (see the module's docstring)."""
        out: dict[int, list[MacOwner]] = {}

        def add(mac: int | None, system_id: str | None, attachments: frozenset, what: str):
            if mac is None or not system_id or not attachments:
                return
            owner = MacOwner(system_id, attachments, what)
            known = out.setdefault(mac, [])
            if not any(o.system_id == system_id and o.attachments == attachments
                       for o in known):
                known.append(owner)

        for pb in self.names.rows("Port_Binding"):
            kind = pb.get("type") or ""
            name = pb["logical_port"]
            mac, _, _ = port_addresses(pb)
            bound = self.names.chassis_row_by_uuid(pb.get("chassis"))
            bound_id = bound["name"] if bound else None
            if kind in PORT_TYPES_BOUND_HERE:
                add(mac, bound_id, self.localnets.get(pb["datapath"], frozenset()),
                    f"logical port {name}" if not kind else f"{kind} port {name}")
            elif kind == "l3gateway":
                add(mac, (pb.get("options") or {}).get("l3gateway-chassis") or bound_id,
                    self._peer_attachments(pb), f"l3gateway port {name}")
            elif kind == "chassisredirect":
                distributed = self.names.ports_by_name.get(
                    (pb.get("options") or {}).get("distributed-port", ""))
                add(mac, bound_id, self._peer_attachments(distributed),
                    f"chassisredirect port {name}")
        self._add_floating_ips(add)
        for row in self.names.rows("Chassis"):
            for net, mac in _chassis_macs(row).items():
                add(mac, row["name"], frozenset({(net, ANY_VLAN)}),
                    f"ovn-chassis-mac-mappings of {row.get('hostname') or row['name']}")
        for ch in self.snapshot.chassis.values():
            for iface in ch.interfaces:
                networks = self.networks_of(ch, iface.bridge)
                if networks and iface.type == "internal" and iface.mac_in_use:
                    add(_mac(iface.mac_in_use), ch.system_id,
                        frozenset((net, ANY_VLAN) for net in networks),
                        f"host stack behind {iface.bridge} on {ch.name}")
        return out

    def _add_floating_ips(self, add) -> None:
        """Distributed FIPs: answered on the chassis of their ``logical_port``, from the
        networks of their router's ports."""
        routers = {uuid: router for router in self.names.nb.get("Logical_Router", [])
                   for uuid in router.get("nat", [])}
        lrp_names = {row["_uuid"]: row["name"]
                     for row in self.names.nb.get("Logical_Router_Port", [])}
        for nat in self.names.nb.get("NAT", []):
            external_mac = unwrap_optional(nat.get("external_mac"))
            logical_port = unwrap_optional(nat.get("logical_port"))
            if nat.get("type") != "dnat_and_snat" or not external_mac or not logical_port:
                continue
            pb = self.names.ports_by_name.get(logical_port)
            bound = self.names.chassis_row_by_uuid(pb.get("chassis")) if pb else None
            router = routers.get(nat["_uuid"], {})
            attachments = frozenset().union(*(
                self._peer_attachments(self.names.ports_by_name.get(lrp_names.get(p, "")))
                for p in router.get("ports", [])))
            add(_mac(external_mac), bound["name"] if bound else None, attachments,
                f"floating IP {nat.get('external_ip')} of {logical_port}")

    # ------------------------------------------------------------- crossing

    def crossing(self, chassis: Chassis, bridge: str, port: str, packet: dict
                 ) -> Crossing | None:
        """Where the physical network carries a frame ``chassis`` sends out of ``port``
        of ``bridge``; None when ``bridge`` is mapped to no physical network."""
        networks = self.networks_of(chassis, bridge)
        if not networks:
            return None
        out = Crossing(networks)
        dst = packet.get("dl_dst", 0)
        vlan = frame_vlan(packet)
        on = " or ".join(networks)
        if is_group_address(dst):
            targets = [(ch, "broadcast" if dst == 0xFFFFFFFFFFFF else "multicast")
                       for ch in sorted(self.snapshot.chassis.values(), key=lambda c: c.name)
                       if ch.name != chassis.name
                       and any(net in ch.bridge_mappings for net in networks)]
            for ch, why in targets:
                self._receive(out, ch, networks, why, packet)
            reached = {ch.system_id for ch, _ in targets} | {chassis.system_id}
            for row in self.names.rows("Chassis"):
                mapped = (row.get("other_config") or {}).get("ovn-bridge-mappings", "")
                if row["name"] not in reached and any(
                        item.partition(":")[0].strip() in networks
                        for item in mapped.split(",")):
                    ch = self._by_system_id.get(row["name"])
                    out.unknown.append((ch.unread() if ch else None) or (
                        f"{row.get('hostname') or row['name']} maps {on} too (SB), but its "
                        "bridges are not in the snapshot"))
            if not out.receivers and not out.unknown:
                out.left = f"{format_mac(dst)}: no other chassis has an uplink on {on}"
            return out
        owners = [o for o in self.owners.get(dst, []) if o.reached_by(networks, vlan)]
        where = f" on VLAN {vlan}" if vlan is not None else ""
        if not owners:
            out.left = f"{format_mac(dst)}, which no chassis owns on {on}{where}"
            return out
        for system_id in dict.fromkeys(o.system_id for o in owners):
            what = "; ".join(o.what for o in owners if o.system_id == system_id)
            if system_id == chassis.system_id:
                out.left = (f"{format_mac(dst)} ({what}), behind the port it was sent "
                            "from: a switch sends no frame back where it came in")
                continue
            ch = self._by_system_id.get(system_id)
            if ch is None:
                out.unknown.append(f"{format_mac(dst)} is owned by "
                                   f"{self.chassis_name(system_id)} ({what}), which is not "
                                   "in the snapshot")
                continue
            self._receive(out, ch, networks, f"owner of {format_mac(dst)}: {what}", packet)
        return out

    def _receive(self, out: Crossing, ch: Chassis, networks: list[str], why: str,
                 packet: dict) -> None:
        if not ch.ovsdb_read:
            out.unknown.append(ch.unread() or f"{ch.name}'s OVSDB was not read: its "
                               "uplinks are unknown")
            return
        network = next(net for net in networks if net in ch.bridge_mappings)
        bridge = ch.bridge_mappings[network]
        uplinks = uplinks_of(ch, bridge)
        if bridge not in ch.bridges or not uplinks:
            out.unknown.append(f"{ch.name} maps {network} to {bridge}, which has no uplink "
                               "in the snapshot")
            return
        received = frame_headers(packet)
        received["in_port"] = uplinks[0].ofport
        out.receivers.append(Receiver(ch.name, bridge, uplinks[0], network, why, received))

    def localnet_chassis(self, logical_port: str) -> set[str]:
        """The chassis whose ovn-controller made a patch port for the localnet port
        ``logical_port`` (its datapath is local there): the Port's
        ``external_ids:ovn-localnet-port`` (controller/patch.c, add_bridge_mappings)."""
        return {ch.name for ch in self.snapshot.chassis.values()
                for port in ch.ovsdb.get("Port", [])
                if (port.get("external_ids") or {}).get("ovn-localnet-port") == logical_port}

    def receiving_chassis(self, network: str, vlan: int | None, dst: int) -> list[str]:
        """The chassis (snapshot names) a frame to ``dst`` on ``network`` reaches from
        outside the cluster: its owner(s), or, for a group address, every chassis
        mapping the network."""
        if is_group_address(dst):
            return sorted(ch.name for ch in self.snapshot.chassis.values()
                          if network in ch.bridge_mappings)
        ids = dict.fromkeys(o.system_id for o in self.owners.get(dst, [])
                            if o.reached_by([network], vlan))
        return [self._by_system_id[i].name for i in ids if i in self._by_system_id]


def _mac(text: str) -> int | None:
    try:
        return int(text.replace(":", ""), 16) if text.count(":") == 5 else None
    except ValueError:
        return None


def _chassis_macs(row: dict) -> dict[str, int]:
    """``ovn-chassis-mac-mappings`` ("physnet1:aa:bb:cc:dd:ee:ff,…") of an SB Chassis row."""
    raw = ((row.get("other_config") or {}).get("ovn-chassis-mac-mappings")
           or (row.get("external_ids") or {}).get("ovn-chassis-mac-mappings") or "")
    out = {}
    for item in raw.split(","):
        net, _, mac = item.strip().partition(":")
        value = _mac(mac.strip())
        if net and value is not None:
            out[net.strip()] = value
    return out
