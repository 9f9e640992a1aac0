"""A create reads every sample's files: each mask file is opened once to be decoded (its format sniffed from
the same descriptor), and a file's hash and stat come from one descriptor, without a path stat each.
Counted with Python's audit events ("open" is raised by ``open`` and ``os.open``) and a counting ``os.stat``."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medseg.errors import ReadError

_opened: list[str] | None = None  # the paths opened while a test counts; None when none counts


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _opened is not None and isinstance(args[0], (str, bytes, os.PathLike)):
        _opened.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)  # hooks cannot be removed: this one records only while a test sets _opened


def _opens(fn, path: Path) -> int:
    global _opened
    _opened = []
    try:
        fn()
        return sum(Path(p) == path for p in _opened)
    finally:
        _opened = None


@pytest.mark.parametrize("mode", ["L", "P"])
def test_mask_file_opened_once_to_decode(tmp_path, mode):
    from medseg.io.mask_read import read_mask_values

    arr = np.zeros((6, 5), np.uint8)
    arr[2:4, 1:3] = 255 if mode == "L" else 2
    path = tmp_path / "m.png"
    (Image.fromarray(arr) if mode == "L" else _palette(arr)).save(path)
    got: list = []
    assert _opens(lambda: got.append(read_mask_values(path)), path) == 1
    np.testing.assert_array_equal(got[0], arr)


def _palette(arr: np.ndarray) -> Image.Image:
    im = Image.frombytes("P", arr.shape[::-1], arr.tobytes())
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    return im


def test_damaged_png_still_named_by_its_path(tmp_path):
    """Pillow given the open file would name the file object; the message is the one it gives a path."""
    from medseg.io.mask_read import read_mask_values

    path = tmp_path / "bad.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(ReadError) as e:
        read_mask_values(path)
    assert str(e.value) == f"{path}: cannot be decoded as PNG: cannot identify image file {str(path)!r}"


def test_hash_and_stat_through_one_descriptor(tmp_path, monkeypatch):
    from medseg.workspace.sources import HashCache, file_sha256, file_stat

    path = tmp_path / "image.png"
    path.write_bytes(b"pixels" * 1000)
    want = (file_sha256(path), file_stat(path))
    stats: list = []
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: stats.append(p) or real_stat(p, *a, **k))
    cache = HashCache()
    assert _opens(lambda: (cache.sha256(path), cache.stat(path)), path) == 1
    assert stats == []  # the stat is the descriptor's fstat
    assert (cache.sha256(path), cache.stat(path)) == want


def test_hash_cache_keeps_a_stat_taken_before(tmp_path):
    """find_changes stats first and hashes only what moved: the stat it compared stays the cached one."""
    from medseg.workspace.sources import HashCache

    path = tmp_path / "a.png"
    path.write_bytes(b"one")
    cache = HashCache()
    before = cache.stat(path)
    path.write_bytes(b"three")
    cache.sha256(path)
    assert cache.stat(path) == before


def test_hash_cache_of_a_folder_and_a_missing_file(tmp_path):
    from medseg.workspace.sources import HashCache, file_sha256, file_stat

    series = tmp_path / "series"
    series.mkdir()
    (series / "1.dcm").write_bytes(b"slice")
    cache = HashCache()
    assert (cache.sha256(series), cache.stat(series)) == (file_sha256(series), file_stat(series))
    with pytest.raises(FileNotFoundError):
        cache.sha256(tmp_path / "gone.png")


def test_small_mask_read_in_memory_large_one_from_the_file(tmp_path, monkeypatch):
    """A mask file is read with one call into memory and Pillow decodes the bytes; one over ``_WHOLE`` is
    left to Pillow's reads of the file; both decode the same."""
    from medseg.io import mask_files, mask_read

    arr = np.zeros((40, 30), np.uint8)
    arr[5:20, 3:9] = 255
    path = tmp_path / "m.png"
    Image.fromarray(arr).save(path)
    reads: list[int] = []
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: reads.append(n) or real_read(fd, n))
    f, head = mask_files.open_head(path)
    with f:
        assert isinstance(f, io.BytesIO) and head == path.read_bytes()[:348]
    assert reads == [path.stat().st_size + 1]  # its size and one: a short read is the end, no second call
    small = mask_read.read_mask_values(path)
    monkeypatch.setattr(mask_files, "WHOLE", 10)
    f, _ = mask_files.open_head(path)
    with f:
        assert not isinstance(f, io.BytesIO)
    np.testing.assert_array_equal(mask_read.read_mask_values(path), small)
    np.testing.assert_array_equal(small, arr)


def test_read_all_of_a_file_that_grew(tmp_path):
    from medseg.io.limits import read_all

    path = tmp_path / "grown"
    path.write_bytes(bytes(range(256)) * 5000)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert read_all(fd, 100) == path.read_bytes()  # stat said 100 bytes: read on to the end
    finally:
        os.close(fd)


def test_a_folder_named_as_a_mask(tmp_path):
    from medseg.io.mask_read import read_mask_values

    folder = tmp_path / "m.png"
    folder.mkdir()
    with pytest.raises(ReadError, match="is a folder, not a mask file"):
        read_mask_values(folder)


def test_open_image_reads_a_small_file_in_one_call(tmp_path, monkeypatch):
    """A small image (a create reads its header twice and its pixels once) reaches Pillow as bytes read in
    one call; a larger one, a folder or a missing file are Pillow's to open, as before."""
    from medseg.io import limits

    arr = (np.arange(40 * 30) % 251).astype(np.uint8).reshape(40, 30)
    path = tmp_path / "frame.png"
    Image.fromarray(arr).save(path)
    reads: list[int] = []
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: reads.append(n) or real_read(fd, n))
    with limits.open_image(path) as im:
        assert isinstance(im.fp, io.BytesIO)
        small = np.asarray(im)
    assert reads == [path.stat().st_size + 1]
    monkeypatch.setattr(limits, "SMALL_FILE", 10)
    with limits.open_image(path) as im:
        assert not isinstance(im.fp, io.BytesIO)
        np.testing.assert_array_equal(np.asarray(im), small)
    np.testing.assert_array_equal(small, arr)
    with pytest.raises(FileNotFoundError):
        limits.open_image(tmp_path / "gone.png")


def test_a_damaged_small_header_is_named_as_before(tmp_path):
    from medseg.datasets.files import header_size

    path = tmp_path / "bad.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(ReadError, match="not a readable image header .unknown format or corrupt header."):
        header_size(path)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ReadError, match="empty file, 0 bytes"):
        header_size(empty)


@pytest.mark.parametrize("size", [0, 5000, (1 << 20) - 1, 1 << 20, 3 * (1 << 20) + 7])
def test_hash_reads_a_small_file_in_one_call(tmp_path, monkeypatch, size):
    from medseg.workspace.sources import file_sha256, hash_and_stat

    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(256)) * (size // 256) + bytes(size % 256))
    want = file_sha256(path)
    reads: list[int] = []
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: reads.append(n) or real_read(fd, n))
    assert hash_and_stat(path)[0] == want
    assert len(reads) == (1 if size < 1 << 20 else size // (1 << 20) + 1)
