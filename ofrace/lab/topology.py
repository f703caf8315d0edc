"""Lab topologies: declarative TOML data turned into dataclasses.

A topology is a TOML file in ``ofrace/lab/topologies/`` (or any path given to
:func:`ofrace.lab.catalog.load`).  It says *what* the lab contains; :mod:`ofrace.lab.northbound`
and :mod:`ofrace.lab.chassis` turn it into ``ovn-nbctl`` and ``ovs-vsctl``
commands without knowing any topology by name.  Everything that would
otherwise be allocated at run time (datapath and port tunnel keys, ofports) is
pinned here so that two bring-ups give the same OpenFlow tables.

Schema (keys not listed are rejected, so typos fail loudly)::

    name = "kind"                      # required, the topology's name
    description = "..."                # one line, shown by `ofrace lab status`
    notes = "..."                      # free text: choices the source did not show

    [bringup]                          # optional: how `ofrace lab up` builds the lab
    timeout = 30                       # seconds each wait for OVN to catch up may take
    repeatable = true                  # two bring-ups give the same OpenFlow tables (see
                                       # ofrace.lab.lab).  false: minutes faster for a big lab
                                       # -- the whole northbound in one OVSDB transaction,
                                       # conntrack zones, chassisredirect keys and group ids
                                       # as OVN numbers them; tunnel keys and ofports pinned
    clustered_databases = false        # central's NB and SB as Raft clusters of one server:
                                       # they keep a transaction history, so a later read
                                       # can ask for the changes only (monitor_cond_since)

    [scale]                            # optional: generate the lab from size parameters
    chassis = 3                        # (ofrace.lab.scale says what each one makes), so
    switches = 500                     # list no chassis, switch, router, port_group,
    ports_per_switch = 50              # address_set, load_balancer or dhcp_options;
    vifs_per_switch = 2                # `ofrace lab up --size KEY=VALUE` overrides any
    port_groups = 50                   # of them.  These are the defaults.
    acls_per_port_group = 2
    address_sets = 50
    address_set_size = 30
    load_balancers = 10
    backends_per_load_balancer = 3

    [network]                          # optional, these are the defaults
    management = "198.18.0.1/24"       # root-namespace bridge ofr-<lab id>-mgmt; SSH, OVSDB
                                       # TCP.  A template: each lab moves it to a free
                                       # subnet of 198.18.0.0/15 (ofrace.lab.placement)
    tunnel = "192.168.100.0/24"        # Geneve underlay, exists only in the dummy datapath

    [[chassis]]                        # brought up in file order
    name = "ovn-worker"                # namespace ofr-<lab id>-<name>, run directory <dir>/<name>
    system_id = "4da007a6-..."         # default: name
    hostname = "ovn-worker"            # default: name
    address = "198.18.0.4"             # management address (sshd listens here)
    encap_ip = "192.168.100.4"         # Geneve endpoint on br-phys
    bridge_mappings = { physnet = "breth0" }   # network name -> provider bridge
    uplinks = { breth0 = "eth0" }      # provider bridge -> uplink port on the "outside" hub
    ovs_external_ids = {}              # more Open_vSwitch external_ids, e.g.
                                       # { ovn-cms-options = "enable-chassis-as-gw" }

    [[load_balancer]]
    name = "Service_default/nginx-np_TCP_node_router+switch_ovn-worker"
    protocol = "tcp"                   # tcp | udp | sctp
    vips = { "172.18.0.4:30007" = "10.244.1.3:80" }   # VIP -> comma-separated backends
    options = {}                       # Load_Balancer.options
    external_ids = {}
    ip_port_mappings = {}              # backend IP -> "<logical port>:<monitor source IP>"

    [[load_balancer.health_check]]     # Load_Balancer_Health_Check rows of this LB
    vip = "10.0.0.100:80"
    options = { interval = 5, timeout = 5, success_count = 1, failure_count = 3 }
    external_ids = {}

    [[switch]]
    name = "ovn-worker"
    tunnel_key = 3                     # other_config:requested-tnl-key
    other_config = {}
    external_ids = {}
    load_balancers = ["..."]           # names of [[load_balancer]] entries

    [[dhcp_options]]                   # one DHCP_Options row
    name = "ls1-v4"                    # handle for switch ports; not stored in OVN
    cidr = "10.0.1.0/24"               # IPv4 for dhcpv4_options, IPv6 for dhcpv6_options
    options = { router = "10.0.1.1", server_id = "10.0.1.1", lease_time = 3600 }
    external_ids = {}

    [[address_set]]
    name = "as_clients"                # $as_clients in ACL matches
    addresses = ["10.0.1.13", "10.0.1.14"]

    [[switch.port]]
    name = "default_nginx-deployment-9456bbbf9-x6pc6"
    tunnel_key = 3                     # options:requested-tnl-key
    type = ""                          # "", "router", "localnet", ...
    addresses = ["0a:58:0a:f4:01:03 10.244.1.3"]
    port_security = []
    options = {}                       # e.g. { router-port = "rtos-ovn-worker" }
    external_ids = {}
    dhcpv4_options = ""                # name of a [[dhcp_options]] entry
    dhcpv6_options = ""
    tag = 0                            # Logical_Switch_Port.tag (a localnet port's VLAN); 0: none
    # A VIF: bound on one chassis as a dummy interface on br-int.
    vif = { chassis = "ovn-worker", iface = "nginx-x6pc6", ofport = 12 }
    # A localport's taps: an interface with its iface-id on each of these chassis
    # (a localport is bound nowhere; each chassis with a tap delivers to its own).
    taps = [{ chassis = "ovn-worker", iface = "tap0", ofport = 20 }]

    [[router]]
    name = "GR_ovn-worker"
    tunnel_key = 5                     # options:requested-tnl-key
    options = { chassis = "4da007a6-..." }
    external_ids = {}
    load_balancers = ["..."]

    [[router.port]]
    name = "rtoe-GR_ovn-worker"
    tunnel_key = 2                     # options:requested-tnl-key
    mac = "02:42:ac:12:00:04"
    networks = ["172.18.0.4/16"]
    gateway_chassis = []               # system-ids, highest priority first
    options = {}
    external_ids = {}
    ipv6_ra_configs = {}               # e.g. { address_mode = "slaac" }

    [[router.nat]]
    type = "snat"                      # snat | dnat | dnat_and_snat
    external_ip = "172.18.0.4"
    logical_ip = "10.244.0.0/16"
    logical_port = ""                  # dnat_and_snat: set with external_mac, distributed
    external_mac = ""
    options = {}                       # default { stateless = false }
    external_ids = {}

    [[router.route]]
    prefix = "0.0.0.0/0"
    nexthop = "172.18.0.1"
    policy = "dst-ip"                  # dst-ip | src-ip
    output_port = "rtoe-GR_ovn-worker" # optional

    [[router.policy]]
    priority = 101
    match = "ip4.src == 10.244.0.0/16 && ip4.dst == 100.64.0.0/16"
    action = "allow"                   # allow | drop | reroute
    nexthops = []                      # for reroute

    [[port_group]]                     # made after the switches, whose ports it names
    name = "pg_web"                    # @pg_web in ACL matches
    ports = ["vm1", "vm2"]             # logical switch port names
    external_ids = {}

    [[port_group.acl]]
    direction = "to-lport"             # from-lport | to-lport
    priority = 1010
    match = "outport == @pg_web && ip4.src == $as_clients && tcp.dst == {80, 443}"
    action = "allow-related"           # allow[-related|-stateless] | drop | reject | pass
    name = "web-from-clients"          # ACL.name (unlike `acl-add --name`, does not turn on log)
    log = false
    severity = ""                      # alert | warning | notice | info | debug
    options = {}                       # e.g. { apply-after-lb = true }
    external_ids = {}

    [interconnect]                     # optional: OVN interconnection (ovn-ic) between zones
    transit_switches = ["transit_switch"]  # `ovn-ic-nbctl ts-add` each; every zone's ovn-ic
                                       # then creates it in its own NB

    [[zone]]                           # optional: an availability zone of its own (with
    name = "ovn-worker"                # zones, the logical network is declared per zone and
    chassis = ["ovn-worker"]           # not at the top level).  name: NB_Global.name; chassis:
                                       # those whose ovn-controller use this zone's SB; the
                                       # zone's NB and SB ovsdb-server, ovn-northd and ovn-ic run
                                       # in the first one's namespace and run directory
    # [[zone.load_balancer]], [[zone.dhcp_options]], [[zone.address_set]], [[zone.switch]],
    # [[zone.router]], [[zone.port_group]]: as at the top level, in this zone's NB only.

    [[zone.transit_port]]              # this zone's port on a transit switch, added to the
    switch = "transit_switch"          # switch ovn-ic made in the zone's NB; ovn-ic gives it
    name = "tstor-ovn-worker"          # its tunnel key (IC-SB Port_Binding) and makes it a
    router_port = "rtots-ovn-worker"   # "remote" port in every other zone (the router port
                                       # needs a gateway chassis: ovn-ic's gateway of the port)

    [faults]                           # optional: what is broken once the lab has settled
    tunnel_down = ["gw-0"]             # chassis whose tunnel-network link stops passing
                                       # frames (the hub port: no-receive, no-forward)

A file may say ``based_on = "openstack"``: it is that shipped topology with this
file's top-level keys replacing the base's (``ofrace.lab.catalog``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ofrace.errors import LabError

# Namespaces are called ofr-<lab id>-<chassis name>; keep them readable.
MAX_CHASSIS_NAME = 31


@dataclass(frozen=True)
class Network:
    """Addresses of the lab's two Linux-visible or dummy networks."""

    management: str = "198.18.0.1/24"
    tunnel: str = "192.168.100.0/24"

    @property
    def central_address(self) -> str:
        """The root namespace's address on the management bridge."""
        return str(ipaddress.ip_interface(self.management).ip)

    @property
    def management_prefixlen(self) -> int:
        return ipaddress.ip_interface(self.management).network.prefixlen

    @property
    def tunnel_prefixlen(self) -> int:
        return ipaddress.ip_network(self.tunnel).prefixlen


