"""OVN's version facts: what a register, a flag bit or a controller opcode means in each release.

Everything ofrace knows about how OVN lays out OpenFlow, in one place, keyed by
the OVN release read from the node (``ovn-controller --version``, kept per
chassis in the snapshot as ``Chassis.ovn_version``).  The table is a list of
*deltas*: the first known release says everything, each later one only what it
changed, so adding a release is adding one entry (issue 15 fills in every
release).  Every fact names where it comes from in ovn-org/ovn.

A release newer than the newest known one gets the newest facts and a note
saying so; an older one gets the oldest facts and a note; text that names no
release gets the newest facts and a note.  Facts that a node's own data can
say are not here: which ``tun_metadataN`` carries OVN's Geneve option is read
from the bridge's TLV map (``ofrace.openflow.bridge.BridgeIndex.tlv_map``), as
ovn-controller itself does (``controller/ofctrl.c``: it reuses an existing
mapping for the option, else allocates the first free index).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import cache

# Where each kind of fact is read, in ovn-org/ovn.
SOURCES = {
    "registers": "include/ovn/logical-fields.h: the MFF_LOG_* defines; next_hop_ipv4 from "
                 "northd/northd.c REG_NEXT_HOP_IPV4 (where arp() finds the address it asks for)",
    "flags": "lib/logical-fields.c: the flags.* subfields of MFF_LOG_FLAGS, "
             "bits from include/ovn/logical-fields.h enum mff_log_flags_bits",
    "opcodes": "include/ovn/actions.h: enum action_opcode (from 25.03 the ACTION_OPCODES "
               "list); the value is the position",
    "geneve": "controller/physical.h: OVN_GENEVE_CLASS, OVN_GENEVE_TYPE, OVN_GENEVE_LEN",
    "encaps": "ovn-sb.ovsschema: the Encap table's type enum (the tunnels ovn-controller "
              "makes)",
    "release_needs_new_binding": "controller/pinctrl.c run_buffered_binding: 23.03 walks "
                                 "SBREC_MAC_BINDING_TABLE_FOR_EACH_TRACKED only; 22.x looks "
                                 "each local datapath's bindings up; 23.06 adds "
                                 "controller/mac-learn.c ovn_buffered_packets_ctx_run's lookup "
                                 "every BUFFERED_PACKETS_LOOKUP_MS",
    "dhcpv6_codes": "controller/pinctrl.c: compose_out_dhcpv6_opts, the option codes it "
                    "composes (any other fails the answer); codes from lib/ovn-l7.h",
}


@dataclass(frozen=True)
class GeneveOption:
    """OVN's Geneve option: (logical inport << 16) | logical outport, 32 bits."""

    opt_class: int
    opt_type: int
    length: int


@dataclass(frozen=True)
class Release:
    """What one release changed (the first known release states everything)."""

    version: tuple[int, int]
    registers: dict[str, str] = field(default_factory=dict)   # role -> OpenFlow field
    flags: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (lsb, width)
    opcodes: dict[int, str] = field(default_factory=dict)    # opcode -> action name
    geneve: GeneveOption | None = None
    encaps: tuple[str, ...] | None = None   # replaces the previous list when given
    # how pinctrl re-injects a packet it held for ARP/ND: ("packet-out" | "continuation",
    # the OpenFlow table it goes on from)
    held_release: tuple[str, int] | None = None
    arp_ns_any_family: bool | None = None
    # pinctrl re-injects held packets only when a MAC_Binding row is inserted or changed
    # (23.03 ``run_buffered_binding`` walks the tracked rows only; before, every local
    # datapath's bindings are looked up; from 23.06 ``ovn_buffered_packets_ctx_run`` also
    # looks every held packet's binding up in the SB each 100 ms)
    release_needs_new_binding: bool | None = None
    dhcpv6_codes: frozenset[int] = frozenset()   # userdata options pinctrl composes, added


