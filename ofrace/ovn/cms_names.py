"""The names users know, from what the cloud management system wrote into the NB.

OVN names its objects by the CMS's ids (a Neutron port is the logical switch port
named by its UUID, a network the switch ``neutron-<UUID>``, a security group the port
group ``pg_<UUID with _>``; ovn-kubernetes names a pod's port ``<namespace>_<pod>``),
and the names a user typed live in ``external_ids``.  This module reads them, once per
snapshot, so a trace can be asked by them and shows them beside OVN's.

What each CMS writes (read from their sources, not from a lab):

* Neutron ML2/OVN (neutron/common/ovn/constants.py, ovn_client.py): Logical_Switch_Port
  ``neutron:port_name``, ``neutron:device_id``, ``neutron:device_owner``;
  Logical_Switch ``neutron:network_name``; Logical_Router ``neutron:router_name``;
  Port_Group ``neutron:security_group_id`` (and, before Rocky,
  ``neutron:security_group_name``); ACL ``neutron:security_group_rule_id``.
  ovn-northd copies the switch's and router's names into the SB Datapath_Binding as
  ``name2``, and a port's external_ids into its Port_Binding (northd.c
  ``ovn_datapath_update_external_ids``, ``ovn_port_update_sbrec``), so a snapshot
  without the NB still has those.
* ovn-kubernetes: a pod's port has ``namespace`` and ``pod=true`` and is named
  ``<namespace>_<pod>``; a service's load balancer ``k8s.ovn.org/kind=Service`` and
  ``k8s.ovn.org/owner=<namespace>/<name>``; objects of a user-defined network
  ``k8s.ovn.org/network``; ``k8s.ovn.org/node`` where ovn-kubernetes records one.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from ofrace.errors import InputError


@dataclass(frozen=True)
class CmsName:
    """One OVN object's name in the CMS: ``kind`` says what it is there."""

    cms: str                 # neutron | ovn-kubernetes
    kind: str                # port | network | router | security group | pod | service | …
    name: str                # what a user types and reads ("" when the CMS gave none)
    ids: tuple[tuple[str, str], ...] = ()  # other facts worth showing (device id, node, …)

    @property
    def label(self) -> str:
        """``Neutron port "web-1"``, ``pod "default/nginx"``, ``Neutron security group
        <id>`` (no name in the NB): short, for beside an OVN name."""
        who = {"neutron": "Neutron ", "ovn-kubernetes": ""}.get(self.cms, "")
        if self.name:
            return f'{who}{self.kind} "{self.name}"'
        extra = ", ".join(f"{k} {v}" for k, v in self.ids if v)
        return f"{who}{self.kind} ({extra})" if extra else f"{who}{self.kind}"

    @property
    def detailed(self) -> str:
        """The label and what else the CMS recorded (device, owner, node)."""
        extra = ", ".join(f"{k} {v}" for k, v in self.ids if v)
        return f"{self.label}, {extra}" if extra and self.name else self.label

    def as_json(self) -> dict:
        return {"cms": self.cms, "kind": self.kind, "name": self.name, **dict(self.ids)}


def _ext(row: dict) -> dict:
    return row.get("external_ids") or {}


def _port_name(name: str, ext: dict) -> CmsName | None:
    if any(k.startswith("neutron:") for k in ext):
        ids = tuple((key.replace("_", " "), ext[f"neutron:{key}"])
                    for key in ("device_id", "device_owner") if ext.get(f"neutron:{key}"))
        return CmsName("neutron", "port", ext.get("neutron:port_name", ""), ids)
    namespace = ext.get("namespace")
    if namespace and ext.get("pod") == "true" and name.startswith(f"{namespace}_"):
        pod = name[len(namespace) + 1:]
        node = ext.get("k8s.ovn.org/node")
        return CmsName("ovn-kubernetes", "pod", f"{namespace}/{pod}",
                       (("node", node),) if node else ())
    return None


def _datapath_name(row: dict, key: str) -> CmsName | None:
    ext = _ext(row)
    if ext.get(key):
        return CmsName("neutron", key.split(":")[1].split("_")[0], ext[key])
    network = ext.get("k8s.ovn.org/network")
    if network and network != "default":   # the cluster network needs no name beside it
        node = ext.get("k8s.ovn.org/node")
        return CmsName("ovn-kubernetes", "network", network, (("node", node),) if node else ())
    return None


class _WithIds:
    """The tables whose rows count only for their external_ids: a table a version-3
    file says has none is not decoded (``StoredTables.without_external_ids``)."""

    def __init__(self, tables):
        self.tables = tables
        self.skip = getattr(tables, "without_external_ids", None)

    def get(self, table: str, default):
        if self.skip is not None and table in _BY_IDS_ONLY and self.skip(table):
            return default
        return self.tables.get(table, default)


# What from_databases reads of these is only their external_ids (Port_Group: also acls).
_BY_IDS_ONLY = ("Logical_Switch_Port", "Logical_Switch", "Logical_Router",
                "Logical_Router_Port", "ACL", "Load_Balancer")