@dataclass(frozen=True)
class Vif:
    """Where a logical switch port is plugged in: a dummy interface on br-int."""

    chassis: str
    iface: str
    ofport: int


@dataclass(frozen=True)
class Chassis:
    name: str
    address: str
    encap_ip: str
    system_id: str = ""
    hostname: str = ""
    bridge_mappings: dict[str, str] = field(default_factory=dict)
    uplinks: dict[str, str] = field(default_factory=dict)
    ovs_external_ids: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if not self.system_id:
            object.__setattr__(self, "system_id", self.name)
        if not self.hostname:
            object.__setattr__(self, "hostname", self.name)

    @property
    def provider_bridges(self) -> list[str]:
        """Bridges named by ovn-bridge-mappings, in mapping order."""
        return list(dict.fromkeys(self.bridge_mappings.values()))


@dataclass(frozen=True)
class HealthCheck:
    """A Load_Balancer_Health_Check row: ovn-controller probes the VIP's backends."""

    vip: str
    options: dict[str, str] = field(default_factory=dict)
    external_ids: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadBalancer:
    name: str
    vips: dict[str, str]
    protocol: str = "tcp"
    options: dict[str, str] = field(default_factory=dict)
    external_ids: dict[str, str] = field(default_factory=dict)
    health_check: list[HealthCheck] = field(default_factory=list)
    ip_port_mappings: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DhcpOptions:
    """A DHCP_Options row; ``name`` only lets switch ports refer to it."""

    name: str
    cidr: str
    options: dict[str, str] = field(default_factory=dict)
    external_ids: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AddressSet:
    name: str
    addresses: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SwitchPort:
    name: str
    tunnel_key: int
    type: str = ""
    addresses: list[str] = field(default_factory=list)
    port_security: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    external_ids: dict[str, str] = field(default_factory=dict)
    vif: Vif | None = None
    dhcpv4_options: str = ""
    dhcpv6_options: str = ""
    tag: int = 0
    taps: list[Vif] = field(default_factory=list)


