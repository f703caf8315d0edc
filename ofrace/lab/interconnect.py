"""A lab of OVN availability zones joined by ovn-ic, as ovn-kubernetes' interconnect mode.

A topology with ``[[zone]]`` tables comes up here instead of with one central
NB/SB.  Central runs only the interconnection databases (IC-NB, IC-SB
``ovsdb-server``; ``ovn-ic-nbctl ts-add`` for each transit switch).  Each
zone runs, in its host chassis' namespace and run directory, its own NB and SB
``ovsdb-server``, ``ovn-northd`` and ``ovn-ic`` -- as ovnkube-node has them
next to the node's ``ovn-controller`` -- and its chassis' ``ovn-controller``
reads that SB.  What ovn-ic does (ic/ovn-ic.c, OVN 23.03): ``ts_run`` creates
each transit switch in the zone's NB (``other_config:interconn-ts``, the IC-SB
datapath key as ``requested-tnl-key``); ``gateway_run`` publishes the zone's
chassis marked ``is-interconn`` as IC-SB Gateways and copies the other zones'
into the zone's SB as chassis with ``is-remote=true``; ``port_binding_run``
registers the zone's router-type transit ports in the IC-SB (tunnel key
allocated there, gateway = the chassis of the peer router port's
chassisredirect port) and creates the other zones' as ``type=remote`` ports.

Bring-up is ordered as :mod:`ofrace.lab.lab`'s, zone by zone, so that transit
port keys (ovn-ic allocates them lowest free first, in registration order) and
everything else come out the same on every run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ofrace.errors import LabError
from ofrace.lab.command import run, shared_file
from ofrace.lab.daemons import start_ovs_daemon
from ofrace.lab.layout import LabLayout
from ofrace.lab.northbound import gateway_chassis_commands, load_balancer_attachments, nbctl_argv
from ofrace.lab.topology import Topology, TransitPort, Zone

# The lab this brings up is an ofrace.lab.lab.Lab, which imports this module: the
# functions take it untyped ("lab") rather than make an import circle.
Progress = Callable[[str], None]

IC_NB_SCHEMA = "ovn/ovn-ic-nb.ovsschema"
IC_SB_SCHEMA = "ovn/ovn-ic-sb.ovsschema"
IC_NB_PORT = 6645
IC_SB_PORT = 6646
REQUIRED_PROGRAMS = ("ovn-ic", "ovn-ic-nbctl", "ovn-ic-sbctl")


def initial_state(layout: LabLayout, topology: Topology) -> dict:
    """lab.json's part for zones: the IC databases, each zone's NB and SB, per chassis its
    zone's (no central NB/SB: ``nb_remote``/``sb_remote`` are None)."""
    central = topology.network.central_address
    zones = [{
        "name": zone.name,
        "chassis": list(zone.chassis),
        "host": zone.host,
        "nb_remote": f"unix:{layout.zone_nb_socket(zone.host)}",
        "sb_remote": f"unix:{layout.zone_sb_socket(zone.host)}",
    } for zone in topology.zone]
    return {
        "nb_remote": None, "sb_remote": None, "nb_tcp": None, "sb_tcp": None,
        "ic_nb_remote": f"unix:{layout.ic_nb_socket}",
        "ic_sb_remote": f"unix:{layout.ic_sb_socket}",
        "ic_nb_tcp": f"tcp:{central}:{IC_NB_PORT}",
        "ic_sb_tcp": f"tcp:{central}:{IC_SB_PORT}",
        "transit_switches": list(topology.interconnect.transit_switches
                                 if topology.interconnect else []),
        "zones": zones,
    }


def chassis_zone_state(state: dict, chassis: str) -> dict:
    """The lab.json zone a chassis belongs to."""
    for zone in state.get("zones", []):
        if chassis in zone["chassis"]:
            return zone
    raise LabError(f"chassis {chassis!r} is in no zone of the lab")


