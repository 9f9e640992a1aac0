"""Writing a mask blob: the zip is assembled without ``zipfile``'s Python layer, byte for byte the file
``zipfile`` writes (blobs stay identical whichever wrote them, and numpy reads them); a create's writes try
a folder only when it is missing, and syncing looks at each folder once."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest

from medseg.workspace import blobs
from medseg.workspace.blobs import BlobStore, mask_sha256

_RNG = np.random.default_rng(0)
MASKS = [
    np.zeros((48, 64), np.uint8),
    (_RNG.random((48, 64)) < 0.3).astype(np.uint8),
    _RNG.integers(0, 5, (37, 53), dtype=np.uint8),
    _RNG.integers(0, 70_000, (9, 11), dtype=np.uint32),
    np.arange(60, dtype=np.uint16).reshape(3, 4, 5),
    np.arange(12, dtype=">u2").reshape(3, 4),  # big-endian input is stored little-endian
    _RNG.random((16, 16, 3)) < 0.5,  # multilabel
    np.ones((1, 1), bool),
    np.zeros((0, 5), np.uint32),
    np.ones((1000, 1000), np.uint8),  # a megabyte: deflate's output over many of its blocks
]


@pytest.mark.parametrize("mask", MASKS, ids=lambda m: f"{m.dtype.str}{m.shape}")
def test_blob_bytes_are_zipfiles(mask):
    arr = blobs._storable(mask)
    data = blobs._npz_bytes(arr)
    assert data is not None and data == blobs._zipfile_npz(arr)
    got = np.load(io.BytesIO(data))["mask"]
    assert got.dtype == arr.dtype and np.array_equal(got, mask)


def test_an_array_the_direct_route_does_not_write_goes_through_zipfile(monkeypatch):
    arr = MASKS[1]
    assert blobs._same_as_zipfile()  # checked (and kept) before the limit is lowered
    monkeypatch.setattr(blobs, "_ZIP64_LIMIT", 100)  # as if the mask were over 2 GiB
    assert blobs._npz_bytes(arr) is None
    assert blobs._npz(arr) == blobs._zipfile_npz(arr)


def test_fed_in_numpys_chunks(monkeypatch):
    """deflate is fed as numpy feeds zipfile: the data in pieces of numpy's buffer size (here made small)."""
    calls = []
    real = blobs.zlib.compressobj

    class Counting:
        def __init__(self, *args):
            self._c = real(*args)

        def compress(self, data):
            calls.append(len(data))
            return self._c.compress(data)

        def flush(self):
            return self._c.flush()

    monkeypatch.setattr(blobs, "_NPY_CHUNK", 1000)
    monkeypatch.setattr(blobs.zlib, "compressobj", Counting)
    blobs._npz_bytes(np.ones((50, 50), np.uint8))
    assert calls[1:] == [1000, 1000, 500]


@pytest.mark.parametrize("durable", [True, False])
def test_put_writes_the_same_file_either_way(tmp_path, durable):
    store = BlobStore(tmp_path)
    for m in MASKS:
        sha = store.put(m, durable=durable)
        assert sha == mask_sha256(m)
        assert store.path(sha).read_bytes() == blobs._zipfile_npz(blobs._storable(m))
        assert np.array_equal(store.get(sha), m) and store.verify(sha) is None
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".tmp-")]


def test_a_create_tries_a_folder_only_when_it_is_missing(tmp_path, monkeypatch):
    made = []
    real = os.mkdir

    def mkdir(path, *args, **kwargs):
        made.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    store = BlobStore(tmp_path / "masks")
    masks = [np.full((4, 4), k % 3, np.uint8) + np.eye(4, dtype=np.uint8) * (k // 3) for k in range(30)]
    shas = [store.put(m, durable=False) for m in masks]
    assert len(set(shas)) == 30
    assert len(made) <= len({s[:2] for s in shas}) + 1  # each folder once, and the store's own
    assert all(np.array_equal(store.get(s), m) for s, m in zip(shas, masks))
    first = store.path(shas[0]).stat().st_mtime_ns
    assert store.put(masks[0].copy(), durable=False) == shas[0]  # stored already: kept as it is
    assert store.path(shas[0]).stat().st_mtime_ns == first


def test_sync_visits_each_folder_once_from_the_names(tmp_path, monkeypatch):
    store = BlobStore(tmp_path)
    shas = [store.put(np.full((3, 3), k, np.uint8), durable=False) for k in range(20)]
    synced = []
    monkeypatch.setattr(blobs, "fsync_dir", lambda folder: synced.append(folder))
    monkeypatch.setattr(BlobStore, "path", lambda self, sha: pytest.fail("a Path made for each blob"))
    store.sync(shas * 3)
    assert synced == sorted({tmp_path / s[:2] for s in shas})


def test_a_python_whose_zipfile_writes_otherwise_keeps_zipfiles_blobs(monkeypatch):
    assert blobs._same_as_zipfile()  # this interpreter: blobs written directly
    arr = MASKS[2]
    monkeypatch.setattr(blobs, "_npz_bytes", lambda a: b"PK another layout")
    blobs._same_as_zipfile.cache_clear()
    try:
        assert blobs._npz(arr) == blobs._zipfile_npz(arr)
    finally:
        blobs._same_as_zipfile.cache_clear()


def test_a_failed_write_leaves_no_blob(tmp_path, monkeypatch):
    store = BlobStore(tmp_path)
    arr = MASKS[1]

    def fail(a):
        raise OSError("disk full")

    monkeypatch.setattr(blobs, "_npz", fail)
    with pytest.raises(OSError, match="disk full"):
        store.put(arr, durable=False)
    assert not store.path(mask_sha256(arr)).exists()
    monkeypatch.undo()
    assert np.array_equal(store.get(store.put(arr, durable=False)), arr)  # written whole on the next try


def test_sync_all_on_linux_is_one_sync_without_folder_fsyncs(tmp_path, monkeypatch):
    """``sync()`` writes the folders' entries with the files: an fsync a folder after it only flushed the disk."""
    store = BlobStore(tmp_path)
    shas = [store.put(np.full((3, 3), k, np.uint8), durable=False) for k in range(20)]
    calls = []
    monkeypatch.setattr(blobs.sys, "platform", "linux")
    monkeypatch.setattr(os, "sync", lambda: calls.append("sync"))
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync"))
    store.sync_all(shas)
    assert calls == ["sync"]


def test_sync_all_elsewhere_fsyncs_each_file_then_each_folder(tmp_path, monkeypatch):
    store = BlobStore(tmp_path)
    shas = [store.put(np.full((3, 3), k, np.uint8), durable=False) for k in range(20)]
    files, folders = [], []
    monkeypatch.setattr(blobs.sys, "platform", "win32")
    monkeypatch.setattr(os, "sync", lambda: pytest.fail("sync() is Linux's"))
    monkeypatch.setattr(os, "fsync", lambda fd: files.append(os.fstat(fd).st_ino))
    monkeypatch.setattr(blobs, "fsync_dir", lambda folder: folders.append(folder))
    store.sync_all(shas * 2)
    assert files == [store.path(s).stat().st_ino for s in sorted(set(shas))]
    assert folders == sorted({tmp_path / s[:2] for s in shas})
