"""Real traffic in the lab: make it look like a cluster that has been running.

A freshly started OVN has resolved no neighbours: a gateway router with
``dynamic_neigh_routers=true`` holds the first packet of the first
connection for ARP, and nothing outside answers ARP for the default-route
next hop.  ``warm_up`` does what a live network does on its own: the
outside host (the default route's next hop, the seed's docker bridge
02:42:7a:79:82:ca) announces itself to every gateway router with an ARP
request, and one connection to every load balancer VIP on a gateway's
external address makes the router resolve its way to the backends.  Only
real packets are used, injected on the chassis' uplinks.
"""

from __future__ import annotations

import ipaddress
import json
import time

from ofrace.errors import LabError

OUTSIDE_MAC = "02:42:7a:79:82:ca"
WARM_UP_SPORT = 39000


def _mac(text: str) -> str:
    return text.lower()


def _rows(output: str) -> list[dict]:
    doc = json.loads(output)
    return [dict(zip(doc["headings"], row, strict=True)) for row in doc["data"]]


def _value(value):
    if isinstance(value, list) and len(value) == 2 and value[0] in ("set", "map", "uuid"):
        kind, body = value
        if kind == "map":
            return {k: v for k, v in body}
        if kind == "set":
            return [_value(v) for v in body]
        return body
    return value


def gateways(lab) -> list[dict]:
    """Gateway routers: chassis, external port (IP, MAC) and default next hop.

    A gateway router's chassis is its options:chassis; a distributed router's
    (one whose gateway port has gateway chassis, as Neutron makes them) is the
    chassis its chassisredirect port is bound to now -- the one the outside
    sees, which announces the port's addresses.
    """
    routers = _rows(lab.nbctl("--format=json", "list", "Logical_Router"))
    ports = {p["name"]: p for p in (
        {k: _value(v) for k, v in row.items()}
        for row in _rows(lab.nbctl("--format=json", "list", "Logical_Router_Port")))}
    routes = {r["_uuid"]: r for r in (
        {k: _value(v) for k, v in row.items()}
        for row in _rows(lab.nbctl("--format=json", "list", "Logical_Router_Static_Route")))}
    lbs = {lb["_uuid"]: lb for lb in (
        {k: _value(v) for k, v in row.items()}
        for row in _rows(lab.nbctl("--format=json", "list", "Load_Balancer")))}
    by_system_id = {c["system_id"]: c["name"] for c in lab.state["chassis"]}
    redirect_chassis = _redirect_chassis(lab, by_system_id)
    found = []
    for raw in routers:
        router = {k: _value(v) for k, v in raw.items()}
        chassis = by_system_id.get((router.get("options") or {}).get("chassis", ""))
        distributed = chassis is None
        for ref in _list(router.get("static_routes")):
            route = routes.get(ref)
            if route is None or route.get("ip_prefix") != "0.0.0.0/0":
                continue
            port = ports.get(route.get("output_port") or "")
            if port is None and distributed:
                own = _list(router.get("ports"))
                port = _port_towards(route["nexthop"],
                                     [p for p in ports.values() if p["_uuid"] in own])
            if port is None:
                continue
            if distributed:
                chassis = redirect_chassis.get(f"cr-{port['name']}")
                if chassis is None:
                    continue
            net = ipaddress.ip_interface(port["networks"][0] if isinstance(
                port["networks"], list) else port["networks"])
            vips = []
            for lb_ref in _list(router.get("load_balancer")):
                for vip in (lbs.get(lb_ref, {}).get("vips") or {}):
                    host, _, port_text = vip.rpartition(":")
                    if host == str(net.ip) and port_text.isdigit():
                        vips.append(int(port_text))
            found.append({"router": router["name"], "chassis": chassis,
                          "ip": str(net.ip), "mac": port["mac"],
                          "next_hop": route["nexthop"], "vip_ports": sorted(set(vips))})
    return found


def _list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _port_towards(nexthop: str, ports: list[dict]) -> dict | None:
    """The router port whose network holds ``nexthop`` (a route without output_port)."""
    address = ipaddress.ip_address(nexthop)
    for port in ports:
        for network in _list(port.get("networks")):
            if address in ipaddress.ip_interface(network).network:
                return port
    return None


def _redirect_chassis(lab, by_system_id: dict[str, str]) -> dict[str, str]:
    """chassisredirect port -> the lab chassis it is bound to now."""
    names = {row["_uuid"]: row["name"] for row in (
        {k: _value(v) for k, v in r.items()}
        for r in _rows(lab.sbctl("--format=json", "--columns=_uuid,name", "list", "Chassis")))}
    bound = {}
    for raw in _rows(lab.sbctl("--format=json", "--columns=logical_port,chassis", "find",
                               "Port_Binding", "type=chassisredirect")):
        row = {k: _value(v) for k, v in raw.items()}
        chassis = by_system_id.get(names.get(row["chassis"] if isinstance(row["chassis"], str)
                                             else "", ""))
        if chassis:
            bound[row["logical_port"]] = chassis
    return bound


