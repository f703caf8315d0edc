"""Which nodes to read and how: an inventory file, command-line specs, or the SB.

Inventory file (TOML)::

    [defaults]                 # applied to every [[node]] unless it says otherwise
    transport = "ssh"          # ssh | exec | local
    user = "root"
    identity = "~/.ssh/id_ed25519"
    known_hosts = "~/.ssh/known_hosts"
    timeout = 300              # seconds for the whole node: connect, commands, every byte
    max_output = "512M"        # bytes the node's answer may take (also after decompression)
    env = { OVS_RUNDIR = "/var/run/openvswitch" }

    [[node]]
    name = "ovn-worker"
    host = "192.0.2.14"        # ssh: address or ~/.ssh/config alias; port = 22

    [[node]]
    name = "ovn-worker2"
    transport = "exec"
    template = "docker exec -i {node}"    # {node} = this node's name
    # An OVN interconnect zone of its own (ovn-kubernetes' interconnect mode): the
    # node's zone NB and SB, read on the node through its transport.
    northbound = "unix:/var/run/ovn/ovnnb_db.sock"
    southbound = "unix:/var/run/ovn/ovnsb_db.sock"

    [southbound]
    remote = "tcp:10.0.0.1:6642"          # read from here with the local ovsdb-client,
    # via = "ovn-worker"                  # or through that node (its ovsdb-client;
                                          # remote defaults to its ovn-remote)
    [northbound]
    remote = "tcp:10.0.0.1:6641"

    [interconnect]            # zones joined by ovn-ic: the IC-SB, for the audit
    southbound = "tcp:10.0.0.1:6646"      # read from here (via = "NODE": through it)

On the command line a node is ``NAME=ssh://[user@]host[:port]``,
``NAME=exec:TEMPLATE`` or ``NAME=local``.

Every key and type is checked here, so a mistake is one line naming the file
and the node or key, never a traceback later.  Messages never repeat a
template or an env value (either may hold a credential).
"""

from __future__ import annotations

import ipaddress
import math
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from ofrace.collect import template as templates
from ofrace.collect.secrets import scrub
from ofrace.errors import InputError
from ofrace.snapshot import Problem

TRANSPORTS = ("ssh", "exec", "local")
NODE_KEYS = {"name", "transport", "host", "port", "user", "identity", "known_hosts",
             "template", "env", "timeout", "max_output", "northbound", "southbound"}
# Keys of one node only, never of [defaults].
NODE_ONLY_KEYS = {"name", "northbound", "southbound"}
DB_KEYS = {"remote", "via", "private_key", "certificate", "ca_cert"}
MAX_TIMEOUT = 7 * 86400.0
# Fields an exec template may use: the node's name, and ofrace's own argv as one string.
TEMPLATE_FIELDS = {"node", "name", templates.COMMAND_FIELD}
# ... and, for --discover, the Southbound Chassis' values.
DISCOVER_FIELDS = {"hostname", "system_id", "encap_ip"}


@dataclass
class NodeSpec:
    """How to reach one node."""

    name: str
    transport: str = "ssh"
    host: str | None = None
    port: int | None = None
    user: str | None = None
    identity: str | None = None
    known_hosts: str | None = None
    template: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None      # the node's deadline in seconds (None: collect's)
    max_output: int | None = None     # bytes its answer may take (None: collect's)
    fields: dict[str, str] = field(default_factory=dict)
    northbound: str | None = None     # its zone's NB and SB remotes, on the node
    southbound: str | None = None


@dataclass
class DatabaseSpec:
    """Where to read an OVN database: a remote, possibly through a node."""

    remote: str | None = None
    via: str | None = None
    private_key: str | None = None
    certificate: str | None = None
    ca_cert: str | None = None


@dataclass
class Inventory:
    nodes: list[NodeSpec] = field(default_factory=list)
    southbound: DatabaseSpec | None = None
    northbound: DatabaseSpec | None = None
    interconnect: DatabaseSpec | None = None   # the IC-SB ([interconnect] southbound)
    defaults: dict = field(default_factory=dict)   # [defaults], for discovered nodes
    problems: list[Problem] = field(default_factory=list)   # chassis --discover skipped

    def node(self, name: str) -> NodeSpec:
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise InputError(f"no node named {name!r} in the inventory "
                         f"(known: {', '.join(n.name for n in self.nodes) or 'none'})")


