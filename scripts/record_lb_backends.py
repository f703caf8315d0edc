"""Record which backend an OVN load balancer really picks, per source port, in the acl lab.

Brings the acl topology up in DIR (a lab of its own; taken down at the end), and for
each source port sends a real SYN from vm3 to lb-web's VIP (netdev-dummy/receive) and
reads which backend's VIF (vm1 or vm2) received it: first with OVN's default
``selection_method=dp_hash`` groups, then with ``selection_fields=ip_src,tp_src`` on
the load balancer (``selection_method=hash``).  Keeps each phase's groups on vm3's
chassis, so a test can check the recorded acl snapshot still has the same groups.
Writes tests/fixtures/lb_backends.json (or OUT).
Usage: python scripts/record_lb_backends.py [DIR] [OUT]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ofrace.lab.lab import Lab
from ofrace.lab.wire import datapath_packet
from ofrace.openflow.flowtext import parse_packet

VIP, VIP_PORT = 0xAC10000A, 80  # 172.16.0.10:80 (lb-web)
CLIENT = {"dl_src": 0x505400000113, "nw_src": 0x0A00010D}  # vm3 on ls1
ROUTER_MAC = 0x505400000101  # lr1-ls1: the VIP is reached through the router MAC
BACKENDS = ("vm1", "vm2")
SOURCE_PORTS = [41000 + 89 * i for i in range(32)]


def _where(lab: Lab, port: str) -> tuple[str, str]:
    chassis = next(c["name"] for c in lab.state["chassis"] if port in c["vifs"])
    return chassis, lab.chassis(chassis)["vifs"][port]


def _received(lab: Lab, backend: str) -> list[dict]:
    return [parse_packet(line.replace("in_port=ANY,", ""))
            for line in lab.pcap_packets(*_where(lab, backend), "tx")]


def _phase(lab: Lab, sports: list[int]) -> list[dict]:
    client_chassis, client_vif = _where(lab, "vm3")
    rows = []
    for sport in sports:
        packet = {**CLIENT, "in_port": 0, "dl_dst": ROUTER_MAC, "dl_type": 0x0800,
                  "nw_dst": VIP, "nw_proto": 6, "nw_ttl": 64, "tp_src": sport,
                  "tp_dst": VIP_PORT, "tcp_flags": 0x002}
        before = {b: len(_received(lab, b)) for b in BACKENDS}
        lab.inject(client_chassis, client_vif, datapath_packet(packet))
        got: list[str] = []
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            got = [b for b in BACKENDS
                   if any(p.get("tp_src") == sport for p in _received(lab, b)[before[b]:])]
            time.sleep(0.05)
        packet.pop("in_port")
        rows.append({"packet": packet, "backends": got})
    return rows


def _groups(lab: Lab) -> list[str]:
    text = lab.run_on(_where(lab, "vm3")[0], ["ovs-ofctl", "-O", "OpenFlow15", "dump-groups",
                                              "--no-names", "br-int"]).stdout
    return sorted(line.strip() for line in text.splitlines() if "group_id=" in line)


def main(argv: list[str]) -> int:
    lab = Lab(argv[1] if len(argv) > 1 else "/var/tmp/ofr-lb-backends")
    out = Path(argv[2] if len(argv) > 2 else
               Path(__file__).resolve().parent.parent / "tests/fixtures/lb_backends.json")
    lab.up("acl")
    try:
        doc = {"recorded_by": "scripts/record_lb_backends.py", "topology": "acl",
               "client": "vm3", "client_chassis": _where(lab, "vm3")[0],
               "dp_hash": {"groups": _groups(lab), "records": _phase(lab, SOURCE_PORTS)}}
        lab.nbctl("set", "load_balancer", "lb-web", "selection_fields=ip_src,tp_src")
        deadline = time.monotonic() + 10
        while (not any("selection_method=hash" in g for g in _groups(lab))
               and time.monotonic() < deadline):
            time.sleep(0.2)
        doc["hash"] = {"groups": _groups(lab),
                       "records": _phase(lab, [p + 1 for p in SOURCE_PORTS])}
    finally:
        lab.down()
    out.write_text(json.dumps(doc, indent=1) + "\n")
    for phase in ("dp_hash", "hash"):
        rows = doc[phase]["records"]
        print(f"{phase}: {len(rows)} SYNs, {sum(len(r['backends']) == 1 for r in rows)} "
              f"received by exactly one backend")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
