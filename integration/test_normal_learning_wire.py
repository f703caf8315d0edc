"""NORMAL learns during the translation, on a real OVN provider bridge: an ARP request
from the outside host (whose MAC breth0 has not learned) is flooded, the gateway
router's ARP reply comes back through the patch port in the same translation and goes
to eth0 alone -- not also to LOCAL, as a NORMAL that does not learn would predict.
Checked against breth0's real tx counters."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest
from lab_inventory import local_inventory

from ofrace.collect.cluster import collect_cluster
from ofrace.lab.wire import datapath_packet
from ofrace.trace.cluster import ClusterTracer
from ofrace.trace.request import start_from_expression

pytestmark = pytest.mark.lab

NODE = "ovn-worker"
ARP_REQUEST = ('inport == "breth0_ovn-worker" && eth.src == 02:42:7a:79:82:ca && '
               'eth.dst == ff:ff:ff:ff:ff:ff && arp.op == 1 && arp.spa == 172.18.0.1 && '
               'arp.tpa == 172.18.0.4 && arp.sha == 02:42:7a:79:82:ca')
WATCHED = ("eth0", "breth0")  # the uplink, and LOCAL


def _tx(lab) -> dict[str, int]:
    text = lab.run_on(NODE, ["ovs-ofctl", "dump-ports", "breth0"]).stdout
    names = {"LOCAL": "breth0", "1": "eth0"}
    return {names.get(m.group(1), m.group(1)): int(m.group(2))
            for m in re.finditer(r"port\s+(\w+):.*?tx pkts=(\d+)", text, re.S)}


def test_arp_reply_goes_only_to_the_learned_uplink(lab_slot):
    lab = lab_slot.ensure("kind")
    lab.run_on(NODE, ["ovs-appctl", "fdb/flush", "breth0"])
    tracer = ClusterTracer(collect_cluster(local_inventory(lab)))
    start = start_from_expression(tracer, ARP_REQUEST)
    result = tracer.trace(start)
    predicted = Counter(v.port for v in result.verdicts()
                        if v.chassis == NODE and v.port in WATCHED)
    assert predicted == {"eth0": 1, "breth0": 1}, [v.text for v in result.verdicts()]

    wire: Counter = Counter()
    for _ in range(3):  # other broadcasts on the segment may move LOCAL's counter: retry
        lab.run_on(NODE, ["ovs-appctl", "fdb/flush", "breth0"])
        before = _tx(lab)
        lab.inject(NODE, "eth0", datapath_packet(start.packet))
        time.sleep(0.5)
        after = _tx(lab)
        wire = Counter({p: after[p] - before.get(p, 0) for p in WATCHED
                        if after.get(p, 0) != before.get(p, 0)})
        if wire == predicted:
            break
    assert wire == predicted
