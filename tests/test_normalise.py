"""Windowing, contrast enhancement and model-input conversion on realistic images."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data as skdata

from medseg.io.normalise import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    apply_window,
    clahe,
    equalize_hist,
    percentile_window,
    to_model_input,
)
from medseg.io.types import ImageData


def _synthetic_ct() -> np.ndarray:
    """A 64x64 axial CT slice in HU: air outside, soft-tissue body, two lungs, a bone."""
    yy, xx = np.mgrid[0:64, 0:64]
    ct = np.full((64, 64), -1000.0, np.float32)  # air
    body = ((yy - 32) / 28) ** 2 + ((xx - 32) / 30) ** 2 < 1
    ct[body] = 40.0  # soft tissue
    for cx in (20, 44):
        ct[((yy - 30) / 14) ** 2 + ((xx - cx) / 8) ** 2 < 1] = -850.0  # aerated lung
    ct[(yy - 52) ** 2 + (xx - 32) ** 2 < 9] = 700.0  # vertebra
    return ct.astype(np.int16)


def test_lung_window_maps_hu_as_radiologists_expect():
    lung = (-600.0, 1500.0)
    hu = np.array([-1350, -600, 150, -2000, 3000], np.int16)
    out = apply_window(hu, *lung)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.0, 0.5, 1.0, 0.0, 1.0])


def test_soft_tissue_window_on_ct_slice():
    ct = _synthetic_ct()
    out = apply_window(ct, center=40, width=400)
    assert out.min() == 0.0 and out.max() == 1.0
    assert out[32, 32] == pytest.approx(0.5)  # soft tissue sits at the window centre
    assert out[30, 20] == 0.0  # lung is black in a soft-tissue window
    assert out[52, 32] == 1.0  # bone is white
    lung = apply_window(ct, -600, 1500)
    assert 0.0 < lung[30, 20] < lung[32, 32] < 1.0  # lung window separates lung from tissue


def test_apply_window_rejects_bad_width():
    with pytest.raises(ValueError, match="positive width"):
        apply_window(np.zeros(3), 0, 0)


def test_percentile_window_on_camera():
    cam = skdata.camera()
    center, width = percentile_window(cam, 1, 99)
    lo, hi = np.percentile(cam, [1, 99])
    assert center == pytest.approx((lo + hi) / 2) and width == pytest.approx(hi - lo)
    out = apply_window(cam, center, width)
    assert (out == 0).mean() == pytest.approx(0.01, abs=0.01)
    assert (out == 1).mean() == pytest.approx(0.01, abs=0.01)


def test_percentile_window_ignores_nan_and_handles_constant():
    a = np.array([np.nan, 1.0, 2.0, 3.0, np.inf])
    center, width = percentile_window(a, 0, 100)
    assert (center, width) == (2.0, 2.0)
    assert percentile_window(np.full((4, 4), 7), 1, 99) == (7.0, 1.0)
    with pytest.raises(ValueError, match="no finite values"):
        percentile_window(np.array([np.nan, np.nan]))


@pytest.mark.parametrize(
    "make",
    [
        lambda: skdata.camera(),
        lambda: skdata.camera().astype(np.uint16) * 16,  # 12-bit range in uint16
        lambda: _synthetic_ct().astype(np.float32),  # HU, negative values
        lambda: skdata.immunohistochemistry(),  # RGB tissue
    ],
)
def test_clahe_outputs_unit_float_and_raises_local_contrast(make):
    a = make()
    out = clahe(a)
    assert out.dtype == np.float32 and out.shape == a.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    if a.ndim == 2 and a.dtype != np.float32:
        # CLAHE stretches a low-contrast corner of the camera image
        corner = (slice(0, 128), slice(0, 128))
        before = (a[corner] - a.min()) / float(a.max() - a.min())
        assert out[corner].std() > before.std()


def test_clahe_drops_alpha():
    rgba = np.dstack([skdata.astronaut()[::4, ::4], np.full((128, 128), 255, np.uint8)])
    assert clahe(rgba).shape == (128, 128, 3)


def test_equalize_hist_flattens_the_histogram():
    cam = skdata.camera()
    out = equalize_hist(cam)
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    hist, _ = np.histogram(out, bins=8, range=(0, 1))
    assert hist.max() / hist.min() < 3  # near-uniform, unlike the camera's own histogram
    hist_in, _ = np.histogram(cam, bins=8)
    assert hist_in.max() / max(hist_in.min(), 1) > 3


def test_to_model_input_grey_uint8_to_three_channels():
    cam = skdata.camera()
    x = to_model_input(cam)
    assert x.shape == (3, 512, 512) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0], x[2])
    np.testing.assert_allclose(x[1], cam / 255.0, atol=1e-6)
    assert to_model_input(cam, channels=1).shape == (1, 512, 512)


def test_to_model_input_rgba_drops_alpha_and_rgb_to_luma():
    rgb = skdata.astronaut()[::8, ::8]
    rgba = np.dstack([rgb, np.zeros(rgb.shape[:2], np.uint8)])
    img = ImageData(rgba, (1.0, 1.0), {}, rgb=True)
    x = to_model_input(img)
    assert x.shape == (3, 64, 64)
    np.testing.assert_allclose(np.moveaxis(x, 0, -1), rgb / 255.0, atol=1e-6)
    grey = to_model_input(img, channels=1)[0]
    expected = (rgb @ np.array([0.299, 0.587, 0.114])) / 255.0
    np.testing.assert_allclose(grey, expected, atol=1e-5)


def test_to_model_input_16bit_uses_its_own_range_or_a_window():
    a = np.array([[1000, 2000], [3000, 5000]], np.uint16)
    x = to_model_input(a, channels=1)
    np.testing.assert_allclose(x[0], [[0.0, 0.25], [0.5, 1.0]])
    ct = _synthetic_ct()
    lung = to_model_input(ct, channels=1, window=(-600, 1500))
    np.testing.assert_allclose(lung[0], apply_window(ct, -600, 1500))
    pct = to_model_input(ct, channels=1, window="percentile")
    assert pct.min() == 0.0 and pct.max() == 1.0


def test_to_model_input_imagenet_standardisation():
    rgb = skdata.astronaut()[::8, ::8]
    x = to_model_input(rgb, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    for c in range(3):
        np.testing.assert_allclose(x[c], (rgb[..., c] / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c], atol=1e-5)


def test_to_model_input_refuses_nan_volumes_and_bad_options():
    a = np.ones((8, 8), np.float32)
    a[2, 3] = np.nan
    a[4, 4] = np.inf
    with pytest.raises(ValueError, match="2 NaN/inf values"):
        to_model_input(a)
    with pytest.raises(ValueError, match="pick a slice"):
        to_model_input(ImageData(np.zeros((5, 8, 8), np.uint8), (1, 1, 1)))
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        to_model_input(np.zeros((8, 8)), channels=2)
    with pytest.raises(ValueError, match="window must be"):
        to_model_input(np.zeros((8, 8)), window="lung")


def test_clahe_on_a_stack_works_slice_by_slice():
    cam = skdata.camera()[::4, ::4]
    stack = np.stack([cam, cam[::-1], 255 - cam])
    out = clahe(stack)
    assert out.shape == stack.shape
    for k in range(3):
        np.testing.assert_allclose(out[k], clahe(stack[k]), atol=1e-6)
