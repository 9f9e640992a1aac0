"""Reading a mask blob: the blobs the store writes are unpacked from one read of the file, without opening a
``ZipFile`` (QC reads every mask of a workspace); any other zip still reads through ``zipfile``, and a damaged
one is named as before."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from medseg.errors import ReadError
from medseg.workspace import blobs
from medseg.workspace.blobs import BlobStore, mask_sha256

MASKS = [
    np.zeros((3, 4), np.uint8),
    (np.arange(48 * 64).reshape(48, 64) % 7 == 0).astype(np.uint8) * 255,
    np.arange(60, dtype=np.uint16).reshape(3, 4, 5),
    np.eye(9, dtype=bool),
    np.zeros((0, 5), np.uint32),
]


def _no_zipfile(*args, **kwargs):
    raise AssertionError("the blob was read through zipfile")


@pytest.mark.parametrize("durable", [True, False])
def test_the_stores_own_blobs_read_back_from_one_read(tmp_path, monkeypatch, durable):
    store = BlobStore(tmp_path)
    shas = [store.put(m, durable=durable) for m in MASKS]
    monkeypatch.setattr(blobs, "NpzFile", _no_zipfile)
    for m, sha in zip(MASKS, shas):
        got = store.get(sha)
        assert got.dtype == m.dtype and got.shape == m.shape and np.array_equal(got, m)
        assert got.flags.writeable


def _zip(mask: np.ndarray, *, stream: bool, method: int) -> bytes:
    """A blob as another writer may have made it: a member after a data descriptor (written to a pipe-like
    stream), or stored uncompressed."""
    buf = io.BytesIO()
    target = buf
    if stream:

        class Unseekable(io.RawIOBase):
            def writable(self):
                return True

            def write(self, b):
                return buf.write(b)

        target = Unseekable()
    with zipfile.ZipFile(target, "w", compression=method) as zf, zf.open("mask.npy", "w") as f:
        np.lib.format.write_array(f, mask, allow_pickle=False)
    return buf.getvalue()


@pytest.mark.parametrize("stream, method", [(True, zipfile.ZIP_DEFLATED), (False, zipfile.ZIP_STORED)])
def test_other_zips_read_as_before(tmp_path, stream, method):
    store = BlobStore(tmp_path)
    mask = MASKS[1]
    sha = mask_sha256(mask)
    store.path(sha).parent.mkdir(parents=True)
    store.path(sha).write_bytes(_zip(mask, stream=stream, method=method))
    assert np.array_equal(store.get(sha), mask)


def test_a_damaged_blob_is_named_and_verify_reads_the_whole_zip(tmp_path):
    store = BlobStore(tmp_path)
    sha = store.put(MASKS[1])
    path = store.path(sha)
    good = path.read_bytes()
    bad = bytearray(good)
    bad[70] ^= 0xFF  # in the mask's compressed data: the CRC or the stream fails
    path.write_bytes(bytes(bad))
    with pytest.raises(ReadError, match="damaged") as e:
        store.get(sha)
    assert e.value.path == path and "damaged" in store.verify(sha)
    bad = bytearray(good)
    bad[-3] ^= 0xFF  # in the end of the central directory: the mask's own bytes still read, verify finds it
    path.write_bytes(bytes(bad))
    assert np.array_equal(store.get(sha), MASKS[1])
    assert "damaged" in store.verify(sha)
    path.write_bytes(good[:80])  # cut short within the mask's data
    with pytest.raises(ReadError, match="damaged"):
        store.get(sha)
    path.unlink()
    path.mkdir()
    with pytest.raises(ReadError, match="missing"):
        store.get(sha)
