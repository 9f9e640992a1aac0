"""The reviewer's label helpers (engine, pure numpy/scipy)."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.datasets.classmap import ClassMap
from medseg.errors import UnknownNameError
from medseg.qc.edits import (
    EDITS,
    apply_edit,
    dilate,
    erode,
    fill_holes,
    remove_specks,
    smooth,
)
from medseg.qc.fixes import FixError

BINARY = ClassMap.binary("polyp")
THREE = ClassMap.from_names(["liver", "kidney", "spleen"])
OVERLAP = ClassMap.from_names(["large_bowel", "small_bowel"], task="multilabel")


def boxes() -> np.ndarray:
    m = np.zeros((30, 40), np.uint8)
    m[5:15, 5:20] = 1
    m[5:15, 20:30] = 2  # touches class 1 along column 20
    return m


def test_fill_holes_and_remove_specks_by_size():
    m = np.zeros((30, 40), np.uint8)
    m[5:20, 5:20] = 1
    m[10:12, 10:12] = 0  # a hole
    m[25:27, 30:33] = 1  # a 6-pixel speck
    m[0, 39] = 1  # a 1-pixel speck
    filled = fill_holes(m, BINARY)
    assert filled[10:12, 10:12].all() and (filled != m).sum() == 4
    assert remove_specks(m, BINARY, min_pixels=2)[0, 39] == 0
    kept = remove_specks(m, BINARY, min_pixels=6)  # fewer than 6 pixels: the 6-pixel speck stays
    assert kept[25:27, 30:33].all() and kept[0, 39] == 0
    assert remove_specks(m, BINARY, min_pixels=7)[25:27, 30:33].sum() == 0
    with pytest.raises(FixError, match="min_pixels must be >= 1"):
        remove_specks(m, BINARY, min_pixels=0)


def test_dilate_grows_into_background_only_and_erode_undoes_it():
    m = boxes()
    grown = dilate(m, THREE)
    # 10x25 union: one ring of face neighbours (no corners), nothing taken from the other class
    assert (grown > 0).sum() == (m > 0).sum() + 2 * (10 + 25)
    assert np.array_equal(grown[5:15, 5:30], m[5:15, 5:30]) and grown[4, 5] == 1 and grown[4, 29] == 2
    assert grown[10, 30] == 2 and grown[10, 4] == 1
    np.testing.assert_array_equal(erode(grown, THREE), np.where(np.isin(m, [1, 2]), m, 0) * _inner(m))


def _inner(m):
    """Erosion also opens the seam where classes 1 and 2 touch: one column of each becomes background."""
    keep = np.ones_like(m)
    keep[5:15, 19:21] = 0
    return keep


def test_erode_keeps_objects_at_the_image_border():
    m = np.zeros((10, 10), np.uint8)
    m[0:4, 0:4] = 1
    eroded = erode(m, BINARY)
    assert eroded[0, 0] == 1 and eroded[0:3, 0:3].all() and eroded[3].sum() == 0 and eroded[:, 3].sum() == 0


def test_only_the_chosen_class_changes():
    m = boxes()
    grown = dilate(m, THREE, classes=[2])
    assert grown[4, 5] == 0 and grown[4, 25] == 2
    shrunk = erode(m, THREE, classes=[1])
    assert (shrunk == 2).sum() == (m == 2).sum() and (shrunk == 1).sum() < (m == 1).sum()


def test_smooth_removes_spurs_and_notches_and_ties_keep_the_pixel():
    m = np.zeros((20, 20), np.uint8)
    m[5:15, 5:15] = 1
    m[4, 10] = 1  # spur
    m[14, 8] = 0  # notch in the bottom edge
    s = smooth(m, BINARY)
    assert s[4, 10] == 0 and s[14, 8] == 1
    assert s[6:14, 6:14].all() and s[:3].sum() == 0
    tie = np.array([[1, 1, 2], [1, 1, 2], [0, 2, 2]], np.uint8)  # centre: four 1s (itself included), four 2s
    assert smooth(tie, THREE)[1, 1] == 1
    flat = np.ones((6, 6), np.uint8)
    np.testing.assert_array_equal(smooth(flat, BINARY), flat)


def test_multilabel_edits_work_per_class_channel():
    m = np.zeros((20, 24, 2), bool)
    m[4:12, 4:12, 0] = True
    m[8:16, 8:20, 1] = True  # overlaps class 0
    m[6:8, 6:8, 0] = False  # hole in class 0 only
    filled = fill_holes(m, OVERLAP)
    assert filled[6:8, 6:8, 0].all() and np.array_equal(filled[..., 1], m[..., 1])
    grown = dilate(m, OVERLAP, classes=[2])
    assert np.array_equal(grown[..., 0], m[..., 0]) and grown[..., 1].sum() == m[..., 1].sum() + 2 * (8 + 12)
    new, summary = apply_edit("erode", m, OVERLAP)
    assert new.dtype == bool and summary["edit"] == "erode" and summary["n_changed"] == int((new != m).any(-1).sum())


def test_volumes_use_face_neighbours_in_3d():
    v = np.zeros((5, 6, 6), np.uint8)
    v[2, 2:4, 2:4] = 1
    grown = dilate(v, BINARY)
    assert grown[1, 2:4, 2:4].all() and grown[3, 2:4, 2:4].all() and grown.sum() == 4 + 4 * 2 + 8


def test_apply_edit_summary_and_unknown_name():
    m = boxes()
    new, summary = apply_edit("dilate", m, THREE)
    assert (
        summary == {"edit": "dilate", "params": {}, "n_changed": int((new != m).sum())} and summary["n_changed"] == 70
    )
    assert set(EDITS) == {"fill_holes", "remove_specks", "smooth", "dilate", "erode"}
    with pytest.raises(UnknownNameError, match="unknown label edit 'blur'"):
        apply_edit("blur", m, THREE)
    with pytest.raises(FixError, match="label edit 'smooth'"):
        apply_edit("smooth", m, THREE, radius=2)
