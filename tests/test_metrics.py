"""Dice, IoU, HD95, ASSD: hand-computed answers, empty cases, the accumulator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medseg.training.metrics import MetricAccumulator, dice_iou, to_masks
from medseg.training.surface_metrics import (
    assd,
    hausdorff_distance,
    hd95,
    image_diagonal,
    surface,
)


def _square(top: int, left: int, size: int = 10, shape=(32, 32)) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[top : top + size, left : left + size] = True
    return m


def test_dice_iou_by_hand():
    a, b = _square(0, 0, 4, (8, 8)), _square(0, 2, 4, (8, 8))  # 16 px each, 8 shared
    dice, iou = dice_iou(a[None, None], b[None, None])
    assert dice[0, 0] == pytest.approx(16 / 32) and iou[0, 0] == pytest.approx(8 / 24)


def test_squares_offset_by_three_pixels():
    a, b = _square(10, 10), _square(10, 13)
    for spacing, px in [(None, 1.0), ((0.7, 1.0), 1.0), ((0.5, 2.5), 2.5)]:
        # a quarter of A's surface (its left edge) lies 3 columns from B's: HD95 = HD = 3 columns
        assert hd95(a, b, spacing) == pytest.approx(3 * px)
        assert hausdorff_distance(a, b, spacing, percentile=100) == pytest.approx(3 * px)


def test_single_pixels_three_four_five():
    a, b = np.zeros((6, 6), bool), np.zeros((6, 6), bool)
    a[0, 0], b[3, 4] = True, True
    assert hd95(a, b) == pytest.approx(5.0) and assd(a, b) == pytest.approx(5.0)
    assert hd95(a, b, (2.0, 0.5)) == pytest.approx(math.hypot(6, 2))


def test_assd_pools_both_directions():
    a = np.zeros((7, 7), bool)
    a[3, 3] = True
    b = _square(2, 2, 3, (7, 7))  # 3x3 block around a's pixel: 8 surface pixels
    # a -> b: 1; b -> a: four edge-neighbours at 1, four corners at sqrt(2); pooled over 9 distances
    assert assd(a, b) == pytest.approx((1 + 4 + 4 * math.sqrt(2)) / 9)
    assert assd(a, b, (1.0, 3.0)) == pytest.approx((1 + 2 + 2 * 3 + 4 * math.sqrt(10)) / 9)


def test_surface_of_a_mask_touching_the_image_edge():
    m = np.zeros((4, 4), bool)
    m[:, :2] = True
    assert surface(m).sum() == 8  # the outside counts as background


def test_empty_cases():
    empty, full = np.zeros((8, 8), bool), _square(2, 2, 3, (8, 8))
    assert hd95(empty, empty) == 0 and assd(empty, empty) == 0
    assert math.isnan(hd95(empty, full)) and math.isnan(assd(full, empty))
    assert hd95(full, empty, empty_value=99.0) == 99.0
    dice, iou = dice_iou(np.stack([empty, empty, full])[None], np.stack([empty, full, empty])[None])
    np.testing.assert_array_equal(dice, [[1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(iou, [[1.0, 0.0, 0.0]])
    assert image_diagonal((3, 4), (2.0, 1.0)) == pytest.approx(math.hypot(6, 4))


def test_to_masks_reads_logits_and_labels():
    logits = torch.tensor([[[[2.0, -1.0]], [[0.0, 3.0]]]])  # (1, 2, 1, 2): argmax 0, 1
    np.testing.assert_array_equal(to_masks(logits, "multiclass", 2), [[[[True, False]], [[False, True]]]])
    np.testing.assert_array_equal(
        to_masks(torch.tensor([[[0, 1]]]), "multiclass", 2), to_masks(logits, "multiclass", 2)
    )
    binary_logits = torch.tensor([[[[0.5, -0.5]]]], dtype=torch.bfloat16)
    np.testing.assert_array_equal(to_masks(binary_logits, "binary", 1), [[[[True, False]]]])
    np.testing.assert_array_equal(to_masks(np.array([[[1, 0]]]), "binary", 1), [[[[True, False]]]])
    with pytest.raises(ValueError, match="multilabel"):
        to_masks(np.zeros((1, 4, 4)), "multilabel", 3)
    with pytest.raises(ValueError, match="3 channel"):
        to_masks(np.zeros((1, 2, 4, 4)), "multilabel", 3)


def test_accumulator_means_per_class_over_images_then_over_classes():
    t = np.zeros((2, 32, 32), np.int64)
    t[0][_square(10, 10)] = 1
    t[0][_square(0, 0, 5)] = 2
    t[1][_square(10, 10)] = 1  # class 2 absent in image 1
    p = np.zeros_like(t)
    p[0][_square(10, 13)] = 1
    p[0][_square(0, 0, 5)] = 2
    p[1][_square(10, 10)] = 1
    p[1][_square(25, 25, 3)] = 2  # a false positive for class 2
    acc = MetricAccumulator("multiclass", 3, class_names=["bg", "liver", "tumour"])
    batch = acc.update(torch.from_numpy(p), torch.from_numpy(t), spacing=(1.0, 2.0))
    assert batch["dice"].shape == (2, 2)
    r = acc.compute()
    assert r["images"] == 2
    assert r["dice/liver"] == pytest.approx((0.7 + 1.0) / 2) and r["dice/tumour"] == pytest.approx(0.5)
    assert r["dice"] == pytest.approx((0.85 + 0.5) / 2)
    assert r["iou/liver"] == pytest.approx((70 / 130 + 1) / 2)
    assert r["hd95/liver"] == pytest.approx((6.0 + 0.0) / 2)  # 3 columns x 2.0
    assert r["hd95/tumour"] == 0.0 and r["hd95_undefined"] == 1  # image 1's false positive: NaN, left out
    assert r["hd95"] == pytest.approx((3.0 + 0.0) / 2)
    assert "dice/bg" not in r


def test_accumulator_empty_distance_choices_and_per_image_spacing():
    t = np.zeros((2, 1, 8, 8), np.uint8)
    t[0, 0, 2:5, 2:5] = 1
    p = np.zeros_like(t)  # image 0 missed entirely, image 1 empty on both sides
    diag = MetricAccumulator("binary", 1, empty_distance="diagonal")
    diag.update(p, t, spacing=[(1.0, 1.0), (3.0, 4.0)])
    r = diag.compute()
    assert r["hd95"] == pytest.approx((math.hypot(8, 8) + 0.0) / 2) and r["hd95_undefined"] == 0
    fixed = MetricAccumulator("binary", 1, empty_distance=50.0)
    fixed.update(p[:, 0], t[:, 0])
    assert fixed.compute()["assd"] == pytest.approx(25.0)
    nan = MetricAccumulator("binary", 1)
    nan.update(p, t)
    r = nan.compute()
    assert r["dice"] == pytest.approx(0.5) and r["hd95/0"] == 0.0 and r["hd95_undefined"] == 1
    only_missed = MetricAccumulator("binary", 1)
    only_missed.update(p[:1], t[:1])
    assert math.isnan(only_missed.compute()["hd95"]) and math.isnan(only_missed.compute()["assd/0"])
    with pytest.raises(ValueError, match="per image"):
        nan.update(p, t, spacing=np.ones((3, 2)))


def test_accumulator_multilabel_overlap_and_reset():
    t = np.zeros((1, 2, 16, 16), np.float32)
    t[0, 0, 2:10, 2:10] = 1
    t[0, 1, 4:14, 4:14] = 1  # overlapping
    logits = torch.from_numpy(t * 8 - 4)
    acc = MetricAccumulator("multilabel", 2, surface=False)
    acc.update(logits, t)
    r = acc.compute()
    assert r["dice"] == 1.0 and r["iou"] == 1.0 and "hd95" not in r
    acc.reset()
    assert acc.compute() == {"images": 0.0}


def test_accumulator_volumes():
    t = np.zeros((1, 6, 8, 8), bool)
    t[0, 1:4, 2:6, 2:6] = True
    p = np.roll(t, 1, axis=1)  # shifted one slice
    acc = MetricAccumulator("binary", 1, spatial_dims=3)
    acc.update(p, t, spacing=(2.5, 0.8, 0.8))
    assert acc.compute()["hd95"] == pytest.approx(2.5)
