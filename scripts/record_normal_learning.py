"""Record where real OVS's NORMAL action sends a sequence of packets, as ground truth.

On a scratch ovs-vswitchd (scratch_switch.py) a bridge with ports p1..p3 (dummy) and
the flow ``actions=NORMAL`` (plus one flow that runs NORMAL twice in one translation)
receives, in order, packets that exercise MAC learning and port state (no-flood,
no-forward, a port whose link is down).  Before each packet the bridge's
``dump-ports-desc`` and ``fdb/show`` are kept; after it, which ports' tx counters moved
and by how much.  Writes tests/fixtures/normal_learning.json (or OUT).
Usage: python scripts/record_normal_learning.py [DIR] [OUT]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from scratch_switch import run, scratch_switch, tx_packets

from ofrace.lab.wire import datapath_packet

BRIDGE = "br0"
MAC = {"a": 0x0A0000000A01, "b": 0x0A0000000B02, "c": 0x0A0000000C03, "d": 0x0A0000000D04}
BROADCAST = 0xFFFFFFFFFFFF
IP = {"a": 0x0A00000A, "b": 0x0A00000B, "c": 0x0A00000C, "d": 0x0A00000D}
TWICE_ETHERTYPE = 0x88B5  # local experimental: the flow that runs NORMAL twice


def _arp(src: str, dst_mac: int, target: str, op: int, in_port: int) -> dict:
    return {"in_port": in_port, "dl_src": MAC[src], "dl_dst": dst_mac, "dl_type": 0x0806,
            "nw_proto": op, "nw_src": IP[src], "nw_dst": IP[target], "arp_sha": MAC[src],
            "arp_tha": 0 if op == 1 else dst_mac}


def _udp(src: str, dst: str, in_port: int) -> dict:
    return {"in_port": in_port, "dl_src": MAC[src], "dl_dst": MAC[dst], "dl_type": 0x0800,
            "nw_proto": 17, "nw_src": IP[src], "nw_dst": IP[dst], "nw_ttl": 64,
            "tp_src": 5000, "tp_dst": 6000}


# (what the step shows, port state commands run before it, packet)
STEPS = [
    ("a on p1 to unknown b: flooded, a learned on p1", [], _udp("a", "b", 1)),
    ("b on p2 replies to a: only p1 (a was learned)", [], _udp("b", "a", 2)),
    ("ARP request from c on p3: broadcast, flooded", [], _arp("c", BROADCAST, "a", 1, 3)),
    ("ARP reply from a to c: only p3, not LOCAL", [], _arp("a", MAC["c"], "c", 2, 1)),
    ("p2 no-flood: a broadcast from p1 skips p2",
     [("ovs-ofctl", "mod-port", BRIDGE, "p2", "no-flood")], _arp("a", BROADCAST, "b", 1, 1)),
    ("p2 no-flood still gets unicast to b", [], _udp("a", "b", 1)),
    ("p3 no-forward: unicast to c is not sent",
     [("ovs-ofctl", "mod-port", BRIDGE, "p3", "no-forward")], _udp("a", "c", 1)),
    ("d on p1 runs NORMAL twice in one translation; the second finds d learned on p1",
     [("ovs-ofctl", "mod-port", BRIDGE, "p2", "flood"),
      ("ovs-ofctl", "mod-port", BRIDGE, "p3", "forward")],
     {**_udp("d", "b", 1), "dl_dst": 0x0A0000000E05, "dl_type": TWICE_ETHERTYPE}),
    ("p3 down: NORMAL still outputs to it (a dummy port even counts it sent)",
     [("ovs-appctl", "netdev-dummy/set-admin-state", "p3", "down")], _udp("a", "c", 1)),
]


def _frame(packet: dict) -> str:
    if packet["dl_type"] == TWICE_ETHERTYPE:
        eth = ":".join(f"{packet[k]:012x}"[i:i + 2] for k in ("dl_src",) for i in range(0, 12, 2))
        dst = ":".join(f"{packet['dl_dst']:012x}"[i:i + 2] for i in range(0, 12, 2))
        return f"eth(src={eth},dst={dst}),eth_type({TWICE_ETHERTYPE:#06x})"
    return datapath_packet(packet)


def main(argv: list[str]) -> int:
    rundir = Path(argv[1] if len(argv) > 1 else "/var/tmp/ofr-normal-learning")
    out = Path(argv[2] if len(argv) > 2 else
               Path(__file__).resolve().parent.parent / "tests/fixtures/normal_learning.json")
    with scratch_switch(rundir) as env:
        run(env, "ovs-vsctl", "add-br", BRIDGE, *[
            arg for n in (1, 2, 3) for arg in
            ("--", "add-port", BRIDGE, f"p{n}", "--", "set", "interface", f"p{n}",
             "type=dummy", f"ofport_request={n}")])
        run(env, "ovs-ofctl", "add-flow", BRIDGE,
            f"priority=10,dl_type={TWICE_ETHERTYPE:#06x},actions=NORMAL,"
            "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],NORMAL")
        flows = [line.strip() for line in run(env, "ovs-ofctl", "dump-flows", "--no-names",
                                              BRIDGE).splitlines() if "actions=" in line]
        rows = []
        for what, commands, packet in STEPS:
            for command in commands:
                run(env, *command)
            time.sleep(0.2)  # port state reaches the translation
            before_state = {"ports_desc": run(env, "ovs-ofctl", "dump-ports-desc", BRIDGE),
                            "fdb": run(env, "ovs-appctl", "fdb/show", BRIDGE)}
            before = tx_packets(env, BRIDGE)
            run(env, "ovs-appctl", "netdev-dummy/receive", f"p{packet['in_port']}",
                _frame(packet))
            time.sleep(0.5)
            after = tx_packets(env, BRIDGE)
            moved = {p: after[p] - before.get(p, 0) for p in after if after[p] != before.get(p, 0)}
            rows.append({"what": what, "packet": packet, "tx": moved, **before_state})
        version = run(env, "ovs-vswitchd", "--version").splitlines()[0]
    doc = {"recorded_by": "scripts/record_normal_learning.py", "ovs_version": version,
           "bridge": BRIDGE, "flows": flows, "ports": {"p1": 1, "p2": 2, "p3": 3},
           "steps": rows}
    out.write_text(json.dumps(doc, indent=1) + "\n")
    for row in rows:
        print(f"{row['what']}: {row['tx']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
