"""Items (flow lines, OVSDB rows as JSON) stored in small compressed blocks, so one item
is read without inflating the rest: what makes a cold trace read only what it crosses.

A store is two ZIP members.  The *blocks* member is stored (not deflated by the ZIP):
blocks of about ``BLOCK_BYTES`` of items joined by newlines, each compressed with zlib
on its own, read with ``os.pread`` at the member's data offset (a tool that rewrote
the archive deflating it costs one read of the whole member, nothing worse).  The *index* member
holds, per item, its key (a row's cookie; 0 when unkeyed) and its position in the
original order, the items being sorted by (key, position); and per block its offset,
compressed and raw sizes and first item.  Every number is checked against the sizes the
snapshot document declares, and no block inflates past the raw size it declares.
"""

from __future__ import annotations

import os
import struct
import sys
import zipfile
import zlib
from array import array
from bisect import bisect_left, bisect_right
from itertools import islice
from operator import le

from ofrace.errors import InputError

BLOCK_BYTES = 32 << 10
# A block may inflate this many times, or to this size whatever its ratio (one line a
# hostile node made of 8 MiB of one character is saved as it came, and loads again).
MAX_RATIO = 100
RATIO_FLOOR = 32 << 20
_LOCAL_HEADER = struct.Struct("<4s22xHH")   # signature … file name length, extra length


def _arrays(n: int, blocks: int) -> list[tuple[str, str, int]]:
    """The index member's arrays in order: (name, typecode, length)."""
    return [("keys", "I", n), ("positions", "I", n), ("offsets", "Q", blocks),
            ("compressed", "I", blocks), ("raw", "I", blocks), ("first", "I", blocks)]


def index_bytes(n: int, blocks: int) -> int:
    return sum(array(code).itemsize * length for _, code, length in _arrays(n, blocks))


def write_store(items: list[bytes], keys: list[int] | None = None,
                level: int = 1) -> tuple[bytes, bytes, int]:
    """``(blocks member, index member, number of blocks)`` for ``items`` (each without a
    newline), sorted by ``keys`` (then their order) when given."""
    n = len(items)
    order = sorted(range(n), key=keys.__getitem__) if keys is not None else range(n)
    out_keys, positions = array("I"), array("I")
    offsets, compressed, raw, first = array("Q"), array("I"), array("I"), array("I")
    chunks: list[bytes] = []
    size = 0
    pending: list[bytes] = []
    pending_bytes = 0
    pending_first = 0

    def flush():
        nonlocal size, pending_bytes
        text = b"\n".join(pending)
        data = zlib.compress(text, level)
        offsets.append(size)
        compressed.append(len(data))
        raw.append(len(text))
        first.append(pending_first)
        chunks.append(data)
        size += len(data)
        pending.clear()
        pending_bytes = 0

    for count, i in enumerate(order):
        if pending and pending_bytes + len(items[i]) > BLOCK_BYTES:
            flush()
        if not pending:
            pending_first = count
        pending.append(items[i])
        pending_bytes += len(items[i]) + 1
        out_keys.append(keys[i] if keys is not None else 0)
        positions.append(i)
    if pending:
        flush()
    index = [out_keys, positions, offsets, compressed, raw, first]
    if sys.byteorder != "little":
        for a in index:
            a.byteswap()
    return b"".join(chunks), b"".join(a.tobytes() for a in index), len(offsets)


def member_reader(path: str, info: zipfile.ZipInfo):
    """``read(offset, size)`` of a member's bytes: straight from the file when the member
    is stored, else from the member inflated once."""
    if info.compress_type != zipfile.ZIP_STORED:
        with zipfile.ZipFile(path) as archive, archive.open(info) as fh:
            data = fh.read(info.file_size + 1)
        if len(data) != info.file_size:
            raise InputError(f"member {info.filename} is not the size it declares")
        return lambda offset, size: data[offset:offset + size]
    base = _stored_data_offset(path, info)

    def read(offset: int, size: int) -> bytes:
        with open(path, "rb") as fh:
            return os.pread(fh.fileno(), size, base + offset)
    return read


def _stored_data_offset(path: str, info: zipfile.ZipInfo) -> int:
    """Where a stored member's bytes start in the file (after its local header)."""
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        head = fh.read(_LOCAL_HEADER.size)
    if len(head) != _LOCAL_HEADER.size:
        raise InputError(f"member {info.filename}: truncated header")
    signature, name_len, extra_len = _LOCAL_HEADER.unpack(head)
    if signature != b"PK\x03\x04":
        raise InputError(f"member {info.filename}: bad local header")
    return info.header_offset + _LOCAL_HEADER.size + name_len + extra_len


