"""Which bucket a select group takes, computed as ovs-vswitchd and its datapath do.

ofproto-dpif.c ``group_set_selection_method`` picks the method from the group's
properties:

* ``selection_method=hash,fields(...)``: ofproto-dpif-xlate.c
  ``pick_hash_fields_select_group`` hashes the listed fields (in OVS's field order,
  masked, fields whose prerequisites the packet lacks skipped) from the basis
  ``hash_uint64(selection_method_param)``; ``group_best_live_bucket`` then takes the
  bucket with the highest ``(hash_int(bucket_id, basis) & 0xffff) * weight``, the
  later one on a tie.  Deterministic: the same on every datapath.
* ``selection_method=dp_hash`` (OVN's load balancers without selection fields), and
  no method at all: ``group_setup_dp_hash_table`` spreads 16..256 hash values over
  the buckets by weight (Webster's method); the translation emits
  ``hash(alg(basis)),recirc`` and, after the recirculation, takes
  ``hash_map[dp_hash & hash_mask]`` (``pick_dp_hash_select_group``).  The datapath
  computes ``dp_hash``: the userspace one (dpif-netdev, odp-execute.c
  ``OVS_ACTION_ATTR_HASH``) as ``hash_int(rss_hash, basis)`` for ``l4`` where the
  RSS hash is ``miniflow_hash_5tuple`` of the packet as it was received (dpif-netdev.c
  ``dpif_netdev_packet_get_rss_hash``; a NIC's own RSS hash would replace it), and as
  ``flow_hash_symmetric_l3l4`` for ``sym_l4``; the kernel's uses ``skb_get_hash`` with
  a per-boot random seed: not computable.

Buckets are taken as live (``watch_port``/``watch_group`` liveness is not in the
snapshot).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ofrace.openflow.bridge import Group
from ofrace.openflow.fields import FIELDS, parse_value
from ofrace.openflow.flowtext import split_top_level
from ofrace.simulate import hashing
from ofrace.snapshot import Chassis

# OVS_HASH_ALG_* (datapath/linux/compat/include/linux/openvswitch.h)
HASH_ALG_L4, HASH_ALG_SYM_L4 = 0, 1
MAX_HASH_VALUES = 256  # ofproto-dpif.c MAX_SELECT_GROUP_HASH_VALUES


def _is_ip(p: dict) -> bool:
    return p.get("dl_type") in (0x0800, 0x86DD)


def _proto(number: int, ipv6: bool | None = None):
    def ok(p: dict) -> bool:
        if p.get("nw_proto") != number:
            return False
        return _is_ip(p) if ipv6 is None else p.get("dl_type") == (0x86DD if ipv6 else 0x0800)
    return ok


def _always(p: dict) -> bool:
    return True


# Hashable fields: OVS name → (place in OVS's mf_field_id order, bytes, our packet field,
# prerequisite).  Order and widths from include/openvswitch/meta-flow.h (v3.1.0).
_FIELDS: dict[str, tuple[int, int, str, object]] = {
    "metadata": (85, 8, "metadata", _always),
    "pkt_mark": (90, 4, "pkt_mark", _always),
    **{f"reg{i}": (102 + i, 4, f"reg{i}", _always) for i in range(16)},
    "eth_src": (130, 6, "dl_src", _always),
    "eth_dst": (131, 6, "dl_dst", _always),
    "eth_type": (132, 2, "dl_type", _always),
    "vlan_tci": (133, 2, "vlan_tci", _always),
    "ip_src": (142, 4, "nw_src", lambda p: p.get("dl_type") == 0x0800),
    "ip_dst": (143, 4, "nw_dst", lambda p: p.get("dl_type") == 0x0800),
    "ipv6_src": (144, 16, "ipv6_src", lambda p: p.get("dl_type") == 0x86DD),
    "ipv6_dst": (145, 16, "ipv6_dst", lambda p: p.get("dl_type") == 0x86DD),
    "ipv6_label": (146, 4, "ipv6_label", lambda p: p.get("dl_type") == 0x86DD),
    "nw_proto": (147, 1, "nw_proto", _is_ip),
    "arp_op": (152, 2, "nw_proto", lambda p: p.get("dl_type") in (0x0806, 0x8035)),
    "arp_spa": (153, 4, "nw_src", lambda p: p.get("dl_type") in (0x0806, 0x8035)),
    "arp_tpa": (154, 4, "nw_dst", lambda p: p.get("dl_type") in (0x0806, 0x8035)),
    "tcp_src": (157, 2, "tp_src", _proto(6)),
    "tcp_dst": (158, 2, "tp_dst", _proto(6)),
    "udp_src": (160, 2, "tp_src", _proto(17)),
    "udp_dst": (161, 2, "tp_dst", _proto(17)),
    "sctp_src": (162, 2, "tp_src", _proto(132)),
    "sctp_dst": (163, 2, "tp_dst", _proto(132)),
    "icmp_type": (164, 1, "tp_src", _proto(1, ipv6=False)),
    "icmp_code": (165, 1, "tp_dst", _proto(1, ipv6=False)),
    "icmpv6_type": (166, 1, "tp_src", _proto(58, ipv6=True)),
    "icmpv6_code": (167, 1, "tp_dst", _proto(58, ipv6=True)),
}
# Other spellings OVS accepts (and some dumps keep).
_FIELD_ALIASES = {"dl_src": "eth_src", "dl_dst": "eth_dst", "dl_type": "eth_type",
                  "nw_src": "ip_src", "nw_dst": "ip_dst", "ipv4_src": "ip_src",
                  "ipv4_dst": "ip_dst", "ip_proto": "nw_proto", "tp_src": "tcp_src",
                  "tp_dst": "tcp_dst", "icmpv4_type": "icmp_type", "icmpv4_code": "icmp_code"}


class GroupModelError(ValueError):
    """A group property this model does not know (named so the trace can say so)."""


@dataclass
class HashField:
    name: str
    order: int
    n_bytes: int
    packet_field: str
    mask: int


@dataclass
class SelectGroup:
    """A select group's selection properties and its buckets' ids and weights."""

    method: str  # "hash", "dp_hash" or "" (none given)
    param: int = 0
    fields: list[HashField] = field(default_factory=list)
    bucket_ids: list[int] = field(default_factory=list)
    weights: list[int] = field(default_factory=list)


def parse_select_group(group: Group) -> SelectGroup:
    """The selection properties of a ``dump-groups -O OpenFlow15`` line."""
    head = group.raw.split(",bucket=", 1)[0]
    method = re.search(r"selection_method=(\w+)", head)
    param = re.search(r"selection_method_param=(\w+)", head)
    fields = re.search(r"fields\(([^)]*)\)", head)
    result = SelectGroup(method.group(1) if method else "",
                         int(param.group(1), 0) if param else 0)
    for item in (fields.group(1).split(",") if fields and fields.group(1) else ()):
        name, _, mask_text = item.strip().partition("=")
        name = _FIELD_ALIASES.get(name, name)
        known = _FIELDS.get(name)
        if known is None:
            raise GroupModelError(f"group {group.group_id}: hashing field {name!r} is not "
                                  "modelled")
        order, n_bytes, packet_field, _ = known
        mask = (1 << (8 * n_bytes)) - 1
        if mask_text:
            spec = FIELDS.get(packet_field)
            mask = (parse_value(spec, mask_text)[0] if spec is not None
                    else int(mask_text, 0)) & mask
        result.fields.append(HashField(name, order, n_bytes, packet_field, mask))
    result.fields.sort(key=lambda f: f.order)
    for i, bucket in enumerate(group.buckets):
        bucket_id, weight = i, 1  # OVS numbers buckets in order; the default weight is 1
        for item in split_top_level(bucket):
            if item.startswith("bucket_id:"):
                bucket_id = int(item[10:], 0)
            elif item.startswith("weight:"):
                weight = int(item[7:], 0)
        result.bucket_ids.append(bucket_id)
        result.weights.append(weight)
    return result


def hash_fields_basis(select: SelectGroup, packet: dict) -> int:
    """ofproto-dpif-xlate.c ``pick_hash_fields_select_group``'s hash of the fields."""
    basis = hashing.hash_uint64(select.param)
    for f in select.fields:
        if not _FIELDS[f.name][3](packet):
            continue
        value = packet.get(f.packet_field, 0) & f.mask
        basis = hashing.hash_bytes(value.to_bytes(f.n_bytes, "big"), basis)
    return basis