# --- one check per key -------------------------------------------------------

def _shown(value: object) -> str:
    """A value in a message: escaped, one line, short."""
    text = ascii(value)
    return text if len(text) <= 40 else text[:37] + "…"


def _type_name(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


def printable(text: str) -> bool:
    """No control, format or separator characters (no newline, escape, RTL override)."""
    return all(unicodedata.category(c)[0] not in "CZ" for c in text)


def _text(key: str, value: object, where: str, *, word: bool = True) -> str:
    if not isinstance(value, str):
        raise InputError(f"{where}: {key} must be a string, not {_type_name(value)}")
    if not value or len(value) > 4096:
        raise InputError(f"{where}: {key} must not be empty or longer than 4096 characters")
    if not printable(value) or (word and value.startswith("-")):
        raise InputError(f"{where}: {key} {_shown(value)} has characters that cannot be in it "
                         "(spaces, control characters" + (", a leading '-')" if word else ")"))
    return value


def _path(key: str, value: object, where: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"{where}: {key} must be a file name (a string), not {_type_name(value)}")
    if not value or "\0" in value or len(value) > 4096 or not all(
            unicodedata.category(c) != "Cc" for c in value):
        raise InputError(f"{where}: {key} {_shown(value)} is not a usable file name")
    return value


def _port(key: str, value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise InputError(f"{where}: port must be a number from 1 to 65535"
                         + ("" if isinstance(value, int) and not isinstance(value, bool)
                            else f", not {_type_name(value)}"))
    return value


def positive_number(key: str, value: object, where: str, limit: float = MAX_TIMEOUT) -> float:
    """A positive, finite number of at most ``limit`` (seconds, for timeouts)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where}: {key} must be a positive number, not {_type_name(value)}")
    if not (math.isfinite(value) and 0 < value <= limit):
        raise InputError(f"{where}: {key} must be a positive number up to {limit:g}")
    return float(value)


def positive_int(key: str, value: object, where: str, limit: int = 1 << 50) -> int:
    """A positive whole number of at most ``limit`` (bytes, counts)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{where}: {key} must be a positive whole number, "
                         f"not {_type_name(value)}")
    if not 0 < value <= limit:
        raise InputError(f"{where}: {key} must be a positive whole number up to {limit}")
    return value


_SIZE = re.compile(r"([0-9]{1,15})\s*([KMG]?)(?:i?B)?", re.IGNORECASE)


def byte_size(key: str, value: object, where: str, limit: int = 1 << 40) -> int:
    """A byte count: a whole number, or a string such as ``"512M"`` or ``"2G"`` (powers
    of 1024), of at most ``limit``."""
    if isinstance(value, str):
        match = _SIZE.fullmatch(value.strip())
        if not match:
            raise InputError(f"{where}: {key} {_shown(value)} is not a size in bytes "
                             "(e.g. 536870912, \"512M\", \"2G\")")
        value = int(match[1]) << {"": 0, "K": 10, "M": 20, "G": 30}[match[2].upper()]
    return positive_int(key, value, where, limit)


def _transport(key: str, value: object, where: str) -> str:
    if value not in TRANSPORTS:
        raise InputError(f"{where}: transport {_shown(value)} is not one of "
                         f"{', '.join(TRANSPORTS)}")
    return value


def _template(key: str, value: object, where: str, known: set[str] = TEMPLATE_FIELDS) -> str:
    if not isinstance(value, str):
        raise InputError(f"{where}: template must be a string, not {_type_name(value)}")
    try:
        templates.check(value, known)
    except templates.TemplateError as exc:
        raise InputError(f"{where}: template: {exc}") from None
    return value


def _env(key: str, value: object, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise InputError(f"{where}: env must be a table, e.g. env = {{ OVS_RUNDIR = \"/run\" }}")
    for name, val in value.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or not isinstance(val, str) \
                or "\0" in val:
            raise InputError(f"{where}: env entry {_shown(name)} must be NAME = \"string\"")
    return dict(value)


def _user(key: str, value: object, where: str) -> str:
    if isinstance(value, str) and ("@" in value or ":" in value):
        raise InputError(f"{where}: user cannot contain '@' or ':' "
                         "(ssh://user@host; a password does not belong here)")
    value = _text(key, value, where)
    return value


NODE_CHECKS = {
    "name": lambda k, v, w: _text(k, v, w, word=False),
    "transport": _transport,
    "host": _text,
    "port": _port,
    "user": _user,
    "identity": _path,
    "known_hosts": _path,
    "template": _template,
    "env": _env,
    "timeout": positive_number,
    "max_output": byte_size,
    "northbound": lambda k, v, w: check_remote(v, f"{w}: {k}"),
    "southbound": lambda k, v, w: check_remote(v, f"{w}: {k}"),
}


def _checked(table: object, where: str, allowed: set[str],
             template_fields: set[str] = TEMPLATE_FIELDS) -> dict:
    if not isinstance(table, dict):
        raise InputError(f"{where} must be a table")
    unknown = set(table) - allowed
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(_shown(k) for k in sorted(unknown))}"
                         f" (known: {', '.join(sorted(allowed))})")
    return {key: _template(key, value, where, template_fields) if key == "template"
            else NODE_CHECKS[key](key, value, where) for key, value in table.items()}


