"""Logical flows against the OpenFlow flows a chassis really has.

For every SB Logical_Flow, per chassis: how many OpenFlow flows carry its
cookie, and, where none do, why — computed from the rules ovn-controller
follows, each reason named.  What no rule explains is MISSING.  The other
way round: OpenFlow flows whose cookie belongs to no SB row (stale), and
cookies of the wrong kind in the logical pipeline tables.

The OpenFlow table of each logical table is derived from the flows that
are installed (cookie → lflow → pipeline/table_id), never from constants:
table numbers move between OVN versions.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from itertools import compress, repeat
from operator import and_, is_not, itemgetter, not_, sub

from ofrace.openflow.flowtext import DUMP_HEAD, DUMP_HEAD_BYTES, fast_heads, read_head
from ofrace.openflow.stored import stored_heads
from ofrace.ovn.southbound import SouthboundIndex
from ofrace.snapshot import Chassis, Snapshot, unwrap_optional

_RESIDENT = re.compile(r'(!\s*)?is_chassis_resident\("([^"]+)"\)')
_PORT_EQ = re.compile(r'\b(inport|outport)\s*==\s*"([^"]+)"')
_ADDRESS_SET = re.compile(r"\$([A-Za-z_][A-Za-z0-9_.]*)")
_PORT_GROUP = re.compile(r"@([A-Za-z_][A-Za-z0-9_.]*)")
_TEMPLATE = re.compile(r"\^([A-Za-z_][A-Za-z0-9_]*)")
def _line_text(line: str | bytes) -> str:
    """A flow line as text (``Bridge.encoded_lines`` gives a file's as bytes)."""
    return line if line.__class__ is str else line.decode("utf-8", "surrogateescape")


# Reasons an lflow has no OpenFlow flows on a chassis that are expected.
NOT_LOCAL = "datapath not local to this chassis"
NOT_RESIDENT = "is_chassis_resident({port}) is false here"
REMOTE_PORT = "matches on {port}, which is not bound here"
# binding.c consider_localport: a localport is related (its flows installed) only where
# an OVS interface carries its iface-id; it is never bound to a chassis.
LOCALPORT = ("matches on localport {port}, which has no interface here (ovn-controller "
             "installs a localport's flows only where a VIF claims it)")
EMPTY_SET = "empty {what} {name}"
DEDUPLICATED = "same flow as lflow {other} (deduplicated by ovn-controller)"
# ofctrl.c: one installed flow per (table, priority, match); of several desired flows the
# preferred (allow before drop before conjunction) is installed, with its cookie.
SAME_MATCH = ("same table, priority and match as lflow {other}, whose flow ovn-controller "
              "installed: only one OpenFlow flow per match can be (ofctrl.c desired_refs)")
CONJUNCTION = "folded into a conjunction in table {table}"
TEMPLATE = "template variable ^{name} is not defined for this chassis"
NEVER_TRUE = "its match can never be true"


@dataclass
class LflowStatus:
    uuid: str
    stage: str
    pipeline: str
    table_id: int
    priority: int
    match: str
    actions: str
    datapaths: list[str]
    openflow_flows: int
    status: str                 # installed | expected | missing
    reason: str | None = None
    # MISSING ones: the CMS's names of its datapaths (Neutron network "web", …)
    datapath_cms: dict[str, str] = field(default_factory=dict)
    # MISSING ones: the NB rows behind it (its stage-hint), in words, with the CMS's names
    northbound: list[str] = field(default_factory=list)


@dataclass
class StaleFlow:
    cookie: int
    flow: str
    why: str


@dataclass
class ChassisLogicalAudit:
    chassis: str
    stale: list[StaleFlow] = field(default_factory=list)
    # Flow lines whose cookie or table could not be read: a MISSING flow may be
    # one of them, so the audit of this chassis is not complete.
    garbled: list[str] = field(default_factory=list)
    # Every lflow's status in words is built only when asked for (``lflows``): the
    # counts, the reasons and what is MISSING are what the audit prints.
    verdicts: LflowVerdicts | None = None

    @property
    def lflows(self) -> list[LflowStatus]:
        return self.verdicts.statuses() if self.verdicts is not None else []

    def count(self, status: str) -> int:
        return self.verdicts.counts[status] if self.verdicts is not None else 0

    @property
    def missing(self) -> list[LflowStatus]:
        return list(self.verdicts.missing) if self.verdicts is not None else []

    def reasons(self) -> Counter:
        return Counter(self.verdicts.reason_counts) if self.verdicts is not None else Counter()


class LflowColumns:
    """What the audit of every chassis reads of each SB Logical_Flow, one list per column
    in the table's order, read once per auditor: from the columns a version-3 file stores
    beside the rows (``StoredTables.projection``), else from the rows.  ``refs[i]`` names
    lflow i's datapaths in ``datapaths`` (a datapath, a datapath group, or none), so a
    chassis decides locality once per datapath or group, not once per lflow."""

    def __init__(self, uuids, stages, pipelines, table_ids, priorities, matches, actions,
                 ports, logical_datapaths, logical_dp_groups, dp_groups: dict[str, list]):
        self.uuids, self.stages, self.pipelines = uuids, stages, pipelines
        self.table_ids, self.priorities = table_ids, priorities
        self.matches, self.actions, self.ports = matches, actions, ports
        # a datapath's ref is its UUID, a group's a 1-tuple of the group's, none's None
        self.refs = [dp if dp.__class__ is str and dp else _datapath_ref(dp, group)
                     for dp, group in zip(logical_datapaths, logical_dp_groups, strict=True)]
        self.datapaths = {ref: [ref] if ref.__class__ is str else list(
            dp_groups.get(ref[0], [])) if ref is not None else [] for ref in set(self.refs)}
        self.cookies = list(map(int, map(itemgetter(slice(0, 8)), uuids), repeat(16)))


def _datapath_ref(dp, group) -> str | tuple | None:
    """``LogicalAuditor.lflow_datapaths``' choice: the datapath, else the group."""
    dp, group = unwrap_optional(dp), unwrap_optional(group)
    return dp if dp else (group,) if group else None


class LflowVerdicts:
    """One chassis' verdict on every lflow, compact: its OpenFlow flows per lflow, the
    reason of each expected one, which are MISSING (those built in words, with their NB
    rows), and the datapath names each ``ref`` shows.  Small to send from a worker
    process (``columns`` stays behind: the parent has the same)."""

    def __init__(self, columns: LflowColumns, flows: list[int], reasons: dict[int, str],
                 missing: list[LflowStatus], missing_at: list[int],
                 dp_names: dict[tuple, list[str]]):
        self.columns, self.flows, self.reasons = columns, flows, reasons
        self.missing, self.missing_at, self.dp_names = missing, missing_at, dp_names
        self.counts = {"installed": len(flows) - len(reasons) - len(missing),
                       "expected": len(reasons), "missing": len(missing)}
        kinds: dict[str, str] = {}
        counted: Counter = Counter()
        for i in sorted(reasons):   # in lflow order, as counting the statuses did
            reason = reasons[i]
            kind = kinds.get(reason)
            if kind is None:
                kind = kinds[reason] = _reason_kind(reason)
            counted[kind] += 1
        self.reason_counts = counted
        self._statuses: list[LflowStatus] | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "columns": None, "_statuses": None}

    def status(self, i: int, status: str, reason: str | None = None) -> LflowStatus:
        c = self.columns
        return LflowStatus(c.uuids[i], c.stages[i], c.pipelines[i], c.table_ids[i],
                           c.priorities[i], c.matches[i], c.actions[i],
                           list(self.dp_names[c.refs[i]]), self.flows[i], status, reason)

    def statuses(self) -> list[LflowStatus]:
        """Every lflow's status, in the table's order (built on first call)."""
        if self._statuses is None:
            missing = dict(zip(self.missing_at, self.missing, strict=True))
            reasons = self.reasons
            out = []
            for i in range(len(self.flows)):
                found = missing.get(i)
                if found is None:
                    reason = reasons.get(i)
                    found = self.status(i, "installed" if reason is None else "expected",
                                        reason)
                out.append(found)
            self._statuses = out
        return self._statuses