@dataclass(frozen=True)
class Switch:
    name: str
    tunnel_key: int
    ports: list[SwitchPort] = field(default_factory=list)
    other_config: dict[str, str] = field(default_factory=dict)
    external_ids: dict[str, str] = field(default_factory=dict)
    load_balancers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RouterPort:
    name: str
    tunnel_key: int
    mac: str
    networks: list[str]
    gateway_chassis: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    external_ids: dict[str, str] = field(default_factory=dict)
    ipv6_ra_configs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Nat:
    type: str
    external_ip: str
    logical_ip: str
    logical_port: str = ""
    external_mac: str = ""
    options: dict[str, str] = field(default_factory=dict)
    external_ids: dict[str, str] = field(default_factory=dict)

    @property
    def plain(self) -> bool:
        """Nothing ``lr-nat-add ROUTER TYPE EXTERNAL_IP LOGICAL_IP`` would not write."""
        return not (self.logical_port or self.external_mac or self.options
                    or self.external_ids)


@dataclass(frozen=True)
class Route:
    prefix: str
    nexthop: str
    policy: str = "dst-ip"
    output_port: str = ""


@dataclass(frozen=True)
class Policy:
    priority: int
    match: str
    action: str
    nexthops: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Router:
    name: str
    tunnel_key: int
    ports: list[RouterPort] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    external_ids: dict[str, str] = field(default_factory=dict)
    load_balancers: list[str] = field(default_factory=list)
    nat: list[Nat] = field(default_factory=list)
    route: list[Route] = field(default_factory=list)
    policy: list[Policy] = field(default_factory=list)


