"""The node document's schema: what a node must hand over, and one checker for it.

A node is untrusted.  Its document (the agent's JSON, or what the agentless
reader built from the node's command output) is checked here, at the
boundary, against one declarative description of the expected types; a
wrongly-typed answer is then that node's error, never an exception deep in
the collector or in a later stage.  The description follows the schema, not
the data, so checking cannot recurse deeper than the schema does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class DocumentError(ValueError):
    """The node's document does not have the expected shape; one line, naming where."""


@dataclass(frozen=True)
class ListOf:
    item: Any


@dataclass(frozen=True)
class MapOf:
    """An object with string keys, every value of one type."""

    value: Any


@dataclass(frozen=True)
class Record:
    """An object with known keys; ``required`` must be there.  Any other key's value
    must be ``others``, or with None is ignored (and must not be kept)."""

    fields: dict
    required: frozenset = frozenset()
    others: Any = None


@dataclass(frozen=True)
class OneOf:
    options: tuple


NUMBER = (int, float)        # bool is not a number here


def optional(kind):
    return OneOf((kind, type(None)))


def ovsdb_optional(kind):
    """An optional OVSDB scalar: the value, or a (usually empty) set of them."""
    return OneOf((kind, ListOf(kind)))


STRINGS = MapOf(str)
UUIDS = ListOf(str)
# Any other OVSDB cell, decoded: an atom, a set of atoms or a map of them -- nothing
# nested deeper (which no OVSDB column holds, and which costs far more than its bytes).
ATOM = OneOf((str, int, float, bool))
CELL = OneOf((str, int, float, bool, ListOf(ATOM), MapOf(ATOM)))

# The OVS tables' columns that ofrace interprets; any other column must be a plain CELL.
OVSDB_ROWS = {
    "Open_vSwitch": Record({"_uuid": str, "external_ids": STRINGS, "other_config": STRINGS,
                            "ovs_version": ovsdb_optional(str)}, others=CELL),
    "Bridge": Record({"_uuid": str, "name": str, "ports": UUIDS, "external_ids": STRINGS,
                      "other_config": STRINGS, "datapath_type": str,
                      "fail_mode": ovsdb_optional(str), "datapath_id": ovsdb_optional(str)},
                     frozenset({"_uuid", "name"}), CELL),
    "Port": Record({"_uuid": str, "name": str, "interfaces": UUIDS, "tag": ovsdb_optional(int),
                    "trunks": ListOf(int), "external_ids": STRINGS, "other_config": STRINGS},
                   frozenset({"_uuid", "name"}), CELL),
    "Interface": Record({"_uuid": str, "name": str, "type": str,
                         "ofport": ovsdb_optional(int), "ofport_request": ovsdb_optional(int),
                         "options": STRINGS, "external_ids": STRINGS, "status": STRINGS,
                         "bfd_status": STRINGS, "error": ovsdb_optional(str),
                         "mac_in_use": ovsdb_optional(str), "admin_state": ovsdb_optional(str),
                         "link_state": ovsdb_optional(str), "bfd": STRINGS,
                         "cfm_mpid": ovsdb_optional(int), "cfm_fault": ovsdb_optional(bool),
                         "cfm_remote_opstate": ovsdb_optional(str)},
                        frozenset({"_uuid", "name"}), CELL),
    "SSL": Record({"private_key": ovsdb_optional(str), "certificate": ovsdb_optional(str),
                   "ca_cert": ovsdb_optional(str)}, others=CELL),
}


def _ovsdb() -> Record:
    return Record({table: ListOf(row) for table, row in OVSDB_ROWS.items()})


def _bridge(resolved: bool) -> Record:
    """One bridge's reads; before ``resolve_blobs`` a streamed dump is ``{"blob": id}``."""
    blob = Record({"blob": int}, frozenset({"blob"}))

    def streamed(kind):
        return kind if resolved else OneOf((kind, blob))

    lines = ListOf(str)
    # the flow tables' digests (and counters, when the collector's text is unchanged:
    # then "flows" is empty and "flows_unchanged" true), ``ofrace_agent.read_flows``
    tables = Record({"digests": STRINGS, "error": str, "sizes": ListOf(ListOf(int)),
                     "counters": Record({"count": int, "data": str},
                                        frozenset({"count", "data"}))})
    return Record({"name": str, "flows": streamed(lines), "groups": streamed(lines),
                   "meters": streamed(lines), "tlv_map": streamed(str),
                   "ports_desc": streamed(str), "fdb": streamed(str), "errors": STRINGS,
                   "flow_tables": tables, "flows_unchanged": bool})


