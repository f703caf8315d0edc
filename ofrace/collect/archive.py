"""Archives opened for ``ofrace import``: .tar.xz / .tar.gz / .tar.bz2 / .tar / .zip.

An archive is untrusted input.  Every member's name is checked before anything is
written: an absolute path, a ``..`` component, or a link whose target leaves the
archive refuses the whole archive (one line naming the archive and the member);
devices and FIFOs are never extracted.  Only the members ``wanted`` selects are
written, into a private temporary directory the caller removes; links are not
materialised (the reader resolves them inside the tree, see ``resolve``).

Bounds (each an ``InputError`` naming the archive): at most ``MAX_MEMBERS``
members listed, ``MAX_MEMBER_BYTES`` per extracted file and ``MAX_TOTAL_BYTES`` in
all, checked while copying (a member's declared size is not trusted).  Copying
goes through a 1 MiB buffer, so memory stays flat whatever the archive's size.
"""

from __future__ import annotations

import gzip
import io
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from ofrace.errors import InputError

MAX_MEMBERS = 500_000
MAX_MEMBER_BYTES = 2 << 30
MAX_TOTAL_BYTES = 8 << 30
_CHUNK = 1 << 20

ARCHIVE_SUFFIXES = (".tar.xz", ".txz", ".tar.gz", ".tgz", ".tar.bz2", ".tar", ".zip")


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES)


def _check_name(archive: Path, name: str) -> str:
    """The member's path, normalised; refuses absolute paths and ``..``."""
    if name.startswith("/") or "\\" in name and name.startswith("\\"):
        raise InputError(f"{archive}: member {name[:80]!r} has an absolute path: refused")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InputError(f"{archive}: member {name[:80]!r} leaves the archive (..): refused")
    return "/".join(parts)


def _check_link(archive: Path, name: str, target: str) -> None:
    if target.startswith("/"):
        raise InputError(f"{archive}: link {name[:80]!r} points outside the archive "
                         f"({target[:80]}): refused")
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if joined == ".." or joined.startswith("../"):
        raise InputError(f"{archive}: link {name[:80]!r} points outside the archive "
                         f"({target[:80]}): refused")


class _Budget:
    def __init__(self, archive: Path):
        self.archive, self.total = archive, 0

    def copy(self, source, dest: Path, name: str) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        with open(dest, "wb") as out:
            while True:
                chunk = source.read(_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                self.total += len(chunk)
                if size > MAX_MEMBER_BYTES:
                    raise InputError(f"{self.archive}: member {name[:80]!r} is over "
                                     f"{MAX_MEMBER_BYTES >> 20} MiB: refused")
                if self.total > MAX_TOTAL_BYTES:
                    raise InputError(f"{self.archive}: the members ofrace reads are over "
                                     f"{MAX_TOTAL_BYTES >> 20} MiB in all: refused")
                out.write(chunk)


def extract(archive: Path, into: Path, wanted: Callable[[str], bool],
            noted: Callable[[str], bool] = lambda name: False) -> list[str]:
    """Write the wanted regular files of ``archive`` under ``into`` (and an empty file
    for each ``noted`` one: it exists, its bytes are not needed); returns every
    member's (checked) name, links included, for the reader to find its way."""
    def choose(name: str) -> bool | None:
        return True if wanted(name) else (None if noted(name) else False)
    try:
        if archive.name.endswith(".zip"):
            return _extract_zip(archive, into, choose)
        return _extract_tar(archive, into, choose)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, lzma.LZMAError, zlib.error,
            gzip.BadGzipFile, UnicodeError) as exc:
        reason = str(exc) or type(exc).__name__
        raise InputError(f"{archive}: not a readable archive (cut short or corrupt: "
                         f"{reason[:120]})") from None


def gunzip(source: Path, dest: Path, label: str | None = None) -> Path:
    """One gzip'd file (a must-gather's ``leader_nbdb.gz``) written to ``dest``, under
    the same per-file bound as an archive's member; InputError naming ``label``."""
    name = label or str(source)
    try:
        with gzip.open(source, "rb") as fh:
            _Budget(Path(name)).copy(fh, dest, source.name)
    except (OSError, EOFError, zlib.error) as exc:
        reason = str(exc) or type(exc).__name__
        raise InputError(f"{name}: not a readable gzip file (cut short or corrupt: "
                         f"{reason[:120]})") from None
    return dest


def _extract_tar(archive: Path, into: Path, wanted) -> list[str]:
    names, budget = [], _Budget(archive)
    links: dict[str, str] = {}
    with tarfile.open(archive, "r:*") as tar:
        for count, member in enumerate(tar, 1):
            if count > MAX_MEMBERS:
                raise InputError(f"{archive}: more than {MAX_MEMBERS} members: refused")
            name = _check_name(archive, member.name)
            names.append(name)
            if member.issym() or member.islnk():
                target = member.linkname
                if member.islnk():   # a hard link names a member from the root
                    target = posixpath.relpath(_check_name(archive, target) or ".",
                                               posixpath.dirname(name) or ".")
                _check_link(archive, name, target)
                links[name] = target
                continue
            if not member.isfile() or not name:
                continue
            choice = wanted(name)
            if choice is None:
                budget.copy(io.BytesIO(), into / name, name)
            if not choice:
                continue
            source = tar.extractfile(member)
            if source is not None:
                budget.copy(source, into / name, name)
    _write_links(into, links)
    return names


def _extract_zip(archive: Path, into: Path, wanted) -> list[str]:
    names, budget = [], _Budget(archive)
    links: dict[str, str] = {}
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise InputError(f"{archive}: more than {MAX_MEMBERS} members: refused")
        for info in infos:
            name = _check_name(archive, info.filename)
            names.append(name)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                with zf.open(info) as fh:
                    target = fh.read(4096).decode("utf-8", "replace")
                _check_link(archive, name, target)
                links[name] = target
                continue
            if info.is_dir() or not name or (mode and not stat.S_ISREG(mode)):
                continue
            choice = wanted(name)
            if choice is None:
                budget.copy(io.BytesIO(), into / name, name)
            if not choice:
                continue
            with zf.open(info) as source:
                budget.copy(source, into / name, name)
    _write_links(into, links)
    return names


def _write_links(into: Path, links: dict[str, str]) -> None:
    """Links whose targets were extracted are kept as copies (never as links)."""
    for name, target in links.items():
        source = into / posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
        dest = into / name
        if target.endswith(".tailed"):
            continue   # a cut output: its marker is not the output
        if source.is_file() and not dest.exists() and source.resolve().is_relative_to(
                into.resolve()):
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest)


def inside(root: Path, path: Path) -> bool:
    """``path`` (links resolved) stays within ``root``: a directory given as input may
    hold links, which are followed only inside it."""
    try:
        return os.path.realpath(path).startswith(os.path.realpath(root) + os.sep)
    except OSError:
        return False
