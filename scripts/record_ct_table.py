"""Record real connection tables for the unit tests (issue 13 item 2).

Usage (as root):  .venv/bin/python scripts/record_ct_table.py [LAB_DIR]

On the kind lab (brought up in LAB_DIR if it is not up): flush conntrack, open real
connections with real frames from the nginx pod to coredns — a TCP handshake
(SYN, SYN-ACK, ACK), a lone SYN, a UDP query and its answer, an ICMP echo and its
reply — and a SYN to the nginx service's VIP that hairpins back to nginx itself
(DNAT and SNAT), then read the cluster.  Writes tests/fixtures/kind/ct_table/:
snapshot.ofr (with every chassis' ``dpctl/dump-conntrack -m``) and sent.json (the
frames' fields, and each chassis' plain ``dpctl/dump-conntrack`` as well).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ofrace.collect.cluster import collect_cluster
from ofrace.lab.lab import Lab
from ofrace.lab.verify import flush_conntrack, lab_inventory
from ofrace.openflow.frames import encode
from ofrace.trace.cluster import ClusterTracer
from ofrace.trace.request import reply_start, start_from_short_form

ROOT = Path(__file__).resolve().parent.parent
NGINX = "default_nginx-deployment-9456bbbf9-x6pc6"
COREDNS = "10.244.2.5"
VIP = "10.96.91.159:80"
SYN, ACK, SYN_ACK = 0x02, 0x10, 0x12


def main() -> int:
    lab = Lab(sys.argv[1] if len(sys.argv) > 1 else None)
    if lab.state.get("status") != "up" or lab.state.get("topology") != "kind":
        lab.up("kind")
    flush_conntrack(lab)
    tracer = ClusterTracer(collect_cluster(lab_inventory(lab)))
    sent = []

    def send(start, fields, wire, port=None):
        packet = dict(start.packet, **fields)
        iface = port or start.entry.split()[1]
        lab.run_on(start.chassis, ["ovs-appctl", "netdev-dummy/receive", iface,
                                   encode(packet, wire).hex()])
        sent.append({"chassis": start.chassis, "iface": iface, "packet": packet,
                     "wire": wire})
        time.sleep(0.3)

    def opened(destination, protocol, sport):
        start = start_from_short_form(tracer, NGINX, destination, protocol)
        if protocol != "icmp":
            start.packet["tp_src"] = sport
        (verdict,) = [v for v in tracer.trace(start).verdicts() if v.kind == "delivered"]
        return start, reply_start(tracer, verdict), verdict.port

    start, back, port = opened(f"{COREDNS}:53", "tcp", 45101)   # a whole handshake
    send(start, {"tcp_flags": SYN}, {"tcp_seq": 1000})
    send(back, {"tcp_flags": SYN_ACK}, {"tcp_seq": 5000, "tcp_ack": 1001}, port)
    send(start, {"tcp_flags": ACK}, {"tcp_seq": 1001, "tcp_ack": 5001})
    start, _, _ = opened(f"{COREDNS}:53", "tcp", 45102)        # a SYN, unanswered
    send(start, {"tcp_flags": SYN}, {"tcp_seq": 7000})
    start, back, port = opened(f"{COREDNS}:53", "udp", 45103)  # a query and its answer
    send(start, {}, {"payload_len": 12})
    send(back, {}, {"payload_len": 12}, port)
    start, back, port = opened(COREDNS, "icmp", 0)             # an echo and its reply
    send(start, {}, {"icmp_id": 77, "icmp_seq": 1})
    send(back, {}, {"icmp_id": 77, "icmp_seq": 1}, port)
    start = start_from_short_form(tracer, NGINX, VIP, "tcp")  # hairpin: DNAT and SNAT
    start.packet["tp_src"] = 45104
    send(start, {"tcp_flags": SYN}, {"tcp_seq": 9000})

    snapshot = collect_cluster(lab_inventory(lab))
    if not snapshot.complete:
        print(f"incomplete snapshot: {snapshot.all_problems()}", file=sys.stderr)
        return 1
    plain = {c["name"]: lab.run_on(c["name"], ["ovs-appctl", "dpctl/dump-conntrack"]).stdout
             for c in lab.state["chassis"]}
    out = ROOT / "tests" / "fixtures" / "kind" / "ct_table"
    out.mkdir(parents=True, exist_ok=True)
    snapshot.save(out / "snapshot.ofr")
    (out / "sent.json").write_text(json.dumps({"sent": sent, "plain_dumps": plain}, indent=1))
    for name, chassis in sorted(snapshot.chassis.items()):
        print(f"{name}: {len((chassis.conntrack or '').splitlines())} connections")
    return 0


if __name__ == "__main__":
    sys.exit(main())
