"""apply_fix on hand-counted masks."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.datasets import ClassMap
from medseg.errors import UnknownNameError
from medseg.qc.fixes import FixError, apply_fix
from tests._qc_data import BINARY, rect_mask

MULTI = ClassMap.from_names(["a", "b"])


def test_binarise_counts_grey_pixels_as_joining_a_class():
    raw = np.zeros((10, 10), np.uint8)
    raw[:5] = 255  # 50 px clean foreground
    raw[5, :4] = 40  # 4 px faint noise -> background
    raw[6, :3] = 200  # 3 px bright grey -> foreground
    new, s = apply_fix("binarise", raw, BINARY)
    assert new.dtype == np.uint8 and set(np.unique(new)) == {0, 1} and new.sum() == 53
    assert s["n_changed"] == 7 and s["gained"] == {0: 4, 1: 3} and s["lost"] == {0: 0, 1: 0}
    assert s["changed"] == {1: 3} and s["report"]["grey_levels"] == [40, 200]
    same, s = apply_fix("binarise", new, BINARY)  # a clean 0/1 mask: nothing to do
    assert np.array_equal(same, new) and s["n_changed"] == 0


def test_remove_specks_removes_only_the_small_component():
    m = rect_mask(64, (10, 30, 10, 35), 1)  # 500 px
    m[50, 50:55] = 1  # 5 px
    new, s = apply_fix("remove_specks", m, BINARY)
    assert new.sum() == 500 and new[50, 50:55].sum() == 0
    assert s["n_components"] == 1 and s["max_pixels"] == 19
    assert s["n_changed"] == 5 and s["lost"][1] == 5 and s["gained"][0] == 5 and s["changed"] == {1: 5}
    assert m[50, 50:55].sum() == 5  # the input is untouched


def test_remove_specks_gives_an_embedded_speck_the_surrounding_class():
    m = np.zeros((64, 64), np.uint8)
    m[5:40, 5:40] = 1
    m[20:22, 20:22] = 2  # 4 px of class 2 inside class 1
    m[50:60, 50:60] = 2  # a real class-2 object
    new, s = apply_fix("remove_specks", m, MULTI, max_pixels=10)
    assert (new[20:22, 20:22] == 1).all() and (new[50:60, 50:60] == 2).all()
    assert s["gained"][1] == 4 and s["lost"][2] == 4 and s["changed"] == {1: 4, 2: 4}
    m[45, 5] = 1  # a 1 px speck of class 1
    new, s = apply_fix("remove_specks", m, MULTI, max_pixels=10, classes=[1])
    assert new[45, 5] == 0 and (new[20:22, 20:22] == 2).all() and s["n_components"] == 1


def test_fill_holes_fills_small_holes_and_spares_large_ones_when_asked():
    m = np.zeros((64, 64), np.uint8)
    m[2:30, 2:30] = 1
    m[10:13, 10:13] = 0  # 9 px hole in a 775 px object
    m[34:62, 34:62] = 1
    m[37:59, 37:59] = 0  # 484 px interior of a 300 px ring
    new, s = apply_fix("fill_holes", m, BINARY, max_fraction=0.25)
    assert s["n_holes"] == 1 and s["changed"] == {1: 9} and (new[10:13, 10:13] == 1).all()
    assert (new[37:59, 37:59] == 0).all()
    new, s = apply_fix("fill_holes", m, BINARY)
    assert s["n_holes"] == 2 and s["changed"] == {1: 9 + 484}


def test_fill_holes_uses_the_enclosing_class():
    m = np.zeros((32, 32), np.uint8)
    m[4:20, 4:20] = 2
    m[8:10, 8:10] = 0
    new, s = apply_fix("fill_holes", m, MULTI)
    assert (new[8:10, 8:10] == 2).all() and s["gained"] == {0: 0, 1: 0, 2: 4}


def test_multilabel_fixes_work_per_channel():
    cm = ClassMap.from_names(["a", "b"], task="multilabel")
    m = np.zeros((32, 32, 2), bool)
    m[2:20, 2:20, 0] = True
    m[5:8, 5:8, 0] = False  # 9 px hole in channel a
    m[10:25, 10:25, 1] = True
    m[30, 30, 1] = True  # 1 px speck in channel b
    new, s = apply_fix("fill_holes", m, cm)
    assert new[5:8, 5:8, 0].all() and s["changed"] == {1: 9, 2: 0}
    new, s = apply_fix("remove_specks", m, cm, max_pixels=3)
    assert not new[30, 30, 1] and s["changed"] == {1: 0, 2: 1} and s["n_changed"] == 1


def test_fix_errors_name_the_problem():
    with pytest.raises(UnknownNameError, match="fill_holes"):
        apply_fix("fill_hole", np.zeros((4, 4), np.uint8), BINARY)
    with pytest.raises(FixError, match="binary class maps"):
        apply_fix("binarise", np.zeros((4, 4), np.uint8), MULTI)
    with pytest.raises(FixError, match="min_size"):
        apply_fix("remove_specks", np.zeros((4, 4), np.uint8), BINARY, min_size=3)