def bucket_scores(select: SelectGroup, basis: int) -> list[int]:
    """Each bucket's score in ``group_best_live_bucket``: (hash_int(bucket_id, basis) &
    0xffff) * weight."""
    return [(hashing.hash_int(b, basis) & 0xFFFF) * w
            for b, w in zip(select.bucket_ids, select.weights, strict=True)]


def best_bucket(select: SelectGroup, basis: int) -> tuple[int | None, list[int]]:
    """ofproto-dpif-xlate.c ``group_best_live_bucket`` with every bucket of weight > 0
    live: (bucket index, every score); None if no bucket has weight."""
    order = ranked_by_score(select, basis)
    return (order[0] if order else None), bucket_scores(select, basis)


def ranked_by_score(select: SelectGroup, basis: int) -> list[int]:
    """Bucket indexes in the order ``group_best_live_bucket`` prefers them: highest score
    first, a tie to the later bucket (its ``score >= best_score``); weight 0 is never live."""
    scores = bucket_scores(select, basis)
    return sorted((i for i, w in enumerate(select.weights) if w > 0),
                  key=lambda i: (-scores[i], -i))


def dp_hash_scan(plan: DpHashPlan, dp_hash: int) -> list[int]:
    """Bucket indexes in the order ``pick_dp_hash_select_group`` tries them: the slot
    ``dp_hash & mask``, then the following slots, each bucket once."""
    mask = len(plan.table) - 1
    return list(dict.fromkeys(plan.table[(dp_hash + k) & mask] for k in range(mask + 1)))


