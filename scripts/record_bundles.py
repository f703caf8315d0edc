"""Record which member real OVS bundles take (and which link multipath computes), as
ground truth for ofrace.

Starts a scratch ovsdb-server and ovs-vswitchd (scripts/scratch_switch.py: the userspace
datapath with dummy ports) in DIR and makes one bridge: packets come in on p0 (ofport 1);
ports p1..p4 (ofports 2..5) are the members.  Flows:

* ``bundle(eth_src,0,active_backup,ofport,members:2,3,4)`` -- OVN's HA gateway output
  (controller/physical.c), for packets to 10.9.0.1;
* ``bundle(symmetric_l4,7,hrw,…,members:2,3,4,5)`` to 10.9.0.2;
* ``bundle_load(eth_src,3,hrw,…,NXM_NX_REG0[0..15],members:2,3,4,5)`` then table 1
  outputs to the port reg0 names, to 10.9.0.3;
* select groups whose buckets watch ports 2, 3, 4 (OVN's ``fwd_group(liveness=true)``):
  dp_hash to 10.9.0.4, hash of fields(ip_src,tcp_src) to 10.9.0.5;
* one ``multipath`` per (fields, algorithm) in MULTIPATHS into reg1, then table 2
  outputs to ofport 2 + reg1, to 10.9.1.N.

BFD runs on p1..p3 (no peer: its state is down) and ``ovs-appctl bfd/set-forwarding``
forces each one's forwarding per scenario; p4 has no BFD.  For each scenario the
Interface rows (the columns the agent reads) and ``dump-ports-desc`` are recorded, then
packets are sent for real (``netdev-dummy/receive``) and the ports that sent a frame
other than BFD's own (each member's ``tx_pcap``) are recorded: none for a drop.
Writes tests/fixtures/bundles.json (or OUT); stops only its two daemons.
Usage: python scripts/record_bundles.py [DIR] [OUT]
"""

from __future__ import annotations

import ipaddress
import json
import random
import sys
import time
from pathlib import Path

from scratch_switch import run, scratch_switch

from ofrace.lab.wire import datapath_packet

BRIDGE = "br0"
MEMBERS = {"p1": 2, "p2": 3, "p3": 4, "p4": 5}
BFD_PORTS = ("p1", "p2", "p3")
PACKETS = 24
BUNDLES = {
    "10.9.0.1": "bundle(eth_src,0,active_backup,ofport,members:2,3,4)",
    "10.9.0.2": "bundle(symmetric_l4,7,hrw,ofport,members:2,3,4,5)",
    "10.9.0.3": "bundle_load(eth_src,3,hrw,ofport,NXM_NX_REG0[0..15],members:2,3,4,5),"
                "resubmit(,1)",
}
# select groups whose buckets watch the members' ports (OVN's fwd_group(liveness=true),
# lib/actions.c: type=select,selection_method=dp_hash, bucket=watch_port:N,…)
WATCHED = " ".join(f"bucket=bucket_id:{i},watch_port:{n},actions=output:{n}"
                   for i, n in enumerate((2, 3, 4))).replace(" ", ",")
GROUPS = {
    "10.9.0.4": f"group_id=1,type=select,selection_method=dp_hash,{WATCHED}",
    "10.9.0.5": f"group_id=2,type=select,selection_method=hash,fields(ip_src,tcp_src),{WATCHED}",
}
MULTIPATHS = [("eth_src", 0, "modulo_n", 4, 0), ("symmetric_l4", 11, "hrw", 4, 0),
              ("symmetric_l3l4+udp", 5, "hash_threshold", 4, 0),
              ("symmetric_l3l4", 1, "iter_hash", 3, 8), ("nw_src", 3, "modulo_n", 4, 0),
              ("nw_dst", 9, "hrw", 3, 0), ("symmetric_l3", 2, "modulo_n", 4, 0)]
# scenario -> BFD forwarding forced per port (False: not forwarding)
SCENARIOS = {
    "first-down": {"p1": False, "p2": True, "p3": True},
    "all-up": {"p1": True, "p2": True, "p3": True},
    "only-p3": {"p1": False, "p2": False, "p3": True},
    "all-bfd-down": {"p1": False, "p2": False, "p3": False},
}
COLUMNS = ("name", "type", "ofport", "link_state", "admin_state", "bfd", "bfd_status",
           "cfm_mpid", "cfm_fault", "cfm_remote_opstate")


