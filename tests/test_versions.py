"""OVN's version facts: one table of release deltas, read by the OVN release of each node."""

from __future__ import annotations

import pytest

from ofrace.ovn import controller
from ofrace.ovn.versions import RELEASES, SOURCES, common_flags, facts_for

# (ovn-controller --version text, opcodes known, name of opcode 26 or None, flags known)
# Counted from include/ovn/actions.h and lib/logical-fields.c at each tag.
RELEASE_TABLE = [
    ("ovn-controller 22.03.0", 26, None, 5),
    ("ovn-controller 22.09.1", 27, "activation_strategy_rarp", 5),
    ("ovn-controller 23.03.1", 27, "activation_strategy_rarp", 5),
    ("ovn-controller 24.03.2", 28, "activation_strategy_rarp", 8),
    ("ovn-controller 24.09.0", 30, "activation_strategy_rarp", 8),
    ("ovn-controller 25.03.0", 30, "activation_strategy_rarp", 11),
    ("ovn-controller 25.09.0", 30, "activation_strategy", 13),
    ("ovn-controller 26.03.0", 30, "activation_strategy", 14),
]


@pytest.mark.parametrize(("text", "opcodes", "op26", "flags"), RELEASE_TABLE)
def test_facts_per_release(text, opcodes, op26, flags):
    facts = facts_for(text)
    assert facts.note is None
    assert facts.release == text.split()[1][:5]
    assert len(facts.opcodes) == opcodes and facts.opcodes.get(26) == op26
    assert len(facts.flags) == flags
    assert (facts.register("datapath"), facts.register("inport"), facts.register("outport"),
            facts.register("flags")) == ("metadata", "reg14", "reg15", "reg10")
    assert (facts.register("dnat_zone"), facts.register("snat_zone"),
            facts.register("ct_zone")) == ("reg11", "reg12", "reg13")
    assert (facts.geneve.opt_class, facts.geneve.opt_type, facts.geneve.length) == \
        (0x0102, 0x80, 4)


def test_opcode_numbers_are_read_in_the_nodes_release():
    """27 is mg_split_buf from 24.03 and split_buf_action from 25.03; unknown before."""
    userdata = (27).to_bytes(4, "big").hex() + "00" * 4
    assert controller.decode_userdata(userdata, facts_for("23.03.1")) is None
    assert controller.decode_userdata(userdata, facts_for("24.03.0")).name == "mg_split_buf"
    assert controller.decode_userdata(userdata, facts_for("25.03.0")).name == "split_buf_action"
    log = (7).to_bytes(4, "big").hex() + "00" * 4
    assert not controller.decode_userdata(log, facts_for("22.03.0")).holds
    assert controller.decode_userdata("0000", facts_for("22.03.0")) is None  # too short


def test_every_opcode_name_has_an_effect():
    names = {n for r in RELEASES for n in r.opcodes.values()}
    assert names <= set(controller.EFFECTS), names - set(controller.EFFECTS)


@pytest.mark.parametrize(("text", "release", "says"), [
    ("ovn-controller 27.03.0", "26.03", "newer"),
    ("ovn-controller 21.12.1", "22.03", "older"),
    ("ovn-controller (Open vSwitch) 3.1.0", "26.03", "unknown"),
    (None, "26.03", "not read"),
])
def test_unknown_releases_get_the_nearest_facts_and_a_note(text, release, says):
    facts = facts_for(text)
    assert facts.release == release and says in facts.note


def test_a_release_between_deltas_has_its_predecessors_facts():
    assert facts_for("23.06.0").opcodes == facts_for("22.09.0").opcodes
    assert facts_for("23.06.0").release == "23.06"


def test_the_deltas_are_in_order_and_cited():
    versions = [r.version for r in RELEASES]
    assert versions == sorted(set(versions))
    first = RELEASES[0]
    assert first.registers and first.flags and first.opcodes and first.geneve and first.encaps
    assert set(SOURCES) == {"registers", "flags", "opcodes", "geneve", "encaps", "dhcpv6_codes",
                            "release_needs_new_binding"}


