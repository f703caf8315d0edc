"""Inventories: what a user writes, and the one-line errors for what is wrong."""

import pytest

from ofrace.collect.inventory import load_inventory, parse_node_arg
from ofrace.errors import InputError


def write(tmp_path, text):
    path = tmp_path / "inv.toml"
    path.write_text(text)
    return path


def test_defaults_apply_and_nodes_override(tmp_path):
    inv = load_inventory(write(tmp_path, """
[defaults]
user = "admin"
identity = "/k"
env = { OVS_RUNDIR = "/run/ovs" }

[[node]]
name = "a"
host = "10.0.0.1"

[[node]]
name = "b"
transport = "exec"
template = "docker exec -i {node}"
env = { OVN_RUNDIR = "/run/ovn" }

[southbound]
remote = "tcp:127.0.0.1:6642"
"""))
    a, b = inv.nodes
    assert (a.transport, a.host, a.user, a.identity) == ("ssh", "10.0.0.1", "admin", "/k")
    assert b.transport == "exec" and b.template == "docker exec -i {node}"
    assert b.env == {"OVS_RUNDIR": "/run/ovs", "OVN_RUNDIR": "/run/ovn"}
    assert inv.southbound.remote == "tcp:127.0.0.1:6642"
    assert inv.northbound is None


def test_ssh_host_defaults_to_node_name(tmp_path):
    inv = load_inventory(write(tmp_path, '[[node]]\nname = "compute-1"\n'))
    assert inv.nodes[0].host == "compute-1"


@pytest.mark.parametrize("text, message", [
    ('[[node]]\nname = "a"\nhots = "x"\n', "unknown key(s) hots"),
    ('[[node]]\nname = "a"\ntransport = "telnet"\n', "transport 'telnet' is not one of"),
    ('[[node]]\nname = "a"\ntransport = "exec"\n', "needs a template"),
    ('[[node]]\nhost = "x"\n', "every node needs a name"),
    ('[[node]]\nname = "a"\n[[node]]\nname = "a"\n', "used twice: a"),
    ('[[node]]\nname = "a"\nport = 70000\n', "port must be a number"),
    ('[southbound]\nremote = "10.0.0.1:6642"\n', "is not an OVSDB remote"),
    ('[southbound]\nvia = "nobody"\n', "names no node"),
    ('[nodes]\n', "unknown section(s) nodes"),
    ('[[node]\nname = "a"\n', "not valid TOML"),
])
def test_bad_inventory_is_one_line(tmp_path, text, message):
    with pytest.raises(InputError) as exc:
        load_inventory(write(tmp_path, text))
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_missing_inventory_file(tmp_path):
    with pytest.raises(InputError, match="inventory file not found"):
        load_inventory(tmp_path / "nope.toml")


@pytest.mark.parametrize("arg, expect", [
    ("hv1=ssh://root@10.1.2.3:2222", ("ssh", "10.1.2.3", "root", 2222, None)),
    ("hv1=ssh://gw", ("ssh", "gw", None, None, None)),
    ("hv1=ssh://[fd00::1]:22", ("ssh", "fd00::1", None, 22, None)),
    ("hv1=exec:ip netns exec hv1", ("exec", None, None, None, "ip netns exec hv1")),
    ("hv1=local", ("local", None, None, None, None)),
])
def test_node_arguments(arg, expect):
    spec = parse_node_arg(arg)
    assert spec.name == "hv1"
    assert (spec.transport, spec.host, spec.user, spec.port, spec.template) == expect


@pytest.mark.parametrize("arg", ["hv1", "=local", "hv1=ftp://x", "hv1=ssh://a:b:c"])
def test_bad_node_arguments(arg):
    with pytest.raises(InputError):
        parse_node_arg(arg)


def test_nodes_discovered_from_the_southbound():
    from conftest import recorded

    from ofrace.collect.inventory import discovered_nodes

    snapshot, _ = recorded("kind")
    sb = snapshot.southbound.tables
    nodes = discovered_nodes(sb["Chassis"], sb["Encap"], "ssh://root@{encap_ip}",
                             {"identity": "/k"})
    assert [n.name for n in nodes] == ["ovn-control-plane", "ovn-worker", "ovn-worker2"]
    worker = nodes[1]
    assert (worker.transport, worker.host, worker.user, worker.identity) == (
        "ssh", "192.168.100.4", "root", "/k")
    execs = discovered_nodes(sb["Chassis"], sb["Encap"], "exec:docker exec -i {hostname}")
    assert execs[0].template == "docker exec -i {hostname}"
    assert execs[0].fields["system_id"] == "9268048a-65bf-467e-b166-d0faffafa686"
    with pytest.raises(InputError, match="unknown field"):
        discovered_nodes(sb["Chassis"], sb["Encap"], "ssh://root@{ip}")
