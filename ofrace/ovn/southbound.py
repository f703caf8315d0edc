"""What the Southbound (and Northbound) rows mean for OpenFlow flows and registers.

An OpenFlow cookie is the first 32 bits of the SB row that produced the flow
(Logical_Flow for pipeline flows; Port_Binding, Datapath_Binding,
Multicast_Group, Chassis, MAC_Binding, Load_Balancer, FDB for physical
ones).  ``SouthboundIndex`` answers, for a cookie, every row with that
prefix (more than one is a collision, shown as such, never guessed), and
names datapaths and logical ports from their tunnel keys, so a trace can say
``inport "vm1"`` instead of ``reg14=0x1``.  A Logical_Flow's ``stage-hint``
names the Northbound row behind it (ACL, load balancer, NAT, route, …).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from functools import cached_property

from ofrace.errors import InputError
from ofrace.memory import building
from ofrace.ovn.cms_names import CmsName, CmsNames
from ofrace.ovn.versions import OvnFacts, facts_for
from ofrace.snapshot import Snapshot, unwrap_optional

# SB tables whose row UUIDs become OpenFlow cookies.
COOKIE_TABLES = ("Logical_Flow", "Port_Binding", "Datapath_Binding", "Multicast_Group",
                 "Chassis", "MAC_Binding", "Load_Balancer", "FDB", "Static_MAC_Binding")
# NB tables a stage-hint can point at (northd writes the NB row's UUID prefix).
HINT_TABLES = ("ACL", "Load_Balancer", "NAT", "Logical_Router_Static_Route",
               "Logical_Router_Policy", "Logical_Switch_Port", "Logical_Router_Port",
               "Logical_Switch", "Logical_Router", "Port_Group", "QoS")


def port_addresses(pb: dict) -> tuple[int | None, list, list]:
    """A Port_Binding's ``mac`` column → (MAC as int, IPv4 interfaces, IPv6 interfaces).

    Entries look like "02:00:00:00:00:01 192.0.2.3" or "router"/"unknown" (no MAC).
    """
    mac, v4, v6 = None, [], []
    for text in pb.get("mac", []):
        for part in text.replace(",", " ").split():
            if part.count(":") == 5 and len(part) == 17:
                try:
                    mac = int(part.replace(":", ""), 16)
                except ValueError:  # not a MAC after all: neither is it an address
                    pass
                continue
            try:
                addr = ipaddress.ip_interface(part)
            except ValueError:
                continue
            (v4 if addr.version == 4 else v6).append(addr)
    return mac, v4, v6


@dataclass
class CookieOwner:
    """One SB row a cookie may come from."""

    table: str
    row: dict

    def describe(self, index: SouthboundIndex) -> str:
        row = self.row
        if self.table == "Logical_Flow":
            ext = row.get("external_ids") or {}
            dp = index.logical_flow_datapaths(row)
            return (f"{ext.get('stage-name', '?')} ({row.get('pipeline')} table "
                    f"{row.get('table_id')}) on {', '.join(dp) or '?'}: "
                    f"{row.get('match')} → {row.get('actions')}")
        if self.table == "Port_Binding":
            return f"port binding {row.get('logical_port')} ({row.get('type') or 'vif'})"
        if self.table == "Datapath_Binding":
            return f"datapath {index.datapath_name(row)}"
        if self.table == "Multicast_Group":
            where = index.datapath_name_by_uuid(row.get("datapath"))
            return f"multicast group {row.get('name')} on {where}"
        if self.table == "Chassis":
            return f"chassis {row.get('hostname') or row.get('name')}"
        if self.table == "MAC_Binding":
            return f"MAC binding {row.get('ip')} is-at {row.get('mac')} ({row.get('logical_port')})"
        if self.table == "Load_Balancer":
            return f"load balancer {row.get('name')}"
        return f"{self.table} {row.get('_uuid', '')[:8]}"


@dataclass
class NorthboundObject:
    table: str
    row: dict

    def describe(self, cms: CmsNames | None = None) -> str:
        """The row in words; with ``cms``, also the CMS's name for it (the security
        group an ACL belongs to, the service a load balancer is)."""
        row = self.row
        if self.table == "ACL":
            label = row.get("name")
            label = unwrap_optional(label)
            name = f'"{label}" ' if label else ""
            known = cms.acl_label(row) if cms else None
            return (f"ACL {name}{row.get('direction')} priority {row.get('priority')} "
                    f"{row.get('match')} → {row.get('action')}"
                    + (f" [{known}]" if known else ""))
        if self.table == "Load_Balancer":
            vips = ", ".join(f"{k} → {v}" for k, v in (row.get("vips") or {}).items())
            known = cms.load_balancers.get(row.get("name", "")) if cms else None
            return (f"load balancer {row.get('name')}"
                    + (f" [{known.label}]" if known else "") + f" ({vips})")
        if self.table == "NAT":
            fip = (row.get("external_ids") or {}).get("neutron:fip_id") if cms else None
            return (f"NAT {row.get('type')} {row.get('logical_ip')} ↔ "
                    f"{row.get('external_ip')}" + (f" [Neutron floating IP {fip}]" if fip
                                                   else ""))
        if self.table == "Logical_Router_Static_Route":
            return f"static route {row.get('ip_prefix')} via {row.get('nexthop')}"
        if self.table == "Logical_Router_Policy":
            return (f"router policy priority {row.get('priority')} {row.get('match')} → "
                    f"{row.get('action')}")
        return f"{self.table} {row.get('name') or row.get('_uuid', '')[:8]}"


@dataclass
class CookieAnswer:
    cookie: int
    owners: list[CookieOwner] = field(default_factory=list)

    @property
    def collision(self) -> bool:
        return len(self.owners) > 1

    @property
    def logical_flow(self) -> dict | None:
        flows = [o.row for o in self.owners if o.table == "Logical_Flow"]
        return flows[0] if len(flows) == 1 else None


class SouthboundIndex:
    """Lookups from OpenFlow-level numbers to OVN names, built once per snapshot (per
    zone, for a cluster of zones: ``zone`` names it; None: the central SB)."""

    def __init__(self, snapshot: Snapshot, zone: str | None = None):
        self.zone = zone
        sb, nb = snapshot.southbound, snapshot.northbound
        if zone is not None:
            sb, nb = snapshot.zones[zone].southbound, snapshot.zones[zone].northbound
        self.sb = sb.tables if sb else {}
        self.nb = nb.tables if nb else {}
        # Tables a version-3 file answers by cookie: never decoded whole for a trace.
        keyed = getattr(self.sb, "keyed", None)
        self._keyed = tuple(t for t in COOKIE_TABLES if keyed is not None and keyed(t))
        self._snapshot = snapshot

    def facts(self, chassis: str) -> OvnFacts:
        """OVN's version facts for the release ``chassis``' ovn-controller runs (a chassis
        a live trace has not read is not read for this)."""
        found = self._snapshot.find_chassis(chassis, read=False) if chassis else None
        return facts_for(found.ovn_version if found is not None else None)

    def rows(self, table: str) -> list[dict]:
        return self.sb.get(table, [])

    @cached_property
    def _by_cookie(self) -> dict[int, list[CookieOwner]]:
        index: dict[int, list[CookieOwner]] = {}
        with building():
            for table in COOKIE_TABLES:
                if table in self._keyed:
                    continue
                for row in self.sb.get(table, []):
                    uuid = row.get("_uuid", "")
                    if len(uuid) >= 8:
                        index.setdefault(int(uuid[:8], 16), []).append(CookieOwner(table, row))
        return index

    def cookie(self, cookie: int) -> CookieAnswer:
        key = cookie & 0xFFFFFFFF
        if not self._keyed:
            return CookieAnswer(cookie, list(self._by_cookie.get(key, [])))
        owners = []   # in COOKIE_TABLES order, as the index of every table gives them
        for table in COOKIE_TABLES:
            if table in self._keyed:
                owners += [CookieOwner(table, row) for row in self.sb.with_cookie(table, key)]
            else:
                owners += [o for o in self._by_cookie.get(key, []) if o.table == table]
        return CookieAnswer(cookie, owners)

    def read_datapaths(self, keys: set[int], cookies: set[int]) -> None:
        """Before naming a trace's flows: a Southbound read on demand (a live trace)
        reads the logical flows of the datapaths (tunnel keys) the packet was in with
        the ``cookies`` it hit, now, rather than the whole table; any other SB has them."""
        fetch = getattr(self.sb, "fetch_datapaths", None)
        if fetch is not None:
            fetch({self._datapath_by_key[k]["_uuid"] for k in keys
                   if k in self._datapath_by_key}, {c & 0xFFFFFFFF for c in cookies})

    @cached_property
    def cookie_sets(self) -> dict[str, set[int]]:
        """Per table of COOKIE_TABLES, the cookies (32 bits) of its rows: what checking
        every flow of a chassis asks, answered without reading a row of a keyed table
        (its store's index holds the cookies)."""
        sets = {}
        for table in COOKIE_TABLES:
            if table in self._keyed:
                sets[table] = set(self.sb.cookies(table))
            else:
                sets[table] = {int(row["_uuid"][:8], 16) for row in self.sb.get(table, [])
                               if len(row.get("_uuid", "")) >= 8}
        return sets

    def cookie_tables(self, cookie: int) -> list[str]:
        """The tables of ``cookie(cookie).owners``, in its order, without their rows."""
        key = cookie & 0xFFFFFFFF
        return [table for table, keys in self.cookie_sets.items() if key in keys]

    # --- datapaths and ports -------------------------------------------

    @cached_property
    def _datapaths(self) -> dict[str, dict]:
        return {row["_uuid"]: row for row in self.rows("Datapath_Binding")}

    @cached_property
    def _datapath_by_key(self) -> dict[int, dict]:
        return {row["tunnel_key"]: row for row in self.rows("Datapath_Binding")}

    @cached_property
    def _ports_by_key(self) -> dict[tuple[int, int], dict]:
        result = {}
        for pb in self.rows("Port_Binding"):
            dp = self._datapaths.get(pb["datapath"])
            if dp is not None:
                result[(dp["tunnel_key"], pb["tunnel_key"])] = pb
        return result

    @cached_property
    def _mcast_by_key(self) -> dict[tuple[int, int], dict]:
        result = {}
        for mg in self.rows("Multicast_Group"):
            dp = self._datapaths.get(mg["datapath"])
            if dp is not None:
                result[(dp["tunnel_key"], mg["tunnel_key"])] = mg
        return result

    @cached_property
    def ports_by_name(self) -> dict[str, dict]:
        return {pb["logical_port"]: pb for pb in self.rows("Port_Binding")}

    @cached_property
    def _ports_by_datapath(self) -> dict[str, list[dict]]:
        result: dict[str, list[dict]] = {}
        for pb in self.rows("Port_Binding"):
            result.setdefault(pb["datapath"], []).append(pb)
        return result

    def ports_on(self, datapath_uuid: str) -> list[dict]:
        """The Port_Binding rows of one datapath, in the table's order."""
        return self._ports_by_datapath.get(datapath_uuid, [])

    # --- the CMS's names (Neutron, ovn-kubernetes) -------------------------

    @cached_property
    def cms(self) -> CmsNames:
        return CmsNames.from_databases(self.nb, self.sb)

    def resolve_port(self, typed: str) -> str:
        """The OVN logical port a user means: its OVN name or its CMS name (a Neutron
        port name, a pod's namespace/name); ambiguous or unknown: ``InputError``."""
        if typed in self.ports_by_name:
            return typed       # OVN's own name: no need to index every CMS name first
        return self.cms.resolve_port(typed, self.ports_by_name)

    def port_cms(self, logical_port: str | None) -> CmsName | None:
        return self.cms.ports.get(logical_port or "")

    def datapath_cms(self, name: str | None) -> CmsName | None:
        return self.cms.datapaths.get(name or "")

    def datapath_name(self, row: dict) -> str:
        ext = row.get("external_ids") or {}
        return ext.get("name") or ext.get("name2") or row.get("_uuid", "?")[:8]

    def datapath_name_by_uuid(self, uuid: str | None) -> str:
        row = self._datapaths.get(uuid or "")
        return self.datapath_name(row) if row else "?"

    def datapath_by_key(self, key: int) -> dict | None:
        return self._datapath_by_key.get(key)

    def datapath_key(self, uuid: str) -> int | None:
        row = self._datapaths.get(uuid)
        return row["tunnel_key"] if row else None

    def port_name(self, datapath_key: int, port_key: int) -> str | None:
        pb = self._ports_by_key.get((datapath_key, port_key))
        if pb is not None:
            return pb["logical_port"]
        mg = self._mcast_by_key.get((datapath_key, port_key))
        return f"multicast group {mg['name']}" if mg else None

    def logical_flow_datapaths(self, row: dict) -> list[str]:
        if row.get("logical_datapath"):
            uuid = row["logical_datapath"]
            return [self.datapath_name_by_uuid(unwrap_optional(uuid))]
        group = row.get("logical_dp_group")
        if group:
            gid = unwrap_optional(group)
            for g in self.rows("Logical_DP_Group"):
                if g["_uuid"] == gid:
                    return [self.datapath_name_by_uuid(d) for d in g.get("datapaths", [])]
        return []

    # --- chassis and encapsulation ---------------------------------------

    @cached_property
    def chassis_by_encap_ip(self) -> dict[str, dict]:
        chassis = {row["name"]: row for row in self.rows("Chassis")}
        result = {}
        for encap in self.rows("Encap"):
            if encap.get("chassis_name") in chassis:
                result[encap["ip"]] = chassis[encap["chassis_name"]]
        return result

    def chassis_row(self, system_id: str) -> dict | None:
        return next((c for c in self.rows("Chassis") if c["name"] == system_id), None)

    def chassis_row_by_uuid(self, uuid: str | list | None) -> dict | None:
        uuid = unwrap_optional(uuid)
        return next((c for c in self.rows("Chassis") if c["_uuid"] == uuid), None)

    # --- northbound ------------------------------------------------------

    @cached_property
    def _nb_by_prefix(self) -> dict[str, list[NorthboundObject]]:
        index: dict[str, list[NorthboundObject]] = {}
        for table in HINT_TABLES:
            for row in self.nb.get(table, []):
                index.setdefault(row.get("_uuid", "")[:8], []).append(NorthboundObject(table,
                                                                                       row))
        return index

    def northbound_for(self, logical_flow: dict) -> list[NorthboundObject]:
        """The NB rows behind a logical flow (its ``stage-hint``)."""
        hint = (logical_flow.get("external_ids") or {}).get("stage-hint")
        if not hint:
            return []
        keyed = getattr(self.nb, "keyed", None)
        if keyed is None or not all(keyed(t, True) for t in HINT_TABLES if t in self.nb):
            return list(self._nb_by_prefix.get(hint[:8], []))
        try:    # a version-3 file: the rows with that prefix, not every NB row
            cookie = int(hint[:8], 16)
        except ValueError:
            return []
        return [NorthboundObject(table, row) for table in HINT_TABLES if table in self.nb
                for row in self.nb.with_cookie(table, cookie)
                if row.get("_uuid", "")[:8] == hint[:8]]


class ChassisNames:
    """Per chassis, the index of the SB its ovn-controller reads: its zone's in
    interconnect mode (ovn-kubernetes: a zone per node), else the one central SB.
    Zones number datapaths and ports each on their own, so their SBs are never merged:
    a cookie, a ``metadata`` or a ``reg14`` means something only in its chassis' zone."""

    def __init__(self, snapshot: Snapshot, central: SouthboundIndex | None = None):
        self.snapshot = snapshot
        self.central = central or SouthboundIndex(snapshot)
        self._zones: dict[str, SouthboundIndex] = {}
        self._of_chassis: dict[str, SouthboundIndex] = {}   # asked once per step: cached

    def zone(self, name: str) -> SouthboundIndex:
        index = self._zones.get(name)
        if index is None:
            index = self._zones[name] = SouthboundIndex(self.snapshot, name)
        return index

    def __call__(self, chassis: str | None) -> SouthboundIndex:
        """``chassis``' index (a snapshot name or a system-id); the central one when the
        snapshot has no zones or the chassis is in none."""
        if not self.snapshot.zones or chassis is None:
            return self.central
        index = self._of_chassis.get(chassis)
        if index is None:
            found = self.snapshot.zone_of(chassis)
            index = self.zone(found.name) if found is not None else self.central
            self._of_chassis[chassis] = index
        return index

    def indexes(self) -> list[SouthboundIndex]:
        """Every zone's index (zone order), or just the central one."""
        if not self.snapshot.zones:
            return [self.central]
        return [self.zone(name) for name in self.snapshot.zones]

    def where_bound(self, typed: str) -> SouthboundIndex | None:
        """The zone whose SB has ``typed`` (an OVN or CMS port name) as a port of its own
        (not ovn-ic's ``remote`` copy of another zone's); None without zones or match."""
        if not self.snapshot.zones:
            return None
        fallback = None
        for index in self.indexes():
            try:
                name = index.resolve_port(typed)
            except InputError:
                continue
            if (index.ports_by_name[name].get("type") or "") != "remote":
                return index
            fallback = fallback or index
        return fallback


def chassis_view(snapshot: Snapshot, chassis: str) -> Snapshot:
    """The snapshot as ``chassis``' ovn-controller sees it: its zone's SB and NB in the
    place of the central pair (the snapshot itself without zones), for code that reads
    one SB; the chassis and the rest are shared, not copied."""
    zone = snapshot.zone_of(chassis) if snapshot.zones else None
    if zone is None:
        return snapshot
    return replace(snapshot, southbound=zone.southbound, northbound=zone.northbound,
                   zones={}, interconnect=None)
