"""Where everything of one lab lives on disk, so no module invents a path.

    <dir>/lab.json, <dir>/inventory.toml      state read by the rest of ofrace
    <dir>/central/                            NB + SB ovsdb-server, ovn-northd (or, for a
                                              lab of zones, IC-NB + IC-SB ovsdb-server)
    <dir>/hub/                                the OVS instance that wires chassis together
    <dir>/<chassis>/                          OVS_RUNDIR etc. of one chassis (and, on a
                                              zone's host, the zone's NB/SB sockets)
    <dir>/<chassis>/pcap/<port>-{tx,rx}.pcap  what a VIF or uplink sent / received
    <dir>/ssh/                                client key, known_hosts, authorized_keys
"""

from __future__ import annotations

from pathlib import Path

from ofrace.lab.command import build_path_env

# Unix socket paths must fit sockaddr_un (108 bytes); stay well below.
MAX_SOCKET_PATH = 100

# Marks a directory as a lab's, so `up` may wipe what an earlier run left there.
MARKER = ".ofrace-lab"


class LabLayout:
    def __init__(self, root: Path):
        self.root = root

    @property
    def state_file(self) -> Path:
        return self.root / "lab.json"

    @property
    def inventory_file(self) -> Path:
        return self.root / "inventory.toml"

    @property
    def marker(self) -> Path:
        return self.root / MARKER

    @property
    def central(self) -> Path:
        return self.root / "central"

    @property
    def nb_socket(self) -> Path:
        return self.central / "ovnnb_db.sock"

    @property
    def sb_socket(self) -> Path:
        return self.central / "ovnsb_db.sock"

    @property
    def ic_nb_socket(self) -> Path:
        return self.central / "ovn_ic_nb_db.sock"

    @property
    def ic_sb_socket(self) -> Path:
        return self.central / "ovn_ic_sb_db.sock"

    def zone_nb_socket(self, host: str) -> Path:
        """A zone's NB socket in its host chassis' run directory (OVN_RUNDIR there), where
        ovn-nbctl on that node looks by default, as on an ovnkube-node."""
        return self.chassis(host) / "ovnnb_db.sock"

    def zone_sb_socket(self, host: str) -> Path:
        return self.chassis(host) / "ovnsb_db.sock"

    @property
    def hub(self) -> Path:
        return self.root / "hub"

    def hub_socket(self, hub_port: str) -> Path:
        return self.hub / f"{hub_port}.sock"

    def hub_pcap(self, hub_port: str, direction: str) -> Path:
        return self.hub / "pcap" / f"{hub_port}-{direction}.pcap"

    def chassis(self, name: str) -> Path:
        return self.root / name

    def pcap_dir(self, chassis: str) -> Path:
        return self.chassis(chassis) / "pcap"

    def pcap(self, chassis: str, port: str, direction: str) -> Path:
        """``direction`` is "tx" (what OVS sent out of the port) or "rx" (what it received)."""
        return self.pcap_dir(chassis) / f"{port}-{direction}.pcap"

    @property
    def ssh(self) -> Path:
        return self.root / "ssh"

    @property
    def identity(self) -> Path:
        return self.ssh / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.ssh / "known_hosts"

    @property
    def authorized_keys(self) -> Path:
        return self.ssh / "authorized_keys"

    def chassis_env(self, chassis: str) -> dict[str, str]:
        """The environment that points OVS and OVN tools at one chassis."""
        rundir = str(self.chassis(chassis))
        return {
            **{f"{project}_{kind}": rundir
               for project in ("OVS", "OVN")
               for kind in ("RUNDIR", "DBDIR", "LOGDIR", "SYSCONFDIR")},
            **build_path_env(),
        }

    def hub_env(self) -> dict[str, str]:
        hub = str(self.hub)
        return {**{f"OVS_{kind}": hub for kind in ("RUNDIR", "DBDIR", "LOGDIR", "SYSCONFDIR")},
                **build_path_env()}
