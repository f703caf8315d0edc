"""Generated topologies: a ``[scale]`` table expanded into chassis, switches, ACLs, ...

A lab with the flow counts of a big deployment cannot be listed by hand, so
its TOML file gives size parameters instead and :func:`expand` turns them into
the same dataclasses the hand-written topologies use:

* ``chassis`` chassis ``hv1``.. at the first addresses of the lab networks;
* ``switches`` logical switches ``ls<i>`` (10.<i/256>.<i%256>.0/24) with
  ``ports_per_switch`` ports ``ls<i>-vm<j>`` each.  The first
  ``vifs_per_switch`` are VIFs, dealt round robin over the chassis; the others
  stay unbound, standing for VMs on chassis outside the lab: they still
  bring logical flows (L2 lookup, ARP responder, the router's ARP
  resolution), which land on every chassis;
* one distributed router ``lr0`` (no gateway port) with a port on every
  switch: every chassis has a VIF, so through the router every switch is
  local on every chassis and its flows land on every br-int;
* ``port_groups`` port groups, switch ``i``'s ports in group ``i %
  port_groups`` (like a namespace's pods), each with ``acls_per_port_group``
  stateful allow ACLs -- from or to one of the ``address_sets`` address sets
  (``address_set_size`` port addresses each) on two TCP ports, so two
  dimensions of several values, which ovn-controller compiles into
  conjunction flows -- and a default deny;
* ``load_balancers`` TCP load balancers, one VIP each with
  ``backends_per_load_balancer`` VIF backends, attached to every switch like
  cluster-wide services.

Datapath and port tunnel keys are pinned: switches 1..n, the router n+1,
ports in order.
"""

from __future__ import annotations

import ipaddress
from dataclasses import fields

from ofrace.errors import LabError
from ofrace.lab.topology import (
    Acl,
    AddressSet,
    Chassis,
    LoadBalancer,
    Network,
    PortGroup,
    Router,
    RouterPort,
    Scale,
    Switch,
    SwitchPort,
    Vif,
)

ROUTER = "lr0"
# The first ofport of the VIFs on each chassis.
FIRST_VIF_OFPORT = 10
# OVN logical port tunnel keys have 15 bits, and the router has a port per switch.
MAX_SWITCHES = 2**15 - 1
# VIF addresses are .10 to .249 of their switch's /24.
MAX_PORTS_PER_SWITCH = 240
# Load balancer VIPs are 172.30.0.0/16.
MAX_LOAD_BALANCERS = 2**16
# The TCP ports of the allow ACLs, two per ACL, taken in turn.
ACL_TCP_PORTS = (80, 443, 8080, 8443, 5432, 6379, 9090, 9443)


