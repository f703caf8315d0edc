"""A packet that comes back already NATed: the held SYN of a cold gateway router.

OVN's gateway router DNATs the seed's SYN (a load balancer), then holds it for ARP.
How the held packet comes back decides what the DNAT zone does with it a second time
(lib/conntrack.c initial_conn_lookup; nat_get_unique_tuple answers a reply-tuple
collision alike in OVS 3.1, 3.3 and 3.7):
- a packet-out (OVN to 24.03.1): untracked, so a new connection whose reply tuple
  collides with the LB's; ``ct(commit,nat(src))`` moves its source port by one;
- a resumed paused action (OVN 24.03.2+, 23.09.4+, 24.09+): it keeps +dnat and its zone,
  conntrack looks its reversed tuple up and finds the LB's connection; the port stays.
"""

from pathlib import Path

from conftest import recorded

from ofrace.openflow.actions import parse_actions
from ofrace.openflow.bridge import BridgeIndex
from ofrace.ovn import pinctrl
from ofrace.ovn.versions import facts_for
from ofrace.simulate.conntrack import CT_CACHE, DNAT, NEW, TRK, ConntrackTable
from ofrace.simulate.engine import ChassisDatapath
from ofrace.snapshot import Bridge, Interface, Snapshot
from ofrace.trace.cluster import ClusterTracer
from ofrace.trace.request import start_from_expression

VERSIONS = Path(__file__).parent / "fixtures" / "versions"
CLIENT, VIP, BACKEND = 0xAC120001, 0xAC120004, 0x0AF40103
SYN = {"dl_type": 0x800, "nw_proto": 6, "nw_src": CLIENT, "nw_dst": VIP, "tp_src": 40000,
       "tp_dst": 30007, "tcp_flags": 2, "tcp_seq": 1000, "payload_len": 0}
SEED = ('inport == "breth0_ovn-worker" && eth.src == 02:42:7a:79:82:ca && '
        "eth.dst == 02:42:ac:12:00:04 && ip4.src == 172.18.0.1 && ip4.dst == 172.18.0.4 && "
        "ip.ttl == 64 && tcp.src == 12345 && tcp.dst == 30007 && tcp.flags == 2")


def ct(text):
    (action,) = parse_actions(text)
    return action


def held_after_dnat() -> tuple[ConntrackTable, dict]:
    """The LB's connection committed in zone 9, and the SYN as it was held (DNATed)."""
    table = ConntrackTable()
    syn = dict(SYN)
    table.execute(ct("ct(table=1,zone=9,nat)"), syn)
    table.execute(ct("ct(commit,table=2,zone=9,nat(dst=10.244.1.3:80))"), syn)
    assert (syn["nw_dst"], syn["tp_dst"]) == (BACKEND, 80)
    return table, syn


def second_pass(table: ConntrackTable, packet: dict) -> dict:
    """What OVN's gateway router egress does: lr_out_undnat, then lr_out_post_undnat's
    commit of a new connection in the DNAT zone."""
    first = table.execute(ct("ct(table=44,zone=9,nat)"), packet)
    if first.state & NEW:
        table.execute(ct("ct(commit,zone=9,nat(src))"), packet)
    return packet


def test_resumed_with_its_ct_state_finds_the_lb_connection_and_keeps_its_port():
    table, syn = held_after_dnat()
    resumed = {k: v for k, v in syn.items() if k != CT_CACHE}   # a new datapath packet
    resumed.update(ct_state=TRK | NEW | DNAT, ct_zone=9)
    outcome = table.execute(ct("ct(table=44,zone=9,nat)"), resumed)
    assert outcome.found is not None and outcome.found.original.dport == 30007
    assert outcome.state == TRK | NEW | DNAT and "reversed tuple" in outcome.lookup
    second_pass(table, resumed)
    assert resumed["tp_src"] == 40000
    assert len(table.connections()) == 1


def test_untracked_packet_out_collides_and_moves_its_port():
    """Negative control: the same packet without its conntrack state."""
    table, syn = held_after_dnat()
    packet_out = {k: v for k, v in syn.items() if k != CT_CACHE}
    second_pass(table, packet_out)
    assert packet_out["tp_src"] == 40001
    assert len(table.connections()) == 2


def test_ct_state_of_another_zone_is_not_a_nat_of_this_one():
    """process_one resets ct_state on entering another zone: a plain lookup, new."""
    table, syn = held_after_dnat()
    other = {k: v for k, v in syn.items() if k != CT_CACHE}
    other.update(ct_state=TRK | NEW | DNAT, ct_zone=8)
    second_pass(table, other)
    assert other["tp_src"] == 40001


def _released_syn(snapshot: Snapshot) -> tuple[str, dict]:
    tracer = ClusterTracer(snapshot)
    trace = tracer.trace(start_from_expression(tracer, SEED))
    released = next(h for h in trace.hops if h.start.entry.startswith("released"))
    [delivered] = [e for e in released.exits if e.kind == "output"]
    return released.start.entry, delivered.packet