def _cell(value):
    """An OVSDB JSON cell as the agent hands it on: maps as dicts, sets as lists."""
    if isinstance(value, list) and value and value[0] == "map":
        return {k: v for k, v in value[1]}
    if isinstance(value, list) and value and value[0] == "set":
        return [_cell(v) for v in value[1]]
    if isinstance(value, list) and value and value[0] == "uuid":
        return value[1]
    return value


def _interfaces(env) -> list[dict]:
    doc = json.loads(run(env, "ovs-vsctl", "--format=json", f"--columns={','.join(COLUMNS)}",
                         "list", "Interface"))
    return [{name: _cell(cell) for name, cell in zip(doc["headings"], row, strict=True)}
            for row in doc["data"]]


def _packet(dst: str, rng: random.Random, proto: int) -> dict:
    packet = {"in_port": 1, "dl_src": rng.getrandbits(48) & ~(1 << 40),
              "dl_dst": 0x0A0000000001, "dl_type": 0x0800, "nw_proto": proto, "nw_ttl": 64,
              "nw_src": int(ipaddress.ip_address("10.0.0.0")) + rng.randrange(1, 1 << 16),
              "nw_dst": int(ipaddress.ip_address(dst)),
              "tp_src": rng.randrange(1024, 65536), "tp_dst": rng.choice([80, 443, 8080])}
    if proto == 6:
        packet["tcp_flags"] = 0x002
    return packet


class TxCapture:
    """Frames each member sent (its ``tx_pcap``), BFD's own control packets left out:
    a dropped packet must not be mistaken for the BFD frame sent meanwhile."""

    def __init__(self, rundir: Path):
        self.files = {n: rundir / f"{name}-tx.pcap" for name, n in MEMBERS.items()}
        self.offsets = {n: 24 for n in self.files}   # past the pcap file header

    def new_frames(self) -> dict[int, list[bytes]]:
        found: dict[int, list[bytes]] = {}
        for number, path in self.files.items():
            data = path.read_bytes() if path.exists() else b""
            at = self.offsets[number]
            while at + 16 <= len(data):
                length = int.from_bytes(data[at + 8:at + 12], "little")
                if at + 16 + length > len(data):
                    break
                frame = data[at + 16:at + 16 + length]
                at += 16 + length
                if not _is_bfd(frame):
                    found.setdefault(number, []).append(frame)
            self.offsets[number] = at
        return found


def _is_bfd(frame: bytes) -> bool:
    """An IPv4 UDP frame to BFD's port 3784 (lib/bfd.c)."""
    if len(frame) < 38 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return False
    ihl = (frame[14] & 0xF) * 4
    return int.from_bytes(frame[14 + ihl + 2:14 + ihl + 4], "big") == 3784


def _send(env, capture: TxCapture, packet: dict) -> list[int]:
    capture.new_frames()
    run(env, "ovs-appctl", "netdev-dummy/receive", "p0", datapath_packet(packet))
    deadline = time.monotonic() + 1
    moved: set[int] = set()
    while time.monotonic() < deadline:
        moved |= set(capture.new_frames())
        if moved:
            time.sleep(0.05)   # a second copy would be there by now
            moved |= set(capture.new_frames())
            break
        time.sleep(0.02)
    return sorted(moved)


def _force(env, forwarding: dict[str, bool]) -> None:
    """Force each BFD port's forwarding; wait until OVSDB's bfd_status says so."""
    for name, up in forwarding.items():
        run(env, "ovs-appctl", "bfd/set-forwarding", name, "true" if up else "false")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rows = {r["name"]: r for r in _interfaces(env)}
        if all(rows[n]["bfd_status"].get("forwarding") == ("true" if up else "false")
               for n, up in forwarding.items()):
            time.sleep(0.5)   # and let the main loop's port_run update may_enable
            return
        time.sleep(0.1)
    raise SystemExit(f"bfd_status never showed {forwarding}: {_interfaces(env)}")