# One entry per release that changed something; checked against the tags
# v22.03.0 … v26.03.0 of ovn-org/ovn.
RELEASES: tuple[Release, ...] = (
    Release(
        (22, 3),
        registers={"datapath": "metadata", "inport": "reg14", "outport": "reg15",
                   "flags": "reg10", "dnat_zone": "reg11", "snat_zone": "reg12",
                   "ct_zone": "reg13", "next_hop_ipv4": "reg0"},
        flags={"loopback": (0, 1), "force_snat_for_dnat": (2, 1), "force_snat_for_lb": (3, 1),
               "skip_snat_for_lb": (9, 1), "use_snat_zone": (11, 1)},
        opcodes=dict(enumerate((
            "arp", "put_arp", "put_dhcp_opts", "nd_na", "put_nd", "put_dhcpv6_opts",
            "dns_lookup", "log", "put_nd_ra_opts", "nd_ns", "icmp", "tcp_reset",
            "nd_na_router", "put_icmp4_frag_mtu", "icmp4_error", "trigger_event", "igmp",
            "bind_vport", "handle_svc_check", "handle_dhcpv6_reply", "icmp6_error",
            "put_icmp6_frag_mtu", "reject", "bfd_msg", "sctp_abort", "put_fdb"))),
        geneve=GeneveOption(0x0102, 0x80, 4),
        encaps=("geneve", "stt", "vxlan"),
        held_release=("packet-out", 37),
        arp_ns_any_family=False,
        release_needs_new_binding=False,
        # server_id, ia_addr, dns_server, domain_search
        dhcpv6_codes=frozenset({2, 5, 23, 24}),
    ),
    Release((22, 9), opcodes={26: "activation_strategy_rarp"}),
    Release((23, 3), release_needs_new_binding=True),
    # bootfile_name (59), bootfile_name_alt (254)
    Release((23, 6), dhcpv6_codes=frozenset({59, 254}), release_needs_new_binding=False),
    Release((23, 9), dhcpv6_codes=frozenset({39})),      # fqdn
    Release((24, 3), opcodes={27: "mg_split_buf"},
            flags={"localnet": (15, 1), "tunnel_rx": (16, 1), "icmp_snat": (17, 1)}),
    Release((24, 9), opcodes={28: "dhcp_relay_req_chk", 29: "dhcp_relay_resp_chk"},
            held_release=("continuation", 40)),
    Release((25, 3), opcodes={27: "split_buf_action"}, arp_ns_any_family=True,
            flags={"from_ctrl": (19, 1), "unsnat_new": (20, 1),
                   "unsnat_not_tracked": (21, 1)}),
    Release((25, 9), opcodes={26: "activation_strategy"},
            flags={"igmp_loopback": (22, 1), "network_id": (28, 4)},
            encaps=("geneve", "vxlan"), held_release=("continuation", 41)),
    Release((26, 3), flags={"pkt_sampled": (23, 1)}, held_release=("continuation", 42)),
)


@dataclass(frozen=True)
class OvnFacts:
    """The facts of one release, folded from the deltas up to it."""

    release: str                       # the known release whose facts these are, "23.03"
    registers: dict[str, str]
    flags: dict[str, tuple[int, int]]
    opcodes: dict[int, str]
    geneve: GeneveOption
    encaps: tuple[str, ...]
    held_release: tuple[str, int] = ("packet-out", 37)
    arp_ns_any_family: bool = False
    release_needs_new_binding: bool = False
    dhcpv6_codes: frozenset[int] = frozenset()
    note: str | None = None            # why these facts may not fit the node's OVN

    def register(self, role: str) -> str:
        """The OpenFlow field OVN keeps a logical role in (``inport`` -> ``reg14``)."""
        return self.registers[role]


def _name(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]:02d}"


def _fold(upto: tuple[int, int]) -> OvnFacts:
    """Every delta up to ``upto``; the facts are named for ``upto`` (a release with no
    delta of its own has its predecessor's facts)."""
    registers: dict[str, str] = {}
    flags: dict[str, tuple[int, int]] = {}
    opcodes: dict[int, str] = {}
    geneve, encaps, held, any_family, needs_new = None, (), ("packet-out", 37), False, False
    dhcpv6_codes: frozenset[int] = frozenset()
    for release in RELEASES:
        if release.version > upto:
            break
        registers.update(release.registers)
        flags.update(release.flags)
        opcodes.update(release.opcodes)
        geneve = release.geneve or geneve
        encaps = release.encaps or encaps
        held = release.held_release or held
        if release.arp_ns_any_family is not None:
            any_family = release.arp_ns_any_family
        if release.release_needs_new_binding is not None:
            needs_new = release.release_needs_new_binding
        dhcpv6_codes |= release.dhcpv6_codes
    return OvnFacts(_name(upto), registers, flags, opcodes, geneve, encaps, held, any_family,
                    needs_new, dhcpv6_codes)


_VERSION = re.compile(r"(?<![\d.])(\d{2})\.(\d{2})(?:\.\d+)?")


@cache
def facts_for(version_text: str | None) -> OvnFacts:
    """The facts for the OVN release named in ``version_text`` (``ovn-controller 23.03.1``)."""
    found = _VERSION.search(version_text or "")
    newest, oldest = RELEASES[-1].version, RELEASES[0].version
    if found is None:
        facts = _fold(newest)
        why = (f"OVN version unknown ({version_text!r})" if version_text
               else "OVN version not read")
        return _with_note(facts, f"{why}: using OVN {facts.release}'s facts")
    version = (int(found.group(1)), int(found.group(2)))
    if version < oldest:
        facts = _fold(oldest)
        return _with_note(facts, f"OVN {_name(version)} is older than any release ofrace "
                                 f"knows: using OVN {facts.release}'s facts")
    if version > newest:
        facts = _fold(newest)
        return _with_note(facts, f"OVN {_name(version)} is newer than any release ofrace "
                                 f"knows: using OVN {facts.release}'s facts")
    return _fold(version)


def _with_note(facts: OvnFacts, note: str) -> OvnFacts:
    return replace(facts, note=note)


def common_flags() -> dict[str, tuple[int, int]]:
    """The ``flags.*`` subfields every known release has, at the same bits: what a
    microflow may name before ofrace knows which chassis (and release) it starts on."""
    every = [_fold(r.version).flags for r in RELEASES]
    return {name: bits for name, bits in every[0].items()
            if all(f.get(name) == bits for f in every)}
