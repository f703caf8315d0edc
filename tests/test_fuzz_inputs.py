"""Fuzzed `--node` specs and inventory files: a model or one line and exit 2, never a traceback.

Seeded and bounded: the same cases every run, a few seconds in all.  Each case
goes through the parser; a sample also goes through the real command line
(`ofrace collect --dry-run`, which reads nothing) to check the exit code and
that stderr is exactly one line.
"""

import math
import random
import unicodedata

import pytest
from click.testing import CliRunner

from ofrace.cli import main
from ofrace.collect.cluster import make_transport
from ofrace.collect.inventory import TRANSPORTS, Inventory, NodeSpec, load_inventory, parse_node_arg
from ofrace.errors import InputError

CASES = 1500
CLI_EVERY = 10

SNIPPETS = ["{", "}", "{node}", "{command}", "{0}", "{node!r}", "{node:>{x}}", "{{", "}}",
            "[", "]", "\"", "'", "\\", "=", ":", "@", "/", " ", "\t", ";", "$(x)", "`x`", "|",
            "-", "--", "\n", "\r", "\x00", "\x1b[2J", "\u202e", "\u0663", "é", "\U0001f642",
            "99999", "0", "-1", "9" * 5000, "ssh://", "exec:", "local", "sh -c '", "[fd00::1]"]


def _mutate(text: str, rng: random.Random, snippets: list[str]) -> str:
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(5)
        at = rng.randint(0, len(text))
        if op == 0:
            text = text[:at] + rng.choice(snippets) + text[at:]
        elif op == 1 and text:
            end = min(len(text), at + rng.randint(1, 6))
            text = text[:at] + text[end:]
        elif op == 2:
            text = text[:at]
        elif op == 3 and text:
            i = rng.randrange(len(text))
            text = text[:i] + chr(rng.choice([0, 9, 10, 27, 32, 34, 39, 61, 64, 123, 125,
                                                rng.randrange(1, 0x2FFFF)])) + text[i + 1:]
        else:
            start = rng.randint(0, len(text))
            text = text[:at] + text[start:start + rng.randint(1, 12)] + text[at:]
    return text


def _one_clean_line(message: str) -> None:
    assert message and len(message) < 2000
    assert not any(unicodedata.category(c) == "Cc" for c in message), ascii(message)


def _check_spec(spec: NodeSpec) -> None:
    """A spec that parsed is usable: right types, and its transport can be built."""
    assert isinstance(spec.name, str) and spec.name
    assert spec.transport in TRANSPORTS
    assert spec.port is None or (type(spec.port) is int and 0 < spec.port < 65536)
    assert spec.timeout is None or (isinstance(spec.timeout, float)
                                    and math.isfinite(spec.timeout) and spec.timeout > 0)
    assert spec.max_output is None or (type(spec.max_output) is int and spec.max_output > 0)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in spec.env.items())
    transport = make_transport(spec)
    transport.describe()
    if spec.transport == "exec":
        argv = transport.wrap(["ovs-vsctl", "show"])
        assert argv and all(isinstance(a, str) for a in argv)
    if spec.transport == "ssh":
        assert isinstance(spec.host, str) and spec.host and not spec.host.startswith("-")


