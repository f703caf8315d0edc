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


def test_a_node_names_its_own_zone_databases(tmp_path):
    """Interconnect zones: each node's NB and SB are its own, read through the node."""
    inv = load_inventory(write(tmp_path, """
[[node]]
name = "ovn-worker"
northbound = "unix:/var/run/ovn/ovnnb_db.sock"
southbound = "unix:/var/run/ovn/ovnsb_db.sock"

[[node]]
name = "ovn-worker2"
"""))
    worker, worker2 = inv.nodes
    assert (worker.northbound, worker.southbound) == (
        "unix:/var/run/ovn/ovnnb_db.sock", "unix:/var/run/ovn/ovnsb_db.sock")
    assert (worker2.northbound, worker2.southbound) == (None, None)
    assert inv.southbound is None and inv.northbound is None


def test_ssh_host_defaults_to_node_name(tmp_path):
    inv = load_inventory(write(tmp_path, '[[node]]\nname = "compute-1"\n'))
    assert inv.nodes[0].host == "compute-1"


@pytest.mark.parametrize("text, message", [
    ('[[node]]\nname = "a"\nhots = "x"\n', "unknown key(s) 'hots'"),
    ('[[node]]\nname = "a"\ntransport = "telnet"\n', "transport 'telnet' is not one of"),
    ('[[node]]\nname = "a"\ntransport = "exec"\n', "needs a template"),
    ('[[node]]\nhost = "x"\n', "every node needs a name"),
    ('[[node]]\nname = "a"\n[[node]]\nname = "a"\n', "used twice: 'a'"),
    ('[[node]]\nname = "a"\nport = 70000\n', "port must be a number"),
    ('[southbound]\nremote = "10.0.0.1:6642"\n', "is not an OVSDB remote"),
    ('[southbound]\nvia = "nobody"\n', "names no node"),
    ('[nodes]\n', "unknown section(s) 'nodes'"),
    ('[[node]\nname = "a"\n', "not valid TOML"),
    # wrong types and values that used to reach a traceback
    ('[[node]]\nname = "a"\ntimeout = "abc"\n', "node 1 ('a'): timeout must be a positive"),
    ('[defaults]\ntimeout = -1\n', "[defaults]: timeout must be a positive number up to"),
    ('[defaults]\ntimeout = inf\n', "timeout must be a positive number up to"),
    ('[defaults]\ntimeout = true\n', "timeout must be a positive number, not a boolean"),
    ('[[node]]\nname = "a"\ntransport = "exec"\ntemplate = "x {"\n', "template: a {…} field"),
    ('[[node]]\nname = "a"\ntransport = "exec"\ntemplate = "x {0}"\n', "{0} is not a plain"),
    ('[[node]]\nname = "a"\ntransport = "exec"\ntemplate = "x {node.y}"\n', "not a plain"),
    ('[[node]]\nname = "a"\ntransport = "exec"\ntemplate = "x \'"\n', "cannot split it"),
    ('[[node]]\nname = "a"\ntransport = "exec"\ntemplate = 5\n', "template must be a string"),
    ('[[node]]\nname = "a"\ntransport = "exec"\ntemplate = "  "\n', "template: it is empty"),
    ('[[node]]\nname = 5\n', "name must be a string, not an integer"),
    ('[[node]]\nname = ""\n', "name must not be empty"),
    ('[[node]]\nname = "a\\u001b[2J"\n', "has characters that cannot be in it"),
    ('[[node]]\nname = "a"\nhost = "-oProxyCommand=x"\n', "leading '-'"),
    ('[[node]]\nname = "a"\nport = "22"\n', "port must be a number from 1 to 65535, not a"),
    ('[[node]]\nname = "a"\nport = true\n', "port must be a number"),
    ('[[node]]\nname = "a"\nport = 1' + "0" * 5000 + '\n', "not valid TOML"),
    ('[[node]]\nname = "a"\nuser = ["root"]\n', "user must be a string, not an array"),
    ('[[node]]\nname = "a"\nuser = "a@b"\n', "cannot contain '@'"),
    ('[[node]]\nname = "a"\nidentity = 3\n', "identity must be a file name"),
    ('[[node]]\nname = "a"\nenv = "x"\n', "env must be a table"),
    ('[[node]]\nname = "a"\nenv = { A = 1 }\n', "env entry 'A' must be"),
    ('[[node]]\nname = "a"\nfields = { hostname = "x" }\n', "unknown key(s) 'fields'"),
    ('node = 5\n', "nodes are written as [[node]] tables"),
    ('node = [5]\n', "node 1 must be a table"),
    ('defaults = 5\n', "[defaults] must be a table"),
    ('[defaults]\nname = "x"\n', "[defaults]: unknown key(s) 'name'"),
    ('[defaults]\nbogus = 1\n', "[defaults]: unknown key(s) 'bogus'"),
    ('southbound = 5\n', "[southbound] must be a table"),
    ('[southbound]\nremote = 6642\n', "remote must be a string, not an integer"),
    ('[southbound]\nremote = "tcp:a b"\n', "is not an OVSDB remote"),
    ('[southbound]\nremote = "tcp:x"\nca_cert = []\n', "ca_cert must be a file name"),
    ('[northbound]\nvia = 1\n', "via must be a string"),
    ('[northbound]\nremotes = "tcp:x"\n', "unknown key(s) 'remotes'"),
    ('a = [' * 100000 + '\n', "not valid TOML"),
    ('[[node]]\nname = "a"\nsouthbound = "/run/ovn/ovnsb_db.sock"\n', "is not an OVSDB remote"),
    ('[[node]]\nname = "a"\nnorthbound = 6641\n', "northbound must be a string"),
    ('[defaults]\nsouthbound = "unix:/run/ovn/ovnsb_db.sock"\n',
     "unknown key(s) 'southbound'"),
])
def test_bad_inventory_is_one_line(tmp_path, text, message):
    with pytest.raises(InputError) as exc:
        load_inventory(write(tmp_path, text))
    assert message in str(exc.value)
    assert "\n" not in str(exc.value) and len(str(exc.value)) < 400


