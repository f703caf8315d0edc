"""Turn a topology's logical network into ``ovn-nbctl`` commands.

Most of the network goes in one transaction, so ovn-northd computes the
southbound database once, before any ovn-controller starts.  Two things are
added one at a time instead, because what they allocate depends on the order
in which they are processed, and within one batch that order follows random
row UUIDs (a topology with ``[bringup] repeatable = false`` gives that up for
speed: :func:`nb_operations` is everything as one OVSDB transaction):

* gateway chassis, one router port at a time (with northd caught up in
  between): each makes a chassisredirect port ``cr-<port>`` whose tunnel key
  northd picks itself, lowest free key first;
* load balancer attachments, one datapath at a time (with every chassis
  caught up in between): ovn-controller numbers OpenFlow groups (one per
  distinct ``ct_lb_mark`` backend set) in the order it first meets them.
"""

from __future__ import annotations

import codecs
import ipaddress
import json
import socket
from pathlib import Path

from ofrace.errors import LabError
from ofrace.lab.topology import PortGroup, Router, Switch, Topology


def ovsdb_string(value: str) -> str:
    """Quote a string the way ovn-nbctl/ovs-vsctl parse OVSDB atoms (C-style escapes)."""
    return json.dumps(value)


def map_assignments(column: str, values: dict[str, str]) -> list[str]:
    """``column:"key"="value"`` arguments for ``set``/``create``."""
    return [f"{column}:{ovsdb_string(k)}={ovsdb_string(v)}" for k, v in values.items()]


def set_assignment(column: str, values: list[str]) -> str:
    """``column=["a","b"]``: a whole set column for ``set``/``create``."""
    return f"{column}=[{','.join(ovsdb_string(v) for v in values)}]"


def nbctl_commands(topology: Topology) -> list[list[str]]:
    """The commands, each an argv fragment, to join with ``--`` into one ovn-nbctl call.

    Load balancers are created but not attached (see :func:`load_balancer_attachments`),
    and router ports get no gateway chassis yet (see :func:`gateway_chassis_commands`).
    DHCP_Options rows have no name column, so switch ports refer to them by a
    named UUID (``@dhcp<index>``) within this one transaction.
    """
    commands: list[list[str]] = []
    checks = 0
    for lb in topology.load_balancer:
        check_ids = []
        for check in lb.health_check:
            check_ids.append(f"@hc{checks}")
            commands.append([
                f"--id=@hc{checks}", "create", "Load_Balancer_Health_Check",
                f"vip={ovsdb_string(check.vip)}",
                *map_assignments("options", check.options),
                *map_assignments("external_ids", check.external_ids),
            ])
            checks += 1
        commands.append([
            "create", "Load_Balancer",
            f"name={ovsdb_string(lb.name)}", f"protocol={lb.protocol}",
            *map_assignments("vips", lb.vips),
            *map_assignments("options", lb.options),
            *map_assignments("external_ids", lb.external_ids),
            *map_assignments("ip_port_mappings", lb.ip_port_mappings),
            *([f"health_check=[{','.join(check_ids)}]"] if check_ids else []),
        ])
    dhcp_ids = {}
    for index, dhcp in enumerate(topology.dhcp_options):
        dhcp_ids[dhcp.name] = f"@dhcp{index}"
        commands.append([
            f"--id=@dhcp{index}", "create", "DHCP_Options", f"cidr={ovsdb_string(dhcp.cidr)}",
            *map_assignments("options", dhcp.options),
            *map_assignments("external_ids", dhcp.external_ids),
        ])
    for address_set in topology.address_set:
        commands.append(["create", "Address_Set", f"name={ovsdb_string(address_set.name)}",
                         set_assignment("addresses", address_set.addresses)])
    for router in topology.router:
        commands += _router_commands(router)
    for switch in topology.switch:
        commands += _switch_commands(switch, dhcp_ids)
    acl_count = 0
    for group in topology.port_group:
        commands += _port_group_commands(group, first_acl=acl_count)
        acl_count += len(group.acl)
    return commands


def gateway_chassis_commands(topology: Topology) -> list[list[str]]:
    """One ovn-nbctl command per gateway router port, to run one at a time, in order.

    A port's chassis are listed highest priority first.
    """
    commands = []
    for router in topology.router:
        for port in router.ports:
            if port.gateway_chassis:
                command = []
                for rank, chassis in enumerate(port.gateway_chassis):
                    priority = len(port.gateway_chassis) - rank
                    command += ["--", "lrp-set-gateway-chassis", port.name, chassis,
                                str(priority)]
                commands.append(command[1:])
    return commands


