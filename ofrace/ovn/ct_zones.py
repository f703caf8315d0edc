"""Which logical port or datapath a conntrack zone belongs to on one chassis.

ovn-controller allocates the zones and writes them into the integration bridge's
external_ids (controller/ovn-controller.c ``commit_ct_zones``; controller/ct-zone.c in
later releases): ``ct-zone-<logical port>`` for a port's zone and
``ct-zone-<Datapath_Binding uuid>_dnat`` / ``_snat`` for a datapath's NAT zones.  The
snapshot holds that row, so a zone in a trace or in the node's connection table can be
named.
"""

from __future__ import annotations

from ofrace.ovn.southbound import SouthboundIndex
from ofrace.snapshot import Chassis

PREFIX = "ct-zone-"


def zone_owners(chassis: Chassis, names: SouthboundIndex) -> dict[int, str]:
    """zone → "port NAME" or "DATAPATH DNAT zone" / "DATAPATH SNAT zone"."""
    bridge = next((row for row in chassis.ovsdb.get("Bridge", [])
                   if row.get("name") == chassis.integration_bridge), None)
    owners: dict[int, str] = {}
    for key, value in ((bridge or {}).get("external_ids") or {}).items():
        if not key.startswith(PREFIX) or not value.isdigit():
            continue
        name = key[len(PREFIX):]
        uuid, _, kind = name.rpartition("_")
        if kind in ("dnat", "snat") and names.datapath_name_by_uuid(uuid) != "?":
            owners[int(value)] = f"{names.datapath_name_by_uuid(uuid)} {kind.upper()} zone"
        else:
            owners[int(value)] = f"port {name}"
    return owners
