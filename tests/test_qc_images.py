"""Image checks: dark, over-exposed, blurred; the dark-surround rule."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from medseg.qc.checks_base import DatasetContext
from medseg.qc.checks_images import (
    check_over_exposed,
    check_too_dark,
    decide_blurred,
    sharpness,
    surround,
)
from tests._qc_data import natural, view

DARK = {"max_mean": 0.15, "blank_mean": 0.03}
BRIGHT = {"saturated_level": 0.98, "max_saturated": 0.2, "max_mean": 0.85, "blank_mean": 0.97}
EMPTY = np.zeros((64, 64), np.uint8)


def _disk_frame(inside: float, radius: int = 16, size: int = 64, surround_level: int = 5) -> np.ndarray:
    """An endoscope-like frame: a lit disk of brightness ``inside`` in a near-black surround."""
    yy, xx = np.mgrid[:size, :size]
    disk = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < radius**2
    img = np.full((size, size, 3), surround_level, np.uint8)
    img[disk] = int(inside * 255)
    return img


def test_too_dark_triggers_and_a_normal_photo_does_not():
    photo = natural("astronaut")
    assert check_too_dark(view(EMPTY, photo), DARK) == []
    (f,) = check_too_dark(view(EMPTY, (photo * 0.2).astype(np.uint8)), DARK)
    assert f.severity == "warning" and f.value < 0.15
    (f,) = check_too_dark(view(EMPTY, np.full((64, 64, 3), 2, np.uint8)), DARK)
    assert f.severity == "error"


def test_dark_surround_is_not_counted_as_darkness():
    img = _disk_frame(0.6)  # whole-image mean ~0.14, the lit field of view 0.6
    assert img.mean() / 255 < 0.15
    assert surround(img[..., 0] / 255.0).mean() > 0.7
    assert check_too_dark(view(EMPTY, img), DARK) == []
    (f,) = check_too_dark(view(EMPTY, _disk_frame(0.1)), DARK)
    assert abs(f.value - 0.1) < 0.01  # measured inside the disk only


def test_over_exposed_saturation_and_blank_white():
    photo = natural("coffee")
    assert check_over_exposed(view(EMPTY, photo), BRIGHT) == []
    burnt = photo.copy()
    burnt[:32] = 255  # half the frame saturated
    (f,) = check_over_exposed(view(EMPTY, burnt), BRIGHT)
    assert f.severity == "warning" and 0.45 < f.value < 0.6
    (f,) = check_over_exposed(view(EMPTY, np.full((64, 64, 3), 255, np.uint8)), BRIGHT)
    assert f.severity == "error"


def test_exposure_is_not_judged_on_16bit_images():
    ct_like = np.full((64, 64), 40, np.uint16)  # dark in 16-bit terms, but its range is unknown
    assert check_too_dark(view(EMPTY, ct_like), DARK) == []
    assert sharpness(view(EMPTY, ct_like)) == 0.0  # blur is still measured (windowed to its own range)


def test_blurred_is_relative_to_the_dataset_median():
    names = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "camera"]
    images = {n: natural(n, 96) for n in names}
    blurred = ndi.gaussian_filter(natural("brick", 96).astype(float), sigma=(2.5, 2.5, 0)).astype(np.uint8)
    images["brick_blurred"] = blurred
    table = {"sharpness": {n: sharpness(view(np.zeros((96, 96), np.uint8), img)) for n, img in images.items()}}
    ids = list(images)
    ctx = DatasetContext(ids, {i: i for i in ids}, {i: i for i in ids})
    found = decide_blurred(table, ctx, {"max_ratio": 0.25, "min_samples": 5})
    assert [f.sample_id for f in found] == ["brick_blurred"]
    assert found[0].value < 0.25 and "median" in found[0].message
    # too few images: no median to judge against
    small = {"sharpness": {i: table["sharpness"][i] for i in ids[:3]}}
    assert decide_blurred(small, DatasetContext(ids[:3], {}, {}), {"max_ratio": 0.25, "min_samples": 5}) == []