def _node_from_table(table: object, defaults: dict, where: str,
                     template_fields: set[str] = TEMPLATE_FIELDS) -> NodeSpec:
    if isinstance(table, dict) and isinstance(table.get("name"), str):
        where = f"{where} ({_shown(table['name'])})"
    table = _checked(table, where, NODE_KEYS, template_fields)
    merged = {**defaults, **table}
    merged["env"] = {**defaults.get("env", {}), **table.get("env", {})}
    if "name" not in merged:
        raise InputError(f"{where}: every node needs a name")
    spec = NodeSpec(**merged)
    _check_node(spec, where)
    return spec


def _check_node(spec: NodeSpec, where: str) -> None:
    if spec.transport == "ssh" and not spec.host:
        spec.host = _text("host (the node's name)", spec.name, where)
    if spec.transport == "exec" and not spec.template:
        raise InputError(f"{where}: the exec transport needs a template, "
                         "e.g. template = \"docker exec -i {node}\"")


def _database(table: object, where: str) -> DatabaseSpec:
    if not isinstance(table, dict):
        raise InputError(f"{where} must be a table")
    unknown = set(table) - DB_KEYS
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(_shown(k) for k in sorted(unknown))}"
                         f" (known: {', '.join(sorted(DB_KEYS))})")
    checked = {}
    for key, value in table.items():
        if key == "via":
            checked[key] = _text(key, value, where, word=False)
        elif key == "remote":
            checked[key] = check_remote(value, f"{where}: remote")
        else:
            checked[key] = _path(key, value, where)
    spec = DatabaseSpec(**checked)
    if not spec.remote and not spec.via:
        raise InputError(f"{where} needs a remote, a via node, or both")
    return spec


def _interconnect(table: object, where: str) -> DatabaseSpec:
    """``[interconnect]``: the IC-SB's remote as ``southbound``, the rest as a database's."""
    if not isinstance(table, dict):
        raise InputError(f"{where} must be a table")
    if "remote" in table or "southbound" not in table:
        raise InputError(f"{where} names the IC-SB as southbound = \"tcp:IP:6646\"")
    rest = {k: v for k, v in table.items() if k != "southbound"}
    return _database({"remote": table["southbound"], **rest}, where)


def check_remote(remote: object, where: str = "remote") -> str:
    if not isinstance(remote, str):
        raise InputError(f"{where} must be a string, not {_type_name(remote)}")
    if not re.fullmatch(r"(tcp|ssl|unix):\S+", remote) or not printable(remote):
        raise InputError(f"{where}: {_shown(scrub(remote, []))} is not an OVSDB remote "
                         "(tcp:IP:PORT, ssl:IP:PORT or unix:PATH)")
    return remote


