"""The outline measure's faster paths give what the plain numpy / scipy expressions give, to the bit.

QC's stored outline-fit scores and details are floats kept as they are: the slice erosion, the
gathered candidate outlines and the cached Gaussian kernels must change nothing in them.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from medseg.qc.edge_maps import eroded, gaussian_passes, gradient_magnitude, near_outside
from medseg.qc.outline_fit import _candidates, _outline, corrected, outline_fit
from tests._qc_data import BINARY, view


def _blobs(rng, shape, fill):
    region = rng.random(shape) < fill
    return ndi.binary_opening(region) if rng.random() < 0.5 else region


def _plain_outline(region):
    return region & ~ndi.binary_erosion(region, border_value=0)


def _plain_mean(edges, region):
    values = edges[_plain_outline(region)]
    judged = values[np.isfinite(values)]
    return float(judged.mean()) if judged.size and judged.size >= 0.5 * values.size else float("nan")


def test_slice_erosion_outline_is_scipys():
    rng = np.random.default_rng(0)
    shapes = [(1, 1), (1, 7), (2, 5), (3, 3), (5, 2)] + [tuple(rng.integers(1, 40, 2)) for _ in range(300)]
    for shape in shapes:
        region = _blobs(rng, shape, rng.random())
        assert np.array_equal(_outline(region), _plain_outline(region)), shape
        assert np.array_equal(eroded(eroded(region)), ndi.binary_erosion(region, iterations=2)), shape
    assert np.array_equal(_outline(np.ones((4, 4), bool)), ~np.pad(np.ones((2, 2), bool), 1))
    for shape in [(4, 4), (5, 5), (48, 64)]:  # a field of view without a dark surround, as sharpness erodes it
        full = np.ones(shape, bool)
        assert np.array_equal(eroded(eroded(full)), ndi.binary_erosion(full, iterations=2))


@pytest.mark.parametrize("sigma", [1.0, 1.37, 1.92, 3.5])
def testgaussian_passes_are_gaussian_filter(sigma):
    rng = np.random.default_rng(1)
    for shape in [(1, 9, 3), (48, 64, 1), (37, 23, 3), (288, 384, 3)]:
        a = (rng.random(shape) * 255).astype(np.float32)
        for orders in ((1, 0), (0, 1)):
            want = ndi.gaussian_filter(a, (sigma, sigma, 0), order=(*orders, 0))
            assert gaussian_passes(a, sigma, orders).tobytes() == want.tobytes()
    grey = rng.random((40, 30)).astype(np.float32)  # a 2-D array: every axis filtered
    assert gaussian_passes(grey, sigma, (1, 0)).tobytes() == ndi.gaussian_filter(grey, sigma, order=(1, 0)).tobytes()
    want = ndi.gaussian_gradient_magnitude(grey, sigma)
    assert want.dtype == np.float32 and gradient_magnitude(grey, sigma).tobytes() == want.tobytes()


def test_gathered_candidates_equal_each_corrected_outline_alone():
    """Moves inside the window (gathered), moves off its edge and grow / shrink (eroded), with and without
    unjudged (NaN) edges: each strength is the corrected region's own outline mean."""
    rng = np.random.default_rng(2)
    checked = gathered = 0
    for trial in range(200):
        h, w = (int(x) for x in rng.integers(8, 40, 2))
        region = np.zeros((h, w), bool)
        y0, x0 = int(rng.integers(0, h - 3)), int(rng.integers(0, w - 3))
        region[y0 : y0 + int(rng.integers(2, h - y0 + 1)), x0 : x0 + int(rng.integers(2, w - x0 + 1))] = True
        region &= ~(rng.random((h, w)) < 0.1)
        if not region.any():
            continue
        edges = rng.random((h, w)).astype(np.float32) * 50
        if trial % 3 == 0:
            edges[rng.random((h, w)) < 0.3] = np.nan
        outside, inside = ndi.distance_transform_edt(~region), ndi.distance_transform_edt(region)
        corrections = [("move", dy * k, dx * k) for k in (1, 2, 3) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        corrections += [("grow", 2), ("shrink", 1), ("move", 0, 0)]
        got = _candidates(edges, region, _plain_outline(region), corrections, outside, inside)
        for c, value in zip(corrections, got):
            want = _plain_mean(edges, corrected(region, c, outside, inside))
            assert (np.isnan(want) and np.isnan(value)) or value == want, (trial, c)
            checked += 1
        rows, cols = np.flatnonzero(region.any(1)), np.flatnonzero(region.any(0))
        gathered += rows[0] >= 2 and rows[-1] <= h - 3 and cols[0] >= 2 and cols[-1] <= w - 3
    assert checked > 5000 and gathered > 10  # both paths were taken


def test_outline_fit_with_the_views_components_is_the_same():
    rng = np.random.default_rng(3)
    image = (ndi.gaussian_filter(rng.normal(90, 30, (60, 80, 3)), (1.5, 1.5, 0))).clip(0, 255).astype(np.uint8)
    mask = np.zeros((60, 80), np.uint8)
    yy, xx = np.mgrid[:60, :80]
    mask[(yy - 20) ** 2 + (xx - 20) ** 2 <= 81] = 1
    mask[(yy - 40) ** 2 + (xx - 55) ** 2 <= 100] = 1
    mask[5:8, 70:73] = 1  # under min_pixels
    image[mask > 0] += 40
    v = view(mask, image, BINARY)
    alone = outline_fit(image, v.class_masks(), channels_last=True)
    shared = outline_fit(image, v.class_masks(), channels_last=True, components=v.components)
    assert len(alone.objects) == 2 and alone == shared


def test_near_outside_is_the_distance_transform_under_a_radius():
    rng = np.random.default_rng(4)
    radii = [1.0, 2.0, 3.0, 2.9999, 3.0000001, 5.76, 12.5]
    for trial in range(600):
        h, w = (int(x) for x in rng.integers(1, 50, 2))
        field = rng.random((h, w)) > 0.05 * rng.random()
        if trial % 2:
            field = ndi.binary_opening(field, iterations=2) | (rng.random((h, w)) < 0.9)
        if field.all():
            field[int(rng.integers(h)), int(rng.integers(w))] = False
        radius = radii[trial % len(radii)]
        assert np.array_equal(near_outside(field, radius), ndi.distance_transform_edt(field) <= radius), trial
    yy, xx = np.mgrid[:288, :384]  # an endoscope's round field of view, sigma 1.92 as on CVC-ClinicDB frames
    field = (yy - 144) ** 2 / 140**2 + (xx - 192) ** 2 / 185**2 < 1
    assert np.array_equal(near_outside(field, 3 * 1.92), ndi.distance_transform_edt(field) <= 3 * 1.92)
