"""Which nodes to read and how: an inventory file, command-line specs, or the SB.

Inventory file (TOML)::

    [defaults]                 # applied to every [[node]] unless it says otherwise
    transport = "ssh"          # ssh | exec | local
    user = "root"
    identity = "~/.ssh/id_ed25519"
    known_hosts = "~/.ssh/known_hosts"
    timeout = 15
    env = { OVS_RUNDIR = "/var/run/openvswitch" }

    [[node]]
    name = "ovn-worker"
    host = "198.18.0.4"        # ssh: address or ~/.ssh/config alias; port = 22

    [[node]]
    name = "ovn-worker2"
    transport = "exec"
    template = "docker exec -i {node}"    # {node} = this node's name

    [southbound]
    remote = "tcp:10.0.0.1:6642"          # read from here with the local ovsdb-client,
    # via = "ovn-worker"                  # or through that node (its ovsdb-client;
                                          # remote defaults to its ovn-remote)
    [northbound]
    remote = "tcp:10.0.0.1:6641"

On the command line a node is ``NAME=ssh://[user@]host[:port]``,
``NAME=exec:TEMPLATE`` or ``NAME=local``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ofrace.errors import InputError

TRANSPORTS = ("ssh", "exec", "local")
NODE_KEYS = {"name", "transport", "host", "port", "user", "identity", "known_hosts",
             "template", "env", "timeout", "fields"}
DB_KEYS = {"remote", "via", "private_key", "certificate", "ca_cert"}


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
    timeout: float = 15.0
    fields: dict[str, str] = field(default_factory=dict)


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
    defaults: dict = field(default_factory=dict)   # [defaults], for discovered nodes

    def node(self, name: str) -> NodeSpec:
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise InputError(f"no node named {name!r} in the inventory "
                         f"(known: {', '.join(n.name for n in self.nodes) or 'none'})")


def _node_from_table(table: dict, defaults: dict, where: str) -> NodeSpec:
    unknown = set(table) - NODE_KEYS
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                         f"(known: {', '.join(sorted(NODE_KEYS))})")
    merged = {**defaults, **table}
    merged["env"] = {**defaults.get("env", {}), **table.get("env", {})}
    if not isinstance(merged.get("name"), str) or not merged["name"]:
        raise InputError(f"{where}: every node needs a name")
    spec = NodeSpec(**merged)
    _check_node(spec, where)
    return spec


def _check_node(spec: NodeSpec, where: str) -> None:
    if spec.transport not in TRANSPORTS:
        raise InputError(f"{where}: transport {spec.transport!r} is not one of "
                         f"{', '.join(TRANSPORTS)}")
    if spec.transport == "ssh" and not spec.host:
        spec.host = spec.name
    if spec.transport == "exec" and not spec.template:
        raise InputError(f"{where}: the exec transport needs a template, "
                         "e.g. template = \"docker exec -i {node}\"")
    if spec.port is not None and not (isinstance(spec.port, int) and 0 < spec.port < 65536):
        raise InputError(f"{where}: port must be a number from 1 to 65535")
    for key, value in spec.env.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) or not isinstance(value, str):
            raise InputError(f"{where}: env entry {key!r} must be NAME = \"string\"")


def _database(table: object, where: str) -> DatabaseSpec:
    if not isinstance(table, dict):
        raise InputError(f"{where} must be a table")
    unknown = set(table) - DB_KEYS
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    spec = DatabaseSpec(**table)
    if not spec.remote and not spec.via:
        raise InputError(f"{where} needs a remote, a via node, or both")
    if spec.remote:
        check_remote(spec.remote, where)
    return spec


def check_remote(remote: str, where: str = "remote") -> None:
    if not re.match(r"^(tcp|ssl|unix):.+", remote):
        raise InputError(f"{where}: {remote!r} is not an OVSDB remote "
                         "(tcp:IP:PORT, ssl:IP:PORT or unix:PATH)")


def load_inventory(path: str | Path) -> Inventory:
    """Read an inventory file; any mistake is one line naming the file."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"inventory file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise InputError(f"cannot read inventory {path}: {exc.strerror}") from None
    unknown = set(doc) - {"defaults", "node", "southbound", "northbound"}
    if unknown:
        raise InputError(f"{path}: unknown section(s) {', '.join(sorted(unknown))}")
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise InputError(f"{path}: [defaults] must be a table")
    nodes_raw = doc.get("node", [])
    if not isinstance(nodes_raw, list):
        raise InputError(f"{path}: nodes are written as [[node]] tables")
    inventory = Inventory(defaults=dict(defaults))
    try:
        for i, table in enumerate(nodes_raw, 1):
            inventory.nodes.append(_node_from_table(table, defaults, f"{path}: node {i}"))
    except TypeError as exc:
        raise InputError(f"{path}: {exc}") from None
    names = [n.name for n in inventory.nodes]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"{path}: node name(s) used twice: {', '.join(dup)}")
    if "southbound" in doc:
        inventory.southbound = _database(doc["southbound"], f"{path}: [southbound]")
    if "northbound" in doc:
        inventory.northbound = _database(doc["northbound"], f"{path}: [northbound]")
    for db in (inventory.southbound, inventory.northbound):
        if db and db.via and db.via not in names:
            raise InputError(f"{path}: via = {db.via!r} names no node of the inventory")
    return inventory