def check(scale: Scale, where: str) -> None:
    """Refuse sizes the generated names, keys and addresses cannot represent."""
    for f in fields(scale):
        value = getattr(scale, f.name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise LabError(f"topology {where}: scale.{f.name} must be an integer >= 0")
    limits = {"chassis": (1, None), "switches": (1, MAX_SWITCHES),
              "ports_per_switch": (1, MAX_PORTS_PER_SWITCH),
              "vifs_per_switch": (0, scale.ports_per_switch),
              "load_balancers": (0, MAX_LOAD_BALANCERS)}
    for name, (low, high) in limits.items():
        value = getattr(scale, name)
        if value < low or (high is not None and value > high):
            raise LabError(f"topology {where}: scale.{name} must be {low}..{high or ''}")
    if scale.switches * scale.vifs_per_switch < scale.chassis:
        raise LabError(f"topology {where}: fewer VIFs than chassis, but every chassis needs "
                       "one for the switches to be local there")


def expand(scale: Scale, network: Network) -> dict:
    """The generated entities, as keyword arguments for :class:`Topology`."""
    chassis = _chassis(scale, network)
    port_ips = [_port_ip(i, j) for i in range(1, scale.switches + 1)
                for j in range(1, scale.ports_per_switch + 1)]
    vif_ips = [_port_ip(i, j) for i in range(1, scale.switches + 1)
               for j in range(1, scale.vifs_per_switch + 1)]
    address_sets = [
        AddressSet(name=f"as{k}",
                   addresses=_wrapped(port_ips, k * scale.address_set_size,
                                      scale.address_set_size))
        for k in range(scale.address_sets)
    ]
    load_balancers = [
        LoadBalancer(name=f"lb{k}", protocol="tcp", vips={
            f"172.30.{k // 256}.{k % 256}:80": ",".join(
                f"{ip}:8080" for ip in _wrapped(vif_ips, k * scale.backends_per_load_balancer,
                                                scale.backends_per_load_balancer)),
        })
        for k in range(scale.load_balancers)
    ]
    switches = _switches(scale, chassis, [lb.name for lb in load_balancers])
    return {
        "chassis": chassis,
        "switch": switches,
        "router": [_router(scale)],
        "address_set": address_sets,
        "load_balancer": load_balancers,
        "port_group": _port_groups(scale, switches, [a.name for a in address_sets]),
    }


def _chassis(scale: Scale, network: Network) -> list[Chassis]:
    """hv1, hv2, ... at .2, .3, ... of the management and tunnel networks (.1 is central)."""
    management = ipaddress.ip_interface(network.management).network
    tunnel = ipaddress.ip_network(network.tunnel)
    if scale.chassis + 2 >= min(management.num_addresses, tunnel.num_addresses):
        raise LabError(f"{scale.chassis} chassis do not fit the management and tunnel networks")
    return [Chassis(name=f"hv{n}", address=str(management[n + 1]), encap_ip=str(tunnel[n + 1]))
            for n in range(1, scale.chassis + 1)]


def _subnet(switch: int) -> str:
    return f"10.{switch // 256}.{switch % 256}"


def _port_ip(switch: int, port: int) -> str:
    return f"{_subnet(switch)}.{9 + port}"


def _switches(scale: Scale, chassis: list[Chassis], load_balancers: list[str]) -> list[Switch]:
    """The switches, each with its router port and its ports, VIFs dealt over the chassis."""
    next_ofport = {c.name: FIRST_VIF_OFPORT for c in chassis}
    vifs = 0
    switches = []
    for i in range(1, scale.switches + 1):
        high, low = divmod(i, 256)
        ports = [SwitchPort(name=f"ls{i}-{ROUTER}", tunnel_key=1, type="router",
                            addresses=["router"], options={"router-port": f"{ROUTER}-ls{i}"})]
        for j in range(1, scale.ports_per_switch + 1):
            address = f"0a:01:00:{high:02x}:{low:02x}:{j:02x} {_port_ip(i, j)}"
            vif = None
            if j <= scale.vifs_per_switch:
                home = chassis[vifs % len(chassis)].name
                vifs += 1
                vif = Vif(chassis=home, iface=f"vm{vifs}", ofport=next_ofport[home])
                next_ofport[home] += 1
            ports.append(SwitchPort(name=f"ls{i}-vm{j}", tunnel_key=j + 1, addresses=[address],
                                    port_security=[address], vif=vif))
        switches.append(Switch(name=f"ls{i}", tunnel_key=i, ports=ports,
                               load_balancers=load_balancers))
    return switches


def _router(scale: Scale) -> Router:
    """One distributed router with a port, .1, on every switch."""
    ports = []
    for i in range(1, scale.switches + 1):
        high, low = divmod(i, 256)
        ports.append(RouterPort(name=f"{ROUTER}-ls{i}", tunnel_key=i,
                                mac=f"0a:02:00:00:{high:02x}:{low:02x}",
                                networks=[f"{_subnet(i)}.1/24"]))
    return Router(name=ROUTER, tunnel_key=scale.switches + 1, ports=ports)


def _port_groups(scale: Scale, switches: list[Switch], address_sets: list[str]) -> list[PortGroup]:
    """Port groups of whole switches, with allow ACLs on address sets and a default deny."""
    members: list[list[str]] = [[] for _ in range(scale.port_groups)]
    if members:
        for index, switch in enumerate(switches):
            members[index % len(members)] += [p.name for p in switch.ports if p.type == ""]
    groups = []
    for g, ports in enumerate(members):
        name = f"pg{g}"
        acls = []
        for k in range(scale.acls_per_port_group if address_sets else 0):
            address_set = address_sets[(g * scale.acls_per_port_group + k) % len(address_sets)]
            tcp_ports = [ACL_TCP_PORTS[(2 * k + n) % len(ACL_TCP_PORTS)] for n in (0, 1)]
            if k % 2 == 0:
                direction, match = "to-lport", f"outport == @{name} && ip4.src == ${address_set}"
            else:
                direction, match = "from-lport", f"inport == @{name} && ip4.dst == ${address_set}"
            acls.append(Acl(direction=direction, priority=1100 - k, action="allow-related",
                            match=f"{match} && tcp.dst == {{{tcp_ports[0]}, {tcp_ports[1]}}}",
                            name=f"{name}-allow{k}"))
        acls.append(Acl(direction="to-lport", priority=1000, match=f"outport == @{name} && ip4",
                        action="drop", name=f"{name}-deny"))
        groups.append(PortGroup(name=name, ports=ports, acl=acls))
    return groups


def _wrapped(values: list[str], start: int, count: int) -> list[str]:
    """``count`` values from ``start`` on, wrapping around, never one twice."""
    count = min(count, len(values))
    return [values[(start + n) % len(values)] for n in range(count)]