def main(argv: list[str]) -> int:
    rundir = Path(argv[1] if len(argv) > 1 else "/var/tmp/ofr-bundles")
    out = Path(argv[2] if len(argv) > 2 else
               Path(__file__).resolve().parent.parent / "tests/fixtures/bundles.json")
    with scratch_switch(rundir) as env:
        return _record(env, TxCapture(rundir), out, rundir)


def _record(env, capture: TxCapture, out: Path, rundir: Path) -> int:
    vsctl = ["ovs-vsctl", "add-br", BRIDGE, "--", "add-port", BRIDGE, "p0", "--", "set",
             "interface", "p0", "type=dummy", "ofport_request=1"]
    for name, number in MEMBERS.items():
        vsctl += ["--", "add-port", BRIDGE, name, "--", "set", "interface", name, "type=dummy",
                  f"ofport_request={number}", f"options:tx_pcap={rundir / (name + '-tx.pcap')}"]
    run(env, *vsctl)
    for name in BFD_PORTS:
        run(env, "ovs-vsctl", "set", "interface", name, "bfd:enable=true")
    run(env, "ovs-ofctl", "del-flows", BRIDGE)
    flows = [f"priority=10,ip,in_port=1,nw_dst={dst},actions={acts}"
             for dst, acts in BUNDLES.items()]
    flows += [f"table=1,priority=10,reg0={n},actions=output:{n}" for n in MEMBERS.values()]
    for k, (fields, basis, alg, links, arg) in enumerate(MULTIPATHS):
        flows.append(f"priority=10,ip,in_port=1,nw_dst=10.9.1.{k},actions=multipath({fields},"
                     f"{basis},{alg},{links},{arg},NXM_NX_REG1[0..3]),resubmit(,2)")
    flows += [f"table=2,priority=10,reg1={k},actions=output:{2 + k}" for k in range(4)]
    for dst, group in GROUPS.items():
        run(env, "ovs-ofctl", "-O", "OpenFlow15", "add-group", BRIDGE, group)
        flows.append(f"priority=10,ip,in_port=1,nw_dst={dst},actions=group:{group[9]}")
    for flow in flows:
        run(env, "ovs-ofctl", "add-flow", BRIDGE, flow)
    groups = [line.strip() for line in run(env, "ovs-ofctl", "-O", "OpenFlow15",
                                            "dump-groups", "--no-names", BRIDGE).splitlines()
              if line.strip().startswith("group_id=")]
    dumped = [line.strip() for line in run(env, "ovs-ofctl", "dump-flows", "--no-names",
                                            BRIDGE).splitlines() if "actions=" in line]
    rng = random.Random(14)
    scenarios = {}
    for scenario, forwarding in SCENARIOS.items():
        _force(env, forwarding)
        records = []
        for dst in [*BUNDLES, *GROUPS]:
            for n in range(PACKETS):
                packet = _packet(dst, rng, 17 if n % 4 == 0 else 6)
                records.append({"packet": packet, "wire_ports": _send(env, capture, packet)})
        scenarios[scenario] = {"forwarding": forwarding, "interfaces": _interfaces(env),
                               "ports_desc": run(env, "ovs-ofctl", "dump-ports-desc", BRIDGE),
                               "records": records}
    multipath = []
    for k in range(len(MULTIPATHS)):
        for n in range(PACKETS):
            packet = _packet(f"10.9.1.{k}", rng, 17 if n % 3 == 0 else 6)
            multipath.append({"packet": packet,
                              "wire_ports": _send(env, capture, packet)})
    doc = {"recorded_by": "scripts/record_bundles.py",
           "ovs_version": run(env, "ovs-vswitchd", "--version").splitlines()[0],
           "dpif": run(env, "ovs-appctl", "dpif/show"), "bridge": BRIDGE, "flows": dumped,
           "groups": groups,
           "scenarios": scenarios, "multipath": multipath}
    out.write_text(json.dumps(doc, indent=1) + "\n")
    rows = [r for s in scenarios.values() for r in s["records"]] + multipath
    print(f"{len(rows)} packets, {sum(len(r['wire_ports']) == 1 for r in rows)} left by one "
          f"port, {sum(not r['wire_ports'] for r in rows)} by none; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