ACL_DIRECTIONS = ("from-lport", "to-lport")
ACL_ACTIONS = ("allow", "allow-related", "allow-stateless", "drop", "reject", "pass")


@dataclass(frozen=True)
class Acl:
    direction: str
    priority: int
    match: str
    action: str
    name: str = ""
    log: bool = False
    severity: str = ""
    options: dict[str, str] = field(default_factory=dict)
    external_ids: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PortGroup:
    name: str
    ports: list[str] = field(default_factory=list)
    acl: list[Acl] = field(default_factory=list)
    external_ids: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Faults:
    """What :meth:`ofrace.lab.lab.Lab.up` breaks once the lab has settled."""

    tunnel_down: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Bringup:
    """How ``ofrace lab up`` builds the lab: repeatable, or fast enough for a big one."""

    timeout: float = 30.0
    repeatable: bool = True
    clustered_databases: bool = False


@dataclass(frozen=True)
class Scale:
    """Size parameters of a generated topology; :mod:`ofrace.lab.scale` says what each makes."""

    chassis: int = 3
    switches: int = 500
    ports_per_switch: int = 50
    vifs_per_switch: int = 2
    port_groups: int = 50
    acls_per_port_group: int = 2
    address_sets: int = 50
    address_set_size: int = 30
    load_balancers: int = 10
    backends_per_load_balancer: int = 3

    def with_sizes(self, sizes: dict[str, str]) -> Scale:
        """These parameters with some replaced, from ``--size KEY=VALUE`` strings."""
        known = [f.name for f in fields(self)]
        values = {name: getattr(self, name) for name in known}
        for key, text in sizes.items():
            if key not in values:
                raise LabError(f"unknown size parameter {key!r} (known: {', '.join(known)})")
            try:
                values[key] = int(text)
            except ValueError:
                raise LabError(f"size parameter {key}={text!r} is not an integer") from None
        return Scale(**values)


@dataclass(frozen=True)
class TransitPort:
    """A zone's own port on a transit switch: type router, peer of ``router_port``."""

    switch: str
    name: str
    router_port: str


@dataclass(frozen=True)
class Zone:
    """One availability zone: its chassis and the logical network of its own NB."""

    name: str
    chassis: list[str] = field(default_factory=list)
    load_balancer: list[LoadBalancer] = field(default_factory=list)
    dhcp_options: list[DhcpOptions] = field(default_factory=list)
    address_set: list[AddressSet] = field(default_factory=list)
    switch: list[Switch] = field(default_factory=list)
    router: list[Router] = field(default_factory=list)
    port_group: list[PortGroup] = field(default_factory=list)
    transit_port: list[TransitPort] = field(default_factory=list)

    @property
    def host(self) -> str:
        """The chassis whose namespace runs the zone's NB, SB, ovn-northd and ovn-ic."""
        return self.chassis[0]