def _cli(args: list[str]) -> None:
    result = CliRunner().invoke(main, ["collect", "--dry-run", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 2), (args, result.output)
    if result.exit_code == 2:
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("ofrace: error: "), (args, result.stderr)
        _one_clean_line(lines[0])


NODE_SEEDS = ["hv1=ssh://root@192.0.2.1:2222", "hv1=ssh://gw", "hv1=ssh://[fd00::1]:22",
              "hv1=exec:docker exec -i {node}", "hv1=local",
              "w=exec:kubectl exec -n ovn-kubernetes ovnkube-node-{node} -c ovn-controller --",
              "w=exec:ssh -o BatchMode=yes {node} {command}", "n=exec:sh -c 'exec \"$@\"' sh"]


def test_fuzzed_node_specs():
    rng = random.Random(20261202)
    outcomes = {"parsed": 0, "refused": 0}
    for i in range(CASES):
        arg = _mutate(rng.choice(NODE_SEEDS), rng, SNIPPETS)
        try:
            spec = parse_node_arg(arg)
        except InputError as exc:
            outcomes["refused"] += 1
            _one_clean_line(str(exc))
        else:
            outcomes["parsed"] += 1
            _check_spec(spec)
        if i % CLI_EVERY == 0 and "\x00" not in arg:
            _cli(["--node", arg])
    # both sides are exercised, or the fuzzer tests nothing
    assert outcomes["parsed"] > CASES // 10 and outcomes["refused"] > CASES // 10, outcomes


INVENTORY_SEEDS = [
    '''[defaults]
transport = "ssh"
user = "root"
identity = "~/.ssh/id_ed25519"
known_hosts = "~/.ssh/known_hosts"
timeout = 15
env = { OVS_RUNDIR = "/var/run/openvswitch" }

[[node]]
name = "compute-1"
host = "192.0.2.11"
port = 22

[[node]]
name = "ovn-worker"
transport = "exec"
template = "docker exec -i {node}"

[southbound]
remote = "tcp:192.0.2.1:6642"
[northbound]
remote = "ssl:192.0.2.1:6641"
private_key = "/etc/k.pem"
certificate = "/etc/c.pem"
ca_cert = "/etc/ca.pem"
''',
    '''[[node]]
name = "a"
transport = "local"
timeout = 2.5

[southbound]
via = "a"
''',
    '''[[node]]
name = "hv"
transport = "exec"
template = "ssh -o BatchMode=yes {node} {command}"
env = { A = "1", B_2 = "two" }
''',
]

VALUES = ['"abc"', '""', "-1", "0", "1e999", "nan", "inf", "99999999999999999999999",
          "1" + "0" * 5000, "true", "[]", '["x"]', "{}", '{ a = 1 }', "1979-05-27T07:32:00Z",
          "07:32:00", '"x {"', '"{0}"', '"a\\u001bb"', '"\\u202e"', '"-oProxyCommand=x"',
          '"tcp:a b"', '"sh -c \'x {node}\'"', "0.000001", "65536", "3.0"]
LINES = ["bogus = 1\n", "[[node]]\n", "[defaults]\n", "[southbound]\n", "[other]\n",
         "name = \"dup\"\n[[node]]\nname = \"dup\"\n", "fields = { hostname = \"x\" }\n",
         "node = 5\n", "env = { \"A B\" = \"x\" }\n", "a = [" * 50 + "\n"]


def _mutate_toml(text: str, rng: random.Random) -> bytes:
    op = rng.randrange(6)
    if op == 0:   # swap a value for another type
        lines = text.splitlines(keepends=True)
        candidates = [i for i, line in enumerate(lines) if " = " in line]
        i = rng.choice(candidates)
        lines[i] = lines[i].split(" = ", 1)[0] + " = " + rng.choice(VALUES) + "\n"
        return "".join(lines).encode()
    if op == 1:   # insert a line (unknown key, section, duplicate…) at a line boundary
        lines = text.splitlines(keepends=True)
        lines.insert(rng.randint(0, len(lines)), rng.choice(LINES))
        return "".join(lines).encode()
    data = bytearray(text.encode())
    if op == 2:   # byte flips
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= rng.randint(1, 255)
        return bytes(data)
    if op == 3:   # truncation
        return bytes(data[:rng.randrange(len(data))])
    return _mutate(text, rng, SNIPPETS + VALUES).encode("utf-8", "surrogatepass")


def _check_inventory(inventory: Inventory) -> None:
    for spec in inventory.nodes:
        _check_spec(spec)
    names = [n.name for n in inventory.nodes]
    assert len(names) == len(set(names))
    for db in (inventory.southbound, inventory.northbound):
        if db is not None:
            assert db.remote or db.via
            assert db.via is None or db.via in names


def test_fuzzed_inventories(tmp_path):
    rng = random.Random(7)
    for n, seed in enumerate(INVENTORY_SEEDS):   # the seeds themselves are valid
        path = tmp_path / f"seed{n}.toml"
        path.write_text(seed)
        _check_inventory(load_inventory(path))
    outcomes = {"loaded": 0, "refused": 0}
    for i in range(CASES):
        path = tmp_path / f"inv{i}.toml"   # a new file: truncating one is slow on ext4
        path.write_bytes(_mutate_toml(rng.choice(INVENTORY_SEEDS), rng))
        try:
            inventory = load_inventory(path)
        except InputError as exc:
            outcomes["refused"] += 1
            _one_clean_line(str(exc))
        else:
            outcomes["loaded"] += 1
            _check_inventory(inventory)
        if i % CLI_EVERY == 0:
            _cli(["-i", str(path)])
    assert outcomes["loaded"] > CASES // 30 and outcomes["refused"] > CASES // 2, outcomes


@pytest.mark.parametrize("arg", ["a=exec:{", 'a=exec:"', "a=exec:x {0}", "a=exec:x {node.y}",
                                 "a=exec:x {node!r}", "a=ssh://h:99999", "a=exec:\\"])
def test_reported_node_specs_are_one_line_exit_2(arg):
    result = CliRunner().invoke(main, ["collect", "--node", arg, "-o", "/nonexistent/x.ofr"])
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