def test_inventory_not_utf8(tmp_path):
    path = tmp_path / "inv.toml"
    path.write_bytes(b'[[node]]\nname = "\xff"\n')
    with pytest.raises(InputError, match="not UTF-8"):
        load_inventory(path)


def test_inventory_errors_never_repeat_a_template_or_env_value(tmp_path):
    for text in ('[[node]]\nname = "a"\ntransport = "exec"\n'
                 'template = "kubectl --token=SECRET-1 {pod}"\n',
                 '[[node]]\nname = "a"\nenv = { A = "SECRET-1", "b c" = "SECRET-1" }\n'):
        with pytest.raises(InputError) as exc:
            load_inventory(write(tmp_path, text))
        assert "SECRET" not in str(exc.value)


def test_inventory_timeout_is_a_number_of_seconds(tmp_path):
    inv = load_inventory(write(tmp_path, '[defaults]\ntimeout = 2\n[[node]]\nname = "a"\n'
                                         '[[node]]\nname = "b"\ntimeout = 0.5\n'))
    assert [n.timeout for n in inv.nodes] == [2.0, 0.5]


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


@pytest.mark.parametrize("arg, message", [
    ("hv1", "expected NAME=ssh://"), ("=local", "expected NAME="),
    ("hv1=ftp://x", "is not ssh://"), ("hv1=ssh://a:b:c", "cannot read"),
    ("a=exec:{", "a {…} field is malformed"), ('a=exec:"', "cannot split it"),
    ("a=exec:x {0}", "{0} is not a plain"), ("a=exec:x {node!r}", "not a plain"),
    ("a=exec:x {node:>{w}}", "not a plain"), ("a=exec:", "template: it is empty"),
    ("a=exec:x {pod}", "unknown field(s) {pod}"),
    ("a=ssh://h:0", "port must be"), ("a=ssh://h:99999", "port must be"),
    ("a=ssh://h:\u0663\u0663", "cannot read"), ("a=ssh://-oProxyCommand=x", "leading '-'"),
    ("a\tb=local", "cannot be in it"), ("a=ssh://[fd00::1", "cannot read"),
])
def test_bad_node_arguments(arg, message):
    with pytest.raises(InputError) as exc:
        parse_node_arg(arg)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("arg", ["a=exec:kubectl --token=SECRET-1 exec {pod}",
                                 "a=ssh://u:SECRET-1@h", "a=ssh://u:SECRET-1@h:x",
                                 "a=exec kubectl --token=SECRET-1"])
def test_node_argument_errors_do_not_repeat_secrets(arg):
    with pytest.raises(InputError) as exc:
        parse_node_arg(arg)
    assert "SECRET" not in str(exc.value)


def test_remote_errors_do_not_repeat_passwords(tmp_path):
    with pytest.raises(InputError) as exc:
        load_inventory(write(tmp_path, '[southbound]\nremote = "tcp:u:SECRET-1@h:6642 x"\n'))
    assert "SECRET" not in str(exc.value) and "not an OVSDB remote" in str(exc.value)


def test_nodes_discovered_from_the_southbound():
    from conftest import recorded

    from ofrace.collect.inventory import discovered_nodes

    snapshot, _ = recorded("kind")
    sb = snapshot.southbound.tables
    nodes, problems = discovered_nodes(sb["Chassis"], sb["Encap"], "ssh://root@{encap_ip}",
                                       {"identity": "/k"})
    assert problems == []
    assert [n.name for n in nodes] == ["ovn-control-plane", "ovn-worker", "ovn-worker2"]
    worker = nodes[1]
    assert (worker.transport, worker.host, worker.user, worker.identity) == (
        "ssh", "192.168.100.4", "root", "/k")
    execs, _ = discovered_nodes(sb["Chassis"], sb["Encap"], "exec:docker exec -i {hostname}")
    assert execs[0].template == "docker exec -i {hostname}"
    assert execs[0].fields["system_id"] == "9268048a-65bf-467e-b166-d0faffafa686"
    with pytest.raises(InputError, match="unknown field"):
        discovered_nodes(sb["Chassis"], sb["Encap"], "ssh://root@{ip}")


