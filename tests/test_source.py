"""One way to obtain a snapshot (ofrace.collect.source): a file, or the cluster read now."""

from __future__ import annotations

import pytest
from conftest import FIXTURES

from ofrace.collect.source import SnapshotSource, obtain_snapshot
from ofrace.errors import Exit, InputError


def test_a_file_is_loaded():
    snapshot = obtain_snapshot(SnapshotSource(str(FIXTURES / "kind" / "snapshot.ofr")))
    assert "ovn-worker" in snapshot.chassis


def test_no_source_is_bad_input():
    with pytest.raises(InputError, match="give --snapshot FILE, or --inventory FILE"):
        obtain_snapshot(SnapshotSource())


def test_an_inventory_without_the_southbound_is_bad_input(tmp_path):
    inventory = tmp_path / "inventory.toml"
    inventory.write_text('[[node]]\nname = "n1"\ntransport = "local"\n')
    with pytest.raises(InputError, match="needs the Southbound DB") as caught:
        obtain_snapshot(SnapshotSource(inventory_file=inventory))
    assert caught.value.exit_code == Exit.INPUT


def test_read_now_what_could_not_be_read_is_warned(tmp_path):
    """A node whose program does not exist and an SB socket that does not exist: the
    snapshot is partial, and each problem is one warning line."""
    inventory = tmp_path / "inventory.toml"
    inventory.write_text('[southbound]\nremote = "unix:/nonexistent/ofrace-sb.sock"\n\n'
                         '[[node]]\nname = "n1"\ntransport = "exec"\n'
                         'template = "/nonexistent/ofrace-no-such-program"\n')
    lines: list[str] = []
    snapshot = obtain_snapshot(SnapshotSource(inventory_file=inventory), warn=lines.append)
    assert not snapshot.complete and not snapshot.chassis["n1"].reachable
    assert any(line.startswith("n1 ") for line in lines)
    assert any("southbound" in line.lower() for line in lines), lines
    assert len(lines) == len(snapshot.all_problems())