def _reason_kinds() -> list[tuple[str, str, str, str]]:
    """Per reason template in the order they are tried: (head, tail, the kind a reason
    starting with the head counts as, the kind one holding the tail counts as)."""
    kinds = []
    for template in (NOT_LOCAL, NOT_RESIDENT, LOCALPORT, REMOTE_PORT, EMPTY_SET, DEDUPLICATED,
                     SAME_MATCH, CONJUNCTION, TEMPLATE, NEVER_TRUE):
        kinds.append((template.split("{")[0], template.split("}")[-1], template.replace(
            "{port}", "P").replace("{what} {name}", "set").replace("{other}", "X").replace(
            "{table}", "N").replace("{name}", "V"), template.replace("{port}", "P")))
    return kinds


_REASON_KINDS = _reason_kinds()


def _reason_kind(reason: str | None) -> str:
    """The reason without its particulars, for counting."""
    text = reason or ""
    for head, tail, by_head, by_tail in _REASON_KINDS:
        if head and text.startswith(head):
            return by_head
        if not head and tail in text:
            return by_tail
    return text


def _not_related(port: str, pb: dict | None) -> str:
    if pb is not None and pb.get("type") == "localport":
        return LOCALPORT.format(port=port)
    return REMOTE_PORT.format(port=port)


