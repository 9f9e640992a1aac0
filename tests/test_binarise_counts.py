"""binarise counts the values of an 8- or 16-bit mask instead of sorting them: the same values and counts,
so the same masks and reports (a create binarises every mask of the dataset)."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.io import binarise as binarise_module
from medseg.io.binarise import binarise


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int8, np.int16, np.int32, np.float32])
def test_value_counts_are_uniques(dtype):
    from medseg.io.binarise import _value_counts

    rng = np.random.default_rng(3)
    for shape in ((0,), (5, 7), (48, 64), (3, 4, 2)):
        for top in (1, 2, 127, 255, 65535):
            if np.dtype(dtype).kind in "iu" and top > np.iinfo(dtype).max:
                continue
            a = rng.integers(0, top + 1, shape).astype(dtype)
            values, counts = _value_counts(a)
            want_values, want_counts = np.unique(a, return_counts=True)
            assert values.dtype == want_values.dtype and counts.dtype == want_counts.dtype
            assert np.array_equal(values, want_values) and np.array_equal(counts, want_counts)


def test_a_grey_uint8_mask_is_binarised_without_a_sort(monkeypatch):
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 10:40] = 255
    mask[2, :5] = [3, 60, 128, 200, 254]  # grey levels on both sides of the threshold
    want = binarise(mask)
    monkeypatch.setattr(binarise_module.np, "unique", lambda *a, **k: pytest.fail("np.unique sorted the mask"))
    out, report = binarise(mask)
    assert np.array_equal(out, want[0]) and report == want[1]
    assert report.grey_levels == [3, 60, 128, 200, 254] and report.n_to_background == 2