@dataclass(frozen=True)
class Interconnect:
    """What the IC-NB holds: the transit switches that join the zones."""

    transit_switches: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Topology:
    name: str
    chassis: list[Chassis] = field(default_factory=list)
    description: str = ""
    notes: str = ""
    bringup: Bringup = field(default_factory=Bringup)
    scale: Scale | None = None
    network: Network = field(default_factory=Network)
    load_balancer: list[LoadBalancer] = field(default_factory=list)
    dhcp_options: list[DhcpOptions] = field(default_factory=list)
    address_set: list[AddressSet] = field(default_factory=list)
    switch: list[Switch] = field(default_factory=list)
    router: list[Router] = field(default_factory=list)
    port_group: list[PortGroup] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)
    interconnect: Interconnect | None = None
    zone: list[Zone] = field(default_factory=list)

    def zone_view(self, zone: Zone) -> Topology:
        """One zone as a topology of its own: its chassis and its NB's logical network."""
        return replace(
            self, chassis=[self.chassis_named(name) for name in zone.chassis],
            load_balancer=zone.load_balancer, dhcp_options=zone.dhcp_options,
            address_set=zone.address_set, switch=zone.switch, router=zone.router,
            port_group=zone.port_group, faults=Faults(), interconnect=None, zone=[])

    def zone_of(self, chassis_name: str) -> Zone | None:
        for zone in self.zone:
            if chassis_name in zone.chassis:
                return zone
        return None

    @property
    def all_switches(self) -> list[Switch]:
        """The switches of the top level and of every zone."""
        return [*self.switch, *(s for zone in self.zone for s in zone.switch)]

    def chassis_named(self, name: str) -> Chassis:
        for chassis in self.chassis:
            if chassis.name == name:
                return chassis
        raise LabError(f"topology {self.name}: no chassis named {name!r}")

    def vifs_on(self, chassis_name: str) -> list[tuple[SwitchPort, Vif]]:
        """The VIFs (and localport taps) on one chassis, in topology order."""
        return [
            (port, vif)
            for switch in self.all_switches
            for port in switch.ports
            for vif in ([port.vif] if port.vif else []) + port.taps
            if vif.chassis == chassis_name
        ]


def build(data: dict, origin: str) -> Topology:
    """A topology from its parsed TOML table, every key and type checked."""
    return _build(Topology, data, origin)


