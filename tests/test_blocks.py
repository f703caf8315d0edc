"""The block stores of a version-3 snapshot: items back in their order, by key, one at a
time, and a store whose index lies is one error, not a wrong answer."""

from __future__ import annotations

import random

import pytest

from ofrace.errors import InputError
from ofrace.snapshot import blocks
from ofrace.snapshot.blocks import BlockStore, write_store


def _store(items, keys=None, monkeypatch=None, block=None):
    if block is not None:
        monkeypatch.setattr(blocks, "BLOCK_BYTES", block)
    data, index, count = write_store(items, keys)
    return BlockStore(lambda offset, size: data[offset:offset + size], len(data), index,
                      len(items), count, "test store"), data, index, count


def test_items_come_back_in_order_by_key_and_one_at_a_time(monkeypatch):
    rng = random.Random(3)
    items = [f"row {i} {'x' * rng.randrange(200)}".encode() for i in range(2000)]
    keys = [rng.randrange(50) for _ in items]
    store, _, _, count = _store(items, keys, monkeypatch, block=4096)
    assert count > 10                                  # really several blocks
    assert store.all() == items                        # the original order
    for key in (0, 17, 49, 50):
        expected = [(i, item) for i, item in enumerate(items) if keys[i] == key]
        assert store.with_key(key) == expected         # table order within a key
    unkeyed, _, _, _ = _store(items)
    assert [unkeyed.item(i) for i in (0, 999, 1999)] == [items[0], items[999], items[1999]]


def test_an_empty_store_and_an_empty_item():
    store, _, _, count = _store([])
    assert count == 0 and store.all() == [] and store.with_key(1) == []
    store, _, _, _ = _store([b"", b"a", b""])
    assert store.all() == [b"", b"a", b""]


@pytest.mark.parametrize("lie", ["keys out of order", "block offset", "raw size",
                                 "short index", "cut data"])
def test_a_store_whose_index_lies_is_one_error(lie, monkeypatch):
    items = [f"item {i}".encode() * 20 for i in range(300)]
    keys = list(range(300))
    _, data, index, count = _store(items, keys, monkeypatch, block=1024)
    n = len(items)
    raw = bytearray(index)
    if lie == "keys out of order":
        raw[0:4] = (10 ** 6).to_bytes(4, "little")
    elif lie == "block offset":
        at = 8 * n + 8    # the second block's offset
        raw[at:at + 8] = (5).to_bytes(8, "little")
    elif lie == "raw size":
        at = 8 * n + 12 * count   # the first block's raw size
        raw[at:at + 4] = (3).to_bytes(4, "little")
    elif lie == "short index":
        raw = raw[:-4]
    else:
        data = data[:-10]
    with pytest.raises(InputError):
        store = BlockStore(lambda offset, size: data[offset:offset + size], len(data),
                           bytes(raw), n, count, "test store")
        store.all()
        store.with_key(3)
