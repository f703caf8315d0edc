"""Saving a snapshot never destroys the previous file: a failed write (a full disk, an
interrupt) leaves it byte-identical and leaves no temporary file behind."""

from __future__ import annotations

import errno
import os
import zipfile

import pytest
from click.testing import CliRunner
from conftest import FIXTURES

from ofrace.cli import main
from ofrace.errors import Exit
from ofrace.snapshot import Snapshot, SnapshotWriteError


@pytest.fixture
def basic() -> Snapshot:
    return Snapshot.load(FIXTURES / "basic" / "snapshot.ofr")


def fail_writes(monkeypatch, exc: BaseException, after: int = 1) -> None:
    """The n-th member written fails, as a disk that fills up part-way does."""
    real = zipfile.ZipFile.writestr
    calls = {"n": 0}

    def writestr(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > after:
            raise exc
        return real(self, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", writestr)


@pytest.mark.parametrize("exc, code", [
    (OSError(errno.ENOSPC, "No space left on device"), Exit.ENVIRONMENT),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), Exit.ENVIRONMENT),
    (PermissionError(errno.EACCES, "Permission denied"), Exit.INPUT),
])
def test_a_failed_save_keeps_the_old_file(basic, tmp_path, monkeypatch, exc, code):
    path = tmp_path / "existing.ofr"
    basic.save(path)
    before = path.read_bytes()
    fail_writes(monkeypatch, exc)
    with pytest.raises(SnapshotWriteError) as info:
        basic.save(path)
    assert info.value.exit_code == code
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.ofr"]  # no temp file


def test_an_interrupted_save_keeps_the_old_file(basic, tmp_path, monkeypatch):
    path = tmp_path / "existing.ofr"
    basic.save(path)
    before = path.read_bytes()
    fail_writes(monkeypatch, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        basic.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["existing.ofr"]


def test_a_save_that_fails_at_fsync_keeps_the_old_file(basic, tmp_path, monkeypatch):
    path = tmp_path / "existing.ofr"
    basic.save(path)
    before = path.read_bytes()

    def fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(SnapshotWriteError):
        basic.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["existing.ofr"]


def test_a_successful_save_replaces_the_file_and_keeps_its_mode(basic, tmp_path):
    path = tmp_path / "existing.ofr"
    path.write_bytes(b"old")
    path.chmod(0o640)
    basic.save(path)
    assert (path.stat().st_mode & 0o777) == 0o640
    assert Snapshot.load(path).to_dict() == basic.to_dict()
    assert [p.name for p in tmp_path.iterdir()] == ["existing.ofr"]
    fresh = tmp_path / "fresh.ofr"
    basic.save(fresh)
    umask = os.umask(0)
    os.umask(umask)
    assert (fresh.stat().st_mode & 0o777) == 0o666 & ~umask


def test_collect_on_a_full_disk_exits_5_and_keeps_the_old_snapshot(basic, tmp_path,
                                                                   monkeypatch):
    import ofrace.collect.cluster as collect_cluster

    path = tmp_path / "existing.ofr"
    basic.save(path)
    before = path.read_bytes()
    monkeypatch.setattr(collect_cluster, "collect_cluster", lambda *a, **k: basic)
    fail_writes(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    result = CliRunner().invoke(main, ["collect", "--node", "n1=local", "-o", str(path)])
    assert result.exit_code == Exit.ENVIRONMENT, result.output
    assert result.stderr.strip().count("\n") == 0
    assert "No space left on device" in result.stderr
    assert path.read_bytes() == before
