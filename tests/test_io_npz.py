"""medseg.io.npz: np.load's results, with the header parse serialised across threads."""

from __future__ import annotations

import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from medseg.io import npz as npz_mod
from medseg.io.npz import NpzFile


def test_members_read_back_as_numpy_wrote_them(tmp_path):
    p = tmp_path / "a.npz"
    arrays = {
        "mask": np.arange(24, dtype="<u2").reshape(4, 6),
        "fortran": np.asfortranarray(np.random.default_rng(0).random((3, 5))),
        "meta": np.array('{"sample_id": "s1"}'),
        "empty": np.zeros((0, 3), np.uint8),
        "scalar": np.float32(3.5),
        "big_endian": np.arange(5, dtype=">i4"),
    }
    np.savez_compressed(p, **arrays)
    with NpzFile(p) as z:
        assert sorted(z.files) == sorted(arrays)
        assert "mask" in z and "nope" not in z
        for k, want in arrays.items():
            got = z[k]
            np.testing.assert_array_equal(got, want)
            assert got.dtype == np.asarray(want).dtype and got.shape == np.asarray(want).shape
        assert z["mask"].flags.writeable
        with pytest.raises(KeyError, match="nope"):
            z["nope"]


def test_object_arrays_are_refused(tmp_path):
    p = tmp_path / "o.npz"
    np.savez(p, o=np.array([None, 1], dtype=object))
    with NpzFile(p) as z, pytest.raises(ValueError, match="never unpickled"):
        z["o"]


def test_a_truncated_member_is_an_error_not_a_short_array(tmp_path):
    p = tmp_path / "t.npz"
    np.savez(p, mask=np.ones((64, 64), np.uint8))
    raw = zipfile.ZipFile(p).read("mask.npy")
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("mask.npy", raw[: len(raw) // 2])
    with NpzFile(p) as z, pytest.raises(EOFError, match="stops after"):
        z["mask"]


def test_headers_are_parsed_under_the_lock_from_many_threads(tmp_path, monkeypatch):
    unlocked = []
    real = dict(npz_mod._HEADER_READERS)

    def checked(version):
        def read(f):
            if not npz_mod._HEADER_LOCK.locked():
                unlocked.append(threading.get_ident())
            return real[version](f)

        return read

    monkeypatch.setattr(npz_mod, "_HEADER_READERS", {v: checked(v) for v in real})
    paths = []
    for i in range(16):
        paths.append(tmp_path / f"{i}.npz")
        np.savez_compressed(paths[-1], mask=np.full((40, 36), i, np.uint8))

    def read(p):
        with NpzFile(p) as z:
            return int(z["mask"][0, 0])

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(read, paths * 8)) == list(range(16)) * 8
    assert unlocked == []