def test_the_seed_syn_per_release():
    """On the recorded snapshots: 23.03's flows hold with a plain controller action (the
    wire: port+1); 24.03.9's and 26.03's pause (the wire on their labs: the port kept)."""
    how, packet = _released_syn(recorded("kind")[0])
    assert "packet-out" in how and packet["tp_src"] == 12346
    for release in ("24.03", "26.03"):
        how, packet = _released_syn(Snapshot.load(VERSIONS / release / "kind" / "snapshot.ofr"))
        assert "resumed" in how and packet["tp_src"] == 12345, release


def test_the_release_follows_the_flow_that_held_the_packet():
    """A 24.03 patch release may pause or not (the facts per release cannot tell): the
    holding controller action says; the facts only when nothing says."""
    held = {"dl_dst": 0, "dl_type": 0x0800, "ct_state": TRK | NEW | DNAT, "ct_zone": 9,
            "reg15": 1, "metadata": 9}
    facts = facts_for("ovn-controller 24.03.9")
    packet, actions, how = pinctrl.release(held, 1, facts, paused=True)
    assert packet["ct_state"] == TRK | NEW | DNAT and "resumed" in how
    assert actions[-1].table == 37
    packet, _, how = pinctrl.release(held, 1, facts, paused=False)
    assert "ct_state" not in packet and "packet-out" in how
    packet, _, how = pinctrl.release(held, 1, facts)
    assert "ct_state" not in packet and "packet-out" in how


# OVN 26.03's hairpin through a load balancer, cut down: the LB's DNAT (with
# recirculation), the stateful stage's ct(commit,nat(src)) without recirculation, a
# ct_clear on the way out, and the egress commit in the same zone.
HAIRPIN = [
    "table=0, priority=1,tcp,in_port=1 actions=ct(table=1,zone=3,nat)",
    "table=1, priority=2,ct_state=+new+trk,tcp actions=ct(commit,table=2,zone=3,"
    "nat(dst=10.0.0.9:6443))",
    "table=1, priority=1 actions=resubmit(,3)",
    "table=2, priority=1 actions=ct(commit,zone=3,nat(src)),resubmit(,3)",
    "table=3, priority=1 actions=ct_clear,resubmit(,4)",
    "table=4, priority=1 actions=ct(table=5,zone=3,nat)",
    "table=5, priority=2,ct_state=+new+trk actions=ct(commit,zone=3,nat(src)),output:2",
    "table=5, priority=1 actions=output:2",
]
HAIRPIN_SYN = {"in_port": 1, "dl_type": 0x800, "nw_proto": 6, "nw_src": 0x0AF40202,
               "nw_dst": 0x0A600001, "tp_src": 40000, "tp_dst": 443, "tcp_flags": 2,
               "tcp_seq": 1, "payload_len": 0}


def _datapath(lines):
    ports = [Interface(name=f"p{n}", bridge="br0", type="", ofport=n, options={},
                       external_ids={}, error=None, mac_in_use=None) for n in (1, 2)]
    return ChassisDatapath("hv", {"br0": BridgeIndex(Bridge(name="br0", flows=lines), ports)})


def _out_port(flows) -> tuple[int, ChassisDatapath]:
    dp = _datapath(flows)
    _, exits = dp.inject("br0", dict(HAIRPIN_SYN))
    [out] = [e for e in exits if e.kind == "output"]
    return out.packet["tp_src"], dp


def test_a_ct_clear_after_a_ct_without_recirculation_reaches_no_datapath():
    """ofproto-dpif-xlate.c: after ct() without table= the flow is untracked
    (ctx->conntracked false) and OFPACT_CT_CLEAR composes nothing, so the datapath packet
    keeps +dnat and zone 3: the egress ct() finds the LB's connection, the SYN keeps its
    port (the 26.03 lab: SYN 40000; later packets, which skip that commit, 40001)."""
    port, dp = _out_port(HAIRPIN)
    assert port == 40000 and len(dp.conntrack.connections()) == 1


def test_a_ct_clear_after_a_recirculation_clears():
    """Negative control: without the commit that untracks the flow, ct_clear reaches the
    datapath, the egress ct() is a new connection and its reply collides: port+1."""
    flows = [f for f in HAIRPIN if not f.startswith("table=2,")]
    flows.append("table=2, priority=1 actions=resubmit(,3)")
    port, dp = _out_port(flows)
    assert port == 40001 and len(dp.conntrack.connections()) == 2


def test_a_header_rewrite_drops_the_connection_the_packet_carries():
    """lib/packets.c: rewriting an address drops md.conn; the kept ct_state then looks up
    the new tuple's reverse, which finds nothing: a new connection."""
    flows = [f.replace("ct_clear,", "set_field:10.244.2.9->ip_src,") for f in HAIRPIN]
    port, dp = _out_port(flows)
    assert len(dp.conntrack.connections()) == 2