def load_balancer_attachments(topology: Topology) -> list[list[str]]:
    """One ovn-nbctl command per (load balancer, datapath), to run one at a time, in order."""
    commands = []
    for lb in topology.load_balancer:
        for router in topology.router:
            if lb.name in router.load_balancers:
                commands.append(["lr-lb-add", router.name, lb.name])
        for switch in topology.switch:
            if lb.name in switch.load_balancers:
                commands.append(["ls-lb-add", switch.name, lb.name])
    return commands


def nbctl_argv(topology: Topology) -> list[str]:
    """All of :func:`nbctl_commands` as one ovn-nbctl argument list (without the program)."""
    argv: list[str] = []
    for command in nbctl_commands(topology):
        argv += ["--", *command]
    return argv


def _switch_commands(switch: Switch, dhcp_ids: dict[str, str]) -> list[list[str]]:
    other_config = {**switch.other_config, "requested-tnl-key": str(switch.tunnel_key)}
    commands = [
        ["ls-add", switch.name],
        ["set", "Logical_Switch", switch.name,
         *map_assignments("other_config", other_config),
         *map_assignments("external_ids", switch.external_ids)],
    ]
    for port in switch.ports:
        options = {**port.options, "requested-tnl-key": str(port.tunnel_key)}
        commands.append(["lsp-add", switch.name, port.name])
        commands.append(["lsp-set-addresses", port.name, *port.addresses])
        if port.port_security:
            commands.append(["lsp-set-port-security", port.name, *port.port_security])
        settings = [*map_assignments("options", options),
                    *map_assignments("external_ids", port.external_ids)]
        if port.type:
            settings.append(f"type={ovsdb_string(port.type)}")
        if port.tag:
            settings.append(f"tag={port.tag}")
        for column in ("dhcpv4_options", "dhcpv6_options"):
            if getattr(port, column):
                settings.append(f"{column}={dhcp_ids[getattr(port, column)]}")
        commands.append(["set", "Logical_Switch_Port", port.name, *settings])
    return commands


def _port_group_commands(group: PortGroup, first_acl: int) -> list[list[str]]:
    """pg-add, then each ACL created as a row and added to the group.

    ACL rows are created directly rather than with ``acl-add``, whose
    ``--name`` also turns logging on: here name and log are separate columns.
    """
    commands = [["pg-add", group.name, *group.ports]]
    if group.external_ids:
        commands.append(["set", "Port_Group", group.name,
                         *map_assignments("external_ids", group.external_ids)])
    for index, acl in enumerate(group.acl, start=first_acl):
        row = f"@acl{index}"
        settings = [f"direction={acl.direction}", f"priority={acl.priority}",
                    f"match={ovsdb_string(acl.match)}", f"action={acl.action}",
                    f"log={'true' if acl.log else 'false'}",
                    *map_assignments("options", acl.options),
                    *map_assignments("external_ids", acl.external_ids)]
        if acl.name:
            settings.append(f"name={ovsdb_string(acl.name)}")
        if acl.severity:
            settings.append(f"severity={acl.severity}")
        commands.append([f"--id={row}", "create", "ACL", *settings])
        commands.append(["add", "Port_Group", group.name, "acls", row])
    return commands


