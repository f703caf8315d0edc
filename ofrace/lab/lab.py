"""A real OVN on one machine: bring it up, inspect it, take it down.

``Lab(dir).up("kind")`` starts a central (NB/SB ovsdb-server, ovn-northd), a
hub OVS that wires the chassis together, and per chassis a network namespace
with its own ovsdb-server, ovs-vswitchd (userspace dummy datapath),
ovn-controller and sshd.  Everything it starts is recorded in
``<dir>/lab.json`` as it goes, so ``down`` stops exactly that -- by pid and
start time, never by name -- even after a failed ``up``.

Bring-up is ordered and pinned so that two ``up``s give the same OpenFlow
tables: tunnel keys come from the topology, VIF ofports are requested, the
ofports OVS picks itself (tunnels, patch ports) are pinned once they exist,
conntrack zones are renumbered in a fixed order, things whose numbering
follows processing order (chassisredirect ports, OpenFlow groups) are added
one at a time, and bring-up ends with every ovn-controller caught up
(``--wait=hv``), fully recomputed, and caught up again.  What still differs
between runs is what follows the southbound row UUIDs, which ovsdb-server and
ovn-northd draw at random: flow cookies, and the order of ports and tunnels
within multicast flood flows.

A topology with ``[bringup] repeatable = false`` (a big, generated one) skips
what costs minutes there: the northbound goes in as one OVSDB transaction with
load balancers attached, all chassis start before any tunnel is waited for,
conntrack zones are not renumbered (that restarts every ovn-controller) and
the final recompute is left out.  Tunnel keys and ofports are still pinned.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

from ofrace.errors import LabError
from ofrace.lab import chassis as chassis_config
from ofrace.lab import interconnect, network, placement, sshd
from ofrace.lab.catalog import load
from ofrace.lab.command import PREFIX_ENV, build_prefix, find_program, run, shared_file, use_build
from ofrace.lab.daemons import ProcessRecord, start_foreground, start_ovs_daemon, stop
from ofrace.lab.layout import MAX_SOCKET_PATH, LabLayout
from ofrace.lab.northbound import (
    gateway_chassis_commands,
    load_balancer_attachments,
    map_assignments,
    nb_operations,
    nbctl_argv,
    transact,
)
from ofrace.lab.topology import Chassis, Topology
from ofrace.openflow.bridge import parse_fdb

DEFAULT_DIR = "/var/tmp/ofrace-lab"
STATE_VERSION = 2
# lab.json versions `status` and `down` still read (1: before lab ids, one global ofr-mgmt).
READABLE_STATE_VERSIONS = (1, 2)
OVS_SCHEMA = "openvswitch/vswitch.ovsschema"   # under share/ of the build in use
NB_SCHEMA = "ovn/ovn-nb.ovsschema"
SB_SCHEMA = "ovn/ovn-sb.ovsschema"
NB_PORT = 6641
SB_PORT = 6642
REQUIRED_PROGRAMS = (
    "ip", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-appctl", "ovs-ofctl",
    "ovn-northd", "ovn-nbctl", "ovn-sbctl", "ovn-controller", "ovn-appctl", "sshd", "ssh-keygen",
)
SERVICE_MONITOR_MAC = "0a:00:00:00:fe:fe"
# OVN 26.03 also draws the MAC its service monitors answer to (northd/en-global-config.c)
SERVICE_MONITOR_MAC_DST = "0a:00:00:00:fe:fd"
MAC_PREFIX = "0a:00:00"
# How long bring-up waits for OVN to converge before giving up, unless the
# topology's [bringup] timeout says otherwise.
SETTLE_TIMEOUT = 30.0
# The MAC tables have settled when they stay unchanged this long (gateways
# announce themselves with GARPs right after they are bound; ovn-controller
# spaces its repeats by 1 s and more).
MAC_TABLE_QUIET = 3.0
TUNNEL_TYPES = ("geneve", "vxlan", "stt")
# Restarts of ovn-controller tried until every chassis keeps its canonical ct zones (a lab
# that still differs comes up anyway: only repeatability suffers, and test_lab checks that).
CT_ZONE_ROUNDS = 4
# The most argv bytes one ovs-vsctl transaction gets (the kernel allows 2 MiB
# for argv and environment together).
VSCTL_ARGV_BYTES = 1 << 20

Progress = Callable[[str], None]


def default_dir() -> Path:
    return Path(os.environ.get("OFRACE_LAB_DIR") or DEFAULT_DIR)


class Lab:
    """One lab directory and what runs from it."""

    def __init__(self, dir: str | os.PathLike | None = None):
        self.layout = LabLayout(Path(dir or default_dir()).resolve())
        self.state: dict = self._read_state()
        # A lab up on a source build runs every later command from that build too.
        self.build_problem: str | None = None
        if self.state.get("ovn_prefix"):
            try:
                use_build(self.state["ovn_prefix"])
            except LabError as exc:   # `down` and `status` still work without it
                self.build_problem = str(exc)
        # Each wait for OVN to catch up; bring-up takes the topology's.
        self.timeout = SETTLE_TIMEOUT

    @property
    def dir(self) -> Path:
        return self.layout.root

    # ------------------------------------------------------------------ up

    def up(self, topology_name: str = "kind", progress: Progress | None = None,
           sizes: dict[str, str] | None = None, ovn_prefix: str | None = None,
           clustered_databases: bool | None = None) -> dict:
        """Tear down this directory's previous lab, then bring ``topology_name`` up.

        ``sizes`` replaces size parameters of a generated (``[scale]``) topology;
        ``clustered_databases`` its ``bringup.clustered_databases`` when given.
        ``ovn_prefix`` (else $OFRACE_OVN_PREFIX, else the system's packages) is the
        OVN/OVS build every daemon and tool of the lab runs from.
        """
        say = progress or (lambda message: None)
        began = time.monotonic()
        _require_root()
        if self.state.get("processes") or self.state.get("namespaces"):
            say("taking down the previous lab in this directory")
            self.down()
        use_build(ovn_prefix or os.environ.get(PREFIX_ENV) or None)
        topology = load(topology_name, sizes)
        if clustered_databases is not None:
            topology = replace(topology, bringup=replace(
                topology.bringup, clustered_databases=clustered_databases))
        for program in REQUIRED_PROGRAMS + (interconnect.REQUIRED_PROGRAMS if topology.zone
                                            else ()):
            find_program(program)
        self.timeout = float(topology.bringup.timeout)
        self._check_socket_paths(topology)
        self._prepare_dir()
        self.state = {"version": STATE_VERSION, "status": "starting", "dir": str(self.dir),
                      "processes": [], "namespaces": [], "links": []}
        self._save_state()
        try:
            place = placement.claim(self.dir, topology.network)
            self.state["links"].append(place.bridge)
            self._save_state()
            topology = place.place(topology)
            self.state = self._initial_state(topology, place)
            self._save_state()
            if topology.zone:
                interconnect.bring_up(self, topology, say)
            else:
                self._bring_up(topology, say)
        except BaseException:
            self.down()
            self.state["status"] = "failed"
            self._save_state()
            raise
        self.state["status"] = "up"
        self.state["bringup_seconds"] = round(time.monotonic() - began, 2)
        self._save_state()
        self._write_inventory()
        return self.state

    def _bring_up(self, topology: Topology, say: Progress) -> None:
        say("management network and namespaces")
        self._make_network(topology)
        say("central: NB and SB ovsdb-server, ovn-northd")
        self._start_central(topology)
        say("northbound: logical network")
        if topology.bringup.repeatable:
            self._wait_for("sb", *nbctl_argv(topology))
            for command in gateway_chassis_commands(topology):
                self._wait_for("sb", *command)
        else:
            transact(self.layout.nb_socket, "OVN_Northbound", nb_operations(topology),
                     timeout=self.timeout)
            self._wait_for("sb", "sync")
        say("hub: the OVS instance that wires the chassis together")
        self._start_hub(topology)
        for index, chassis in enumerate(topology.chassis):
            say(f"chassis {chassis.name}")
            self._start_chassis(topology, chassis)
            if topology.bringup.repeatable:
                self._wait_for_tunnels_to(topology.chassis[: index + 1])
        if not topology.bringup.repeatable:
            # Once: each chassis that joins makes every ovn-controller already
            # running recompute all its flows, so joining one at a time costs
            # full computations in the square of the number of chassis.
            say("waiting for tunnels between all chassis")
            self._wait_for_tunnels_to(topology.chassis)
        # Before anything waits on BFD (gateway election) or traffic between chassis.
        for chassis in topology.chassis:
            self._ensure_tunnel_endpoint(topology, chassis)
        say("sshd in every chassis")
        self._start_sshds(topology)
        say("waiting for ports to be bound")
        self._wait_for("hv", "sync")
        # a gateway port is bound only once BFD is up, and BFD needs the endpoints
        self._wait_until(lambda: self._bfd_up(topology) and self._bindings_settled(topology),
                         "ports bound and up")
        if topology.bringup.repeatable:
            say("numbering conntrack zones")
            self._renumber_ct_zones(topology)
            say("load balancers, one datapath at a time")
            for command in load_balancer_attachments(topology):
                self._wait_for("hv", *command)
        say("waiting for OVN to settle")
        self._settle(topology)
        say("waiting for the MAC tables to settle")
        self._wait_for_mac_tables()
        say("tunnel endpoints listening")
        for chassis in topology.chassis:
            self._ensure_tunnel_endpoint(topology, chassis)
        if topology.faults.tunnel_down:
            say("faults: tunnel links down on " + ", ".join(topology.faults.tunnel_down))
            for name in topology.faults.tunnel_down:
                self.cut_tunnel(name)
            self._wait_until(self._failed_over, "gateways failed over and BFD down")
            self._wait_for_mac_tables()

    def _initial_state(self, topology: Topology, place: placement.Placement) -> dict:
        central = topology.network.central_address
        if topology.zone:
            return {**self._plain_state(topology, place, central),
                    **interconnect.initial_state(self.layout, topology)}
        return self._plain_state(topology, place, central)

    def _plain_state(self, topology: Topology, place: placement.Placement,
                     central: str) -> dict:
        return {
            "version": STATE_VERSION,
            "status": "starting",
            "topology": topology.name,
            "description": topology.description,
            "ovn_prefix": str(build_prefix()) if build_prefix() else None,
            "versions": _versions(),
            "scale": asdict(topology.scale) if topology.scale else None,
            "dir": str(self.dir),
            "placement": place.to_json(),
            "nb_remote": f"unix:{self.layout.nb_socket}",
            "sb_remote": f"unix:{self.layout.sb_socket}",
            "nb_tcp": f"tcp:{central}:{NB_PORT}",
            "sb_tcp": f"tcp:{central}:{SB_PORT}",
            "central_address": central,
            "ssh": {
                "identity": str(self.layout.identity),
                "known_hosts": str(self.layout.known_hosts),
                "user": "root",
            },
            "chassis": [self._chassis_state(topology, c, place) for c in topology.chassis],
            "processes": [],
            "namespaces": [],
            "links": [place.bridge],
        }

    def _chassis_state(self, topology: Topology, chassis: Chassis,
                       place: placement.Placement) -> dict:
        bridges = [chassis_config.INTEGRATION_BRIDGE, chassis_config.UNDERLAY_BRIDGE,
                   *chassis.provider_bridges]
        return {
            "name": chassis.name,
            "system_id": chassis.system_id,
            "hostname": chassis.hostname,
            "netns": place.netns(chassis.name),
            "address": chassis.address,
            "rundir": str(self.layout.chassis(chassis.name)),
            "env": self.layout.chassis_env(chassis.name),
            "encap_ip": chassis.encap_ip,
            "bridge_mappings": dict(chassis.bridge_mappings),
            "bridges": bridges,
            "pcap_dir": str(self.layout.pcap_dir(chassis.name)),
            "vifs": {port.name: vif.iface for port, vif in topology.vifs_on(chassis.name)},
            "uplinks": dict(chassis.uplinks),
            "underlay_port": chassis_config.UNDERLAY_PORT,
        }

    def _check_socket_paths(self, topology: Topology) -> None:
        """Refuse, up front, a directory whose unix socket paths would not fit sockaddr_un."""
        widest_ctl = f"ovs-vswitchd.{2**22}.ctl"  # control sockets carry the pid (at most 2^22)
        longest = max(
            [self.layout.nb_socket, self.layout.sb_socket]
            + [self.layout.chassis(c.name) / widest_ctl for c in topology.chassis]
            + [self.layout.hub_socket(chassis_config.hub_port(c, b))
               for c in topology.chassis
               for b in [chassis_config.UNDERLAY_BRIDGE, *c.uplinks]],
            key=lambda p: len(str(p)),
        )
        if len(str(longest)) > MAX_SOCKET_PATH:
            raise LabError(f"lab directory {self.dir} is too long for unix socket paths "
                           f"({longest} has {len(str(longest))} characters, at most "
                           f"{MAX_SOCKET_PATH}); choose a shorter --dir")

    def _prepare_dir(self) -> None:
        """Empty the directory of an earlier run; refuse to wipe a directory that is not a lab's."""
        root = self.dir
        if root.exists() and any(root.iterdir()) and not self.layout.marker.exists():
            raise LabError(f"{root} is not empty and is not a lab directory; choose another --dir")
        root.mkdir(parents=True, exist_ok=True)
        for child in root.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        self.layout.marker.write_text("This directory belongs to `ofrace lab`; `up` empties it.\n")

    def _make_network(self, topology: Topology) -> None:
        """A namespace per chassis, wired to the management bridge (``up`` made that)."""
        net = topology.network
        place = self._placement()
        for index, chassis in enumerate(topology.chassis):
            netns = self._netns(chassis.name)
            network.create_namespace(netns)
            self.state["namespaces"].append(netns)
            root_link = place.veth(index)
            self.state["links"].append(root_link)
            self._save_state()
            network.connect_namespace(netns, root_link,
                                      f"{chassis.address}/{net.management_prefixlen}",
                                      place.bridge)

    def _start_central(self, topology: Topology) -> None:
        central = self.layout.central
        central.mkdir(parents=True)
        env = {f"{p}_{k}": str(central) for p in ("OVS", "OVN")
               for k in ("RUNDIR", "DBDIR", "LOGDIR", "SYSCONFDIR")}
        address = topology.network.central_address
        for name, schema, sock, port in (
            ("ovnnb_db", NB_SCHEMA, self.layout.nb_socket, NB_PORT),
            ("ovnsb_db", SB_SCHEMA, self.layout.sb_socket, SB_PORT),
        ):
            db = central / f"{name}.db"
            if topology.bringup.clustered_databases:
                # a Raft cluster of one, as interconnect zones run theirs: ovsdb-server
                # keeps a transaction history only for clustered databases
                run(["ovsdb-tool", "create-cluster", str(db), str(shared_file(schema)),
                     f"unix:{central / (name + '.raft')}"])
            else:
                run(["ovsdb-tool", "create", str(db), str(shared_file(schema))])
            self._record(start_ovs_daemon(
                "ovsdb-server",
                [str(db), f"--remote=punix:{sock}", f"--remote=ptcp:{port}:{address}"],
                what="ovsdb-server", chassis="central", rundir=central, env=env, name=name,
            ))
        self._init_databases()
        self._record(start_ovs_daemon(
            "ovn-northd",
            [f"--ovnnb-db={self.state['nb_remote']}", f"--ovnsb-db={self.state['sb_remote']}"],
            what="ovn-northd", chassis="central", rundir=central, env=env,
        ))

    def _init_databases(self, zone: str | None = None, nb: str | None = None,
                        sb: str | None = None) -> None:
        """Initialise a fresh NB and SB: central's, or a zone's (``nb``/``sb`` its remotes;
        NB_Global.name is the availability zone's name, as ovn-ic reads it)."""
        self.nbctl("--no-wait", "init", remote=nb)
        # Values northd would otherwise draw at random and that end up in flows.
        self.nbctl("--no-wait", "set", "NB_Global", ".",
                   *([f"name={zone}"] if zone else []),
                   f"options:svc_monitor_mac={SERVICE_MONITOR_MAC}",
                   f"options:svc_monitor_mac_dst={SERVICE_MONITOR_MAC_DST}",
                   f"options:mac_prefix={MAC_PREFIX}", remote=nb)
        self.sbctl("init", remote=sb)

    def _start_hub(self, topology: Topology) -> None:
        hub = self.layout.hub
        (hub / "pcap").mkdir(parents=True)
        env = self.layout.hub_env()
        self._start_ovs(hub, env, chassis_name="hub", netns=None)
        _vsctl(env, None, chassis_config.hub_commands(topology, self.layout), self.timeout)

    def _start_ovs(self, rundir: Path, env: dict, chassis_name: str, netns: str | None) -> None:
        run(["ovsdb-tool", "create", str(rundir / "conf.db"), str(shared_file(OVS_SCHEMA))])
        self._record(start_ovs_daemon(
            "ovsdb-server",
            [str(rundir / "conf.db"), f"--remote=punix:{rundir / 'db.sock'}"],
            what="ovsdb-server", chassis=chassis_name, rundir=rundir, env=env, netns=netns,
        ))
        run(["ovs-vsctl", "--no-wait", "init"], env=env, netns=netns)
        self._record(start_ovs_daemon(
            "ovs-vswitchd",
            ["--enable-dummy=system", f"unix:{rundir / 'db.sock'}"],
            what="ovs-vswitchd", chassis=chassis_name, rundir=rundir, env=env, netns=netns,
        ))

    def _start_chassis(self, topology: Topology, chassis: Chassis,
                       sb_remote: str | None = None) -> None:
        """``sb_remote``: the SB its ovn-controller reads (default: central's)."""
        rundir = self.layout.chassis(chassis.name)
        self.layout.pcap_dir(chassis.name).mkdir(parents=True, exist_ok=True)
        env = self.layout.chassis_env(chassis.name)
        netns = self._netns(chassis.name)
        self._start_ovs(rundir, env, chassis_name=chassis.name, netns=netns)
        _vsctl(env, netns, chassis_config.chassis_commands(
            topology, chassis, self.layout, sb_remote or self.state["sb_remote"]),
            self.timeout)
        for command in chassis_config.underlay_appctl_commands(topology, chassis):
            run(["ovs-appctl", *command], env=env, netns=netns)
        usage = run(["ovs-appctl", "list-commands"], env=env, netns=netns).stdout
        if any(line.split()[:1] == ["ovs/route/add"] and "table=" in line
               for line in usage.splitlines()):
            run(["ovs-appctl", *chassis_config.underlay_local_route_command(chassis)],
                env=env, netns=netns)
        run(["ovs-ofctl", "add-flow", chassis_config.UNDERLAY_BRIDGE,
             chassis_config.underlay_arp_responder_flow(chassis)], env=env, netns=netns)
        self._record(self._start_controller(chassis))

    def _start_controller(self, chassis: Chassis) -> ProcessRecord:
        rundir = self.layout.chassis(chassis.name)
        return start_ovs_daemon(
            "ovn-controller", [f"unix:{rundir / 'db.sock'}"],
            what="ovn-controller", chassis=chassis.name, rundir=rundir,
            env=self.layout.chassis_env(chassis.name), netns=self._netns(chassis.name),
        )

    def _wait_for_tunnels_to(self, started: Sequence[Chassis]) -> None:
        """Wait until every started chassis has a tunnel to every other one.

        Waiting after each chassis makes the tunnel ports appear in the same
        order on every run.
        """
        def meshed() -> bool:
            for chassis in started:
                remotes = {iface["options"].get("remote_ip")
                           for iface in self._interfaces(chassis)}
                wanted = {peer.encap_ip for peer in started if peer.name != chassis.name}
                if "flow" in remotes:   # OVN 26.03 flow-based tunnels: one port for all
                    continue
                if not wanted <= remotes:
                    return False
            return True

        self._wait_until(meshed, "tunnels between " + ", ".join(c.name for c in started))

    def _start_sshds(self, topology: Topology) -> None:
        sshd.ensure_privsep_dir()
        client_public = sshd.make_key(self.layout.identity, f"ofrace-lab@{self.dir}")
        self.layout.authorized_keys.write_text(client_public + "\n")
        known_hosts = []
        for chassis in topology.chassis:
            rundir = self.layout.chassis(chassis.name)
            host_key = rundir / "ssh" / "ssh_host_ed25519_key"
            host_public = sshd.make_key(host_key, f"root@{chassis.hostname}")
            known_hosts.append(sshd.known_hosts_line(chassis.address, host_public))
            config = rundir / "ssh" / "sshd_config"
            sshd.write_config(
                config, address=chassis.address, host_key=host_key,
                pidfile=rundir / "sshd.pid", authorized_keys=self.layout.authorized_keys,
                env=self.layout.chassis_env(chassis.name),
            )
            self._record(start_foreground(
                ["sshd", "-D", "-f", str(config), "-E", str(rundir / "sshd.log")],
                what="sshd", chassis=chassis.name, log=rundir / "sshd.log",
                netns=self._netns(chassis.name),
            ))
        self.layout.known_hosts.write_text("\n".join(known_hosts) + "\n")
        for chassis in topology.chassis:
            self._wait_until(lambda c=chassis: _port_open(c.address, 22),
                             f"sshd of {chassis.name} on {chassis.address}:22")

    # -------------------------------------------------------------- settle

    def _renumber_ct_zones(self, topology: Topology, zone: dict | None = None) -> None:
        """Give every chassis the conntrack zones of :func:`chassis.canonical_ct_zones`.

        ovn-controller adopts the zones it finds in br-int's
        ``external_ids:ct-zone-<user>`` when it starts, so: stop every
        ovn-controller, rewrite those keys, start them again.  This runs
        before load balancers are attached, since a restarted ovn-controller
        numbers groups afresh.  A user that appears only after the restart's
        first computation (a localnet port) takes the lowest free zone,
        which is the one it was given here when it is the only one.
        ``zone`` (a lab.json zone: its NB and SB remotes) limits this to that zone's
        chassis, numbered from the zone's SB.
        """
        remote = zone["sb_remote"] if zone else None
        datapath_keys = {row["_uuid"]: row["tunnel_key"]
                         for row in self._sb_rows("Datapath_Binding", "_uuid", "tunnel_key",
                                                  remote=remote)}
        port_keys = {row["logical_port"]: (datapath_keys[row["datapath"]], row["tunnel_key"])
                     for row in self._sb_rows("Port_Binding", "logical_port", "datapath",
                                              "tunnel_key", remote=remote)}
        for round_ in range(CT_ZONE_ROUNDS):
            if not self._renumber_ct_zones_once(topology, zone, datapath_keys, port_keys,
                                                force=round_ == 0):
                break

    def _ct_zone_assignments(self, chassis: Chassis) -> dict[str, str]:
        """br-int's ``ct-zone-*`` external_ids on ``chassis``."""
        current = _ovsdb_json_rows(run(
            ["ovs-vsctl", "--format=json", "--columns=external_ids", "list", "Bridge",
             chassis_config.INTEGRATION_BRIDGE], env=self.layout.chassis_env(chassis.name),
            netns=self._netns(chassis.name),
        ).stdout)[0]["external_ids"]
        return {key: value for key, value in current.items() if key.startswith("ct-zone-")}

    def _renumber_ct_zones_once(self, topology: Topology, zone: dict | None,
                                datapath_keys: dict, port_keys: dict, *, force: bool) -> bool:
        """One round of :meth:`_renumber_ct_zones`; False when every chassis already had
        the canonical zones, so nothing was restarted (``force``: restart anyway).

        A user ovn-controller had not yet given a zone when the keys were read
        (a port bound moments before) takes the lowest free zone after the
        restart, which differs from run to run; the next round numbers it too.
        """
        wanted = {}
        for chassis in topology.chassis:
            current = self._ct_zone_assignments(chassis)
            users = [key[len("ct-zone-"):] for key in current]
            zones = chassis_config.canonical_ct_zones(users, datapath_keys, port_keys)
            assignments = {f"ct-zone-{user}": str(number) for user, number in zones.items()}
            if assignments != current:
                wanted[chassis.name] = assignments
        if not wanted and not force:
            return False
        mine = {c.name for c in topology.chassis}
        controllers = [ProcessRecord.from_json(p) for p in self.state["processes"]
                       if p["what"] == "ovn-controller" and p["chassis"] in mine]
        stop(controllers)
        for chassis in topology.chassis:
            if chassis.name in wanted:
                _vsctl(self.layout.chassis_env(chassis.name), self._netns(chassis.name),
                       [["set", "Bridge", chassis_config.INTEGRATION_BRIDGE,
                         *map_assignments("external_ids", wanted[chassis.name])]],
                       self.timeout)
        for chassis in topology.chassis:
            restarted = self._start_controller(chassis)
            self.state["processes"] = [
                restarted.to_json() if p["what"] == "ovn-controller" and
                p["chassis"] == chassis.name else p
                for p in self.state["processes"]
            ]
            self._save_state()
        self._wait_for("hv", "sync", remote=zone["nb_remote"] if zone else None)
        if zone is None:
            self._wait_until(lambda: self._bindings_settled(topology), "ports bound and up")
        return True

    def _settle(self, topology: Topology) -> None:
        self._wait_until(lambda: self._bfd_up(topology), "BFD sessions up")
        for chassis in topology.chassis:
            self._pin_automatic_ofports(chassis)
        self._wait_for("hv", "sync")
        if topology.bringup.repeatable:
            for chassis in topology.chassis:
                self.recompute(chassis.name)
            self._wait_for("hv", "sync")
        self._wait_until(lambda: self._bindings_settled(topology), "ports bound and up")

    def settle_learning(self) -> None:
        """Wait until what the ovn-controllers learned from packets has reached every
        chassis' flows.

        pinctrl writes a learned neighbour (MAC_Binding) or MAC (FDB) to the SB some
        milliseconds after the packet, and each ovn-controller turns it into flows later
        still: a snapshot read in between predicts an ARP that the wire, a moment later,
        no longer sends.  So: read those rows, ``--wait=hv sync`` (a chassis reports the
        sync only after installing the flows of every SB change before it), and again
        until a read after the sync equals the one before it.
        """
        remotes = ([(z["nb_remote"], z["sb_remote"]) for z in self.state["zones"]]
                   if self.state.get("zones") else [(None, None)])
        for nb_remote, sb_remote in remotes:
            before = self._learned_rows(sb_remote)
            deadline = time.monotonic() + self.timeout
            while True:
                self._wait_for("hv", "sync", remote=nb_remote)
                after = self._learned_rows(sb_remote)
                if after == before:
                    break
                if time.monotonic() > deadline:
                    raise LabError(f"timed out after {self.timeout:g}s waiting for learned "
                                   "MAC bindings to stop changing")
                before = after

    def _learned_rows(self, remote: str | None) -> list:
        return [sorted(json.dumps(row, sort_keys=True) for row in self._sb_rows(table, *columns,
                                                                               remote=remote))
                for table, columns in (("MAC_Binding", ("logical_port", "ip", "mac")),
                                       ("FDB", ("dp_key", "port_key", "mac")))]

    def _wait_for_mac_tables(self) -> None:
        """Wait until no bridge's MAC table (``fdb/show``) has changed for MAC_TABLE_QUIET s.

        Right after bring-up the provider bridges have learned nothing; the
        gateways' GARPs fill them within seconds, and NORMAL forwards
        differently once they have -- so a snapshot taken before that would
        disagree with the node moments later.
        """
        deadline = time.monotonic() + self.timeout
        last = self.mac_tables()
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < MAC_TABLE_QUIET:
            if time.monotonic() > deadline:
                raise LabError(f"timed out after {self.timeout:g}s waiting for the MAC tables "
                               f"to stay unchanged for {MAC_TABLE_QUIET:g}s")
            time.sleep(0.2)
            now = self.mac_tables()
            if now != last:
                last, quiet_since = now, time.monotonic()

    def mac_tables(self) -> dict[str, dict[tuple[int, int], int]]:
        """Every bridge's MAC table, "<chassis> <bridge>" -> {(vlan, mac): ofport}; no ages."""
        tables = {}
        places = [("hub", self.layout.hub_env(), None, chassis_config.HUB_BRIDGES)]
        places += [(c["name"], c["env"], c["netns"], c["bridges"])
                   for c in self.state.get("chassis", [])]
        for where, env, netns, bridges in places:
            for bridge in bridges:
                result = run(["ovs-appctl", "fdb/show", bridge], env=env, netns=netns,
                             check=False)
                if where == "hub" and result.returncode != 0:
                    continue  # the hub has no "outside" network when no chassis has an uplink
                if result.returncode != 0:
                    raise LabError(f"ovs-appctl fdb/show {bridge} failed on {where}: "
                                   f"{result.stderr.strip()}")
                tables[f"{where} {bridge}"] = parse_fdb(result.stdout)
        return tables

    def _wait_for(self, level: str, *nbctl_args: str, remote: str | None = None) -> str:
        """ovn-nbctl ``--wait=sb`` (northd caught up) or ``--wait=hv`` (every chassis too),
        on central's NB or the NB at ``remote`` (a zone's)."""
        return self.nbctl(f"--wait={level}", f"--timeout={self.timeout:g}", *nbctl_args,
                          timeout=self.timeout + 30, remote=remote)

    def _wait_until(self, condition: Callable[[], bool], what: str) -> None:
        _wait_until(condition, what, self.timeout)

    def _bindings_settled(self, topology: Topology, remote: str | None = None) -> bool:
        """VIFs up on their chassis, gateway routers and redirect ports bound to theirs
        (in central's SB, or the SB at ``remote``: a zone's, which lists every chassis)."""
        chassis_rows = self._sb_rows("Chassis", "_uuid", "name", remote=remote)
        names = {row["_uuid"]: row["name"] for row in chassis_rows}
        if set(names.values()) != {c.system_id for c in topology.chassis}:
            return False
        vif_home = {port.name: topology.chassis_named(vif.chassis).system_id
                    for switch in topology.switch for port in switch.ports
                    for vif in [port.vif] if vif}
        for row in self._sb_rows("Port_Binding", "logical_port", "type", "chassis", "up",
                                 "options", remote=remote):
            bound_to = names.get(row["chassis"]) if row["chassis"] else None
            port_type = row["type"]
            if row["logical_port"] in vif_home:
                if bound_to != vif_home[row["logical_port"]] or row["up"] is not True:
                    return False
            elif port_type == "l3gateway":
                if bound_to != row["options"].get("l3gateway-chassis"):
                    return False
            elif port_type == "chassisredirect" and bound_to is None:
                return False
        return True

    def cut_tunnel(self, chassis: str) -> None:
        """Make ``chassis``' link to the tunnel network pass no frames, either way.

        The hub's port of that chassis stops receiving and forwarding (OpenFlow
        port config no-receive, no-forward): what a failed NIC, cable or switch
        port does.  Nothing on the chassis changes -- its daemons run on and can
        be read -- but BFD over every tunnel to it goes down, so the other
        gateway chassis take over its chassisredirect ports and the computes'
        bundles move to them, and it, having no BFD session up, claims nothing.
        """
        info = self.chassis(chassis)
        port = chassis_config.hub_port(
            Chassis(name=info["name"], address=info["address"], encap_ip=info["encap_ip"]),
            chassis_config.UNDERLAY_BRIDGE)
        env = self.layout.hub_env()
        # By number: OpenFlow truncates port names to 15 characters.
        ofport = run(["ovs-vsctl", "get", "Interface", port, "ofport"], env=env).stdout.strip()
        for config in ("no-receive", "no-forward"):
            run(["ovs-ofctl", "mod-port", chassis_config.TUNNEL_NETWORK, ofport, config],
                env=env)
        self.state.setdefault("faults", []).append({"tunnel_down": chassis})
        self._save_state()

    def _failed_over(self) -> bool:
        """No chassisredirect port on a cut chassis, all bound, BFD to the cut ones down."""
        cut = {f["tunnel_down"] for f in self.state.get("faults", []) if "tunnel_down" in f}
        infos = {c["name"]: c for c in self.state["chassis"]}
        cut_ids = {infos[name]["system_id"] for name in cut}
        cut_ips = {infos[name]["encap_ip"] for name in cut}
        names = {row["_uuid"]: row["name"] for row in self._sb_rows("Chassis", "_uuid", "name")}
        for row in self._sb_rows("Port_Binding", "type", "chassis"):
            if row["type"] == "chassisredirect" and \
                    (not row["chassis"] or names.get(row["chassis"]) in cut_ids):
                return False
        for chassis in self._topology_chassis():
            if chassis.name in cut:
                continue
            for iface in self._interfaces(chassis):
                if iface["options"].get("remote_ip") in cut_ips and \
                        iface["bfd"].get("enable") == "true" and \
                        iface["bfd_status"].get("state") == "up":
                    return False
        return True

    def _bfd_settled(self) -> bool:
        for chassis in self._topology_chassis():
            for iface in self._interfaces(chassis):
                if iface["bfd"].get("enable") == "true" and \
                        iface["bfd_status"].get("state") != "up":
                    return False
        return True

    def _ensure_tunnel_endpoint(self, topology: Topology, chassis: Chassis) -> None:
        """Make sure OVS's native tunnelling receives on the chassis' encap IP, or fail.

        OVS 3.3 and later can lose the tunnel endpoint during bring-up:
        ``tnl/ports/show -v`` lists ``genev_sys_6081`` with no ``ipv4(dst=…)``
        entry, or no tunnel port at all (seen after ovn-controller enabled BFD on
        the tunnels).  Every Geneve packet that arrives is then handed to br-phys's
        LOCAL port instead of being decapsulated: BFD never comes up, gateways are
        never elected, and all traffic between chassis is dropped while
        ofproto/trace, which never receives on the wire, agrees with ofrace.
        Setting the dummy address again re-registers it (lib/tnl-ports.c
        ``insert_ipdev``).
        """
        if not self._tunnel_endpoint_listening(topology, chassis):
            raise LabError(f"{chassis.name}: OVS does not receive tunnels on "
                           f"{chassis.encap_ip} (ovs-appctl tnl/ports/show -v)")

    def _tunnel_endpoint_listening(self, topology: Topology, chassis: Chassis) -> bool:
        """Whether ``chassis`` receives tunnels on its encap IP, re-registering it once
        when it does not (see :meth:`_ensure_tunnel_endpoint`)."""
        env, netns = self.layout.chassis_env(chassis.name), self._netns(chassis.name)
        if not any(iface["type"] in TUNNEL_TYPES for iface in self._interfaces(chassis)):
            return True   # a lone chassis: nothing to receive

        def listening() -> bool:
            entries = run(["ovs-appctl", "tnl/ports/show", "-v"], env=env, netns=netns).stdout
            return f"dst={chassis.encap_ip}," in entries

        if listening():
            return True
        address = chassis_config.underlay_appctl_commands(topology, chassis)[0]
        run(["ovs-appctl", *address], env=env, netns=netns)
        return listening()

    def _bfd_up(self, topology: Topology) -> bool:
        """BFD up on every tunnel that has it, keeping the tunnel endpoints registered
        while it comes up (a lost endpoint keeps BFD down for good)."""
        listening = [self._tunnel_endpoint_listening(topology, c) for c in topology.chassis]
        return all(listening) and self._bfd_settled()

    def _pin_automatic_ofports(self, chassis: Chassis) -> None:
        """Request, for the ports ovn-controller made, ofports in a fixed order.

        OVS numbers tunnel and patch ports in creation order, and that order
        depends on timing.  Renumbering them by a stable key (type, remote
        IP, name) in one transaction makes ofports identical across runs.
        """
        env = self.layout.chassis_env(chassis.name)
        interfaces = {i["name"]: i for i in self._interfaces(chassis)}
        commands = []
        netns = self._netns(chassis.name)
        for bridge in run(["ovs-vsctl", "list-br"], env=env, netns=netns).stdout.split():
            names = run(["ovs-vsctl", "list-ifaces", bridge], env=env,
                        netns=netns).stdout.split()
            members = [interfaces[name] for name in names]
            taken = {i["ofport_request"] for i in members if i["ofport_request"]}
            automatic = sorted(
                (i for i in members if not i["ofport_request"] and i["type"] != "internal"),
                key=lambda i: (i["type"], i["options"].get("remote_ip", ""), i["name"]),
            )
            ofport = 1
            for iface in automatic:
                while ofport in taken:
                    ofport += 1
                commands.append(["set", "Interface", iface["name"], f"ofport_request={ofport}"])
                taken.add(ofport)
        if commands:
            _vsctl(env, self._netns(chassis.name), commands, self.timeout)

    # ----------------------------------------------------------------- down

    def down(self) -> dict:
        """Stop what this directory's lab started and remove its namespaces and links."""
        state = self.state or self._read_state()
        records = [ProcessRecord.from_json(p) for p in state.get("processes", [])]
        stopped = stop(list(reversed(records)))
        namespaces = [n for n in state.get("namespaces", []) if network.delete_namespace(n)]
        links = []
        bridge = state.get("placement", {}).get("bridge", network.LEGACY_MANAGEMENT_BRIDGE)
        for link in reversed(state.get("links", [])):
            if link == bridge and network.link_alias(link) not in ("", str(self.dir)):
                continue  # another lab's bridge now; not ours to remove
            if network.delete_link(link):
                links.append(link)
        report = {
            "stopped": [f"{r.what} ({r.chassis}, pid {r.pid})" for r in stopped],
            "namespaces": namespaces,
            "links": links,
        }
        if state:
            state.update(status="down", processes=[], namespaces=[], links=[])
            self.state = state
            if self.dir.exists():
                self._save_state()
        return report

    # --------------------------------------------------------------- status

    def status(self) -> dict:
        """The state file plus, per process, whether it still runs."""
        state = json.loads(json.dumps(self._read_state()))
        if not state:
            return {"dir": str(self.dir), "status": "absent", "processes": [], "chassis": []}
        for proc in state.get("processes", []):
            proc["alive"] = ProcessRecord.from_json(proc).alive()
        alive = [p["alive"] for p in state.get("processes", [])]
        if state.get("status") == "up" and not all(alive):
            state["status"] = "degraded"
        if self.build_problem:
            state["build_problem"] = self.build_problem
        for chassis in state.get("chassis", []):
            chassis["ssh_command"] = self.ssh_command(chassis["name"])
            chassis["exec_command"] = self.exec_command(chassis["name"])
        return state

    def ssh_command(self, chassis: str) -> list[str]:
        """How to reach a chassis over SSH, with the lab's key and known_hosts."""
        info = self.chassis(chassis)
        ssh = self.state["ssh"]
        return ["ssh", "-i", ssh["identity"], "-o", f"UserKnownHostsFile={ssh['known_hosts']}",
                "-o", "StrictHostKeyChecking=yes", f"{ssh['user']}@{info['address']}"]

    def exec_command(self, chassis: str) -> list[str]:
        """How to run a command in a chassis from this host, without SSH."""
        info = self.chassis(chassis)
        return ["ip", "netns", "exec", info["netns"], "env",
                *(f"{k}={v}" for k, v in info["env"].items())]

    # -------------------------------------------------------------- helpers

    def chassis(self, name: str) -> dict:
        for chassis in self.state.get("chassis", []):
            if chassis["name"] == name:
                return chassis
        known = ", ".join(c["name"] for c in self.state.get("chassis", [])) or "none"
        raise LabError(f"no chassis {name!r} in the lab at {self.dir} (chassis: {known})")

    def run_on(self, chassis: str, argv: Sequence[str], *, check: bool = True,
               timeout: float = 60) -> subprocess.CompletedProcess:
        """Run ``argv`` in a chassis' namespace with its OVS/OVN environment."""
        info = self.chassis(chassis)
        return run(argv, env=info["env"], netns=info["netns"], check=check, timeout=timeout)

    def recompute(self, chassis: str) -> None:
        """Make a chassis' ovn-controller recompute all its flows from scratch."""
        # It answers between two computations, which take long in a big lab.
        self.run_on(chassis, ["ovn-appctl", "-t", "ovn-controller", "recompute"],
                    timeout=max(60, self.timeout))

    def inject(self, chassis: str, port: str, flow: str) -> None:
        """Make ``port`` on ``chassis`` receive a packet built from an OVS flow string."""
        self.run_on(chassis, ["ovs-appctl", "netdev-dummy/receive", port, flow])

    def pcap_packets(self, chassis: str, port: str, direction: str = "tx") -> list[str]:
        """What ``port`` sent ("tx") or received ("rx"), one OVS flow string per packet."""
        path = self.layout.pcap(chassis, port, direction)
        if not path.exists() or path.stat().st_size == 0:
            return []
        result = run(["ovs-ofctl", "parse-pcap", str(path)])
        return [line for line in result.stdout.splitlines() if line.strip()]

    def wait_for_packets(self, chassis: str, port: str, count: int, direction: str = "tx",
                         timeout: float = 5.0) -> list[str]:
        """Poll :meth:`pcap_packets` until at least ``count`` packets are there (or time out)."""
        deadline = time.monotonic() + timeout
        while True:
            packets = self.pcap_packets(chassis, port, direction)
            if len(packets) >= count or time.monotonic() > deadline:
                return packets
            time.sleep(0.05)

    def nbctl(self, *args: str, check: bool = True, timeout: float = 60,
              remote: str | None = None) -> str:
        """ovn-nbctl on central's NB, or on the NB at ``remote`` (a zone's)."""
        remote = remote or self._central_remote("nb_remote", self.layout.nb_socket)
        return run(["ovn-nbctl", f"--db={remote}", *args], check=check, timeout=timeout).stdout

    def sbctl(self, *args: str, check: bool = True, remote: str | None = None) -> str:
        remote = remote or self._central_remote("sb_remote", self.layout.sb_socket)
        return run(["ovn-sbctl", f"--db={remote}", *args], check=check, timeout=60).stdout

    def _central_remote(self, key: str, socket: Path) -> str:
        if self.state.get("zones"):
            raise LabError(f"the lab at {self.dir} is made of zones ({self.state['topology']}): "
                           "it has no central NB or SB; each zone's are in `ofrace lab status`")
        return self.state.get(key) or f"unix:{socket}"

    def _sb_rows(self, table: str, *columns: str, remote: str | None = None) -> list[dict]:
        output = self.sbctl("--format=json", f"--columns={','.join(columns)}", "list", table,
                            remote=remote)
        return _ovsdb_json_rows(output)

    def _interfaces(self, chassis: Chassis) -> list[dict]:
        output = run(
            ["ovs-vsctl", "--format=json",
             "--columns=name,type,options,ofport,ofport_request,bfd,bfd_status",
             "list", "Interface"],
            env=self.layout.chassis_env(chassis.name), netns=self._netns(chassis.name),
        ).stdout
        return _ovsdb_json_rows(output)

    def _placement(self) -> placement.Placement:
        chosen = self.state["placement"]
        return placement.Placement(chosen["lab_id"], chosen["management"])

    def _netns(self, chassis: str) -> str:
        return self.chassis(chassis)["netns"]

    def _topology_chassis(self) -> list[Chassis]:
        return [Chassis(name=c["name"], address=c["address"], encap_ip=c["encap_ip"],
                        system_id=c["system_id"], hostname=c["hostname"])
                for c in self.state.get("chassis", [])]

    def _record(self, record: ProcessRecord) -> None:
        self.state["processes"].append(record.to_json())
        self._save_state()

    def _read_state(self) -> dict:
        try:
            state = json.loads(self.layout.state_file.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise LabError(f"{self.layout.state_file} is not valid JSON: {exc}") from None
        if state.get("version") not in READABLE_STATE_VERSIONS:
            raise LabError(f"{self.layout.state_file} has state version {state.get('version')}, "
                           f"this ofrace reads {', '.join(map(str, READABLE_STATE_VERSIONS))}")
        return state

    def _save_state(self) -> None:
        path = self.layout.state_file
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.state, indent=2) + "\n")
        tmp.replace(path)

    def _write_inventory(self) -> None:
        ssh = self.state["ssh"]
        lines = [
            f"# Written by `ofrace lab up` (topology {self.state['topology']}).",
            "# Every chassis is an SSH host in its own network namespace.",
        ]
        if self.state.get("sb_remote"):
            lines += [
                "",
                "[southbound]",
                f"remote = {_toml_string(self.state['sb_remote'])}",
                "",
                "[northbound]",
                f"remote = {_toml_string(self.state['nb_remote'])}",
            ]
        else:
            lines += ["# Every node is a zone of its own: its NB and SB are read on it, at",
                      "# the node's northbound and southbound."]
            if self.state.get("ic_sb_remote"):
                lines += ["", "[interconnect]",
                          f"southbound = {_toml_string(self.state['ic_sb_remote'])}"]
        for chassis in self.state["chassis"]:
            zone_dbs = [f"{key} = {_toml_string(chassis[key])}"
                        for key in ("northbound", "southbound") if chassis.get(key)]
            lines += [
                "",
                "[[node]]",
                f"name = {_toml_string(chassis['name'])}",
                'transport = "ssh"',
                f"host = {_toml_string(chassis['address'])}",
                f"user = {_toml_string(ssh['user'])}",
                f"identity = {_toml_string(ssh['identity'])}",
                f"known_hosts = {_toml_string(ssh['known_hosts'])}",
                *zone_dbs,
            ]
        self.layout.inventory_file.write_text("\n".join(lines) + "\n")