def bucket_watch(bucket: str) -> tuple[int | None, int | None]:
    """A bucket's ``watch_port`` and ``watch_group`` (None: not set)."""
    port = group = None
    for item in split_top_level(bucket):
        if item.startswith("watch_port:"):
            port = _port_number(item[11:])
        elif item.startswith("watch_group:"):
            group = int(item[12:], 0)
    return port, group


def _port_number(text: str) -> int | None:
    if text.isdigit():
        return int(text)
    return {"ANY": None, "CONTROLLER": 0xFFFD, "LOCAL": 0xFFFE}.get(text.upper())


def dp_hash_table(weights: list[int], max_hash: int = MAX_HASH_VALUES) -> list[int] | None:
    """ofproto-dpif.c ``group_setup_dp_hash_table``: bucket index per hash value (the
    table's length is the mask + 1), or None when OVS falls back to the default method."""
    total = sum(weights)
    positive = [w for w in weights if w > 0]
    if not weights or total == 0:
        return None
    min_weight = min(positive)
    min_slots = -(-total // min_weight)
    n_hash = max(16, 1 << (min_slots - 1).bit_length())
    if n_hash > MAX_HASH_VALUES or (max_hash and n_hash > max_hash):
        return None
    divisors = [1] * len(weights)
    values = [float(w) for w in weights]
    table = []
    for _ in range(n_hash):
        winner = 0
        for i in range(1, len(weights)):
            if values[i] > values[winner]:
                winner = i
        divisors[winner] += 2
        values[winner] = weights[winner] / divisors[winner]
        table.append(winner)
    return table


@dataclass
class DpHashPlan:
    """How a dp_hash group chooses: the algorithm and basis of the ``hash`` action, and
    the table from hash value to bucket."""

    alg: int
    basis: int
    table: list[int]


def dp_hash_plan(select: SelectGroup) -> DpHashPlan | None:
    """ofproto-dpif.c ``group_set_selection_method`` for dp_hash (explicit or the
    default when no method is given); None: OVS uses its default hash instead."""
    if select.method == "dp_hash":
        table = dp_hash_table(select.weights, 0)
        if table is None:
            return None
        alg = select.param >> 32
        return DpHashPlan(alg if alg <= HASH_ALG_SYM_L4 else HASH_ALG_L4,
                          select.param & 0xFFFFFFFF, table)
    if select.method == "":
        table = dp_hash_table(select.weights, MAX_HASH_VALUES)
        return DpHashPlan(HASH_ALG_SYM_L4, 0, table) if table is not None else None
    return None


def userspace_dp_hash(plan: DpHashPlan, received: dict, current: dict) -> int:
    """The dp_hash the userspace datapath computes: for ``l4`` from the RSS hash of the
    packet as received (``received``), for ``sym_l4`` from the packet as it is now."""
    if plan.alg == HASH_ALG_SYM_L4:
        return hashing.flow_hash_symmetric_l3l4(current, plan.basis)
    return hashing.hash_int(hashing.flow_hash_5tuple(received, 0), plan.basis)


def datapath_kind(dpif_text: str, datapath_type: str) -> str:
    """"userspace" (dpif-netdev, whose dp_hash is computable) or "kernel" (it is not),
    from the bridge's ``datapath_type`` and ``ovs-appctl dpif/show``: OVS's dummy
    datapath (``--enable-dummy``, test labs) is dpif-netdev even under the name
    "system", and shows its ports as ``(dummy…)``."""
    if datapath_type in ("netdev", "dummy") or "(dummy" in dpif_text:
        return "userspace"
    return "kernel"


def datapath_kinds(chassis: Chassis) -> dict[str, str]:
    """``datapath_kind`` of each bridge in the chassis' OVSDB."""
    return {row.get("name"): datapath_kind(chassis.dpif, row.get("datapath_type") or "")
            for row in chassis.ovsdb.get("Bridge", [])}
