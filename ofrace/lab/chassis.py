"""OVS configuration of the chassis and of the hub that wires them together.

This is OVN's test-suite pattern (tests/ovn-macros.at ``net_add`` /
``net_attach`` / ``ovn_attach``): a separate OVS instance, the hub, has one
learning bridge per network and a ``pstream=punix:`` dummy port per attached
chassis bridge; the chassis side is a dummy port with ``stream=unix:`` to that
socket.  Two networks:

* ``tunnel``: every chassis' ``br-phys``, which holds the Geneve endpoint
  (``netdev-dummy/ip4addr`` + ``ovs/route/add``), so tunnelled packets really
  travel between the chassis' userspace datapaths;
* ``outside``: the uplink of every provider bridge named in
  ``ovn-bridge-mappings`` (``breth0``'s ``eth0``), the stand-in for the
  network the kind nodes share.

Every VIF, uplink and hub port records what it sends and receives in pcap
files (``options:tx_pcap`` / ``options:rxq_pcap``).
"""

from __future__ import annotations

import ipaddress

from ofrace.lab.layout import LabLayout
from ofrace.lab.northbound import map_assignments
from ofrace.lab.topology import Chassis, Topology

INTEGRATION_BRIDGE = "br-int"
UNDERLAY_BRIDGE = "br-phys"
TUNNEL_NETWORK = "tunnel"
OUTSIDE_NETWORK = "outside"
# The hub's bridges, one per network.
HUB_BRIDGES = (TUNNEL_NETWORK, OUTSIDE_NETWORK)
# The chassis-side port that connects br-phys to the hub's tunnel network.
UNDERLAY_PORT = f"{UNDERLAY_BRIDGE}_{TUNNEL_NETWORK}"


def underlay_mac(encap_ip: str) -> str:
    """A fixed, locally administered MAC for br-phys, derived from the encap IP."""
    octets = ipaddress.IPv4Address(encap_ip).packed
    return "02:0f:" + ":".join(f"{b:02x}" for b in octets)


def hub_port(chassis: Chassis, bridge: str) -> str:
    return f"{chassis.name}_{bridge}"


def pcap_options(tx: str, rx: str) -> list[str]:
    return [f"options:tx_pcap={tx}", f"options:rxq_pcap={rx}"]


def hub_commands(topology: Topology, layout: LabLayout) -> list[list[str]]:
    """ovs-vsctl commands (to join with --) that build the hub's networks."""
    commands = [["add-br", TUNNEL_NETWORK]]
    if any(c.uplinks for c in topology.chassis):
        commands.append(["add-br", OUTSIDE_NETWORK])
    next_ofport = {TUNNEL_NETWORK: 1, OUTSIDE_NETWORK: 1}
    for chassis in topology.chassis:
        attachments = [(TUNNEL_NETWORK, UNDERLAY_BRIDGE)]
        attachments += [(OUTSIDE_NETWORK, bridge) for bridge in chassis.uplinks]
        for network, bridge in attachments:
            port = hub_port(chassis, bridge)
            commands.append(["add-port", network, port])
            commands.append([
                "set", "Interface", port,
                f"options:pstream=punix:{layout.hub_socket(port)}",
                *pcap_options(str(layout.hub_pcap(port, "tx")), str(layout.hub_pcap(port, "rx"))),
                f"ofport_request={next_ofport[network]}",
            ])
            next_ofport[network] += 1
    return commands


def canonical_ct_zones(
    users: list[str], datapath_keys: dict[str, int], port_keys: dict[str, tuple[int, int]]
) -> dict[str, int]:
    """Number a chassis' conntrack zone users 1..n in a fixed order.

    ovn-controller gives a zone to each local logical port and two (DNAT,
    SNAT) to each local datapath, numbering them in the hash order of the
    user names -- and datapath users are named by southbound UUIDs, which
    are random -- and in the order users appear, which depends on timing.
    The fixed order is: datapaths by tunnel key (DNAT, then SNAT), then
    ports by datapath and port tunnel key.  ``datapath_keys`` maps
    southbound datapath UUIDs to tunnel keys, ``port_keys`` logical port
    names to (datapath key, port key).
    """
    def order(user: str) -> tuple:
        uuid, _, kind = user.rpartition("_")
        if kind in ("dnat", "snat") and uuid in datapath_keys:
            return (0, datapath_keys[uuid], kind == "snat")
        if user in port_keys:
            return (1, *port_keys[user])
        return (2, user)

    return {user: zone for zone, user in enumerate(sorted(users, key=order), start=1)}


