"""The embedded lab: real packets on the wire, repeatable flows, reachable nodes, clean teardown."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import time
import tomllib
from importlib import resources

import pytest
from click.testing import CliRunner

from ofrace.cli import main
from ofrace.errors import LabError
from ofrace.lab.catalog import load
from ofrace.lab.daemons import ProcessRecord
from ofrace.lab.lab import Lab
from ofrace.lab.network import link_exists, namespace_exists

pytestmark = pytest.mark.lab

# The seed's request: curl from the docker bridge (172.18.0.1) to ovn-worker's NodePort.
SEED_SYN = (
    "eth(src=02:42:7a:79:82:ca,dst=02:42:ac:12:00:04),eth_type(0x0800),"
    "ipv4(src=172.18.0.1,dst=172.18.0.4,proto=6,tos=0,ttl=64,frag=no),"
    "tcp(src={sport},dst=30007),tcp_flags(syn)"
)
NGINX_VIF = "nginx-x6pc6"
WARM_UP_SPORT = 40000


def lab_address(lab: Lab, host: int) -> str:
    """The address with host part ``host`` in the lab's management network."""
    return str(ipaddress.ip_interface(lab.state["placement"]["management"]).network[host])


def netns(lab: Lab, chassis: str) -> str:
    return f"ofr-{lab.state['placement']['lab_id']}-{chassis}"


def packet_fields(flow: str) -> dict[str, str]:
    """``ovs-ofctl parse-pcap`` output as a dict; the leading protocol word maps to ''."""
    fields = {}
    for item in flow.split(","):
        key, _, value = item.partition("=")
        fields[key] = value
    return fields


def canonical_flows(dump: str) -> list[str]:
    """A flow dump with what is derived from random southbound UUIDs taken out.

    Two things in a flow dump follow the UUIDs that ovsdb-server and
    ovn-northd draw at random, and so differ between two otherwise identical
    bring-ups: cookies (first 32 bits of the row UUID, also inside learn()
    actions), and, in multicast flood flows, the order of the per-port
    blocks and of the tunnel outputs (Multicast_Group.ports is a set of
    Port_Binding references, ordered by UUID, and the remote chassis follow
    the same order; any run of tunnel outputs is sorted).  Everything else --
    tables, matches, tunnel keys, ofports, conntrack zones, group ids -- must
    be identical.
    """
    lines = []
    for line in dump.splitlines():
        if "actions=" not in line:
            continue
        line = re.sub(r"cookie=0x[0-9a-f]+", "cookie=*", line.strip())
        match, _, actions = line.partition(" actions=")
        if re.search(r"reg15=0x[89a-f][0-9a-f]{3}\b", match):  # a multicast group's flood
            blocks, start = [], 0
            for block in re.finditer(r"resubmit\(,\d+\),?", actions):
                blocks.append(actions[start:block.end()].rstrip(","))
                start = block.end()
            actions = ",".join(sorted(blocks) + ([actions[start:]] if actions[start:] else []))
        # a run of tunnel outputs to several chassis (a flood's remote part; from OVN 26.03
        # also table 84's) follows the chassis set's hash order
        actions = re.sub(r"output:\d+(?:,output:\d+)+",
                         lambda run: ",".join(sorted(run.group().split(","))), actions)
        lines.append(f"{match} actions={actions}")
    return sorted(lines)


def flow_state(lab: Lab) -> dict[str, list[str]]:
    state = {}
    for chassis in lab.state["chassis"]:
        name = chassis["name"]
        for bridge in chassis["bridges"]:
            dump = lab.run_on(name, ["ovs-ofctl", "dump-flows", bridge, "--no-stats"]).stdout
            state[f"{name} {bridge} flows"] = canonical_flows(dump)
        groups = lab.run_on(name, ["ovs-ofctl", "dump-groups", "br-int"]).stdout
        state[f"{name} groups"] = sorted(groups.splitlines()[1:])
        ports = lab.run_on(name, ["ovs-vsctl", "--format=csv", "--no-headings",
                                  "--columns=name,ofport", "list", "Interface"]).stdout
        state[f"{name} ofports"] = sorted(ports.splitlines())
    return state


def pristine(lab: Lab) -> bool:
    """No traffic has left state behind (learned MACs) since the lab came up."""
    return not lab.sbctl("--bare", "--columns=_uuid", "list", "MAC_Binding").strip()


def test_two_ups_give_the_same_flows(lab_slot):
    first_lab = lab_slot.ensure("kind")
    if not pristine(first_lab):
        first_lab = lab_slot.up("kind")
    first = flow_state(first_lab)
    second = flow_state(lab_slot.up("kind"))
    assert first.keys() == second.keys()
    for key in first:
        assert first[key] == second[key], f"{key} differs between two ups"
    assert len(first["ovn-worker br-int flows"]) > 500