class _DatapathNames(dict):
    """``SouthboundIndex.datapath_name_by_uuid``, each datapath's asked once."""

    def __init__(self, names: SouthboundIndex):
        super().__init__()
        self._names = names

    def __missing__(self, uuid: str) -> str:
        name = self[uuid] = self._names.datapath_name_by_uuid(uuid)
        return name


class LocalDatapaths:
    """Which logical datapaths ovn-controller considers local on a chassis (binding.c)."""

    def __init__(self, names: SouthboundIndex, chassis: Chassis):
        self.names = names
        self.chassis = chassis
        row = names.chassis_row(chassis.system_id or "")
        self.chassis_uuid = row["_uuid"] if row else None

    def bound_here(self, pb: dict) -> bool:
        bound = pb.get("chassis")
        bound = unwrap_optional(bound)
        if bound and bound == self.chassis_uuid:
            return True
        if self.chassis_uuid in (pb.get("additional_chassis") or []):
            return True
        opts = pb.get("options") or {}
        return opts.get("l3gateway-chassis") == self.chassis.system_id and bool(
            self.chassis.system_id)

    @cached_property
    def _ha_groups_here(self) -> set[str]:
        """HA chassis groups this chassis is a member of (active or not)."""
        mine = {row["_uuid"] for row in self.names.rows("HA_Chassis")
                if row.get("chassis") == self.chassis_uuid}
        return {g["_uuid"] for g in self.names.rows("HA_Chassis_Group")
                if mine & set(g.get("ha_chassis") or [])}

    @cached_property
    def _iface_ids(self) -> set[str]:
        """iface-ids of the integration bridge's interfaces (ovn-controller's local
        bindings, binding.c build_local_bindings)."""
        return {i.iface_id for i in self.chassis.interfaces
                if i.iface_id and i.bridge == self.chassis.integration_bridge}

    def in_ha_group(self, pb: dict) -> bool:
        group = pb.get("ha_chassis_group")
        group = unwrap_optional(group)
        return bool(group) and group in self._ha_groups_here

    def related(self, pb: dict) -> bool:
        """Is ``pb`` one of the ports ovn-controller installs port-specific flows for here?
        (binding.c: patch, vtep, localnet and localport ports everywhere; the others
        where they are bound; chassisredirect where the chassis is in its HA group.)"""
        kind = pb.get("type") or ""
        if kind in ("patch", "vtep", "localnet"):
            return True
        if kind == "localport":
            return pb.get("logical_port") in self._iface_ids
        if kind == "chassisredirect":
            return self.bound_here(pb) or self.in_ha_group(pb)
        return self.bound_here(pb)

    @cached_property
    def datapaths(self) -> set[str]:
        """Datapaths of ports bound here, and every datapath reached from them through
        patch (and local l3gateway) ports, as local_data.c add_local_datapath__ does."""
        local = {pb["datapath"] for pb in self.names.rows("Port_Binding")
                 if self.bound_here(pb) or (pb.get("type") == "chassisredirect"
                                            and self.in_ha_group(pb))}
        todo = list(local)
        while todo:
            for pb in self.names.ports_on(todo.pop()):
                if pb.get("type") not in ("patch", "l3gateway"):
                    continue
                peer = self.names.ports_by_name.get((pb.get("options") or {}).get("peer", ""))
                if peer is None or not self._peer_is_local(pb):
                    continue
                if peer["datapath"] not in local:
                    local.add(peer["datapath"])
                    todo.append(peer["datapath"])
        return local

    def _peer_is_local(self, pb: dict) -> bool:
        """local_data.c need_add_peer_to_local: distributed patches yes; a distributed
        gateway port only when its chassisredirect port is not always-redirect, or this
        chassis is in its HA group; an l3gateway port only where it is bound."""
        if pb.get("type") == "l3gateway":
            return self.bound_here(pb)
        crp_name = (pb.get("options") or {}).get("chassis-redirect-port")
        if not crp_name:
            return True
        crp = self.names.ports_by_name.get(crp_name)
        if crp is None:
            return False
        if (crp.get("options") or {}).get("always-redirect") != "true":
            return True
        return self.in_ha_group(crp)