def bring_up(lab, topology: Topology, say: Progress) -> None:
    """Bring a topology of zones up in ``lab`` (whose state ``initial_state`` began)."""
    for chassis in lab.state["chassis"]:
        zone = chassis_zone_state(lab.state, chassis["name"])
        chassis.update(zone=zone["name"], northbound=zone["nb_remote"],
                       southbound=zone["sb_remote"])
    lab._save_state()
    zones = {z["name"]: z for z in lab.state["zones"]}
    say("management network and namespaces")
    lab._make_network(topology)
    say("central: IC-NB and IC-SB ovsdb-server, transit switches")
    _start_ic_databases(lab, topology)
    say("hub: the OVS instance that wires the chassis together")
    lab._start_hub(topology)
    for zone in topology.zone:
        say(f"zone {zone.name}: NB and SB ovsdb-server, ovn-northd, logical network")
        _start_zone_databases(lab, zone, zones[zone.name])
        view = topology.zone_view(zone)
        nb = zones[zone.name]["nb_remote"]
        lab._wait_for("sb", *nbctl_argv(view), remote=nb)
        for command in gateway_chassis_commands(view):
            lab._wait_for("sb", *command, remote=nb)
    for chassis in topology.chassis:
        say(f"chassis {chassis.name}")
        zone = zones[topology.zone_of(chassis.name).name]
        lab._start_chassis(topology, chassis, sb_remote=zone["sb_remote"])
    for zone in topology.zone:
        say(f"zone {zone.name}: ovn-ic, transit ports")
        _start_ovn_ic(lab, zone, zones[zone.name])
        _add_transit_ports(lab, zone, zones[zone.name])
    say("waiting for every zone to learn the others' transit ports and gateways")
    lab._wait_until(lambda: _interconnected(lab, topology), "remote ports bound in every zone")
    lab._wait_for_tunnels_to(topology.chassis)
    for chassis in topology.chassis:
        lab._ensure_tunnel_endpoint(topology, chassis)
    say("sshd in every chassis")
    lab._start_sshds(topology)
    say("waiting for ports to be bound")
    _wait_zones_bound(lab, topology)
    say("numbering conntrack zones")
    for zone in topology.zone:
        lab._renumber_ct_zones(topology.zone_view(zone), zones[zone.name])
    _wait_zones_bound(lab, topology)
    say("load balancers, one datapath at a time")
    for zone in topology.zone:
        for command in load_balancer_attachments(topology.zone_view(zone)):
            lab._wait_for("hv", *command, remote=zones[zone.name]["nb_remote"])
    say("waiting for OVN to settle")
    lab._wait_until(lambda: lab._bfd_up(topology), "BFD sessions up")
    for chassis in topology.chassis:
        lab._pin_automatic_ofports(chassis)
    _wait_zones_bound(lab, topology)
    for chassis in topology.chassis:
        lab.recompute(chassis.name)
    _wait_zones_bound(lab, topology)
    say("waiting for the MAC tables to settle")
    lab._wait_for_mac_tables()


def _wait_zones_bound(lab, topology: Topology) -> None:
    """Every zone's chassis caught up with its NB, and its SB's bindings settled."""
    for zone in topology.zone:
        state = chassis_zone_state(lab.state, zone.host)
        lab._wait_for("hv", "sync", remote=state["nb_remote"])
        # A zone's SB lists every chassis: its own and, as remote ones, the others'.
        view = replace(topology.zone_view(zone), chassis=topology.chassis)
        lab._wait_until(lambda v=view, s=state: lab._bindings_settled(v, s["sb_remote"]),
                        f"ports bound and up in zone {zone.name}")


def _env(directory) -> dict[str, str]:
    return {f"{p}_{k}": str(directory) for p in ("OVS", "OVN")
            for k in ("RUNDIR", "DBDIR", "LOGDIR", "SYSCONFDIR")}


def _start_ic_databases(lab, topology: Topology) -> None:
    central = lab.layout.central
    central.mkdir(parents=True)
    address = topology.network.central_address
    for name, schema, sock, port in (
        ("ovn_ic_nb_db", IC_NB_SCHEMA, lab.layout.ic_nb_socket, IC_NB_PORT),
        ("ovn_ic_sb_db", IC_SB_SCHEMA, lab.layout.ic_sb_socket, IC_SB_PORT),
    ):
        db = central / f"{name}.db"
        run(["ovsdb-tool", "create", str(db), str(shared_file(schema))])
        lab._record(start_ovs_daemon(
            "ovsdb-server",
            [str(db), f"--remote=punix:{sock}", f"--remote=ptcp:{port}:{address}"],
            what="ovsdb-server", chassis="central", rundir=central, env=_env(central),
            name=name,
        ))
    ic_nbctl(lab, "init")
    for switch in topology.interconnect.transit_switches if topology.interconnect else []:
        ic_nbctl(lab, "ts-add", switch)