def node_document(resolved: bool = True) -> Record:
    """The whole document (``resolved``: streamed dumps already put back as lines)."""
    text = optional(str)
    return Record({
        "agent_version": int, "mode": str, "started": optional(NUMBER),
        "finished": optional(NUMBER), "hostname": text, "system_id": text,
        "integration_bridge": text, "ovs_version": text, "ovn_version": text,
        "ovn_controller_status": text, "dpif": str,
        "conntrack": text, "conntrack_truncated": bool,
        "errors": ListOf(Record({"what": str, "error": str}, frozenset({"what", "error"}))),
        "bridges": MapOf(_bridge(resolved)),
        "ovsdb": _ovsdb(),
        "commands": ListOf(Record({"argv": ListOf(str), "rc": int, "started": NUMBER,
                                   "elapsed": NUMBER, "error": text},
                                  frozenset({"argv", "rc", "started", "elapsed"}))),
    }, frozenset({"agent_version"}))


DOCUMENT = node_document()
UNRESOLVED_DOCUMENT = node_document(resolved=False)


def _name(kind) -> str:
    if isinstance(kind, tuple):
        return "a number"
    if isinstance(kind, type):
        return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
                type(None): "null"}.get(kind, kind.__name__)
    if isinstance(kind, ListOf):
        return "a list"
    if isinstance(kind, (MapOf, Record)):
        return "an object"
    names = [_name(k) for k in kind.options]
    return ", ".join(names[:-1]) + " or " + names[-1]


def _got(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true or false",
            int: "an integer", float: "a number", type(None): "null"}.get(type(value), "?")


def _key(key: str) -> str:
    text = repr(key)
    return text if len(text) <= 40 else text[:37] + "…'"


def _matches(value, kind) -> bool:
    """Type of ``value`` against a leaf or a container kind, without looking inside."""
    if isinstance(kind, OneOf):
        return any(_matches(value, option) for option in kind.options)
    if isinstance(kind, type) or isinstance(kind, tuple):
        return isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)
    if isinstance(kind, ListOf):
        return isinstance(value, list)
    return isinstance(value, dict)


def _plain_types(kind) -> frozenset:
    """The exact Python types ``kind`` allows, if it is made of plain types only
    (a JSON value's type is exact: no subclasses; bool is not an int here)."""
    if isinstance(kind, type):
        return frozenset((kind,))
    if isinstance(kind, tuple):
        return frozenset(kind)
    if isinstance(kind, OneOf):
        parts = [_plain_types(option) for option in kind.options]
        return frozenset().union(*parts) if all(parts) else frozenset()
    return frozenset()


def check(value, kind, where: str = "document") -> None:
    """Raise DocumentError naming the first place where ``value`` is not ``kind``."""
    if isinstance(kind, OneOf):
        fitting = [option for option in kind.options if _matches(value, option)]
        if len(fitting) == 1:  # say what is wrong inside it
            kind = fitting[0]
        else:
            for option in fitting:
                try:
                    return check(value, option, where)
                except DocumentError:
                    continue
            raise DocumentError(f"{where}: expected {_name(kind)}, got {_got(value)}")
    if not _matches(value, kind):
        raise DocumentError(f"{where}: expected {_name(kind)}, got {_got(value)}")
    if isinstance(kind, ListOf):
        plain = _plain_types(kind.item)
        if plain:  # the long lists (flow lines, big sets): one quick pass
            if not set(map(type, value)) <= plain:
                bad = next(i for i, v in enumerate(value) if type(v) not in plain)
                check(value[bad], kind.item, f"{where}[{bad}]")
            return
        for i, v in enumerate(value):
            check(v, kind.item, f"{where}[{i}]")
    elif isinstance(kind, MapOf):
        for k, v in value.items():
            if not isinstance(k, str):
                raise DocumentError(f"{where}: a key is {_got(k)}, not a string")
            check(v, kind.value, f"{where}[{_key(k)}]")
    elif isinstance(kind, Record):
        missing = kind.required - value.keys()
        if missing:
            raise DocumentError(f"{where}: missing {', '.join(sorted(missing))}")
        for k, v in value.items():
            if not isinstance(k, str):
                raise DocumentError(f"{where}: a key is {_got(k)}, not a string")
            sub = kind.fields.get(k, kind.others)
            if sub is not None:
                check(v, sub, f"{where}.{k}" if k in kind.fields else f"{where}[{_key(k)}]")


def check_document(doc, resolved: bool = True) -> None:
    """Raise DocumentError if ``doc`` is not a node document ofrace can use."""
    check(doc, DOCUMENT if resolved else UNRESOLVED_DOCUMENT)