@pytest.mark.parametrize("text, codes", [
    ("22.03.0", {2, 5, 23, 24}), ("23.03.1", {2, 5, 23, 24}),
    ("23.06.0", {2, 5, 23, 24, 59, 254}), ("26.03.0", {2, 5, 23, 24, 39, 59, 254})])
def test_the_dhcpv6_options_pinctrl_composes_per_release(text, codes):
    assert facts_for(text).dhcpv6_codes == codes


def test_common_flags_are_those_every_release_has():
    assert common_flags() == {"loopback": (0, 1), "force_snat_for_dnat": (2, 1),
                              "force_snat_for_lb": (3, 1), "skip_snat_for_lb": (9, 1),
                              "use_snat_zone": (11, 1)}


def test_a_chassis_of_an_unknown_release_says_so_in_the_trace():
    from conftest import FIXTURES

    from ofrace.snapshot import Snapshot
    from ofrace.trace.cluster import ClusterTracer
    from ofrace.trace.request import start_from_short_form

    snapshot = Snapshot.load(FIXTURES / "kind" / "snapshot.ofr")  # changed below: not cached
    known = ClusterTracer(snapshot)
    nginx = "default_nginx-deployment-9456bbbf9-x6pc6"
    trace = known.trace(start_from_short_form(known, nginx, "10.244.2.5:53", "udp"))
    assert not any("newer" in n for h in trace.hops for n in h.notes)
    snapshot.chassis["ovn-worker"].ovn_version = "ovn-controller 99.03.0"
    tracer = ClusterTracer(snapshot)
    trace = tracer.trace(start_from_short_form(tracer, nginx, "10.244.2.5:53", "udp"))
    notes = [n for h in trace.hops for n in h.notes]
    assert any("ovn-worker: OVN 99.03 is newer" in n for n in notes)
    assert [v.kind for v in trace.verdicts()] == ["delivered"]


def test_the_geneve_option_is_the_same_in_every_known_release():
    """ofproto_trace parsing relies on it: a release that changes it must say so here."""
    assert len({facts_for(f"{r.version[0]}.{r.version[1]:02d}.0").geneve for r in RELEASES}) == 1


def test_stt_tunnels_are_ovns_until_25_09():
    assert "stt" in facts_for("25.03.0").encaps and "stt" not in facts_for("25.09.0").encaps


def test_arp_names_the_next_hop_from_its_register():
    arp = "00" * 8
    facts = facts_for("23.03.1")
    text = controller.describe(arp, {facts.register("next_hop_ipv4"): 0x0A000001}, facts)
    assert text.startswith("arp:") and text.endswith("resolving 10.0.0.1")
    assert "resolving" not in controller.describe(arp, {}, facts)


@pytest.mark.parametrize(("text", "release", "any_family"), [
    ("ovn-controller 22.03.0", ("packet-out", 37), False),      # OFTABLE_REMOTE_OUTPUT
    ("ovn-controller 23.03.1", ("packet-out", 37), False),
    ("ovn-controller 23.06.0", ("packet-out", 37), False),      # OFTABLE_OUTPUT_INIT
    ("ovn-controller 24.03.0", ("packet-out", 37), False),
    ("ovn-controller 24.09.0", ("continuation", 40), False),
    ("ovn-controller 25.03.0", ("continuation", 40), True),
    ("ovn-controller 25.09.0", ("continuation", 41), True),
    ("ovn-controller 26.03.0", ("continuation", 42), True),
])
def test_how_a_held_packet_is_released(text, release, any_family):
    """controller/pinctrl.c, controller/mac-cache.c and controller/lflow.h at each tag."""
    facts = facts_for(text)
    assert (facts.held_release, facts.arp_ns_any_family) == (release, any_family)


def test_only_23_03_releases_held_packets_on_a_new_binding_alone():
    """23.03's pinctrl re-injects held packets only for MAC_Binding rows the IDL run
    changed; before and after it, an existing binding releases them too."""
    assert facts_for("23.03.1").release_needs_new_binding
    assert not facts_for("22.12.0").release_needs_new_binding
    assert not facts_for("23.06.0").release_needs_new_binding
    assert not facts_for("26.03.0").release_needs_new_binding
