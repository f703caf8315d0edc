"""Interconnect: each zone's transit-switch ports against the IC-SB that ovn-ic keeps.

What ovn-ic does (ovn-org/ovn ic/ovn-ic.c, OVN 23.03, ``port_binding_run``): a
zone's own router-side transit port is registered in the IC-SB's Port_Binding
(the tunnel key allocated there, ``gateway`` = the chassis that binds it); every
other zone's row becomes, in this zone, a logical switch port of type ``remote``
with ``options:requested-tnl-key`` = the IC-SB key and ``requested-chassis`` = the
row's gateway, which northd binds in the SB.  ``ts_run`` gives the transit switch
the IC-SB Datapath_Binding's key; ``gateway_run`` copies the other zones'
gateways (and their Encap IPs) into the zone's SB as ``is-remote`` chassis.

A remote port whose IC-SB row is gone (a stale transit port), names another
key or another gateway, or whose gateway's tunnel IP differs, sends packets where
the other zone no longer listens: the tunnel carries a key its pipeline does not
know.  Each disagreement is one finding for the zone.
"""

from __future__ import annotations

from ofrace.ovn.southbound import SouthboundIndex
from ofrace.snapshot import Database, Zone, unwrap_optional

# Port_Bindings northd derives from another port of the transit switch (OVN 26.03 adds a
# ``cr-`` chassisredirect port for the zone's own router-side transit port): ovn-ic
# registers only logical switch ports, and the port they derive from is checked itself.
DERIVED_PORT_TYPES = ("chassisredirect",)


def transit_datapaths(names: SouthboundIndex) -> dict[str, dict]:
    """The zone's transit switches: Datapath_Binding uuid → row (``interconn-ts``)."""
    return {row["_uuid"]: row for row in names.rows("Datapath_Binding")
            if (row.get("external_ids") or {}).get("interconn-ts")}


def interconnect_findings(zone: Zone, names: SouthboundIndex,
                          ic: Database) -> list[str]:
    """Every way ``zone``'s transit ports disagree with the IC-SB ``ic``, in words."""
    ic_ports = {(row.get("transit_switch"), row["logical_port"]): row
                for row in ic.tables.get("Port_Binding", [])}
    ic_switch_keys = {row.get("transit_switch"): row.get("tunnel_key")
                      for row in ic.tables.get("Datapath_Binding", [])}
    zones = {row["_uuid"]: row.get("name") for row in ic.tables.get("Availability_Zone", [])}
    gateway_ips = {}
    for encap in ic.tables.get("Encap", []):
        gateway_ips.setdefault(encap.get("gateway_name"), set()).add(encap.get("ip"))
    found = []
    for dp_uuid, dp in transit_datapaths(names).items():
        switch = dp["external_ids"]["interconn-ts"]
        if switch not in ic_switch_keys:
            found.append(f"transit switch {switch} is not in the IC-SB")
            continue
        if ic_switch_keys[switch] != dp["tunnel_key"]:
            found.append(f"transit switch {switch} has tunnel key {dp['tunnel_key']} here, "
                         f"{ic_switch_keys[switch]} in the IC-SB: the zones' keys differ")
        for pb in names.rows("Port_Binding"):
            if pb["datapath"] != dp_uuid or pb.get("type") in DERIVED_PORT_TYPES:
                continue
            port = pb["logical_port"]
            row = ic_ports.get((switch, port))
            remote = (pb.get("type") or "") == "remote"
            if row is None:
                found.append(
                    f"{'remote' if remote else 'transit'} port {port} of {switch} has no "
                    "IC-SB Port_Binding" + (": a stale transit port, no zone owns it"
                                            if remote else ": the other zones cannot reach it"))
                continue
            owner = zones.get(unwrap_optional(row.get("availability_zone")))
            if remote and owner == zone.name:
                found.append(f"remote port {port} of {switch} is this zone's own in the IC-SB")
            elif not remote and owner is not None and owner != zone.name:
                found.append(f"transit port {port} of {switch} is zone {owner}'s in the IC-SB")
            if row.get("tunnel_key") != pb["tunnel_key"]:
                found.append(f"{'remote' if remote else 'transit'} port {port} of {switch} has "
                             f"tunnel key {pb['tunnel_key']} here, {row.get('tunnel_key')} in "
                             "the IC-SB: packets to it carry a key the other zone does not use")
            if not remote:
                continue
            bound = names.chassis_row_by_uuid(pb.get("chassis"))
            gateway = row.get("gateway") or ""
            if bound is None or bound["name"] != gateway:
                here = bound["name"] if bound else "no chassis"
                found.append(f"remote port {port} of {switch} is bound to {here} here; the "
                             f"IC-SB names gateway {gateway or 'none'}")
                continue
            encap_ips = {e["ip"] for e in names.rows("Encap")
                         if e.get("chassis_name") == gateway}
            ic_ips = gateway_ips.get(gateway, set())
            if ic_ips and encap_ips and not encap_ips & ic_ips:
                found.append(f"remote port {port}'s gateway {bound.get('hostname') or gateway} "
                             f"tunnels to {', '.join(sorted(encap_ips))} here, "
                             f"{', '.join(sorted(ic_ips))} in the IC-SB")
    return found
