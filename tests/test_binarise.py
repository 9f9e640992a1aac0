"""binarise: explicit, reported 0/255 -> 0/1, on the real noisy CVC-ClinicDB mask and JPEG noise."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image
from skimage.draw import disk, polygon

from medseg.io.masks import binarise, read_mask


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_real_noisy_mask_report_and_agreement_with_cleaned(noisy_mask_dir):
    tif, png = noisy_mask_dir / "1_mask.tif", noisy_mask_dir / "1_mask.png"
    before = _sha(tif)
    raw = read_mask(tif)
    assert raw.dtype == np.uint8 and raw.shape == (288, 384)
    assert {0, 255} <= set(np.unique(raw).tolist())  # read as stored, not binarised

    out, rep = binarise(tif)
    assert _sha(tif) == before  # the source file is never touched
    assert out.dtype == np.uint8 and set(np.unique(out).tolist()) == {0, 1}
    assert rep.source == str(tif) and rep.rule == "half" and rep.threshold == 128 and rep.nominal_max == 255
    assert len(rep.grey_levels) == 42 and min(rep.grey_levels) == 8 and max(rep.grey_levels) == 112
    grey = (raw != 0) & (raw != 255)
    assert rep.n_ambiguous == int(grey.sum()) == sum(rep.grey_level_counts) == rep.n_changed
    # all the noise is faint (<= 112): every grey pixel goes to background
    assert rep.n_to_background == rep.n_ambiguous and rep.n_to_foreground == 0
    assert rep.n_differs_from_nonzero == rep.n_ambiguous
    assert rep.levels_to_foreground == [] and rep.levels_to_background == rep.grey_levels
    assert rep.summary().startswith(
        f"42 grey levels (8..112) in {rep.n_ambiguous:,} pixels: {rep.n_ambiguous:,} set to background, 0 to foreground"
    )
    d = rep.to_dict()
    assert json.loads(json.dumps(d))["grey_levels"] == rep.grey_levels

    cleaned = read_mask(png) > 0
    differ = out.astype(bool) != cleaned
    # Measured: 12 of 110,592 pixels differ, and none of them was a grey pixel: they
    # are stored as exactly 0 or 255 in the .tif and were edited by hand in the .png
    # (8 pinholes inside the polyp filled, 4 edge pixels removed). On every grey
    # pixel binarise agrees with the person who cleaned the mask.
    assert int(differ.sum()) == 12
    assert not (differ & grey).any()
    assert np.array_equal(out.astype(bool)[grey], cleaned[grey])
    assert int((differ & (raw == 0) & cleaned).sum()) == 8
    assert int((differ & (raw == 255) & ~cleaned).sum()) == 4
    # the naive reading would have made the faint block foreground
    naive_differ = int(((raw > 0) != cleaned).sum())
    assert naive_differ == rep.n_ambiguous + 12


def test_real_noisy_mask_otsu_finds_the_same_split(noisy_mask_dir):
    out_half, _ = binarise(noisy_mask_dir / "1_mask.tif")
    out_otsu, rep = binarise(noisy_mask_dir / "1_mask.tif", rule="otsu")
    assert rep.rule == "otsu" and 112 < rep.threshold <= 255
    assert np.array_equal(out_half, out_otsu)


def test_cvc_masks_are_already_binary(cvc_dir):
    for name in ("1.png", "300.png", "612.png"):
        out, rep = binarise(cvc_dir / "masks" / name)
        assert rep.grey_levels == [] and rep.n_changed == 0
        assert rep.summary().startswith("already binary (values 0/255)")
        assert np.array_equal(out, (read_mask(cvc_dir / "masks" / name) == 255).astype(np.uint8))


def _polyp_like_mask() -> np.ndarray:
    m = np.zeros((160, 200), np.uint8)
    m[disk((70, 80), 45, shape=m.shape)] = 255
    m[polygon([20, 60, 140], [150, 190, 170], shape=m.shape)] = 255
    return m


def test_jpeg_noise_snaps_back(tmp_path):
    m = _polyp_like_mask()
    path = tmp_path / "mask.jpg"
    Image.fromarray(m).save(path, quality=75)
    raw = read_mask(path)
    out, rep = binarise(raw)
    iou = ((out == 1) & (m == 255)).sum() / ((out == 1) | (m == 255)).sum()
    assert iou >= 0.99
    naive = raw > 0
    naive_iou = (naive & (m == 255)).sum() / (naive | (m == 255)).sum()
    assert naive_iou < iou  # mask > 0 grows the mask by the ringing
    # JPEG ringing: values near 0 and near 255, nothing in the middle (measured: <= 37, >= 217)
    assert rep.levels_to_background and max(rep.levels_to_background) <= 48
    assert rep.levels_to_foreground and min(rep.levels_to_foreground) >= 207
    assert rep.n_to_background > 0 and rep.n_to_foreground > 0
    assert rep.n_changed == rep.n_to_background + rep.n_to_foreground == int(((raw != 0) & (raw != 255)).sum())


def test_half_rule_for_each_nominal_range():
    a01 = np.array([[0, 1], [1, 0]], np.uint8)
    out, rep = binarise(a01)
    assert rep.nominal_max == 1 and rep.threshold == 1 and rep.grey_levels == []
    assert np.array_equal(out, a01)
    a16 = np.array([[0, 65535, 40000, 20000]], np.uint16)
    out, rep = binarise(a16)
    assert rep.threshold == 32768 and out.tolist() == [[0, 1, 1, 0]] and rep.grey_levels == [20000, 40000]
    soft = np.array([[0.0, 0.2, 0.5, 0.9, 1.0]], np.float32)
    out, rep = binarise(soft)
    assert rep.threshold == 0.5 and out.tolist() == [[0, 0, 1, 1, 1]]  # an exact half goes to foreground
    assert rep.n_to_background == 1 and rep.n_to_foreground == 2
    # a 0/255 mask whose foreground is gone keeps its 8-bit reading: noise stays background
    faint = np.array([[0, 11, 12, 112]], np.uint8)
    out, rep = binarise(faint)
    assert rep.nominal_max == 255 and not out.any()
    out, rep = binarise(np.array([[True, False]]))
    assert out.dtype == np.uint8 and out.tolist() == [[1, 0]]


def test_explicit_threshold_and_nominal_max():
    a = np.array([[0, 10, 100, 4095]], np.uint16)
    out, rep = binarise(a, nominal_max=4095)  # a 12-bit mask
    assert rep.threshold == 2048 and out.tolist() == [[0, 0, 0, 1]]
    out, rep = binarise(a, rule=10, nominal_max=4095)
    assert rep.rule == "threshold" and out.tolist() == [[0, 1, 1, 1]]
    assert rep.summary().endswith("(rule threshold: foreground iff value >= 10)")


def test_class_ids_are_not_silently_erased():
    ids = np.array([[0, 1, 2, 3]], np.uint8)  # a multiclass map passed by mistake
    out, rep = binarise(ids)
    assert not out.any() and rep.n_to_background == 3 and "class ids" in rep.note
    _, rep = binarise(np.array([[0, 255, 3]], np.uint8))  # JPEG-like noise next to real foreground
    assert rep.note == ""


def test_otsu_on_a_single_value_falls_back_and_says_so():
    out, rep = binarise(np.full((4, 4), 255, np.uint8), rule="otsu")
    assert out.all() and "Otsu is undefined" in rep.note


@pytest.mark.parametrize(
    "mask, kwargs, message",
    [
        (np.array([[0, 255]], np.uint8), dict(rule="mean"), "unknown binarise rule"),
        (np.array([[0, 255]], np.uint8), dict(rule=0), r"must be in \(0, 255\]"),
        (np.array([[0, 255]], np.uint8), dict(rule=300), r"must be in \(0, 255\]"),
        (np.array([[0, -1]], np.int16), {}, "negative"),
        (np.array([[0.0, np.nan]]), {}, "NaN"),
        (np.array([[0, 300]], np.uint16), dict(nominal_max=255), ">= the mask's max"),
        (np.array([["a"]]), {}, "cannot binarise"),
    ],
)
def test_bad_input(mask, kwargs, message):
    with pytest.raises(ValueError, match=message):
        binarise(mask, **kwargs)
