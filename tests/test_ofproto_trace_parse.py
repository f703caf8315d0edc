"""Reading ofproto/trace output recorded on the lab."""

from conftest import recorded

from ofrace.compare.ofproto_trace import (
    Hit,
    TracePass,
    compare_passes,
    parse_datapath_actions,
    parse_ofproto_trace,
)


def test_recirculation_passes_and_hits():
    _, traces = recorded("kind")
    multi = [t for t in traces if "recirc(0x" in t["output"]]
    assert multi
    for trace in multi:
        passes = parse_ofproto_trace(trace["output"], {"br-int", "breth0"})
        assert len(passes) >= 2
        assert all(p.hits for p in passes)
        assert passes[1].flow.startswith("recirc_id=")


def test_tunnel_output_and_underlay_bridge_are_separated():
    _, traces = recorded("kind")
    trace = next(t for t in traces if "tnl_push(" in t["output"])
    passes = parse_ofproto_trace(trace["output"], {"br-int", "breth0"})
    tunnel = [o for p in passes for o in p.outputs if o.kind == "tunnel"]
    assert tunnel and tunnel[0].tunnel[1].startswith("192.168.100.")
    assert all(h.bridge in ("br-int", "breth0") for p in passes for h in p.hits)


def test_datapath_actions():
    outputs, stops = parse_datapath_actions(
        "ct_clear,set(eth(src=0a:58:0a:f4:02:01,dst=0a:58:0a:f4:02:05)),set(ipv4(ttl=63)),"
        "tnl_push(tnl_port(6081),header(size=58,type=5,eth(dst=02:0f:c0:a8:64:03,"
        "src=02:0f:c0:a8:64:04,dl_type=0x0800),ipv4(src=192.168.100.4,dst=192.168.100.3,"
        "proto=17,tos=0,ttl=64,frag=0x4000),udp(src=0,dst=6081,csum=0xffff),geneve(crit,"
        "vni=0x1,options({class=0x102,type=0x80,len=4,0x30005}))),out_port(3)),2")
    assert not stops
    (out,) = outputs
    assert out.kind == "tunnel" and out.tunnel == (1, "192.168.100.3", 0x30005)
    assert out.headers == {"dl_src": 0x0A580AF40201, "dl_dst": 0x0A580AF40205, "nw_ttl": 63}
    outputs, stops = parse_datapath_actions("ct(zone=13,nat),hash(l4(0)),recirc(0x2)")
    assert stops and outputs == []


def _flood_pass(order):
    """br-ex floods into br-int through two patch ports, visited in ``order``."""
    blocks = {4: [Hit("br-int", 0, 0, 0)],
              5: [Hit("br-int", 0, 100, 0xc0), Hit("br-int", 8, 50, 0xbe)]}
    hits = [Hit("br-ex", 0, 0, 0)] + [h for port in order for h in blocks[port]]
    return TracePass("", hits)


def test_a_flood_into_the_same_bridge_in_another_order_agrees_with_a_note():
    result = compare_passes([_flood_pass([4, 5])], [_flood_pass([5, 4])])
    assert result.agree and "another order" in result.notes[0]


def test_a_flood_block_that_differs_still_disagrees():
    theirs = _flood_pass([5, 4])
    theirs.hits[-1] = Hit("br-int", 0, 100, 0xdead)   # a different flow in one block
    assert not compare_passes([_flood_pass([4, 5])], [theirs]).agree


def test_a_chain_of_bridges_is_not_reordered():
    chain = [Hit("br-int", 0, 100, 1), Hit("br-int", 65, 100, 2), Hit("br-ex", 0, 0, 0)]
    swapped = [Hit("br-int", 0, 100, 1), Hit("br-ex", 0, 0, 0), Hit("br-int", 65, 100, 2)]
    assert not compare_passes([TracePass("", chain)], [TracePass("", swapped)]).agree