def _router_commands(router: Router) -> list[list[str]]:
    options = {**router.options, "requested-tnl-key": str(router.tunnel_key)}
    commands = [
        ["lr-add", router.name],
        ["set", "Logical_Router", router.name,
         *map_assignments("options", options),
         *map_assignments("external_ids", router.external_ids)],
    ]
    for port in router.ports:
        port_options = {**port.options, "requested-tnl-key": str(port.tunnel_key)}
        commands.append(["lrp-add", router.name, port.name, port.mac, *port.networks])
        commands.append(["set", "Logical_Router_Port", port.name,
                         *map_assignments("options", port_options),
                         *map_assignments("external_ids", port.external_ids),
                         *map_assignments("ipv6_ra_configs", port.ipv6_ra_configs)])
    for index, nat in enumerate(router.nat):
        if nat.plain:
            commands.append(["lr-nat-add", router.name, nat.type, nat.external_ip,
                             nat.logical_ip])
            continue
        # lr-nat-add writes no external_ids or options: the row as a CMS writes it.
        row = f"@nat_{router.tunnel_key}_{index}"
        settings = [f"type={nat.type}", f"external_ip={ovsdb_string(nat.external_ip)}",
                    f"logical_ip={ovsdb_string(nat.logical_ip)}",
                    *map_assignments("options", nat.options),
                    *map_assignments("external_ids", nat.external_ids)]
        if nat.logical_port:
            settings.append(f"logical_port={ovsdb_string(nat.logical_port)}")
        if nat.external_mac:
            settings.append(f"external_mac={ovsdb_string(nat.external_mac)}")
        commands.append([f"--id={row}", "create", "NAT", *settings])
        commands.append(["add", "Logical_Router", router.name, "nat", row])
    for route in router.route:
        argv = [f"--policy={route.policy}", "lr-route-add", router.name, route.prefix,
                route.nexthop]
        if route.output_port:
            argv.append(route.output_port)
        commands.append(argv)
    for policy in router.policy:
        argv = ["lr-policy-add", router.name, str(policy.priority), policy.match, policy.action]
        if policy.nexthops:
            argv.append(",".join(policy.nexthops))
        commands.append(argv)
    return commands


# ------------------------------------------------ one OVSDB transaction


class _Rows:
    """Insert operations that refer to each other by named UUID."""

    def __init__(self):
        self.operations: list[dict] = []

    def insert(self, table: str, row: dict) -> list:
        """Add an insert and return the reference to the new row."""
        name = f"row{len(self.operations)}"
        row = {column: value for column, value in row.items() if value not in ({}, [], "")}
        self.operations.append({"op": "insert", "table": table, "row": _columns(row),
                                "uuid-name": name})
        return ["named-uuid", name]


def _columns(row: dict) -> dict:
    """Python values as OVSDB JSON: dicts become maps, lists sets; references stay as they are."""
    def value(v):
        if isinstance(v, dict):
            return ["map", [[k, x] for k, x in v.items()]]
        if isinstance(v, list) and not (len(v) == 2 and v[0] == "named-uuid"):
            return ["set", list(v)]
        return v

    return {column: value(v) for column, v in row.items()}


def nb_operations(topology: Topology) -> list[dict]:
    """The whole logical network as the operations of one OVN_Northbound transaction.

    The same rows as :func:`nbctl_commands` plus :func:`gateway_chassis_commands`
    and :func:`load_balancer_attachments`, without ovn-nbctl's command-line
    length limit and per-command name lookups: a big topology is written in
    seconds.  Load balancers are attached and gateway chassis set right away.
    """
    rows = _Rows()
    lbs = {lb.name: rows.insert("Load_Balancer", {
        "name": lb.name, "protocol": lb.protocol, "vips": lb.vips, "options": lb.options,
        "external_ids": lb.external_ids, "ip_port_mappings": lb.ip_port_mappings,
        "health_check": [rows.insert("Load_Balancer_Health_Check", {
            "vip": check.vip, "options": check.options, "external_ids": check.external_ids})
            for check in lb.health_check]}) for lb in topology.load_balancer}
    dhcp = {d.name: rows.insert("DHCP_Options", {
        "cidr": d.cidr, "options": d.options, "external_ids": d.external_ids})
        for d in topology.dhcp_options}
    for address_set in topology.address_set:
        rows.insert("Address_Set", {"name": address_set.name,
                                    "addresses": address_set.addresses})
    for router in topology.router:
        _router_rows(rows, router, lbs)
    switch_ports = {}
    for switch in topology.switch:
        ports = []
        for port in switch.ports:
            ports.append(rows.insert("Logical_Switch_Port", {
                "name": port.name, "type": port.type, "addresses": port.addresses,
                "port_security": port.port_security,
                "options": {**port.options, "requested-tnl-key": str(port.tunnel_key)},
                "external_ids": port.external_ids,
                "dhcpv4_options": dhcp.get(port.dhcpv4_options, ""),
                "dhcpv6_options": dhcp.get(port.dhcpv6_options, ""),
                "tag": port.tag or "",
            }))
            switch_ports[port.name] = ports[-1]
        rows.insert("Logical_Switch", {
            "name": switch.name, "ports": ports,
            "other_config": {**switch.other_config,
                             "requested-tnl-key": str(switch.tunnel_key)},
            "external_ids": switch.external_ids,
            "load_balancer": [lbs[name] for name in switch.load_balancers],
        })
    for group in topology.port_group:
        acls = [rows.insert("ACL", {
            "direction": acl.direction, "priority": acl.priority, "match": acl.match,
            "action": acl.action, "log": acl.log, "name": acl.name, "severity": acl.severity,
            "options": acl.options, "external_ids": acl.external_ids}) for acl in group.acl]
        rows.insert("Port_Group", {"name": group.name, "acls": acls,
                                   "ports": [switch_ports[p] for p in group.ports],
                                   "external_ids": group.external_ids})
    return rows.operations