CHASSIS = [{"name": "id-1", "hostname": "hv1"}, {"name": "id-2", "hostname": "hv2"}]
ENCAPS = [{"chassis_name": "id-1", "ip": "192.0.2.1"}, {"chassis_name": "id-2", "ip": "fd00::2"}]


@pytest.mark.parametrize("template", [
    "exec:sh -c 'docker exec {hostname} \"$@\"' sh",
    "exec:bash -lc 'ip netns exec {hostname}'",
    "exec:docker exec x sh -ec {node}",
    "exec:ssh -p 22 root@{encap_ip} ip netns exec {hostname}",
    "exec:su -c 'x {system_id}'",
])
def test_discover_refuses_fields_inside_a_shell_string(template):
    from ofrace.collect.inventory import discovered_nodes

    with pytest.raises(InputError, match="inside a string a shell runs"):
        discovered_nodes(CHASSIS, ENCAPS, template)


@pytest.mark.parametrize("template", [
    "exec:ssh root@{encap_ip} {command}",
    "exec:sh -c 'exec \"$@\"' sh docker exec {hostname}",
    "exec:kubectl exec -c ovn-controller -n ovn ovnkube-node-{hostname} --",
    "exec:ip netns exec ofr-{hostname} env OVS_RUNDIR=/lab/{hostname}",
])
def test_discover_accepts_fields_as_arguments(template):
    from ofrace.collect.inventory import discovered_nodes

    nodes, problems = discovered_nodes(CHASSIS, ENCAPS, template)
    assert [n.name for n in nodes] == ["hv1", "hv2"] and problems == []


def test_discover_skips_chassis_with_hostile_values():
    """One chassis with bad values costs only itself; none goes through NAME=SPEC parsing."""
    from ofrace.collect.inventory import discovered_nodes

    rows = CHASSIS + [{"name": "id-3", "hostname": "a=b"},
                      {"name": "id-4", "hostname": "x; rm -rf /"},
                      {"name": "id-5", "hostname": "-oProxyCommand=x"},
                      {"name": "id-6", "hostname": "\x1b]0;title\x07"},
                      {"name": "id-7", "hostname": "hv7"},
                      {"name": "id-8", "hostname": "hv1"},
                      {"name": ["set", []], "hostname": 5}]
    encaps = ENCAPS + [{"chassis_name": "id-7", "ip": "not-an-ip; reboot"},
                       {"chassis_name": "id-8", "ip": "192.0.2.8"}]
    nodes, problems = discovered_nodes(rows, encaps, "ssh://root@{encap_ip}")
    assert [(n.name, n.host) for n in nodes] == [("hv1", "192.0.2.1"), ("hv2", "fd00::2")]
    assert len(problems) == 7
    assert all(p.what == "discover" and p.error.startswith("skipped:") for p in problems)
    assert any("'a=b' is not a host name" in p.error for p in problems)
    assert any("encap_ip 'not-an-ip; reboot' is not an IP" in p.error for p in problems)
    assert any("also chassis 'id-1'" in p.error for p in problems)
    assert all("\x1b" not in p.error + p.where for p in problems)
    # exec templates: the value is an argument of its own, and only if it is a host name
    nodes, problems = discovered_nodes(rows, encaps, "exec:docker exec -i {hostname}")
    assert [n.name for n in nodes] == ["hv1", "hv2", "hv7"] and len(problems) == 6


def test_discover_template_is_checked_before_the_southbound_is_read():
    """Refused with exit 2 before any connection (the remote is never dialled)."""
    from click.testing import CliRunner

    from ofrace.cli import main

    for template in ("exec:sh -c 'ip netns exec {hostname} x'", "exec:x {", "ftp://{hostname}"):
        result = CliRunner().invoke(main, ["collect", "--sb", "unix:/nonexistent/sb.sock",
                                           "--discover", template, "--dry-run"])
        assert result.exit_code == 2, result.output
        assert len(result.stderr.splitlines()) == 1
        assert "cannot read the Southbound" not in result.stderr   # it did not try
    # negative control: a good template gets as far as reading the (missing) SB
    result = CliRunner().invoke(main, ["collect", "--sb", "unix:/nonexistent/sb.sock",
                                       "--discover", "exec:docker exec {hostname}", "--dry-run"])
    assert result.exit_code == 2 and "cannot read the Southbound" in result.stderr


def test_skipped_chassis_are_problems_of_the_snapshot():
    from ofrace.collect.cluster import collect_cluster
    from ofrace.collect.inventory import Inventory
    from ofrace.snapshot import Problem

    skipped = Problem(where="chassis 'id-3'", what="discover", error="skipped: no encap_ip")
    snapshot = collect_cluster(Inventory(problems=[skipped]))
    assert snapshot.problems == [skipped] and not snapshot.complete