def load_inventory(path: str | Path) -> Inventory:
    """Read an inventory file; any mistake is one line naming the file."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise InputError(f"inventory file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:   # tomllib.TOMLDecodeError, or an integer of > 4300 digits
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise InputError(f"{path}: not valid TOML: nested too deeply") from None
    except OSError as exc:
        raise InputError(f"cannot read inventory {path}: {exc.strerror or exc}") from None
    unknown = set(doc) - {"defaults", "node", "southbound", "northbound", "interconnect"}
    if unknown:
        raise InputError(f"{path}: unknown section(s) "
                         f"{', '.join(_shown(k) for k in sorted(unknown))} "
                         "(known: defaults, node, southbound, northbound, interconnect)")
    defaults = _checked(doc.get("defaults", {}), f"{path}: [defaults]",
                        NODE_KEYS - NODE_ONLY_KEYS)
    nodes_raw = doc.get("node", [])
    if not isinstance(nodes_raw, list):
        raise InputError(f"{path}: nodes are written as [[node]] tables")
    inventory = Inventory(defaults=defaults)
    for i, table in enumerate(nodes_raw, 1):
        inventory.nodes.append(_node_from_table(table, defaults, f"{path}: node {i}"))
    names = [n.name for n in inventory.nodes]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"{path}: node name(s) used twice: {', '.join(map(_shown, dup))}")
    if "southbound" in doc:
        inventory.southbound = _database(doc["southbound"], f"{path}: [southbound]")
    if "northbound" in doc:
        inventory.northbound = _database(doc["northbound"], f"{path}: [northbound]")
    if "interconnect" in doc:
        inventory.interconnect = _interconnect(doc["interconnect"], f"{path}: [interconnect]")
    for db in (inventory.southbound, inventory.northbound, inventory.interconnect):
        if db and db.via and db.via not in names:
            raise InputError(f"{path}: via = {_shown(db.via)} names no node of the inventory")
    return inventory


_SSH_URL = re.compile(r"ssh://(?:(?P<user>[^@/]+)@)?(?P<host>\[[^\]]+\]|[^:/\[\]]+)"
                      r"(?::(?P<port>[0-9]{1,5}))?/?")
NODE_ARG_FORMS = "NAME=ssh://[user@]host[:port], NAME=exec:TEMPLATE or NAME=local"


def _how_table(how: str, where: str) -> dict:
    """The inventory keys that ``ssh://…``, ``exec:…`` or ``local`` stands for."""
    if how == "local":
        return {"transport": "local"}
    if how.startswith("exec:"):
        return {"transport": "exec", "template": how[5:]}
    if how.startswith("ssh://"):
        m = _SSH_URL.fullmatch(how)
        if not m:
            raise InputError(f"{where}: cannot read {_shown(scrub(how, []))} as "
                             "ssh://[user@]host[:port]")
        table: dict = {"transport": "ssh", "host": m["host"].strip("[]")}
        if m["user"]:
            table["user"] = m["user"]
        if m["port"]:
            table["port"] = int(m["port"])
        return table
    shown = _shown(how) if not how.startswith("exec") else "exec…"
    raise InputError(f"{where}: {shown} is not ssh://…, exec:… or local")


def _node_from_how(name: str, how: str, defaults: dict | None, where: str,
                   template_fields: set[str] = TEMPLATE_FIELDS) -> NodeSpec:
    table = {"name": name, **_how_table(how, where)}
    defaults = dict(defaults or {})
    defaults.pop("name", None)
    if table["transport"] != "ssh":
        for key in ("host", "port", "user", "identity", "known_hosts"):
            defaults.pop(key, None)
    return _node_from_table(table, defaults, where, template_fields)


def parse_node_arg(arg: str, defaults: dict | None = None) -> NodeSpec:
    """``NAME=ssh://user@host:port``, ``NAME=exec:TEMPLATE`` or ``NAME=local``."""
    name, sep, how = arg.partition("=")
    if not sep or not name:
        shown = _shown(arg) if "exec:" not in arg else "exec…"
        raise InputError(f"--node {shown}: expected {NODE_ARG_FORMS}")
    return _node_from_how(name, how, defaults, "--node")


# --- --discover ----------------------------------------------------------------

_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,252})")
_SYSTEM_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.:-]{0,252})")


def _sb_value(field_name: str, value: object) -> str | None:
    """``value`` if it is safe to put in a command line as ``{field_name}``, else None."""
    if not isinstance(value, str):
        return None
    if field_name == "encap_ip":
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            return None
    pattern = _SYSTEM_ID if field_name == "system_id" else _HOSTNAME
    return value if pattern.fullmatch(value) else None