def _ovn_version(lab) -> tuple[int, int, int]:
    """The lab's OVN version, from ovn-controller --version as `lab status` keeps it."""
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", (lab.state.get("versions") or {}).get("ovn", ""))
    return tuple(int(g) for g in found.groups()) if found else (0, 0, 0)


def _held_packets_resume(lab) -> bool:
    """Whether ovn-controller resumes a packet held for ARP (arp{} a paused controller
    action, so the packet keeps its conntrack state): ovn-org/ovn c141d8b19 in 24.09.0,
    backported as 1e89d06e6 to 24.03.2 and e5c3331cb to 23.09.4."""
    version = _ovn_version(lab)
    return version >= (24, 9, 0) or (24, 3, 2) <= version < (24, 9, 0) \
        or (23, 9, 4) <= version < (24, 3, 0)


def test_seed_nodeport_syn_reaches_the_pod_dnatted_and_snatted(lab_slot):
    """The seed's tcpdump, reproduced from a real packet.

    What the first packet through the cold gateway router does (observed on
    OVN 23.03 / OVS 3.1, every run): GR_ovn-worker routes 10.244.0.0/16 via
    100.64.0.1, and with dynamic_neigh_routers=true it knows no MAC for that
    next hop, so after the load balancer has DNATed the SYN (and committed
    the connection in the GR's DNAT zone) the packet is held by
    ovn-controller while it ARPs.  The ARP is answered at once (the cluster
    router is on the same chassis), a MAC_Binding appears, and the held
    packet is re-injected -- without its conntrack state.  It then passes
    the GR's DNAT zone a second time as a *new* connection, already aimed at
    10.244.1.3:80, whose reply tuple collides with the first entry's; the
    conntrack resolves the collision by moving the source port by one.  So
    the first connection reaches the pod, but from port+1.  The test sends a
    warm-up SYN from port 40000 to show exactly that, then the seed's SYN,
    which arrives as the seed's tcpdump shows.
    """
    lab = lab_slot.ensure("kind")
    if not pristine(lab):
        lab = lab_slot.up("kind")  # an earlier test warmed the router: start cold
    before = len(lab.pcap_packets("ovn-worker", NGINX_VIF))

    lab.inject("ovn-worker", "eth0", SEED_SYN.format(sport=WARM_UP_SPORT))
    warm_up = lab.wait_for_packets("ovn-worker", NGINX_VIF, before + 1)[before:]
    assert len(warm_up) == 1, warm_up
    first = packet_fields(warm_up[0])
    assert (first["nw_src"], first["nw_dst"], first["tp_dst"]) == ("100.64.0.3", "10.244.1.3", "80")
    assert first["nw_ttl"] == "62" and first["tcp_flags"] == "syn"
    # Re-injected as a packet-out (untracked), the SYN is a new connection in the DNAT
    # zone whose reply collides with the LB's: conntrack moves its port by one.  Resumed
    # (paused arp{}), it keeps +dnat and its zone, conntrack finds the LB's connection by
    # the reversed tuple and the port stays (docs/versions.md; 24.03.9 and 26.03.2 labs)
    moves = not _held_packets_resume(lab)
    assert first["tp_src"] == str(WARM_UP_SPORT + moves), "the re-injected packet's port"
    learned = lab.sbctl("--bare", "--columns=logical_port,mac", "find", "MAC_Binding",
                        "ip=100.64.0.1").split()
    assert learned == ["rtoj-GR_ovn-worker", "0a:58:64:40:00:01"], "the GR ARPed for 100.64.0.1"

    lab.inject("ovn-worker", "eth0", SEED_SYN.format(sport=12345))
    seen = lab.wait_for_packets("ovn-worker", NGINX_VIF, before + 2)[before + 1:]
    assert len(seen) == 1, seen
    syn = packet_fields(seen[0])
    assert "tcp" in syn
    assert (syn["dl_src"], syn["dl_dst"]) == ("0a:58:0a:f4:01:01", "0a:58:0a:f4:01:03")
    assert (syn["nw_src"], syn["tp_src"]) == ("100.64.0.3", "12345")
    assert (syn["nw_dst"], syn["tp_dst"]) == ("10.244.1.3", "80")
    assert syn["nw_ttl"] == "62"
    assert syn["tcp_flags"] == "syn"
    time.sleep(0.3)
    assert len(lab.pcap_packets("ovn-worker", NGINX_VIF)) == before + 2, "no duplicates"