def chassis_commands(
    topology: Topology, chassis: Chassis, layout: LabLayout, sb_remote: str
) -> list[list[str]]:
    """ovs-vsctl commands (to join with --) that configure one chassis before ovn-controller."""
    external_ids = {
        "system-id": chassis.system_id,
        "hostname": chassis.hostname,
        "ovn-remote": sb_remote,
        "ovn-encap-type": "geneve",
        "ovn-encap-ip": chassis.encap_ip,
        **chassis.ovs_external_ids,
    }
    if chassis.bridge_mappings:
        external_ids["ovn-bridge-mappings"] = ",".join(
            f"{network}:{bridge}" for network, bridge in chassis.bridge_mappings.items()
        )
    commands = [
        ["set", "Open_vSwitch", ".", *map_assignments("external_ids", external_ids)],
        ["add-br", INTEGRATION_BRIDGE],
        ["set", "Bridge", INTEGRATION_BRIDGE, "fail-mode=secure",
         "other-config:disable-in-band=true"],
        ["add-br", UNDERLAY_BRIDGE],
        ["set", "Bridge", UNDERLAY_BRIDGE,
         f"other-config:hwaddr={underlay_mac(chassis.encap_ip)}"],
        *_uplink_commands(layout, chassis, UNDERLAY_BRIDGE, UNDERLAY_PORT,
                          hub_port(chassis, UNDERLAY_BRIDGE)),
    ]
    for bridge in chassis.provider_bridges:
        commands.append(["add-br", bridge])
        uplink = chassis.uplinks.get(bridge)
        if uplink:
            commands += _uplink_commands(layout, chassis, bridge, uplink,
                                         hub_port(chassis, bridge))
    for port, vif in topology.vifs_on(chassis.name):
        commands.append(["add-port", INTEGRATION_BRIDGE, vif.iface])
        commands.append([
            "set", "Interface", vif.iface,
            f"external_ids:iface-id={port.name}",
            f"ofport_request={vif.ofport}",
            *pcap_options(str(layout.pcap(chassis.name, vif.iface, "tx")),
                          str(layout.pcap(chassis.name, vif.iface, "rx"))),
        ])
    return commands


def _uplink_commands(
    layout: LabLayout, chassis: Chassis, bridge: str, port: str, to_hub_port: str
) -> list[list[str]]:
    return [
        ["add-port", bridge, port],
        ["set", "Interface", port,
         f"options:stream=unix:{layout.hub_socket(to_hub_port)}",
         *pcap_options(str(layout.pcap(chassis.name, port, "tx")),
                       str(layout.pcap(chassis.name, port, "rx"))),
         "ofport_request=1"],
    ]


def underlay_appctl_commands(topology: Topology, chassis: Chassis) -> list[list[str]]:
    """ovs-appctl commands that give br-phys its tunnel endpoint and route.

    The tunnel neighbour entries are set by hand (as OVN's tests do with
    ``tnl/neigh/set``) because nothing answers ARP on a dummy bridge: without
    them the first Geneve packet to each chassis would be dropped.
    """
    prefixlen = topology.network.tunnel_prefixlen
    commands = [
        ["netdev-dummy/ip4addr", UNDERLAY_BRIDGE, f"{chassis.encap_ip}/{prefixlen}"],
        ["ovs/route/add", f"{chassis.encap_ip}/{prefixlen}", UNDERLAY_BRIDGE],
    ]
    for peer in topology.chassis:
        if peer.name != chassis.name:
            commands.append(["tnl/neigh/set", UNDERLAY_BRIDGE, peer.encap_ip,
                             underlay_mac(peer.encap_ip)])
    return commands


def underlay_local_route_command(chassis: Chassis) -> list[str]:
    """The route that makes the tunnel endpoint a local address of OVS's router.

    From OVS 3.7 (lib/ovs-router.c ``ovs_router_lookup``) a lookup with a source
    address -- ovn-controller sets ``options:local_ip`` on its tunnels -- fails unless
    that source is in the router's ``local`` table; a kernel puts its own addresses
    there, a dummy bridge's address is put there by hand (``ovs/route/add`` takes the
    table by number only: 255 is CLS_LOCAL, lib/ovs-router.h).  Older OVS has no
    tables and needs nothing: run this only where ``ovs/route/add`` takes ``table=``.
    """
    return ["ovs/route/add", f"{chassis.encap_ip}/32", UNDERLAY_BRIDGE, "table=255"]


def underlay_arp_responder_flow(chassis: Chassis) -> str:
    """An OpenFlow flow that makes br-phys answer ARP for its own tunnel endpoint.

    A kernel would do this for a real interface; the dummy bridge has no
    stack.  It keeps tunnels working after the static neighbour entries have
    aged out (OVS forgets idle entries after some minutes).
    """
    mac = underlay_mac(chassis.encap_ip)
    mac_hex = "0x" + mac.replace(":", "")
    ip_hex = "0x" + ipaddress.IPv4Address(chassis.encap_ip).packed.hex()
    return (
        f"priority=100,arp,arp_op=1,arp_tpa={chassis.encap_ip},"
        "actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],"
        f"mod_dl_src:{mac},load:0x2->NXM_OF_ARP_OP[],"
        "move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],"
        f"load:{mac_hex}->NXM_NX_ARP_SHA[],load:{ip_hex}->NXM_OF_ARP_SPA[],in_port"
    )