class LogicalAuditor:
    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot
        self.names = SouthboundIndex(snapshot)
        self._locals: dict[str, LocalDatapaths] = {}

    # What every chassis' audit reads of the SB, decoded before workers are forked.
    _SHARED_TABLES = ("Port_Binding", "Chassis", "Chassis_Private", "Encap", "SB_Global",
                      "HA_Chassis", "HA_Chassis_Group", "Logical_DP_Group", "Datapath_Binding",
                      "Address_Set", "Port_Group", "Chassis_Template_Var")

    def prepare(self) -> None:
        """Build now what the audit of every chassis shares (each lflow's columns, the
        SB tables it reads, the port index), so forked workers share it copy-on-write
        instead of each building its own."""
        for owner, built in ((self, "lflow_columns"), (self, "_empty_sets"),
                             (self.names, "cookie_sets"), (self.names, "ports_by_name")):
            getattr(owner, built)
        for table in self._SHARED_TABLES:
            self.names.rows(table)

    def local(self, chassis: Chassis) -> LocalDatapaths:
        """The chassis' local datapaths, built once (the health audit asks too)."""
        found = self._locals.get(chassis.name)
        if found is None or found.chassis is not chassis:
            found = self._locals[chassis.name] = LocalDatapaths(self.names, chassis)
        return found

    @cached_property
    def _dp_groups(self) -> dict[str, list[str]]:
        return {g["_uuid"]: g.get("datapaths", []) for g in self.names.rows("Logical_DP_Group")}

    def lflow_datapaths(self, lflow: dict) -> list[str]:
        dp = unwrap_optional(lflow.get("logical_datapath"))
        if dp:
            return [dp]
        group = unwrap_optional(lflow.get("logical_dp_group"))
        return list(self._dp_groups.get(group, [])) if group else []

    @cached_property
    def _empty_sets(self) -> dict[str, set[str]]:
        sets = {row["name"] for row in self.names.rows("Address_Set") if not row.get("addresses")}
        groups = {row["name"] for row in self.names.rows("Port_Group") if not row.get("ports")}
        return {"address set": sets, "port group": groups}

    def audit_chassis(self, chassis: Chassis) -> ChassisLogicalAudit:
        result = ChassisLogicalAudit(chassis.name)
        bridge = chassis.bridges.get(chassis.integration_bridge)
        if bridge is None:
            return result
        local = self.local(chassis)
        cookie_of, table_of, lines, conj_tables = self._heads(bridge, result.garbled)
        cookies = Counter(cookie_of)
        tables_of: dict[int, set[int]] = {}
        for cookie, table in set(zip(cookie_of, table_of, strict=True)):
            tables_of.setdefault(cookie, set()).add(table)
        offsets = self._table_offsets(tables_of)
        result.verdicts = self._verdicts(chassis, local, cookies, conj_tables, offsets)
        result.stale = self._stale(cookie_of, table_of, lines, offsets, cookies)
        return result

    @staticmethod
    def _heads(bridge, garbled: list[str]) -> tuple[list[int], list[int], list, set[int]]:
        """The cookie, the table and the line of every readable flow line, and the tables
        with a conjunction; the other lines into ``garbled``.  When every line has the
        dump-flows head, C loops read them (``fast_heads``), a version-3 file's lines
        as the bytes it stores (``_line_text`` gives a line's text back); else each line
        is read as ``read_head`` reads it."""
        stored = stored_heads(bridge.flow_index(), bridge.flow_count)
        if stored is not None:      # a snapshot file's: read when it was saved
            cookies, tables, conjunctive = stored
            return cookies, tables, bridge.lines(), conjunctive
        encoded = bridge.encoded_lines()
        if encoded is not None:
            fast = fast_heads(encoded, DUMP_HEAD_BYTES, b" actions=", b"conjunction(")
            if fast is not None:
                return fast
            lines = [line.decode("utf-8", "surrogateescape") for line in encoded]
        else:
            lines = bridge.flows
        fast = fast_heads(lines, DUMP_HEAD, " actions=", "conjunction(")
        if fast is not None:
            return fast
        cookie_of: list[int] = []
        table_of: list[int] = []
        readable: list[str] = []
        for line in lines:
            head = read_head(line)
            if head is None:
                garbled.append(line)
            else:
                cookie_of.append(head[0])
                table_of.append(head[1])
                readable.append(line)
        return cookie_of, table_of, readable, {
            table for table, line in zip(table_of, readable, strict=True)
            if "conjunction(" in line}

    def _verdicts(self, chassis: Chassis, local: LocalDatapaths, cookies: Counter,
                  conj_tables: set[int], offsets: dict[str, int]) -> LflowVerdicts:
        """Each lflow installed (it has OpenFlow flows on a local datapath), expected (a
        reason ovn-controller has) or MISSING."""
        lf = self.lflow_columns
        local_datapaths = local.datapaths
        names = self._datapath_names
        here_of = {ref: [d for d in dps if d in local_datapaths]
                   for ref, dps in lf.datapaths.items()}
        dp_names = {ref: [names[d] for d in (here or lf.datapaths[ref])]
                    for ref, here in here_of.items()}
        local_refs = {ref for ref, here in here_of.items() if here}
        flows = list(map(cookies.get, lf.cookies, repeat(0)))
        is_local = list(map(local_refs.__contains__, lf.refs))
        everyone = range(len(flows))
        reasons = dict.fromkeys(compress(everyone, map(not_, is_local)), NOT_LOCAL)
        missing_at: list[int] = []
        for i in compress(everyone, map(and_, is_local, map(not_, flows))):
            reason = self._why_none(i, chassis, local, conj_tables, offsets)
            if reason:
                reasons[i] = reason
            else:
                missing_at.append(i)
        if missing_at:
            missing_at = self._deduplicated(missing_at, flows, local_refs, dp_names, reasons)
        verdicts = LflowVerdicts(lf, flows, reasons, [], missing_at, dp_names)
        for i in missing_at:
            status = verdicts.status(i, "missing")
            known = {dp: self.names.datapath_cms(dp) for dp in status.datapaths}
            status.datapath_cms = {dp: n.label for dp, n in known.items() if n}
            status.northbound = [nb.describe(self.names.cms)
                                 for nb in self.names.northbound_for(self._lflow_row(i))]
            verdicts.missing.append(status)
        verdicts.counts["missing"] = len(missing_at)
        verdicts.counts["installed"] -= len(missing_at)
        return verdicts

    @cached_property
    def lflow_columns(self) -> LflowColumns:
        """Each lflow's columns, from the file's projection of them when it has one."""
        projection = getattr(self.names.sb, "projection", None)
        found = projection("Logical_Flow") if projection is not None \
            and "Logical_Flow" in self.names.sb else None
        if found is not None:
            return LflowColumns(
                found["_uuid"], [stage if stage is not None else "?"
                                 for stage in found["external_ids:stage-name"]],
                found["pipeline"], found["table_id"], found["priority"], found["match"],
                found["actions"], found["tags:in_out_port"], found["logical_datapath"],
                found["logical_dp_group"], self._dp_groups)
        rows = self.names.rows("Logical_Flow")
        return LflowColumns(
            [lf["_uuid"] for lf in rows],
            [(lf.get("external_ids") or {}).get("stage-name", "?") for lf in rows],
            [lf.get("pipeline", "?") for lf in rows], [lf.get("table_id", 0) for lf in rows],
            [lf.get("priority", 0) for lf in rows], [lf.get("match", "") for lf in rows],
            [lf.get("actions", "") for lf in rows],
            [(lf.get("tags") or {}).get("in_out_port") for lf in rows],
            [lf.get("logical_datapath") for lf in rows],
            [lf.get("logical_dp_group") for lf in rows], self._dp_groups)

    def _lflow_row(self, i: int) -> dict:
        """Lflow i's SB row (its NB rows are named from it): by its cookie in a version-3
        file, not decoding the table."""
        uuid = self.lflow_columns.uuids[i]
        sb = self.names.sb
        if getattr(sb, "keyed", None) is not None and sb.keyed("Logical_Flow", True):
            found = [row for row in sb.with_cookie("Logical_Flow", int(uuid[:8], 16))
                     if row.get("_uuid") == uuid]
            if len(found) == 1:
                return found[0]
        return self.names.rows("Logical_Flow")[i]

    @cached_property
    def _datapath_names(self) -> _DatapathNames:
        return _DatapathNames(self.names)

    def _table_offsets(self, tables_of) -> dict[str, int]:
        """OpenFlow table = logical table_id + offset, per pipeline, from installed flows:
        each pipeline's most common (first OpenFlow table of the cookie - table_id)."""
        lf = self.lflow_columns
        first = {cookie: min(tables) for cookie, tables in tables_of.items()}
        firsts = list(map(first.get, lf.cookies))
        has = list(map(is_not, firsts, repeat(None)))
        pairs = Counter(zip(compress(lf.pipelines, has),
                            map(sub, compress(firsts, has), compress(lf.table_ids, has)),
                            strict=True))
        votes: dict[str, Counter] = {"ingress": Counter(), "egress": Counter()}
        for (pipeline, offset), count in pairs.items():    # first seen first, as counted
            if pipeline in votes:
                votes[pipeline][offset] = count
        return {p: c.most_common(1)[0][0] for p, c in votes.items() if c}

    def _why_none(self, i: int, chassis: Chassis, local: LocalDatapaths, conj_tables,
                  offsets) -> str | None:
        lf = self.lflow_columns
        match = lf.matches[i]
        for negated, port in _RESIDENT.findall(match):
            pb = self.names.ports_by_name.get(port)
            resident = pb is not None and local.bound_here(pb)
            if (not negated and not resident) or (negated and resident):
                return NOT_RESIDENT.format(port=port) if not negated else (
                    f"!is_chassis_resident({port}) is false here")
        tagged = lf.ports[i]
        if tagged:
            pb = self.names.ports_by_name.get(tagged)
            if pb is None or not local.related(pb):
                return _not_related(tagged, pb)
        if lf.stages[i].startswith("ls_"):     # a logical switch's stage
            wanted = "inport" if lf.pipelines[i] == "ingress" else "outport"
            for which, port in _PORT_EQ.findall(match):
                pb = self.names.ports_by_name.get(port)
                if which == wanted and pb is not None and not local.related(pb):
                    return _not_related(port, pb)
        for what, pattern in (("address set", _ADDRESS_SET), ("port group", _PORT_GROUP)):
            for name in pattern.findall(match):
                if name in self._empty_sets[what] or self._unknown(what, name):
                    return EMPTY_SET.format(what=what, name=name)
        for name in _TEMPLATE.findall(match + " " + lf.actions[i]):
            if not self._template_defined(chassis, name):
                return TEMPLATE.format(name=name)
        if match.strip() in ("0", "false"):
            return NEVER_TRUE
        table = offsets.get(lf.pipelines[i], 0) + lf.table_ids[i]
        if table in conj_tables and ("{" in match or "$" in match or "@" in match):
            return CONJUNCTION.format(table=table)
        return None

    def _unknown(self, what: str, name: str) -> bool:
        table = "Address_Set" if what == "address set" else "Port_Group"
        return not any(row["name"] == name for row in self.names.rows(table))

    def _template_defined(self, chassis: Chassis, name: str) -> bool:
        for row in self.names.rows("Chassis_Template_Var"):
            if row.get("chassis") in (chassis.system_id, chassis.hostname):
                return name in (row.get("variables") or {})
        return False

    @cached_property
    def _pipeline_tables(self) -> dict[str, int]:
        """How many logical tables each pipeline has (its highest table_id + 1)."""
        lf = self.lflow_columns
        return {p: max((table_id for pipeline, table_id
                        in zip(lf.pipelines, lf.table_ids, strict=True)
                        if pipeline == p), default=-1) + 1
                for p in ("ingress", "egress")}

    def _deduplicated(self, missing_at: list[int], flows: list[int], local_refs: set,
                      dp_names: dict[tuple, list[str]], reasons: dict[int, str]) -> list[int]:
        """ovn-controller installs one OpenFlow flow per table, priority and match
        (ofctrl.c: an installed flow keeps a list of the desired flows that want it, and
        only the first, the preferred, is installed with its cookie): a MISSING lflow
        that shares them with an installed one on one of its datapaths has lost to it.
        Identical actions: the flow is the same (deduplicated, ofctrl.c
        ofctrl_check_and_add_flow_metered); different ones: a conflict one lflow won.
        Returns the lflows still MISSING; the others' reasons go into ``reasons``."""
        lf = self.lflow_columns

        def keys(i: int):
            head = (lf.pipelines[i], lf.table_ids[i], lf.priorities[i], lf.matches[i])
            return [(*head, dp) for dp in dp_names[lf.refs[i]]]
        wanted = {key for i in missing_at for key in keys(i)}
        kept: dict[tuple, int] = {}     # the first installed lflow with each key
        for i, ref in enumerate(lf.refs):
            if flows[i] and ref in local_refs:
                for key in keys(i):
                    if key in wanted:
                        kept.setdefault(key, i)
        still = []
        for i in missing_at:
            for key in keys(i):
                other = kept.get(key)
                if other is not None:
                    template = DEDUPLICATED if lf.actions[other] == lf.actions[i] \
                        else SAME_MATCH
                    reasons[i] = template.format(other=lf.uuids[other][:8])
                    break
            else:
                still.append(i)
        return still

    def _stale(self, cookie_of: list[int], table_of: list[int], lines: list,
               offsets: dict[str, int], cookies: Counter) -> list[StaleFlow]:
        """Flows whose cookie no SB row explains, or of the wrong kind for their table."""
        stale: list[StaleFlow] = []
        lflow_cookies = self.names.cookie_sets["Logical_Flow"]
        suspects = {cookie for cookie in cookies
                    if cookie != 0 and cookie & 0xFFFFFFFF not in lflow_cookies}
        if not suspects:
            return stale    # every flow's cookie is a logical flow's (or 0): none stale
        ingress = offsets.get("ingress")
        egress = offsets.get("egress")
        n_tables = self._pipeline_tables
        pipeline_tables = set()
        if ingress is not None:
            pipeline_tables |= set(range(ingress, ingress + n_tables["ingress"]))
        if egress is not None:
            pipeline_tables |= set(range(egress, egress + n_tables["egress"]))
        owners_of: dict[int, list[str]] = {}
        for i in compress(range(len(cookie_of)), map(suspects.__contains__, cookie_of)):
            cookie, table, line = cookie_of[i], table_of[i], lines[i]
            owners = owners_of.get(cookie)
            if owners is None:
                owners = owners_of[cookie] = self.names.cookie_tables(cookie)
            if not owners:
                stale.append(StaleFlow(cookie, _line_text(line),
                                       "its cookie matches no Southbound row"))
            elif table in pipeline_tables and "Logical_Flow" not in owners:
                kinds = ", ".join(sorted(set(owners)))
                stale.append(StaleFlow(cookie, _line_text(line),
                                       f"a logical pipeline table holds a flow whose cookie "
                                       f"is a {kinds} row, not a logical flow"))
        return stale
