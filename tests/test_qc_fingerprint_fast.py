"""The duplicate fingerprint's faster pieces give what the plain ones gave, bit for bit: the box resize
(Pillow without ``fromarray``/``__array_interface__``), the DCT coefficients' median (a sort, not
``np.median``) and the fingerprint's pickle (its arrays' bytes, not numpy's pickling)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

from medseg.datasets.classmap import ClassMap
from medseg.qc.checks_base import SampleView
from medseg.qc.duplicates_align import box_resize
from medseg.qc.duplicates_fingerprint import Fingerprint, fingerprint, median


def _pillow(a: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize((size, size), Image.Resampling.BOX))


@pytest.mark.parametrize(
    ("shape", "size", "kind"),
    [((48, 64), 32, "crop"), ((48, 64), 64, "float"), ((48, 64), 128, "bool"), ((288, 384), 128, "bool"),
     ((37, 101), 64, "float64"), ((1, 5), 32, "float"), ((300, 200), 32, "crop")],
)  # fmt: skip
def test_box_resize_is_pillows_resize_bit_for_bit(shape, size, kind):
    rng = np.random.default_rng(sum(shape) + size)
    a = rng.random(shape).astype(np.float32) * 3 - 1
    if kind == "bool":
        a = a > 0.5
    elif kind == "float64":
        a = a.astype(np.float64) / 7
    elif kind == "crop":  # a strided view, as the hash's centre crop is
        a = a[shape[0] // 10 : shape[0] - shape[0] // 10, shape[1] // 10 : shape[1] - shape[1] // 10]
    got = box_resize(a, size)
    want = _pillow(a, size)
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape == (size, size)
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("n", [64, 63, 2, 1, 10])
def test_median_is_numpys_bit_for_bit(n):
    rng = np.random.default_rng(n)
    for trial in range(200):
        v = rng.normal(0, 10.0 ** rng.integers(-8, 8), n)
        if trial % 3 == 0:
            v = np.round(v, 1)  # ties
        if trial % 7 == 0:
            v[: n // 2] = -0.0
        got, want = median(v), np.median(v)
        assert np.float64(got).tobytes() == np.float64(want).tobytes(), (v, got, want)


def _fingerprint(seed: int, classes: int) -> Fingerprint:
    rng = np.random.default_rng(seed)
    image = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    mask = rng.integers(0, classes + 1, (48, 64)).astype(np.uint8)
    cmap = ClassMap.binary("fg") if classes == 1 else ClassMap.from_names([f"c{k}" for k in range(classes)])
    fp = fingerprint(SampleView("x", mask, cmap, image=image, rgb=True))
    assert fp is not None
    return fp


def _fields(fp: Fingerprint) -> dict:
    def plain(v):
        if isinstance(v, np.ndarray):
            return v.dtype.str, v.shape, v.tobytes()
        return {k: plain(x) for k, x in v.items()} if isinstance(v, dict) else v

    return {k: plain(v) for k, v in vars(fp).items()}


@pytest.mark.parametrize("classes", [1, 3])
def test_fingerprint_pickles_as_bytes_and_comes_back_field_for_field(classes):
    fp = _fingerprint(classes, classes)
    blob = pickle.dumps(fp, protocol=pickle.HIGHEST_PROTOCOL)
    assert b"_reconstruct" not in blob and b"numpy" not in blob  # numpy's own array pickling is the slow part
    back = pickle.loads(blob)
    assert type(back) is Fingerprint and _fields(back) == _fields(fp)
    assert list(back.mask_thumbs) == list(fp.mask_thumbs) and len(back.mask_thumbs) == classes
    for a in (back.thumb, back.grey, *back.mask_thumbs.values()):
        assert a.flags.writeable and a.flags.owndata and a.flags.c_contiguous


def test_a_fingerprint_without_thumbnails_pickles_too():
    fp = Fingerprint("p", 7, None, "m", {}, {}, None)
    back = pickle.loads(pickle.dumps(fp))
    assert back == fp and back.thumb is None and back.grey is None