@dataclass
class CmsNames:
    """OVN names → CMS names (ports, datapaths, port groups, ACLs, load balancers), and
    the way back for logical ports."""

    ports: dict[str, CmsName] = field(default_factory=dict)        # by LSP / PB name
    datapaths: dict[str, CmsName] = field(default_factory=dict)    # by LS/LR name
    port_groups: dict[str, CmsName] = field(default_factory=dict)  # by port group name
    acls: dict[str, CmsName] = field(default_factory=dict)         # by ACL _uuid
    acl_groups: dict[str, str] = field(default_factory=dict)       # ACL _uuid → PG name
    load_balancers: dict[str, CmsName] = field(default_factory=dict)  # by LB name

    @classmethod
    def from_databases(cls, nb: dict[str, list[dict]], sb: dict[str, list[dict]]) -> CmsNames:
        names = cls()
        nb = _WithIds(nb)
        for row in nb.get("Logical_Switch_Port", []):
            found = _port_name(row.get("name", ""), _ext(row))
            if found is not None:
                names.ports[row["name"]] = found
        for pb in sb.get("Port_Binding", []):  # northd's copy, when the NB is not read
            if pb.get("logical_port") not in names.ports:
                found = _port_name(pb.get("logical_port", ""), _ext(pb))
                if found is not None:
                    names.ports[pb["logical_port"]] = found
        for table, key in (("Logical_Switch", "neutron:network_name"),
                           ("Logical_Router", "neutron:router_name")):
            for row in nb.get(table, []):
                found = _datapath_name(row, key)
                if found is not None and row.get("name"):
                    names.datapaths[row["name"]] = found
        for dp in sb.get("Datapath_Binding", []):
            ext = _ext(dp)
            if ext.get("name") and ext.get("name2") and ext["name"] not in names.datapaths:
                kind = "network" if "logical-switch" in ext else "router"
                names.datapaths[ext["name"]] = CmsName("neutron", kind, ext["name2"])
        for lrp in nb.get("Logical_Router_Port", []):
            found = names._router_port(lrp)
            if found is not None:
                names.ports.setdefault(lrp["name"], found)
        for pg in nb.get("Port_Group", []):
            ext = _ext(pg)
            sg = ext.get("neutron:security_group_id")
            if sg:
                names.port_groups[pg["name"]] = CmsName(
                    "neutron", "security group", ext.get("neutron:security_group_name", ""),
                    (("id", sg),))
            for acl in pg.get("acls") or []:
                names.acl_groups[acl] = pg["name"]
        for acl in nb.get("ACL", []):
            rule = _ext(acl).get("neutron:security_group_rule_id")
            if rule:
                names.acls[acl["_uuid"]] = CmsName("neutron", "security group rule", "",
                                                   (("id", rule),))
        for lb in nb.get("Load_Balancer", []):
            ext = _ext(lb)
            owner = ext.get("k8s.ovn.org/owner")
            if owner and ext.get("k8s.ovn.org/kind", "Service") == "Service":
                names.load_balancers[lb.get("name", "")] = CmsName("ovn-kubernetes",
                                                                    "service", owner)
        return names

    def _router_port(self, lrp: dict) -> CmsName | None:
        """A Neutron router interface: its router and network by their names (Neutron
        writes the router's id in ``neutron:router_name`` here, the switch's name in
        ``neutron:network_name``)."""
        ext = _ext(lrp)
        router, network = ext.get("neutron:router_name"), ext.get("neutron:network_name")
        if not router and not network:
            return None
        known_router = self.datapaths.get(f"neutron-{router}")
        known_network = self.datapaths.get(network or "")
        return CmsName("neutron", "router interface", "", (
            ("router", known_router.name if known_router else router),
            ("network", known_network.name if known_network else network)))

    # ------------------------------------------------------------ the way back

    def port_candidates(self, typed: str) -> list[str]:
        """OVN ports whose CMS name is exactly ``typed`` (a pod also by its bare name
        when that is unique: the namespace is what people leave out)."""
        exact = sorted(p for p, n in self.ports.items() if n.name and n.name == typed)
        if exact or "/" in typed:
            return exact
        return sorted(p for p, n in self.ports.items()
                      if n.kind == "pod" and n.name.split("/", 1)[1] == typed)

    def resolve_port(self, typed: str, known: dict) -> str:
        """The OVN logical port ``typed`` names: itself when OVN knows it, else the one
        port with that CMS name; several: a one-line error listing them; none: an
        error with the closest OVN and CMS names."""
        if typed in known:
            return typed
        found = [p for p in self.port_candidates(typed) if p in known]
        if len(found) == 1:
            return found[0]
        if found:
            listed = "; ".join(f"{p} ({self.ports[p].detailed})" for p in found)
            raise InputError(f"{typed!r} names {len(found)} logical ports: {listed}; give "
                             "the OVN name of the one you mean")
        spelled = {n.name: p for p, n in self.ports.items() if n.name and p in known}
        close = difflib.get_close_matches(typed, list(known) + list(spelled), n=3,
                                          cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise InputError(f"unknown logical port {typed!r}{hint}")

    # ------------------------------------------------------------- showing

    def acl_label(self, acl: dict) -> str | None:
        """The security group (and rule) an ACL belongs to, as the CMS names them."""
        parts = []
        group = self.port_groups.get(self.acl_groups.get(acl.get("_uuid", ""), ""))
        if group is not None:
            parts.append(group.label)
        rule = self.acls.get(acl.get("_uuid", ""))
        if rule is not None:
            parts.append(rule.label)
        return ", ".join(parts) or None
