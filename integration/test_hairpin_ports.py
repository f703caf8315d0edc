"""A load-balancer backend reaching its own VIP (hairpin) from 16 source ports, sent for
real on kind: for each, ofrace's final packet comes from the VIP (OVN's ct_snat_to_vip),
the backend it picks is the one the wire delivered to, and every step of the
conversation (SYN to last ACK) equals every capture point (issue 13's hairpin check)."""

from __future__ import annotations

from ofrace.collect.cluster import collect_cluster
from ofrace.compare.generator import PacketClass, generate
from ofrace.compare.sweep import run_sweep
from ofrace.compare.verify import VerifyReport, predict
from ofrace.lab.verify import LabSide, flush_conntrack, lab_inventory
from ofrace.trace.cluster import ClusterTracer

PORTS = 16


def test_a_backend_reaching_its_own_vip_from_sixteen_source_ports(kind_lab):
    flush_conntrack(kind_lab)
    snapshot = collect_cluster(lab_inventory(kind_lab))
    chosen, ports = [], set()
    for conv in generate(snapshot, min_steps=20 * 1016):
        syn = conv.steps[0].packet
        if PacketClass.HAIRPIN in conv.classes and syn.get("nw_proto") == 6 \
                and syn["tp_src"] not in ports and len(chosen) < PORTS:
            chosen.append(conv)
            ports.add(syn["tp_src"])
    assert len(chosen) == PORTS
    for conv in chosen:             # the prediction: the backend sees the VIP as source
        syn, entry = conv.steps[0].packet, conv.entry
        prediction = predict(ClusterTracer(snapshot), entry.chassis, entry.bridge,
                             {"in_port": entry.ofport, **syn}, conv.label,
                             conv.steps[0].wire)
        sources = {dict(p.fields).get("nw_src") for p in prediction.outputs}
        assert sources == {syn["nw_dst"]}, conv.label
    report = run_sweep(LabSide(kind_lab, snapshot), chosen, VerifyReport("kind"))
    steps = sum(report.sent.values())
    assert steps >= PORTS * 5
    assert report.mismatches == [], [(m.step, m.where, m.predicted, m.wire)
                                     for _, m in report.mismatches[:3]]
