"""The file raw store: what the archiver writes is what readers get back, byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookbay_common.rawstore import FileRawStore


def test_put_many_stores_every_object_byte_exact(tmp_path: Path) -> None:
    store = FileRawStore(tmp_path)
    items = [(f"src/2026/12/03/p{i}", bytes([i]) * i + b"\x00\xff") for i in range(20)]
    items.append(("other/2026/12/04/p", b""))
    store.put_many(items)
    for key, data in items:
        assert store.get(key) == data
        assert store.exists(key)
    assert not list(tmp_path.rglob(".tmp-*")), "no temporary file is left behind"


def test_put_again_overwrites_with_the_same_key(tmp_path: Path) -> None:
    store = FileRawStore(tmp_path)
    store.put("a/b", b"one")
    store.put("a/b", b"two")
    assert store.get("a/b") == b"two"


def test_a_key_cannot_escape_the_store(tmp_path: Path) -> None:
    store = FileRawStore(tmp_path / "raw")
    with pytest.raises(ValueError, match="escapes"):
        store.put_many([("ok", b"1"), ("../outside", b"2")])
    assert not (tmp_path / "outside").exists()


def test_put_many_writes_more_objects_than_one_chunk(tmp_path: Path) -> None:
    store = FileRawStore(tmp_path)
    items = [
        (f"src/2026/12/{1 + i % 3:02d}/p{i}", f"body {i}".encode()) for i in range(FileRawStore.CHUNK * 2 + 5)
    ]
    store.put_many(items)
    assert all(store.get(key) == data for key, data in items)
    assert not list(tmp_path.rglob(".tmp-*"))


@pytest.mark.parametrize("key", ["", ".", "a/../..", "/etc/passwd", "a/../../x"])
def test_keys_that_name_no_object_inside_the_store_are_refused(tmp_path: Path, key: str) -> None:
    store = FileRawStore(tmp_path / "raw")
    with pytest.raises(ValueError, match="escapes"):
        store.put_many([("fine/one", b"1"), (key, b"2")])
    assert not (tmp_path / "raw" / "fine" / "one").exists(), "nothing is written when a key is bad"