def _versions() -> dict[str, str]:
    """What `lab status` shows: the first line of each daemon's --version."""
    found = {}
    for key, program in (("ovs", "ovs-vswitchd"), ("ovn", "ovn-controller")):
        text = run([program, "--version"], check=False, timeout=10).stdout.strip()
        found[key] = text.splitlines()[0] if text else "unknown"
    return found


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("not root: the lab creates network namespaces and runs sshd; "
                       "run it as root")


def _vsctl(env: dict, netns: str | None, commands: list[list[str]],
           timeout: float = 20) -> None:
    """Run ovs-vsctl commands as one transaction (waiting for ovs-vswitchd to apply them).

    Commands too many for one command line (thousands of VIFs) are split,
    in order, into several transactions; none of ours refer to each other by
    ``--id``, so that is safe.
    """
    batches: list[list[str]] = [[]]
    size = 0
    for command in commands:
        length = sum(len(arg) + 1 + 8 for arg in ["--", *command])  # bytes + argv pointer
        if batches[-1] and size + length > VSCTL_ARGV_BYTES:
            batches.append([])
            size = 0
        batches[-1] += ["--", *command]
        size += length
    for batch in batches:
        run(["ovs-vsctl", f"--timeout={timeout:g}", *batch], env=env, netns=netns,
            timeout=timeout + 30)


def _wait_until(condition: Callable[[], bool], what: str,
                timeout: float = SETTLE_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


def _port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def _ovsdb_json_rows(output: str) -> list[dict]:
    """Rows of ``--format=json`` output with OVSDB's tagged values made plain Python."""
    table = json.loads(output)
    return [dict(zip(table["headings"], map(_ovsdb_value, row), strict=True))
            for row in table["data"]]


def _ovsdb_value(value):
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
        tag, payload = value
        if tag == "map":
            return {k: _ovsdb_value(v) for k, v in payload}
        if tag == "set":
            items = [_ovsdb_value(v) for v in payload]
            return items[0] if len(items) == 1 else (items or None)
        if tag in ("uuid", "named-uuid"):
            return payload
    return value


def _toml_string(value: str) -> str:
    return json.dumps(value)
