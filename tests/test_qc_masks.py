"""Mask checks on crafted masks: each one triggers, and a near miss does not."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage as ndi

from medseg.datasets import ClassMap
from medseg.io.masks import binarise
from medseg.qc.checks_base import DatasetContext
from medseg.qc.checks_masks import (
    check_border_only,
    check_full,
    check_holes,
    check_mask_values,
    check_specks,
    decide_empty,
    hole_labels,
)
from medseg.qc.findings import Finding
from tests._qc_data import rect_mask, view

SPECKS = {"min_pixels": 20, "min_fraction": 0.0005}


def test_finding_round_trips_through_json():
    f = Finding("7", "specks", "warning", "m", value=np.int64(3), details={"a": np.arange(2), "t": (1, 2)})
    back = Finding.from_dict(json.loads(json.dumps(f.to_dict())))
    assert back == f and back.value == 3.0 and back.details == {"a": [0, 1], "t": [1, 2]}
    with pytest.raises(ValueError, match="severity"):
        Finding("7", "specks", "fatal", "m")


def test_specks_flags_a_5px_component_beside_a_500px_object():
    m = rect_mask(64, (10, 30, 10, 35), 1)  # 20 x 25 = 500 px
    m[50:51, 50:55] = 1  # 5 px speck
    (f,) = check_specks(view(m), SPECKS)
    assert f.severity == "warning" and f.value == 1 and f.fix == "remove_specks"
    assert f.details["threshold"] == 20 and f.details["per_class"]["1"] == {
        "n": 1,
        "pixels": 5,
        "sizes": [5],
        "objects": 2,
    }
    assert f.details["locations"] == [[50, 52]]


def test_specks_near_miss_500px_and_25px_objects_are_not_specks():
    m = rect_mask(64, (10, 30, 10, 35), 1)
    m[50:55, 50:55] = 1  # 25 px >= 20
    assert check_specks(view(m), SPECKS) == []


def test_specks_lone_tiny_object_is_info_and_threshold_scales_with_area():
    m = np.zeros((64, 64), np.uint8)
    m[5:8, 5:8] = 1
    (f,) = check_specks(view(m), SPECKS)
    assert f.severity == "info" and f.fix is None  # removing the only object is not a safe fix
    big = np.zeros((400, 400), np.uint8)  # 0.05 % of 160,000 px = 80 px
    big[10:110, 10:110] = 1
    big[200:207, 200:207] = 1  # 49 px: a speck here, not in a 64 x 64 image
    (f,) = check_specks(view(big), SPECKS)
    assert f.details["threshold"] == 80 and f.value == 1


def test_specks_per_class_in_a_multiclass_mask():
    cm = ClassMap.from_names(["a", "b"])
    m = np.zeros((64, 64), np.uint8)
    m[5:25, 5:30] = 1
    m[30:50, 30:60] = 2
    m[10:12, 40:42] = 2  # 4 px of class b
    (f,) = check_specks(view(m, classmap=cm), SPECKS)
    assert list(f.details["per_class"]) == ["2"] and f.details["per_class"]["2"]["pixels"] == 4  # JSON keys
    assert f.details["fix_params"] == {"max_pixels": 19, "classes": [2]}


def test_holes_flags_an_enclosed_gap_and_not_an_open_notch():
    m = rect_mask(64, (10, 40, 10, 40), 1)
    m[20:23, 20:23] = 0  # 9 px enclosed
    (f,) = check_holes(view(m), {"max_fraction": 0.25})
    assert f.severity == "warning" and f.value == 1 and f.details["sizes"] == [9] and f.fix == "fill_holes"
    notch = rect_mask(64, (10, 40, 10, 40), 1)
    notch[20:23, 10:23] = 0  # same gap, open to the outside
    assert check_holes(view(notch), {"max_fraction": 0.25}) == []


def test_holes_large_ring_interior_is_info_and_fix_spares_it():
    ring = rect_mask(64, (5, 60, 5, 60), 1)
    ring[10:55, 10:55] = 0  # 2,025 px inside a 1,000 px ring
    (f,) = check_holes(view(ring), {"max_fraction": 0.25})
    assert f.severity == "info" and f.details["n_small"] == 0 and f.fix is None


def test_hole_labels_match_binary_fill_holes():
    rng = np.random.default_rng(0)
    for _ in range(20):
        fg = ndi.binary_opening(rng.random((40, 50)) < 0.55)
        labels, ids = hole_labels(fg)
        ours = np.isin(labels, ids)
        assert np.array_equal(ours, ndi.binary_fill_holes(fg) & ~fg)


def test_full_mask_warning_error_and_near_miss():
    m = np.ones((20, 20), np.uint8)
    (f,) = check_full(view(m), {"min_fraction": 0.95})
    assert f.severity == "error" and f.value == 1.0
    m[:1, :] = 0  # 95 % foreground
    (f,) = check_full(view(m), {"min_fraction": 0.95})
    assert f.severity == "warning"
    m[:2, :] = 0  # 90 %
    assert check_full(view(m), {"min_fraction": 0.95}) == []


def test_border_only_rules():
    p = {"band_fraction": 0.02}
    cut = rect_mask(64, (0, 20, 20, 40), 1)  # an object cut by the top edge
    (f,) = check_border_only(view(cut), p)
    assert f.severity == "info" and f.value == 1
    strip = np.zeros((64, 64), np.uint8)
    strip[:2, :] = 1  # a line along the border
    (f,) = check_border_only(view(strip), p)
    assert f.severity == "warning" and f.details["in_band"]
    both = cut.copy()
    both[40:50, 40:50] = 1  # one object away from the border: not border-only
    assert check_border_only(view(both), p) == []
    assert check_border_only(view(np.zeros((64, 64), np.uint8)), p) == []


def test_empty_mask_severity_depends_on_how_common_empties_are():
    ids = [str(i) for i in range(10)]
    ctx = DatasetContext(ids, {i: i for i in ids}, {i: f"/d/{i}.png" for i in ids})
    fg = {i: {"n": 0 if i == "3" else 100, "classes": {}} for i in ids}
    params = {"common_fraction": 0.2, "rare_fraction": 0.05, "min_samples": 20}
    (f,) = decide_empty({"foreground": fg}, ctx, params)
    assert (f.sample_id, f.severity) == ("3", "warning")  # 1 of 10: too few samples to call it rare
    fg = {i: {"n": 0 if int(i) < 5 else 100, "classes": {}} for i in ids}
    found = decide_empty({"foreground": fg}, ctx, params)
    assert len(found) == 5 and {f.severity for f in found} == {"info"}
    # rare in a large dataset: 2 of 60 empty is an error
    ids = [str(i) for i in range(60)]
    ctx = DatasetContext(ids, {i: i for i in ids}, {i: f"/d/{i}.png" for i in ids})
    fg = {i: {"n": 0 if i in ("7", "40") else 100, "classes": {}} for i in ids}
    found = decide_empty({"foreground": fg}, ctx, params)
    assert [(f.sample_id, f.severity) for f in found] == [("7", "error"), ("40", "error")]
    assert "almost surely a missing annotation" in found[0].message
    assert decide_empty({"foreground": fg}, ctx, {**params, "min_samples": 100})[0].severity == "warning"


def _raw_view(raw):
    mask, report = binarise(raw)
    return view(mask, raw=raw, raw_report=report, mask_path="/d/m.png")


def test_mask_values_grey_noise_jpeg_ringing_and_clean():
    raw = rect_mask(64, value=255)
    raw[50:52, 0:10] = np.arange(20).reshape(2, 10) * 5 + 8  # 20 levels 8..103 in 20 px
    (f,) = check_mask_values(_raw_view(raw), {"jpeg_tolerance": 16})
    assert f.severity == "warning" and f.value == 20 and f.fix == "binarise"
    assert "20 grey levels (8..103) in 20 pixels outside the class map {0, 255}" in f.message
    assert f.details["to_background"] == 20 and f.details["bbox"] == [[50, 51], [0, 9]]
    jpeg = rect_mask(64, value=255)
    jpeg[16, 16:20] = 250
    jpeg[15, 16:20] = 3
    (f,) = check_mask_values(_raw_view(jpeg), {"jpeg_tolerance": 16})
    assert f.severity == "info" and "JPEG" in f.message
    assert check_mask_values(_raw_view(rect_mask(64, value=255)), {"jpeg_tolerance": 16}) == []


def test_mask_values_unknown_ids_are_an_error_without_fix():
    cm = ClassMap.from_names(["a", "b"])
    v = view(np.zeros((8, 8), np.uint8), classmap=cm, raw_bad_ids=[(7, 12)])
    (f,) = check_mask_values(v, {"jpeg_tolerance": 16})
    assert f.severity == "error" and f.fix is None and "7 (12 px)" in f.message