def test_up_ends_with_the_mac_tables_settled(lab_slot):
    """The gateways' GARPs are in the provider bridges' MAC tables when `up` returns.

    Without the wait, `up` returned with them empty and they filled seconds
    later, between a snapshot and ofproto/trace (issue 10).
    """
    lab = lab_slot.up("kind")
    tables = lab.mac_tables()
    provider = {key: table for key, table in tables.items() if key.endswith(" breth0")}
    assert len(provider) == 3 and all(provider.values()), provider
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        assert lab.mac_tables() == tables
        time.sleep(0.5)



def test_ssh_lands_in_each_chassis_own_ovs(kind_lab):
    ssh = kind_lab.state["ssh"]
    for chassis in kind_lab.state["chassis"]:
        result = subprocess.run(
            ["ssh", "-i", ssh["identity"], "-o", f"UserKnownHostsFile={ssh['known_hosts']}",
             "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
             f"root@{chassis['address']}",
             "ovs-vsctl get open . external_ids:system-id"],
            capture_output=True, text=True, timeout=20,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().strip('"') == chassis["system_id"]
    worker = kind_lab.chassis("ovn-worker")
    assert worker["address"] == lab_address(kind_lab, 4)
    assert worker["system_id"] == "4da007a6-ed1d-45ff-bcf4-62ae8914bbbc"


def test_ssh_refuses_an_unknown_host_key(kind_lab, tmp_path):
    empty_known_hosts = tmp_path / "known_hosts"
    empty_known_hosts.write_text("")
    result = subprocess.run(
        ["ssh", "-i", kind_lab.state["ssh"]["identity"],
         "-o", f"UserKnownHostsFile={empty_known_hosts}", "-o", "StrictHostKeyChecking=yes",
         "-o", "BatchMode=yes", f"root@{lab_address(kind_lab, 4)}", "true"],
        capture_output=True, text=True, timeout=20,
    )
    assert result.returncode != 0
    assert "Host key verification failed" in result.stderr


def test_exec_in_a_namespace_reaches_that_chassis(kind_lab):
    exec_prefix = kind_lab.status()["chassis"][1]["exec_command"]
    assert exec_prefix[:4] == ["ip", "netns", "exec", netns(kind_lab, "ovn-worker")]
    flows = subprocess.run([*exec_prefix, "ovs-ofctl", "dump-flows", "br-int"],
                           capture_output=True, text=True, timeout=20, check=True).stdout
    assert len(flows.splitlines()) > 500
    system_id = subprocess.run([*exec_prefix, "ovs-vsctl", "get", "open", ".",
                                "external_ids:system-id"],
                               capture_output=True, text=True, timeout=20, check=True).stdout
    assert system_id.strip().strip('"') == "4da007a6-ed1d-45ff-bcf4-62ae8914bbbc"


def test_state_file_and_inventory_describe_the_lab(kind_lab):
    state = json.loads((kind_lab.dir / "lab.json").read_text())
    assert state["version"] == 2 and state["topology"] == "kind"
    assert state["nb_tcp"] == f"tcp:{lab_address(kind_lab, 1)}:6641"
    assert state["sb_tcp"] == f"tcp:{lab_address(kind_lab, 1)}:6642"
    assert [c["name"] for c in state["chassis"]] == [
        "ovn-control-plane", "ovn-worker", "ovn-worker2"]
    worker = state["chassis"][1]
    assert worker["netns"] == netns(kind_lab, "ovn-worker") and worker["hostname"] == "ovn-worker"
    assert worker["vifs"] == {"k8s-ovn-worker": "ovn-k8s-mp0",
                              "default_nginx-deployment-9456bbbf9-x6pc6": NGINX_VIF}
    assert worker["uplinks"] == {"breth0": "eth0"}
    assert worker["env"]["OVS_RUNDIR"] == worker["rundir"]
    assert {p["what"] for p in state["processes"]} == {
        "ovsdb-server", "ovn-northd", "ovs-vswitchd", "ovn-controller", "sshd"}

    inventory = tomllib.loads((kind_lab.dir / "inventory.toml").read_text())
    assert inventory["southbound"]["remote"] == state["sb_remote"]
    assert inventory["northbound"]["remote"] == state["nb_remote"]
    assert [(n["name"], n["host"], n["transport"], n["user"]) for n in inventory["node"]] == [
        ("ovn-control-plane", lab_address(kind_lab, 3), "ssh", "root"),
        ("ovn-worker", lab_address(kind_lab, 4), "ssh", "root"),
        ("ovn-worker2", lab_address(kind_lab, 2), "ssh", "root"),
    ]
    # The southbound is reachable over TCP on the management address, too.
    chassis = kind_lab.sbctl(f"--db={state['sb_tcp']}", "--bare", "--columns=hostname",
                             "list", "Chassis").split()
    assert sorted(chassis) == ["ovn-control-plane", "ovn-worker", "ovn-worker2"]


def test_logical_network_is_the_seeds(kind_lab):
    lbs = kind_lab.nbctl("lr-lb-list", "GR_ovn-worker")
    assert re.search(r"tcp\s+172\.18\.0\.4:30007\s+10\.244\.1\.3:80", lbs)
    assert re.search(r"tcp\s+10\.96\.0\.1:443\s+172\.18\.0\.3:6443", lbs)
    assert "10.96.91.159" in kind_lab.nbctl("ls-lb-list", "ovn-worker")
    bound = kind_lab.sbctl("--bare", "--columns=chassis", "find", "Port_Binding",
                           "logical_port=cr-rtos-ovn-worker").strip()
    assert kind_lab.sbctl("--bare", "--columns=name", "list", "Chassis", bound).strip() == \
        "4da007a6-ed1d-45ff-bcf4-62ae8914bbbc"


def test_status_command_reports_every_process_alive(kind_lab):
    result = CliRunner().invoke(main, ["lab", "status", "--dir", str(kind_lab.dir), "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["status"] == "up"
    assert all(p["alive"] for p in status["processes"])
    assert len(status["processes"]) == 3 + 2 + 3 * 4  # central, hub, per chassis
    human = CliRunner().invoke(main, ["lab", "status", "--dir", str(kind_lab.dir)])
    assert f"root@{lab_address(kind_lab, 4)}" in human.output
    assert f"ip netns exec {netns(kind_lab, 'ovn-worker')}" in human.output


def test_down_stops_exactly_what_up_started(kind_lab):
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        records = [ProcessRecord.from_json(p) for p in kind_lab.state["processes"]]
        namespaces = list(kind_lab.state["namespaces"])
        bridge = kind_lab.state["placement"]["bridge"]
        assert all(r.alive() for r in records) and link_exists(bridge)
        report = kind_lab.down()
        assert len(report["stopped"]) == len(records)
        assert not any(r.alive() for r in records)
        assert not any(namespace_exists(n) for n in namespaces)
        assert not link_exists(bridge)
        assert bystander.poll() is None, "down killed a process it did not start"
        assert Lab(kind_lab.dir).status()["status"] == "down"
        assert kind_lab.down() == {"stopped": [], "namespaces": [], "links": []}
    finally:
        bystander.kill()
        bystander.wait()


def test_basic_packet_crosses_the_tunnel(basic_lab):
    before = len(basic_lab.pcap_packets("hv2", "vif2"))
    basic_lab.inject("hv1", "vif1",
                     "eth(src=50:54:00:00:00:01,dst=50:54:00:00:00:02),eth_type(0x0800),"
                     "ipv4(src=10.0.0.1,dst=10.0.0.2,proto=17,tos=0,ttl=64,frag=no),"
                     "udp(src=5000,dst=6000)")
    arrived = basic_lab.wait_for_packets("hv2", "vif2", before + 1)[before:]
    assert len(arrived) == 1
    packet = packet_fields(arrived[0])
    assert (packet["nw_src"], packet["nw_dst"], packet["tp_dst"]) == ("10.0.0.1", "10.0.0.2",
                                                                     "6000")
    geneve = [packet_fields(p) for p in basic_lab.pcap_packets("hv1", "br-phys_tunnel")]
    assert any(g.get("tp_dst") == "6081" and g.get("nw_dst") == "192.168.100.3" for g in geneve)


@pytest.mark.skipif(os.geteuid() != 0, reason="lab bring-up checks root first")
def test_up_refuses_a_directory_that_is_not_a_lab(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(LabError, match="not a lab directory"):
        Lab(tmp_path).up("basic")
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_topologies_load_and_reject_typos(tmp_path):
    kind = load("kind")
    assert [c.name for c in kind.chassis] == ["ovn-control-plane", "ovn-worker", "ovn-worker2"]
    assert kind.chassis_named("ovn-worker").system_id == "4da007a6-ed1d-45ff-bcf4-62ae8914bbbc"
    bad = tmp_path / "bad.toml"
    basic = resources.files("ofrace.lab").joinpath("topologies", "basic.toml").read_text()
    bad.write_text(basic.replace("encap_ip", "encap_address", 1))
    with pytest.raises(LabError, match="unknown key 'encap_address'"):
        load(str(bad))
    with pytest.raises(LabError, match="unknown topology"):
        load("no-such-topology")
