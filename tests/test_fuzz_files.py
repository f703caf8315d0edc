"""Seeded fuzzing of what users hand ofrace: microflows and snapshot files.

Every case either works or ends in one line on stderr with a documented exit code
(0-4; a microflow error adds its caret line); never a traceback, never 70 (a bug).
Mutations start from real inputs: the README's microflow and microflows of the
recorded labs, and the recorded lab snapshots.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import random
import re
import tracemalloc
import zipfile

import pytest
from click.testing import CliRunner
from conftest import FIXTURES

from ofrace.cli import main
from ofrace.errors import InputError
from ofrace.ovn.microflow import MicroflowError, parse_microflow
from ofrace.snapshot import Snapshot

CASES = 1000
DOCUMENTED = {0, 1, 2, 3, 4}

# ----------------------------------------------------------------------------- microflows

SEEDS = [
    'inport == "breth0_ovn-worker" && eth.src == 02:42:7a:79:82:ca && '
    'eth.dst == 02:42:ac:12:00:04 && ip4.src == 172.18.0.1 && ip4.dst == 172.18.0.4 && '
    'ip.ttl == 64 && tcp.src == 12345 && tcp.dst == 30007',
    'inport == "sw0-port1" && eth.src == 50:54:00:00:00:01 && eth.dst == 50:54:00:00:00:02 '
    '&& ip4.src == 10.0.0.1 && ip4.dst == 10.0.0.2 && ip.ttl == 64 && icmp4.type == 8',
    'inport == "sw0-port1" && eth.src == 50:54:00:00:00:01 && eth.dst == ff:ff:ff:ff:ff:ff '
    '&& arp.op == 1 && arp.spa == 10.0.0.1 && arp.tpa == 10.0.0.2 && arp.sha == '
    '50:54:00:00:00:01',
    'inport == "vm1" && eth.src == 00:00:00:00:00:01 && ip6.src == fe80::1 && '
    'ip6.dst == 2001:db8::2 && udp.dst == 53 && udp.src == 0x8000 && vlan.vid == 5',
    '(inport == "a") && ((eth.type == 0x800)) /* c */ && ip4.dst == 1.2.3.4 // end',
]
ALPHABET = list('"()=!&|.,:;{}[]/*-<>$@^~ \t\n\\0123456789abcdefxXipn_') + [
    "é", "\u202e", "\x00", "\x1b", "𝟘", "٣", "ﬁ", "\ud800"]
TOKENS = ["||", "&&", "!", "!=", "==", "<=", "..", "{", "}", "[", "]", "/*", "//", '"', "0x",
          "::", "/", "$set", "@pg", "^var", "ct.est", "ip4", "1" * 4400, "0x" + "f" * 4400,
          "9" * 25, "0" * 30, "1.2.3.4.5", "ff:" * 20, "1e400", "-1", "reg0[0..64]",
          "tcp.dst[99999999999999999999..0]", "(" * 200, ")" * 50]


def mutate_microflow(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(6)
        i = rng.randint(0, len(text))
        if op == 0:
            text = text[:i] + rng.choice(ALPHABET) + text[i:]
        elif op == 1 and text:
            text = text[:i] + text[i + 1:]
        elif op == 2 and len(text) > 1:
            i = min(i, len(text) - 2)
            text = text[:i] + text[i + 1] + text[i] + text[i + 2:]
        elif op == 3:
            text = text[:i] + rng.choice(TOKENS) + text[i:]
        elif op == 4:
            numbers = list(re.finditer(r"\b\d+\b", text))
            if numbers:
                m = rng.choice(numbers)
                text = text[:m.start()] + rng.choice(TOKENS[22:28]) + text[m.end():]
        else:
            terms = text.split(" && ")
            rng.shuffle(terms)
            text = " && ".join(terms[:rng.randint(1, len(terms))] * rng.randint(1, 2))
    return text


def test_fuzzed_microflows_parse_or_point_at_the_error():
    rng = random.Random(20261202)
    errors = 0
    for _ in range(CASES * 2):
        text = mutate_microflow(rng, rng.choice(SEEDS))
        try:
            parse_microflow(text)
        except MicroflowError as exc:
            errors += 1
            assert "\n" not in str(exc), (text, str(exc))
            assert 0 <= exc.position <= len(text), text
            line, caret = exc.caret().rsplit("\n", 1)
            assert caret.rstrip().endswith("^"), text
        except InputError as exc:  # other one-line input errors are fine too
            assert "\n" not in str(exc)
    assert errors > CASES // 2  # the mutations do reach the error paths


def test_huge_numbers_are_one_error():
    for text in ('inport == "a" && tcp.dst == ' + "1" * 4400,
                 'inport == "a" && ip4.dst == ' + "1" * 4400,
                 'inport == "a" && eth.src == 0x' + "f" * 4400):
        with pytest.raises(MicroflowError):
            parse_microflow(text)


def cli(args: list[str]):
    result = CliRunner().invoke(main, args)
    assert result.exit_code in DOCUMENTED, (args, result.output)
    assert "Traceback" not in result.output and "internal error" not in result.output, \
        (args, result.output)
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert lines and lines[0].startswith("ofrace: error: "), (args, result.output)
        assert len(lines) == 1 or (len(lines) == 3 and lines[2].strip().endswith("^")), \
            (args, result.stderr)
    return result


def test_fuzzed_microflows_through_the_cli():
    rng = random.Random(7)
    snapshot = str(FIXTURES / "basic" / "snapshot.ofr")
    codes = set()
    for _ in range(300):
        text = mutate_microflow(rng, SEEDS[1])
        codes.add(cli(["trace", "--snapshot", snapshot, "--summary", text]).exit_code)
    assert 2 in codes and codes - {2}  # some errors, and some traces that ran


# ----------------------------------------------------------------------------- snapshots

NOT_A_SNAPSHOT = [None, True, 0, -1, 1 << 70, 1.5, "", "x[/x]\x1b[2J", [], {}, [1, "a"],
                  {"a": 1}, {"_uuid": 5}, ["\x00"], "0" * 5000]


@pytest.fixture(scope="module")
def basic_file(tmp_path_factory) -> tuple[bytes, dict, dict[str, bytes]]:
    """The basic lab snapshot as a version-3 file: its bytes, its document, its members."""
    path = tmp_path_factory.mktemp("fuzz") / "basic.ofr"
    Snapshot.load(FIXTURES / "basic" / "snapshot.ofr").save(path)
    data = path.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    return data, json.loads(members.pop("snapshot.json")), members


def zipped(doc_bytes: bytes, members: dict[str, bytes], stored: bool = True) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("snapshot.json", doc_bytes)
        for name, data in members.items():  # block stores stay stored, as save writes them
            archive.writestr(name, data, zipfile.ZIP_STORED if stored and name.endswith(".rows")
                             else None)
    return out.getvalue()


def _containers(value, path=()):
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _containers(item, (*path, key))
    elif isinstance(value, list):
        for n, item in enumerate(value[:40]):
            yield from _containers(item, (*path, n))


def mutate_document(rng: random.Random, doc: dict) -> dict:
    doc = json.loads(json.dumps(doc))
    places = [(p, v) for p, v in _containers(doc) if isinstance(v, (dict, list)) and v]
    for _ in range(rng.randint(1, 3)):
        path, container = rng.choice(places)
        keys = list(container) if isinstance(container, dict) else list(range(len(container)))
        key = rng.choice(keys)
        op = rng.randrange(5)
        if op == 0 and isinstance(container, dict):
            del container[key]
        elif op == 1 and isinstance(container, dict):
            container[rng.choice(["extra", "x[/x]", "flows_store", "stored_tables", "_uuid",
                                  "reachable", "name"])] = rng.choice(NOT_A_SNAPSHOT)
        elif op == 2:
            container[key] = rng.choice(NOT_A_SNAPSHOT)
        elif op == 3 and isinstance(container[key], str):
            text = container[key]
            i = rng.randint(0, len(text))
            container[key] = text[:i] + rng.choice(ALPHABET) + text[i + 1:]
        elif op == 4 and isinstance(container[key], (int, float)) \
                and not isinstance(container[key], bool):
            container[key] = rng.choice([-1, 0, 1 << 64, -(1 << 70), 0.5, 10 ** 30])
        places = [(p, v) for p, v in _containers(doc) if isinstance(v, (dict, list)) and v]
        if not places:
            break
    return doc


def mutate_file(rng: random.Random, data: bytes, doc: dict, members: dict[str, bytes]) -> bytes:
    kind = rng.randrange(7)
    if kind == 0:  # byte flips
        raw = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        return bytes(raw)
    if kind == 1:  # truncation
        return data[:rng.randrange(len(data))]
    if kind == 2:  # a member replaced
        name = rng.choice(list(members))
        changed = dict(members)
        changed[name] = rng.choice([b"", b"\xff\xfe garbage \x00", members[name] * 2,
                                    members[name][:-5], "é\u202e".encode() * 3,
                                    members[name].replace(b"priority=", b"prio#ty=")])
        return zipped(json.dumps(doc).encode(), changed)
    if kind == 3:  # the document's keys and types
        return zipped(json.dumps(mutate_document(rng, doc)).encode(), members)
    if kind == 4:  # the document's text
        text = json.dumps(doc)
        i = rng.randrange(len(text))
        text = text[:i] + rng.choice(["[" * 100000, "NaN", "Infinity", '"\\ud800"', "1e999",
                                      "}", "", "9" * 5000]) + text[i + 1:]
        return zipped(text.encode(), members)
    if kind == 5:  # the manifest: member names, counts, sizes
        changed = json.loads(json.dumps(doc))
        store = next(iter(changed["chassis"].values()))["bridges"]["br-int"]["flows_store"]
        if rng.randrange(2):   # or a database table's store
            store = rng.choice(list(changed["southbound"]["stored_tables"].values()))
        key = rng.choice(["member", "lines" if "lines" in store else "rows", "bytes", "blocks"])
        store[key] = rng.choice(["flows/9.rows", "../../etc/passwd", 10 ** 12, -3, 0,
                                 "snapshot.json", store[key] + 1 if key != "member"
                                 else store[key]])
        return zipped(json.dumps(changed).encode(), members)
    # a decompression bomb, in the document or in a flows member
    return rng.choice(bombs(json.dumps(doc).encode(), tuple(members.items())))


@functools.cache
def bombs(doc: bytes, members: tuple) -> list[bytes]:
    """32 MiB behind a few KiB: as a version-1 file, as the document, as flow lines."""
    big, members = 32 << 20, dict(members)
    return [gzip.compress(b" " * big, 9), zipped(b" " * big, members),
            zipped(doc, {**members, "flows/0.rows": b"\0" * big}, stored=False)]


COMMANDS = [
    ["show"], ["show", "--json"], ["audit", "--snapshot"],
    ["trace", "--from", "sw0-port1", "--to", "10.0.0.2", "--icmp", "--summary", "--snapshot"],
]


def test_fuzzed_snapshot_files_through_show_trace_and_audit(basic_file, tmp_path):
    data, doc, members = basic_file
    rng = random.Random(1202)
    path = tmp_path / "fuzzed.ofr"
    codes = {}
    for n in range(CASES + 50):
        path.write_bytes(mutate_file(rng, data, doc, members))
        args = COMMANDS[n % len(COMMANDS)]
        code = cli([*args, str(path)]).exit_code
        codes[code] = codes.get(code, 0) + 1
    assert codes.get(2, 0) > CASES // 4 and codes.get(0, 0) > CASES // 20, codes


@pytest.mark.parametrize("make", ["gzip", "document", "flows", "lying directory"])
def test_decompression_bombs_are_refused_in_bounded_memory(basic_file, tmp_path, make):
    data, doc, members = basic_file
    big = 128 << 20  # 128 MiB behind ~130 KiB: twice the memory bound below
    if make == "gzip":
        payload = gzip.compress(b" " * big, 9)
    elif make == "document":
        payload = zipped(b" " * big, members)
    elif make == "flows":
        payload = zipped(json.dumps(doc).encode(), {**members, "flows/0.rows": b"\0" * big},
                         stored=False)
    else:  # the directory and the document claim 100 bytes; the stream inflates far more
        lying = json.loads(json.dumps(doc))
        for ch in lying["chassis"].values():
            for bridge in ch["bridges"].values():
                if bridge["flows_store"]["member"] == "flows/0.rows":
                    bridge["flows_store"]["bytes"] = 100
        honest = zipped(json.dumps(lying).encode(), {**members, "flows/0.rows": b"\0" * big},
                        stored=False)
        payload = honest.replace(big.to_bytes(4, "little"), (100).to_bytes(4, "little"))
        assert payload != honest
    path = tmp_path / "bomb.ofr"
    path.write_bytes(payload)
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as info:
            snapshot = Snapshot.load(path)
            for ch in snapshot.chassis.values():
                for bridge in ch.bridges.values():
                    _ = bridge.flows
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert peak < 64 << 20, f"peak {peak >> 20} MiB"


def test_an_honest_file_still_loads_after_all_this(basic_file, tmp_path):  # negative control
    data, _, _ = basic_file
    path = tmp_path / "ok.ofr"
    path.write_bytes(data)
    snapshot = Snapshot.load(path)
    assert sum(len(b.flows) for c in snapshot.chassis.values() for b in c.bridges.values())
    assert cli(["audit", "--snapshot", str(path)]).exit_code == 0


def test_fuzzed_short_forms_start_or_say_why():
    from ofrace.errors import OfraceError
    from ofrace.trace.cluster import ClusterTracer
    from ofrace.trace.request import start_from_short_form

    tracer = ClusterTracer(Snapshot.load(FIXTURES / "basic" / "snapshot.ofr"))
    rng = random.Random(31)
    seeds = ["10.0.0.2:80", "10.0.0.2", "[fe80::1]:53", "fe80::1", "[::1]", "10.0.0.2:65535"]
    started = errors = 0
    for _ in range(CASES):
        destination = rng.choice(seeds)
        for _ in range(rng.randint(1, 3)):
            i, op = rng.randint(0, len(destination)), rng.randrange(3)
            piece = rng.choice(ALPHABET) if op == 0 else rng.choice(TOKENS) if op == 1 else ""
            destination = destination[:i] + piece + destination[i + (op == 2):]
        source = rng.choice(["sw0-port1", "sw0-port2", "sw0-port1\x1b", "", "nope"])
        try:
            start = start_from_short_form(tracer, source, destination,
                                          rng.choice(["tcp", "udp", "icmp", "sctp"]))
        except OfraceError as exc:
            errors += 1
            assert "\n" not in str(exc), str(exc)
        else:
            started += 1
            assert 0 <= start.packet.get("tp_dst", 0) <= 65535
    assert started and errors > CASES // 2