def _router_rows(rows: _Rows, router: Router, lbs: dict[str, list]) -> None:
    ports = []
    for port in router.ports:
        gateway_chassis = [
            rows.insert("Gateway_Chassis", {"name": f"{port.name}-{chassis}",
                                            "chassis_name": chassis,
                                            "priority": len(port.gateway_chassis) - rank})
            for rank, chassis in enumerate(port.gateway_chassis)
        ]
        ports.append(rows.insert("Logical_Router_Port", {
            "name": port.name, "mac": port.mac, "networks": port.networks,
            "gateway_chassis": gateway_chassis,
            "options": {**port.options, "requested-tnl-key": str(port.tunnel_key)},
            "external_ids": port.external_ids, "ipv6_ra_configs": port.ipv6_ra_configs,
        }))
    nat = [rows.insert("NAT", {"type": n.type, "external_ip": n.external_ip,
                               "logical_ip": n.logical_ip,
                               "options": n.options or {"stateless": "false"},
                               "logical_port": n.logical_port, "external_mac": n.external_mac,
                               "external_ids": n.external_ids})
           for n in router.nat]
    routes = [rows.insert("Logical_Router_Static_Route", {
        "ip_prefix": _prefix(r.prefix), "nexthop": r.nexthop, "policy": r.policy,
        "output_port": r.output_port}) for r in router.route]
    policies = [rows.insert("Logical_Router_Policy", {
        "priority": p.priority, "match": p.match, "action": p.action,
        "nexthops": p.nexthops}) for p in router.policy]
    rows.insert("Logical_Router", {
        "name": router.name, "ports": ports, "nat": nat, "static_routes": routes,
        "policies": policies, "load_balancer": [lbs[name] for name in router.load_balancers],
        "options": {**router.options, "requested-tnl-key": str(router.tunnel_key)},
        "external_ids": router.external_ids,
    })


def _prefix(prefix: str) -> str:
    """A route prefix the way ovn-nbctl stores it: host bits cleared, a host without length."""
    network = ipaddress.ip_network(prefix, strict=False)
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def transact(socket_path: Path, database: str, operations: list[dict],
             timeout: float) -> list:
    """Run one OVSDB transaction over ovsdb-server's unix socket; LabError if any part failed."""
    request = {"method": "transact", "params": [database, *operations], "id": "ofrace"}
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_path))
            sock.sendall(json.dumps(request).encode())
            reply = _reply(sock, "ofrace")
    except OSError as exc:
        raise LabError(f"transaction on {socket_path} failed: {exc}") from None
    if reply.get("error"):
        raise LabError(f"transaction on {socket_path} failed: {reply['error']}")
    results = reply["result"]
    for operation, result in zip(operations + [{}], results, strict=False):
        if isinstance(result, dict) and "error" in result:
            detail = result.get("details", "")
            what = operation.get("table", "the transaction")
            raise LabError(f"{database} transaction failed at {what}: "
                           f"{result['error']} {detail}".strip())
    return results


def _reply(sock: socket.socket, request_id: str) -> dict:
    """Read JSON-RPC messages until the reply to ``request_id``, answering echo requests."""
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    received = ""
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise LabError("ovsdb-server closed the connection mid-transaction")
        received += utf8.decode(chunk)
        while received.strip():
            try:
                message, end = decoder.raw_decode(received.lstrip())
            except ValueError:
                break  # the rest of this message has not arrived yet
            received = received.lstrip()[end:]
            if message.get("id") == request_id:
                return message
            if message.get("method") == "echo":
                sock.sendall(json.dumps({"id": message["id"], "result": message["params"],
                                         "error": None}).encode())