_SSH_URL = re.compile(r"^ssh://(?:(?P<user>[^@/]+)@)?(?P<host>\[[^\]]+\]|[^:/]+)(?::(?P<port>\d+))?/?$")


def parse_node_arg(arg: str, defaults: dict | None = None) -> NodeSpec:
    """``NAME=ssh://user@host:port``, ``NAME=exec:TEMPLATE`` or ``NAME=local``."""
    defaults = dict(defaults or {})
    name, sep, how = arg.partition("=")
    if not sep or not name:
        raise InputError(f"--node {arg!r}: expected NAME=ssh://[user@]host[:port], "
                         "NAME=exec:TEMPLATE or NAME=local")
    if how == "local":
        table = {"name": name, "transport": "local"}
    elif how.startswith("exec:"):
        table = {"name": name, "transport": "exec", "template": how[5:]}
    elif how.startswith("ssh://"):
        m = _SSH_URL.match(how)
        if not m:
            raise InputError(f"--node {arg!r}: cannot read {how!r} as ssh://[user@]host[:port]")
        table = {"name": name, "transport": "ssh", "host": m["host"].strip("[]")}
        if m["user"]:
            table["user"] = m["user"]
        if m["port"]:
            table["port"] = int(m["port"])
    else:
        raise InputError(f"--node {arg!r}: {how!r} is not ssh://…, exec:… or local")
    defaults.pop("name", None)
    if table["transport"] != "ssh":
        for key in ("host", "port", "user", "identity", "known_hosts"):
            defaults.pop(key, None)
    return _node_from_table(table, defaults, f"--node {name}")


def discovered_nodes(chassis_rows: list[dict], encap_rows: list[dict], template: str,
                     defaults: dict | None = None) -> list[NodeSpec]:
    """One node per SB Chassis, reached through ``template``.

    The template is a node spec with fields: ``ssh://root@{encap_ip}``,
    ``exec:docker exec -i {hostname}``, ``exec:kubectl exec -n ovn-kubernetes
    ovnkube-node-{hostname} -c ovn-controller --``.  Fields: {hostname}, {system_id},
    {encap_ip} (and {node}, the node's name = its hostname).
    """
    encaps: dict[str, str] = {}
    for row in encap_rows:
        encaps.setdefault(row.get("chassis_name", ""), row.get("ip", ""))
    nodes = []
    for row in sorted(chassis_rows, key=lambda r: r.get("hostname") or r["name"]):
        fields = {"hostname": row.get("hostname") or row["name"], "system_id": row["name"],
                  "encap_ip": encaps.get(row["name"], "")}
        name = fields["hostname"]
        if template.startswith("exec:"):
            spec = parse_node_arg(f"{name}=exec:{template[5:]}", defaults)
            spec.fields = fields
        else:
            try:
                filled = template.format(**fields)
            except (KeyError, IndexError) as exc:
                raise InputError(f"--discover {template!r}: unknown field {exc}; use "
                                 "{hostname}, {system_id} or {encap_ip}") from None
            spec = parse_node_arg(f"{name}={filled}", defaults)
        nodes.append(spec)
    return nodes