def _start_zone_databases(lab, zone: Zone, state: dict) -> None:
    """The zone's NB and SB ovsdb-server and ovn-northd, in its host chassis' namespace.

    Each database is a Raft cluster of one server (``ovsdb-tool create-cluster``, its
    Raft address a unix socket in the run directory), as OpenShift's per-node nbdb and
    sbdb containers run them ("raft mode"): their files are the clustered logs an
    OpenShift network must-gather copies (ofrace.lab.mustgather)."""
    rundir = lab.layout.chassis(zone.host)
    rundir.mkdir(parents=True, exist_ok=True)
    env = lab.layout.chassis_env(zone.host)
    netns = lab._netns(zone.host)
    for name, schema, sock in (
        ("ovnnb_db", "ovn/ovn-nb.ovsschema", lab.layout.zone_nb_socket(zone.host)),
        ("ovnsb_db", "ovn/ovn-sb.ovsschema", lab.layout.zone_sb_socket(zone.host)),
    ):
        db = rundir / f"{name}.db"
        run(["ovsdb-tool", "create-cluster", str(db), str(shared_file(schema)),
             f"unix:{rundir / (name + '.raft')}"])
        lab._record(start_ovs_daemon(
            "ovsdb-server", [str(db), f"--remote=punix:{sock}"],
            what="ovsdb-server", chassis=zone.host, rundir=rundir, env=env, netns=netns,
            name=name,
        ))
    nb = state["nb_remote"]
    lab._init_databases(zone=zone.name, nb=nb, sb=state["sb_remote"])
    lab._record(start_ovs_daemon(
        "ovn-northd", [f"--ovnnb-db={nb}", f"--ovnsb-db={state['sb_remote']}"],
        what="ovn-northd", chassis=zone.host, rundir=rundir, env=env, netns=netns,
    ))


def _start_ovn_ic(lab, zone: Zone, state: dict) -> None:
    """The zone's ovn-ic, then wait until it made every transit switch in the zone's NB."""
    rundir = lab.layout.chassis(zone.host)
    lab._record(start_ovs_daemon(
        "ovn-ic",
        [f"--ovnnb-db={state['nb_remote']}", f"--ovnsb-db={state['sb_remote']}",
         f"--ic-nb-db={lab.state['ic_nb_tcp']}", f"--ic-sb-db={lab.state['ic_sb_tcp']}"],
        what="ovn-ic", chassis=zone.host, rundir=rundir, env=lab.layout.chassis_env(zone.host),
        netns=lab._netns(zone.host),
    ))
    wanted = set(lab.state["transit_switches"])
    lab._wait_until(
        lambda: wanted <= set(lab.nbctl("--bare", "--columns=name", "find", "Logical_Switch",
                                        "other_config:interconn-ts!=[]",
                                        remote=state["nb_remote"]).split()),
        f"ovn-ic of zone {zone.name} to create the transit switches")


def _add_transit_ports(lab, zone: Zone, state: dict) -> None:
    """The zone's own transit ports, one at a time: each waits until ovn-ic registered it
    in the IC-SB, so the keys ovn-ic allocates follow the topology's order."""
    for port in zone.transit_port:
        lab._wait_for("sb", *transit_port_argv(port), remote=state["nb_remote"])
        lab._wait_until(lambda p=port: _registered(lab, p.name),
                        f"ovn-ic to register {port.name} in the IC-SB")


def transit_port_argv(port: TransitPort) -> list[str]:
    """ovn-nbctl arguments that add a zone's router-type port to a transit switch."""
    return ["lsp-add", port.switch, port.name, "--", "lsp-set-type", port.name, "router",
            "--", "lsp-set-addresses", port.name, "router",
            "--", "lsp-set-options", port.name, f"router-port={port.router_port}"]


def _registered(lab, port: str) -> bool:
    """The IC-SB Port_Binding of ``port`` exists and names its gateway."""
    rows = ic_sbctl(lab, "--bare", "--columns=gateway", "find", "Port_Binding",
                    f"logical_port={port}").split()
    return bool(rows)


def _interconnected(lab, topology: Topology) -> bool:
    """In every zone, each other zone's transit port is a remote port bound to its chassis
    (ovn-ic's sync_remote_port), and the other zones' gateways are remote chassis."""
    everyone = {port.name for zone in topology.zone for port in zone.transit_port}
    system_ids = {c.system_id for c in topology.chassis}
    for zone in topology.zone:
        state = chassis_zone_state(lab.state, zone.host)
        others = everyone - {port.name for port in zone.transit_port}
        chassis = {row["_uuid"]: row for row in lab._sb_rows(
            "Chassis", "_uuid", "name", "other_config", remote=state["sb_remote"])}
        if {row["name"] for row in chassis.values()} != system_ids:
            return False
        bound = {row["logical_port"] for row in lab._sb_rows(
            "Port_Binding", "logical_port", "type", "chassis", remote=state["sb_remote"])
            if row["type"] == "remote" and row["chassis"] in chassis}
        if not others <= bound:
            return False
    return True


def ic_nbctl(lab, *args: str) -> str:
    return run(["ovn-ic-nbctl", f"--db={lab.state['ic_nb_remote']}", *args]).stdout


def ic_sbctl(lab, *args: str) -> str:
    return run(["ovn-ic-sbctl", f"--db={lab.state['ic_sb_remote']}", *args]).stdout