# Nested tables and arrays of tables, by dataclass and key.
_NESTED: dict[tuple[type, str], type] = {
    (Topology, "network"): Network,
    (Topology, "bringup"): Bringup,
    (Topology, "scale"): Scale,
    (Topology, "chassis"): Chassis,
    (Topology, "load_balancer"): LoadBalancer,
    (LoadBalancer, "health_check"): HealthCheck,
    (Topology, "faults"): Faults,
    (SwitchPort, "taps"): Vif,
    (Topology, "dhcp_options"): DhcpOptions,
    (Topology, "address_set"): AddressSet,
    (Topology, "port_group"): PortGroup,
    (PortGroup, "acl"): Acl,
    (Topology, "switch"): Switch,
    (Topology, "router"): Router,
    (Switch, "port"): SwitchPort,
    (SwitchPort, "vif"): Vif,
    (Router, "port"): RouterPort,
    (Router, "nat"): Nat,
    (Router, "route"): Route,
    (Router, "policy"): Policy,
    (Topology, "interconnect"): Interconnect,
    (Topology, "zone"): Zone,
    (Zone, "load_balancer"): LoadBalancer,
    (Zone, "dhcp_options"): DhcpOptions,
    (Zone, "address_set"): AddressSet,
    (Zone, "switch"): Switch,
    (Zone, "router"): Router,
    (Zone, "port_group"): PortGroup,
    (Zone, "transit_port"): TransitPort,
}
# TOML keys that differ from the dataclass field names.
_RENAMED = {"port": "ports"}


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise LabError(f"topology {where}: expected a table")
    known = {f.name for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        attr = _RENAMED.get(key, key) if cls in (Switch, Router) else key
        if attr not in known:
            raise LabError(f"topology {where}: unknown key {key!r} in {cls.__name__.lower()}")
        nested = _NESTED.get((cls, key))
        label = f"{where}: {key}"
        if nested is not None and isinstance(value, list):
            value = [_build(nested, item, f"{label}[{i}]") for i, item in enumerate(value)]
        elif nested is not None:
            value = _build(nested, value, label)
        elif isinstance(value, dict):
            value = {str(k): _option_value(v, f"{label}.{k}") for k, v in value.items()}
        kwargs[attr] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        missing = str(exc).split("argument", 1)[-1].strip(": ")
        raise LabError(f"topology {where}: {cls.__name__.lower()} lacks {missing}") from None


def _option_value(value: Any, where: str) -> str:
    """OVSDB maps hold strings; accept TOML booleans and integers for readability."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    raise LabError(f"topology {where}: expected a string, number or boolean")


def validate(topology: Topology, where: str) -> None:
    """Catch the mistakes that would otherwise surface as an obscure ovn-nbctl error."""
    chassis_names = [c.name for c in topology.chassis]
    if not chassis_names:
        raise LabError(f"topology {where}: no chassis")
    timeout = topology.bringup.timeout
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise LabError(f"topology {where}: bringup.timeout must be a number of seconds")
    if not isinstance(topology.bringup.repeatable, bool):
        raise LabError(f"topology {where}: bringup.repeatable must be true or false")
    if not isinstance(topology.bringup.clustered_databases, bool):
        raise LabError(f"topology {where}: bringup.clustered_databases must be true or false")
    _unique(chassis_names, "chassis name", where)
    _unique([c.address for c in topology.chassis], "chassis address", where)
    _unique([c.encap_ip for c in topology.chassis], "encap_ip", where)
    for chassis in topology.chassis:
        if len(chassis.name) > MAX_CHASSIS_NAME:
            raise LabError(f"topology {where}: chassis name {chassis.name!r} is too long")
        for bridge in chassis.uplinks:
            if bridge not in chassis.provider_bridges:
                raise LabError(
                    f"topology {where}: chassis {chassis.name} has an uplink on {bridge}, "
                    "which no bridge mapping names"
                )
    lb_names = {lb.name for lb in topology.load_balancer}
    _unique([lb.name for lb in topology.load_balancer], "load balancer name", where)
    _unique([s.name for s in topology.switch] + [r.name for r in topology.router],
            "datapath name", where)
    _unique([s.tunnel_key for s in topology.switch] + [r.tunnel_key for r in topology.router],
            "datapath tunnel_key", where)
    all_ports = [p.name for s in topology.switch for p in s.ports]
    all_ports += [p.name for r in topology.router for p in r.ports]
    _unique(all_ports, "port name", where)
    for datapath in [*topology.switch, *topology.router]:
        _unique([p.tunnel_key for p in datapath.ports], f"port tunnel_key in {datapath.name}",
                where)
        for lb in datapath.load_balancers:
            if lb not in lb_names:
                raise LabError(f"topology {where}: {datapath.name} names unknown load "
                               f"balancer {lb!r}")
    for chassis_name in chassis_names:
        vifs = topology.vifs_on(chassis_name)
        _unique([v.iface for _, v in vifs], f"VIF iface on {chassis_name}", where)
        _unique([v.ofport for _, v in vifs], f"VIF ofport on {chassis_name}", where)
    for switch in topology.switch:
        for port in switch.ports:
            if port.vif and port.vif.chassis not in chassis_names:
                raise LabError(f"topology {where}: port {port.name} is bound to unknown "
                               f"chassis {port.vif.chassis!r}")
            if port.taps and port.type != "localport":
                raise LabError(f"topology {where}: port {port.name} has taps but is not "
                               "a localport (give a VIF a vif)")
            for tap in port.taps:
                if tap.chassis not in chassis_names:
                    raise LabError(f"topology {where}: port {port.name} has a tap on "
                                   f"unknown chassis {tap.chassis!r}")
            if isinstance(port.tag, bool) or not isinstance(port.tag, int) or \
                    not 0 <= port.tag <= 4095:
                raise LabError(f"topology {where}: port {port.name} has tag {port.tag!r}, "
                               "not a VLAN id (0 for none)")
    for chassis_name in topology.faults.tunnel_down:
        if chassis_name not in chassis_names:
            raise LabError(f"topology {where}: faults.tunnel_down names unknown chassis "
                           f"{chassis_name!r}")
    _validate_dhcp(topology, where)
    _validate_acls(topology, where)
    _validate_zones(topology, where)


def _validate_zones(topology: Topology, where: str) -> None:
    """Each zone is a topology of its own; every chassis is in exactly one zone."""
    if not topology.zone:
        if topology.interconnect is not None:
            raise LabError(f"topology {where}: [interconnect] without any [[zone]]")
        return
    if topology.switch or topology.router or topology.load_balancer or topology.port_group:
        raise LabError(f"topology {where}: with zones, the logical network is declared per "
                       "[[zone]], not at the top level")
    if not topology.bringup.repeatable or topology.faults.tunnel_down:
        raise LabError(f"topology {where}: a lab of zones comes up only the repeatable way "
                       "and without [faults] (ofrace.lab.interconnect)")
    _unique([z.name for z in topology.zone], "zone name", where)
    zoned = [name for zone in topology.zone for name in zone.chassis]
    _unique(zoned, "chassis in a zone", where)
    names = [c.name for c in topology.chassis]
    for name in zoned:
        if name not in names:
            raise LabError(f"topology {where}: a zone names unknown chassis {name!r}")
    for name in names:
        if name not in zoned:
            raise LabError(f"topology {where}: chassis {name} is in no zone (every chassis "
                           "belongs to exactly one)")
    transit = set(topology.interconnect.transit_switches if topology.interconnect else [])
    for zone in topology.zone:
        if not zone.chassis:
            raise LabError(f"topology {where}: zone {zone.name} has no chassis")
        view = topology.zone_view(zone)
        validate(view, f"{where}: zone {zone.name}")
        router_ports = {p.name for r in zone.router for p in r.ports}
        for port in zone.transit_port:
            if port.switch not in transit:
                raise LabError(f"topology {where}: zone {zone.name}: transit port {port.name} "
                               f"is on {port.switch!r}, not an [interconnect] transit switch")
            if port.router_port not in router_ports:
                raise LabError(f"topology {where}: zone {zone.name}: transit port {port.name} "
                               f"names unknown router port {port.router_port!r}")


def _validate_dhcp(topology: Topology, where: str) -> None:
    _unique([d.name for d in topology.dhcp_options], "dhcp_options name", where)
    versions = {}
    for dhcp in topology.dhcp_options:
        try:
            versions[dhcp.name] = ipaddress.ip_network(dhcp.cidr).version
        except ValueError as exc:
            raise LabError(f"topology {where}: dhcp_options {dhcp.name}: {exc}") from None
    for switch in topology.switch:
        for port in switch.ports:
            for column, version in (("dhcpv4_options", 4), ("dhcpv6_options", 6)):
                name = getattr(port, column)
                if name and name not in versions:
                    raise LabError(f"topology {where}: port {port.name} names unknown "
                                   f"dhcp_options {name!r}")
                if name and versions[name] != version:
                    raise LabError(f"topology {where}: port {port.name}'s {column} "
                                   f"{name!r} is not an IPv{version} cidr")


def _validate_acls(topology: Topology, where: str) -> None:
    _unique([a.name for a in topology.address_set], "address_set name", where)
    _unique([g.name for g in topology.port_group], "port_group name", where)
    switch_ports = {p.name for s in topology.switch for p in s.ports}
    for group in topology.port_group:
        for port in group.ports:
            if port not in switch_ports:
                raise LabError(f"topology {where}: port group {group.name} names unknown "
                               f"switch port {port!r}")
        for acl in group.acl:
            if acl.direction not in ACL_DIRECTIONS:
                raise LabError(f"topology {where}: ACL {acl.name or acl.match!r} has "
                               f"direction {acl.direction!r}, not one of {ACL_DIRECTIONS}")
            if acl.action not in ACL_ACTIONS:
                raise LabError(f"topology {where}: ACL {acl.name or acl.match!r} has "
                               f"action {acl.action!r}, not one of {ACL_ACTIONS}")


def _unique(values: list, what: str, where: str) -> None:
    seen = set()
    for value in values:
        if value in seen:
            raise LabError(f"topology {where}: duplicate {what} {value!r}")
        seen.add(value)
