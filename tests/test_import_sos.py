"""``ofrace import`` of real sosreports of a kind lab (recorded by
scripts/record_sosreports.py: the real ``sos report`` on every chassis and on central,
trimmed to what import reads) traces and audits as the live collect of the same lab
at the same moment (live.ofr, recorded with them) does."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from ofrace.cli import main
from ofrace.collect.importer import import_snapshot
from ofrace.errors import InputError

SOS = Path(__file__).parent / "fixtures" / "sos"
FLAVORS = sorted(p.name for p in SOS.iterdir() if p.is_dir()) if SOS.is_dir() else []
SEED = ('inport == "breth0_ovn-worker" && eth.src == 02:42:7a:79:82:ca && '
        'eth.dst == 02:42:ac:12:00:04 && ip4.src == 172.18.0.1 && ip4.dst == 172.18.0.4 && '
        'ip.ttl == 64 && tcp.src == 12345 && tcp.dst == 30007 && tcp.flags == 2')
# What differs between two reads of the same tables: counters, ages, when, from where.
_COUNTERS = re.compile(r"\b(duration=[0-9.]+s|n_packets=\d+|n_bytes=\d+|idle_age=\d+|"
                       r"hard_age=\d+|packet_count=\d+|byte_count=\d+),?\s?")
_VOLATILE_KEYS = {"created", "started", "finished", "elapsed", "snapshot", "ofrace_version"}


def normalize(value):
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items() if k not in _VOLATILE_KEYS}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, str):
        return _COUNTERS.sub("", value)
    return value


def _archives(flavor: str) -> list[str]:
    return [str(p) for p in sorted((SOS / flavor).glob("sosreport-*.tar.xz"))]


def _imported(flavor: str, tmp_path: Path, archives=None) -> Path:
    snapshot, _ = import_snapshot(archives or _archives(flavor))
    path = tmp_path / "imported.ofr"
    snapshot.save(path)
    return path


def _ofrace(*args: str) -> dict:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.output)


pytestmark = pytest.mark.skipif(not FLAVORS, reason="no recorded sosreports")


@pytest.mark.parametrize("flavor", FLAVORS)
def test_trace_from_sosreports_is_the_live_collects(flavor, tmp_path):
    imported = _imported(flavor, tmp_path)
    got = _ofrace("trace", "--snapshot", str(imported), "--reply", "--json", SEED)
    want = _ofrace("trace", "--snapshot", str(SOS / flavor / "live.ofr"), "--reply", "--json",
                   SEED)
    assert "delivered" in json.dumps(want)        # the live trace says something
    assert normalize(got) == normalize(want)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_audit_from_sosreports_is_the_live_collects(flavor, tmp_path):
    imported = _imported(flavor, tmp_path)
    got = _ofrace("audit", "--snapshot", str(imported), "--json")
    want = _ofrace("audit", "--snapshot", str(SOS / flavor / "live.ofr"), "--json")
    assert normalize(got) == normalize(want)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_every_node_sosreport_is_matched_by_system_id(flavor):
    snapshot, report = import_snapshot(_archives(flavor))
    nodes = [s for s in report.sources if s.kind == "node sosreport"]
    assert nodes and all("system-id" in s.matched and "SB Chassis" in s.matched for s in nodes)
    assert {s.chassis for s in nodes} == {n for n, ch in snapshot.chassis.items()
                                           if ch.reachable}
    assert snapshot.southbound is not None and snapshot.northbound is not None


@pytest.mark.parametrize("flavor", FLAVORS)
def test_without_the_backends_node_the_trace_differs(flavor, tmp_path):
    """Negative control: the comparison above can fail (ovn-worker's sosreport left
    out: its chassis is unread, the trace ends unknown there)."""
    archives = [a for a in _archives(flavor) if "sosreport-ovn-worker-" not in a]
    assert len(archives) == len(_archives(flavor)) - 1
    imported = _imported(flavor, tmp_path, archives)
    got = _ofrace("trace", "--snapshot", str(imported), "--reply", "--json", SEED)
    want = _ofrace("trace", "--snapshot", str(SOS / flavor / "live.ofr"), "--reply", "--json",
                   SEED)
    assert normalize(got) != normalize(want)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_central_alone_says_no_trace(flavor):
    central = [a for a in _archives(flavor) if "sosreport-central-" in a]
    snapshot, report = import_snapshot(central)
    assert snapshot.southbound is not None
    assert not any(ch.reachable for ch in snapshot.chassis.values())
    assert "node sosreports" in dict(report.missing)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_cut_real_archive_is_one_line_naming_it(flavor, tmp_path):
    source = Path(_archives(flavor)[0])
    cut = tmp_path / source.name
    cut.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(InputError) as exc:
        import_snapshot([str(cut)])
    assert str(cut) in str(exc.value) and "\n" not in str(exc.value)