def _arp_request(src_mac: str, src_ip: str, dst_ip: str) -> str:
    return (f"eth(src={src_mac},dst=ff:ff:ff:ff:ff:ff),eth_type(0x0806),"
            f"arp(sip={src_ip},tip={dst_ip},op=1,sha={src_mac},tha=00:00:00:00:00:00)")


def _syn(src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, dport: int) -> str:
    return (f"eth(src={src_mac},dst={dst_mac}),eth_type(0x0800),"
            f"ipv4(src={src_ip},dst={dst_ip},proto=6,tos=0,ttl=64,frag=no),"
            f"tcp(src={WARM_UP_SPORT},dst={dport}),tcp_flags(syn)")


def _bindings(lab, ip: str) -> int:
    return lab.sbctl("--bare", "--columns=ip", "find", "MAC_Binding", f"ip={ip}").split().count(
        ip)


def announce_virtual_ports(lab, timeout: float = 15.0) -> list[str]:
    """Each virtual port's first parent announces its VIP, as a VRRP master does.

    keepalived on the master sends a gratuitous ARP for the VIP from its own
    port (the VIP is one of that port's allowed-address-pairs); OVN answers it
    with bind_vport, binding the virtual port to the parent's chassis.  Returns
    the virtual ports bound.
    """
    ports = [{k: _value(v) for k, v in row.items()} for row in _rows(lab.nbctl(
        "--format=json", "--columns=name,type,options", "list", "Logical_Switch_Port"))]
    addresses = {row["name"]: row for row in (
        {k: _value(v) for k, v in r.items()} for r in _rows(lab.nbctl(
            "--format=json", "--columns=name,addresses", "list", "Logical_Switch_Port")))}
    announced = []
    for port in ports:
        if port["type"] != "virtual":
            continue
        vip = port["options"].get("virtual-ip", "")
        parents = [p for p in port["options"].get("virtual-parents", "").split(",") if p]
        homes = [(c["name"], c["vifs"][p]) for p in parents[:1] for c in lab.state["chassis"]
                 if p in c.get("vifs", {})]
        if not vip or not homes:
            continue
        chassis, iface = homes[0]
        mac = _list(addresses[parents[0]]["addresses"])[0].split()[0]
        lab.inject(chassis, iface, _arp_request(mac, vip, vip))
        announced.append(port["name"])
    deadline = time.monotonic() + timeout
    for name in announced:
        while not lab.sbctl("--bare", "--columns=chassis", "find", "Port_Binding",
                            f"logical_port={name}").strip():
            if time.monotonic() > deadline:
                raise LabError(f"warm-up: virtual port {name} was not bound")
            time.sleep(0.1)
    return announced


def warm_up(lab, timeout: float = 15.0) -> list[dict]:
    """Announce the outside host and open one connection per gateway VIP; returns gateways.

    Virtual ports are announced by a parent first (:func:`announce_virtual_ports`).
    """
    announce_virtual_ports(lab, timeout)
    found = gateways(lab)
    if not found:
        return found
    uplink = {c["name"]: next(iter(c.get("uplinks", {}).values()), None)
              for c in lab.state["chassis"]}
    for gw in found:
        port = uplink.get(gw["chassis"])
        if port is None:
            raise LabError(f"{gw['chassis']} has no uplink to reach {gw['router']} from outside")
        lab.inject(gw["chassis"], port, _arp_request(OUTSIDE_MAC, gw["next_hop"], gw["ip"]))
        for dport in gw["vip_ports"]:
            lab.inject(gw["chassis"], port, _syn(OUTSIDE_MAC, gw["mac"], gw["next_hop"],
                                                 gw["ip"], dport))
    hops = {gw["next_hop"] for gw in found}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_bindings(lab, ip) >= sum(g["next_hop"] == ip for g in found) for ip in hops):
            break
        time.sleep(0.1)
    else:
        raise LabError("warm-up: the gateway routers did not learn the outside host")
    # The first connections make the routers resolve their own next hops (held
    # packets are re-injected then): wait until no new MAC binding appears.
    count, stable_since = -1, time.monotonic()
    while time.monotonic() < deadline + timeout:
        now = len(lab.sbctl("--bare", "--columns=_uuid", "list", "MAC_Binding").split())
        if now != count:
            count, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since > 1.0:
            break
        time.sleep(0.1)
    return found
