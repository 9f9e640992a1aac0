"""edge_maps' cheaper edge strength, typical strength, median and erosion give what the plain numpy / scipy
expressions they replaced give, to the bit (issue 19, item 4: QC's outline measure at 100,000 samples).

The plain expressions are the code before the change, written out here: the channels' gradient magnitudes
squared and summed into a zeroed array, ``edges[np.isfinite(edges)]`` and ``np.median``, and scipy's erosion.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from medseg.qc.edge_maps import edge_strength, eroded, median, typical_strength


def _plain_edge_strength(image, channels_last, field=None):
    a = np.asarray(image, dtype=np.float32)
    if not channels_last:
        a = a[..., None]
    a = a[..., : min(a.shape[-1], 3)]
    sigma = max(1.0, min(a.shape[:2]) / 150.0)
    total = np.zeros(a.shape[:2], np.float32)
    for c in range(a.shape[-1]):
        total += ndi.gaussian_gradient_magnitude(np.ascontiguousarray(a[..., c]), sigma) ** 2
    total = np.sqrt(total)
    if field is not None and not field.all() and field.shape == total.shape:
        total[ndi.distance_transform_edt(field) <= 3 * sigma] = np.nan
    return total


def _plain_typical(edges):
    judged = edges[np.isfinite(edges)]
    live = judged[judged > 0.01 * float(judged.max())] if judged.size else judged
    return float(np.median(live)) if live.size else 0.0


def _bits(x: float) -> bytes:
    return np.float64(x).tobytes()


@pytest.mark.parametrize("shape", [(48, 64, 3), (48, 64), (37, 23, 4), (9, 5, 2), (288, 384, 3), (300, 451)])
def test_edge_strength_is_the_plain_expression(shape):
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, shape).astype(np.uint8)
    rgb = len(shape) == 3
    h, w = shape[:2]
    yy, xx = np.mgrid[:h, :w]
    fields = [None, np.ones((h, w), bool), (yy - h / 2) ** 2 / (0.45 * h) ** 2 + (xx - w / 2) ** 2 / (0.5 * w) ** 2 < 1]
    for field in fields:
        got, want = edge_strength(image, rgb, field), _plain_edge_strength(image, rgb, field)
        assert got.dtype == np.float32 and got.tobytes() == want.tobytes(), (shape, field is None)
    floats = rng.normal(0, 1e3, shape).astype(np.float64)  # a float image, values of any sign and size
    assert edge_strength(floats, rgb).tobytes() == _plain_edge_strength(floats, rgb).tobytes()


def test_median_is_numpys():
    rng = np.random.default_rng(5)
    for trial in range(2000):
        n = int(rng.integers(1, 40)) if trial % 4 else int(rng.integers(1, 5000))
        dtype = np.float32 if trial % 3 else np.float64
        values = rng.normal(0, 10 ** rng.uniform(-3, 6), n).astype(dtype)
        if trial % 5 == 0:  # ties, as flat regions give: few distinct values
            values = rng.choice(values[:3], n)
        if trial % 7 == 0:  # two huge middle values whose sum overflows float32 in np.mean too
            values = np.full(n, np.finfo(dtype).max, dtype)
        kept = values.copy()
        with np.errstate(over="ignore"):
            want = float(np.median(values))
            got = median(values)
        assert _bits(got) == _bits(want), (trial, n, dtype)
        assert values.tobytes() == kept.tobytes()  # the caller's array is left as it was


def test_typical_strength_is_the_plain_expression():
    rng = np.random.default_rng(6)
    for trial in range(1500):
        h, w = (int(x) for x in rng.integers(1, 60, 2))
        edges = (rng.random((h, w)) ** 3 * rng.uniform(0.1, 100)).astype(np.float32)
        if trial % 3 == 0:
            edges[rng.random((h, w)) < rng.random()] = np.nan  # unjudged pixels near a field of view's rim
        if trial % 11 == 0:
            edges[rng.random((h, w)) < 0.1] = np.inf
        if trial % 13 == 0:
            edges[:] = np.nan if trial % 2 else 0.0
        with np.errstate(invalid="ignore"):
            assert _bits(typical_strength(edges)) == _bits(_plain_typical(edges)), trial
    assert typical_strength(np.zeros((0, 5), np.float32)) == 0.0


def test_flat_erosion_is_scipys():
    rng = np.random.default_rng(7)
    shapes = [(1, 1), (1, 9), (2, 2), (2, 8), (8, 2), (3, 3), (3, 40), (40, 3)]
    shapes += [tuple(int(x) for x in rng.integers(1, 70, 2)) for _ in range(500)]
    for i, shape in enumerate(shapes):
        region = rng.random(shape) < rng.random()
        if i % 2:
            region = ndi.binary_closing(region)
        want = ndi.binary_erosion(region, border_value=0)
        assert np.array_equal(eroded(region), want), shape
        if shape[0] > 1:  # a strided view (a window of a larger mask, a transposed one) erodes the same
            assert np.array_equal(eroded(region[::2]), ndi.binary_erosion(region[::2], border_value=0)), shape
        assert np.array_equal(eroded(region.T), ndi.binary_erosion(region.T, border_value=0)), shape
    ring = np.zeros((6, 6), bool)  # pixels at a row's end whose flat neighbour is the next row's start
    ring[:, -1] = ring[:, 0] = True
    ring[2:4, :] = True
    assert np.array_equal(eroded(ring), ndi.binary_erosion(ring, border_value=0))
    assert eroded(np.ones((3, 3), bool)).sum() == 1 and eroded(np.ones((5, 7), bool))[1:-1, 1:-1].all()