def check_discover_template(template: str) -> set[str]:
    """The fields ``template`` uses; one line (InputError) if it cannot be used.

    Values from the Southbound are only placed in arguments of their own (or
    inside one, as in ``root@{encap_ip}``, after they are checked to be a
    host name, an id or an IP); never in a string a shell parses.
    """
    known = TEMPLATE_FIELDS | DISCOVER_FIELDS
    where = "--discover"
    try:
        if template.startswith("exec:"):
            templates.check(template[5:], known)
            in_shell = templates.fields_in_shell_strings(template[5:])
            if in_shell:
                raise InputError(
                    f"{where}: {', '.join('{' + f + '}' for f in sorted(in_shell))} is inside a "
                    "string a shell runs (after sh -c, or ssh's remote command), where a value "
                    "from the Southbound would run as a command: make it an argument of its own")
            return templates.fields_used(template[5:])
        if template.startswith("ssh://"):
            used = {name for _, name in templates.parts(template) if name is not None}
            unknown = (used - known) | (used & {templates.COMMAND_FIELD})
            if unknown:
                raise templates.TemplateError(
                    f"unknown field(s) {', '.join('{' + f + '}' for f in sorted(unknown))}")
            return used
    except templates.TemplateError as exc:
        raise InputError(f"{where}: template: {exc}; fields: {{hostname}}, {{system_id}}, "
                         "{encap_ip}") from None
    raise InputError(f"{where}: the template must start with ssh:// or exec:")


def discovered_nodes(chassis_rows: list[dict], encap_rows: list[dict], template: str,
                     defaults: dict | None = None) -> tuple[list[NodeSpec], list[Problem]]:
    """One node per SB Chassis, reached through ``template``.

    The template is a node spec with fields: ``ssh://root@{encap_ip}``,
    ``exec:docker exec -i {hostname}``, ``exec:kubectl exec -n ovn-kubernetes
    ovnkube-node-{hostname} -c ovn-controller --``.  Fields: {hostname}, {system_id},
    {encap_ip} (and {node}, the node's name = its hostname).  The SB is not
    trusted: a chassis whose values are not a host name, an id or an IP is
    skipped with a Problem naming it, and the other chassis are still read.
    """
    used = check_discover_template(template)
    encaps: dict[str, str] = {}
    for row in encap_rows:
        if isinstance(row, dict) and isinstance(row.get("chassis_name"), str):
            encaps.setdefault(row["chassis_name"], row.get("ip"))
    nodes: list[NodeSpec] = []
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    rows = [r for r in chassis_rows if isinstance(r, dict)]
    for row in sorted(rows, key=lambda r: str(r.get("hostname") or r.get("name"))):
        system_id = row.get("name")
        raw = {"hostname": row.get("hostname") or system_id, "system_id": system_id,
               "encap_ip": encaps.get(system_id) if isinstance(system_id, str) else None}
        who = f"chassis {_shown(system_id)}"
        checked = {k: _sb_value(k, v) for k, v in raw.items()}
        bad = [k for k in sorted(used & DISCOVER_FIELDS | {"hostname"}) if checked[k] is None]
        if bad:
            what = {"hostname": "a host name", "system_id": "an id", "encap_ip": "an IP address"}
            problems.append(Problem(where=who, what="discover", error="skipped: " + "; ".join(
                f"{k} {_shown(raw[k])} is not {what[k]}" if raw[k] else f"no {k}"
                for k in bad)))
            continue
        name = checked["hostname"]
        if name in seen:
            problems.append(Problem(where=who, what="discover",
                                    error=f"skipped: hostname {name} is also chassis {seen[name]}"))
            continue
        seen[name] = _shown(system_id)
        fields = {k: v for k, v in checked.items() if v is not None}
        if template.startswith("exec:"):
            spec = _node_from_how(name, template, defaults, "--discover",
                                  TEMPLATE_FIELDS | DISCOVER_FIELDS)
            spec.fields = fields
        else:
            values = {**fields, "node": name, "name": name}
            if ":" in values.get("encap_ip", "") and "[{encap_ip}]" not in template:
                values["encap_ip"] = f"[{values['encap_ip']}]"
            filled = "".join(lit + (values[f] if f else "")
                             for lit, f in templates.parts(template))
            spec = _node_from_how(name, filled, defaults, "--discover")
        nodes.append(spec)
    return nodes, problems