class BlockStore:
    """The items of one store, read a block at a time (the last few blocks kept)."""

    def __init__(self, read, data_size: int, index: bytes, n: int, blocks: int, what: str):
        self.read, self.what, self.n = read, what, n
        if len(index) != index_bytes(n, blocks):
            raise InputError(f"{what}: the index holds {len(index)} bytes, not "
                             f"{index_bytes(n, blocks)}")
        arrays, at = {}, 0
        for name, code, length in _arrays(n, blocks):
            a = array(code)
            a.frombytes(index[at:at + a.itemsize * length])
            if sys.byteorder != "little":
                a.byteswap()
            at += a.itemsize * length
            arrays[name] = a
        self.keys, self.positions = arrays["keys"], arrays["positions"]
        self.offsets, self.compressed = arrays["offsets"], arrays["compressed"]
        self.raw, self.first = arrays["raw"], arrays["first"]
        self._check(data_size, blocks)
        self._cache: dict[int, list[bytes]] = {}

    def _check(self, data_size: int, blocks: int) -> None:
        what, n = self.what, self.n
        if (n == 0) != (blocks == 0) or (blocks and self.first[0] != 0):
            raise InputError(f"{what}: blocks do not cover the items")
        end = 0
        for b in range(blocks):
            if self.offsets[b] != end or (b and not self.first[b - 1] < self.first[b] <= n) \
                    or self.raw[b] > max(self.compressed[b] * MAX_RATIO, RATIO_FLOOR):
                raise InputError(f"{what}: block {b} is not where the index says")
            end += self.compressed[b]
        if end != data_size:
            raise InputError(f"{what}: the blocks hold {data_size} bytes, the index says {end}")
        self._ordered = False   # keys checked in order when first searched

    def _check_keys(self) -> None:
        keys = self.keys
        if not all(map(le, keys, islice(keys, 1, None))):
            raise InputError(f"{self.what}: keys out of order")
        self._ordered = True

    def _block(self, b: int, data: bytes | None = None) -> list[bytes]:
        items = self._cache.get(b)
        if items is None:
            if data is None:
                data = self.read(self.offsets[b], self.compressed[b])
            if len(data) != self.compressed[b]:
                raise InputError(f"{self.what}: block {b} is cut short")
            try:
                inflate = zlib.decompressobj()
                text = inflate.decompress(data, self.raw[b])
            except zlib.error as exc:
                raise InputError(f"{self.what}: block {b}: {exc}") from None
            if len(text) != self.raw[b] or inflate.unconsumed_tail or not inflate.eof:
                raise InputError(f"{self.what}: block {b} is not the size its index says")
            items = text.split(b"\n")
            last = self.first[b + 1] if b + 1 < len(self.first) else self.n
            if len(items) != last - self.first[b]:
                raise InputError(f"{self.what}: block {b} holds {len(items)} items, "
                                 f"not {last - self.first[b]}")
            if len(self._cache) >= 64:
                self._cache.pop(next(iter(self._cache)))
            self._cache[b] = items
        return items

    def key_array(self) -> array:
        """Every item's key in sorted order, read from the index alone (checked in order,
        as ``with_key`` checks them)."""
        if not self._ordered:
            self._check_keys()
        return self.keys

    def item(self, i: int) -> bytes:
        """The item at sorted index ``i``."""
        b = bisect_right(self.first, i) - 1
        return self._block(b)[i - self.first[b]]

    def with_key(self, key: int) -> list[tuple[int, bytes]]:
        """``(position, item)`` of every item with ``key``, in their original order."""
        if not self._ordered:
            self._check_keys()
        lo, hi = bisect_left(self.keys, key), bisect_right(self.keys, key)
        return [(self.positions[i], self.item(i)) for i in range(lo, hi)]

    def all(self) -> list[bytes]:
        """Every item in its original order."""
        items: list[bytes] = []
        blocks = len(self.first)
        whole = self.read(0, self.offsets[-1] + self.compressed[-1]) if blocks else b""
        for b in range(blocks):
            start = self.offsets[b]
            items.extend(self._block(b, whole[start:start + self.compressed[b]]))
            self._cache.pop(b, None)
        if all(map(int.__eq__, self.positions, range(self.n))):
            return items
        ordered: list[bytes | None] = [None] * self.n
        for item, position in zip(items, self.positions, strict=True):
            if position >= self.n or ordered[position] is not None:
                raise InputError(f"{self.what}: positions are not a permutation")
            ordered[position] = item
        return ordered
