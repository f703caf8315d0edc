"""Record which bucket real OVS select groups take, as ground truth for ofrace.

Starts a scratch ovsdb-server and ovs-vswitchd (``--enable-dummy=system``: the userspace
datapath, as in ofrace's lab) in DIR, makes one bridge whose groups use
``selection_method=hash`` with fields (with and without basis and masks), explicit
``dp_hash`` (l4 and sym_l4, with weights) and no method (OVS's dp_hash default), each
bucket outputting to its own port, and for every packet:

* asks ``ovs-appctl ofproto/trace`` which bucket it uses ("using bucket N"; hash groups
  only: ofproto/trace cannot know a dp_hash), and
* sends it for real (``netdev-dummy/receive``) and reads which port's tx counter moved.

Writes the bridge (flows, groups, ports), the OVS version and every (packet, buckets)
record to tests/fixtures/select_groups.json (or OUT).  Stops only the two daemons it
started.  Usage: python scripts/record_select_groups.py [DIR] [OUT]
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
import sys
import time
from pathlib import Path

from scratch_switch import run, scratch_switch, tx_packets

from ofrace.lab.wire import datapath_packet

BRIDGE = "br0"
N_OUT_PORTS = 6  # buckets output to ofports 2..7; packets come in on ofport 1
PACKETS_PER_GROUP = 40

# group id -> (group spec after group_id=N,type=select, bucket weights, bucket ids)
GROUPS = {
    1: ("selection_method=hash,fields(ip_src,tcp_src)", [100, 100, 100, 100], None),
    2: ("selection_method=hash,selection_method_param=12345,"
        "fields(eth_src,ip_dst=255.255.0.0,tcp_src,udp_dst)", [1, 7, 3], [5, 2, 9]),
    3: ("selection_method=hash,fields(ipv6_src,ipv6_dst,tcp_dst)", [100, 100, 100], None),
    10: ("selection_method=dp_hash", [100, 100, 100], None),
    11: ("selection_method=dp_hash,selection_method_param=5", [100, 50, 25, 25], None),
    12: ("", [100, 100, 100], None),
    13: (f"selection_method=dp_hash,selection_method_param={(1 << 32) | 7}",
         [100, 100, 100, 100, 100], None),
}
# The packets of each group are told apart by destination.
GROUP_DST = {1: "10.1.0.1", 2: "10.1.0.2", 3: "fd00::3", 10: "10.2.0.10", 11: "10.2.0.11",
             12: "10.2.0.12", 13: "fd00::13"}


def _group_line(gid: int) -> str:
    spec, weights, ids = GROUPS[gid]
    ids = ids or list(range(len(weights)))
    buckets = ",".join(f"bucket=bucket_id:{b},weight:{w},actions=output:{2 + i}"
                       for i, (b, w) in enumerate(zip(ids, weights, strict=True)))
    return f"group_id={gid},type=select,{spec + ',' if spec else ''}{buckets}"


def _packets(gid: int, rng: random.Random) -> list[dict]:
    dst = ipaddress.ip_address(GROUP_DST[gid])
    packets = []
    for n in range(PACKETS_PER_GROUP):
        proto = 17 if gid == 2 and n % 3 == 0 else 6
        packet = {"in_port": 1, "dl_src": rng.getrandbits(48) & ~(1 << 40),
                  "dl_dst": 0x0A0000000001, "nw_proto": proto, "nw_ttl": 64,
                  "tp_src": rng.randrange(1024, 65536), "tp_dst": rng.choice([80, 443, 8080])}
        if proto == 6:
            packet["tcp_flags"] = 0x002
        if dst.version == 4:
            packet.update(dl_type=0x0800, nw_dst=int(dst),
                          nw_src=int(ipaddress.ip_address("10.0.0.0")) + rng.randrange(1, 1 << 16))
        else:
            packet.update(dl_type=0x86DD, ipv6_dst=int(dst),
                          ipv6_src=(0xFD00 << 112) | rng.getrandbits(64))
        packets.append(packet)
    return packets


def _trace_flow(packet: dict) -> str:
    proto = {6: "tcp", 17: "udp"}[packet["nw_proto"]]
    mac = ":".join(f"{packet['dl_src']:012x}"[i:i + 2] for i in range(0, 12, 2))
    if packet["dl_type"] == 0x0800:
        addrs = (f"nw_src={ipaddress.IPv4Address(packet['nw_src'])},"
                 f"nw_dst={ipaddress.IPv4Address(packet['nw_dst'])}")
    else:
        proto += "6"
        addrs = (f"ipv6_src={ipaddress.IPv6Address(packet['ipv6_src'])},"
                 f"ipv6_dst={ipaddress.IPv6Address(packet['ipv6_dst'])}")
    l4 = "udp" if packet["nw_proto"] == 17 else "tcp"  # OVS's tp_src is tcp_src
    return (f"in_port=1,{proto},dl_src={mac},dl_dst=0a:00:00:00:00:01,{addrs},nw_ttl=64,"
            f"{l4}_src={packet['tp_src']},{l4}_dst={packet['tp_dst']}")


def main(argv: list[str]) -> int:
    rundir = Path(argv[1] if len(argv) > 1 else "/var/tmp/ofr-select-groups")
    out = Path(argv[2] if len(argv) > 2 else
               Path(__file__).resolve().parent.parent / "tests/fixtures/select_groups.json")
    with scratch_switch(rundir) as env:
        return _record(env, out)


def _record(env, out: Path) -> int:
    vsctl = ["ovs-vsctl", "add-br", BRIDGE]
    for n in range(N_OUT_PORTS + 1):
        vsctl += ["--", "add-port", BRIDGE, f"p{n}", "--", "set", "interface", f"p{n}",
                  "type=dummy", f"ofport_request={n + 1}"]
    run(env, *vsctl)
    run(env, "ovs-ofctl", "del-flows", BRIDGE)
    for gid in GROUPS:
        run(env, "ovs-ofctl", "-O", "OpenFlow15", "add-group", BRIDGE, _group_line(gid))
        dst = ipaddress.ip_address(GROUP_DST[gid])
        match = f"ip,nw_dst={dst}" if dst.version == 4 else f"ipv6,ipv6_dst={dst}"
        run(env, "ovs-ofctl", "-O", "OpenFlow15", "add-flow", BRIDGE,
             f"priority=10,in_port=1,{match},actions=group:{gid}")
    groups = [line.strip() for line in run(env, "ovs-ofctl", "-O", "OpenFlow15",
                                            "dump-groups", "--no-names", BRIDGE).splitlines()
              if line.strip().startswith("group_id=")]
    flows = [line.strip() for line in run(env, "ovs-ofctl", "dump-flows", "--no-names",
                                           BRIDGE).splitlines()
             if "actions=" in line]
    rng = random.Random(13)
    rows = []
    for gid, (spec, _, _) in GROUPS.items():
        for packet in _packets(gid, rng):
            trace_bucket = None
            if "selection_method=hash" in spec:
                text = run(env, "ovs-appctl", "ofproto/trace", BRIDGE, _trace_flow(packet))
                used = re.search(r"using bucket (\d+)", text)
                trace_bucket = int(used.group(1)) if used else None
            before = {int(k): v for k, v in tx_packets(env, BRIDGE).items() if k.isdigit()}
            run(env, "ovs-appctl", "netdev-dummy/receive", "p0", datapath_packet(packet))
            moved: list[int] = []
            deadline = time.monotonic() + 5
            while not moved and time.monotonic() < deadline:
                after = {int(k): v for k, v in tx_packets(env, BRIDGE).items() if k.isdigit()}
                moved = [p for p, n in after.items() if n != before.get(p, 0)]
                if not moved:
                    time.sleep(0.02)
            rows.append({"group": gid, "packet": packet, "trace_bucket_id": trace_bucket,
                         "wire_ports": moved})
    version = run(env, "ovs-vswitchd", "--version").splitlines()[0]
    dpif = run(env, "ovs-appctl", "dpif/show")
    doc = {"recorded_by": "scripts/record_select_groups.py", "ovs_version": version,
           "bridge": BRIDGE, "datapath_type": "", "dpif": dpif, "flows": flows,
           "groups": groups, "ports": {f"p{n}": n + 1 for n in range(N_OUT_PORTS + 1)},
           "records": rows}
    out.write_text(json.dumps(doc, indent=1) + "\n")
    wire_ok = sum(len(r["wire_ports"]) == 1 for r in rows)
    print(f"{len(rows)} packets, {wire_ok} seen leaving by exactly one port; wrote {out}")
    return 0 if wire_ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
