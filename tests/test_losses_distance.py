"""Signed distance maps, the boundary loss and the Hausdorff DT loss against hand-computed values."""

from __future__ import annotations

import math

import albumentations as A
import numpy as np
import pytest
import torch
from scipy import ndimage

from medseg.errors import MissingDistanceMapsError
from medseg.training.distance_losses import BoundaryLoss, HausdorffDTLoss
from medseg.training.distance_maps import (
    DistanceMaps,
    class_distance_maps,
    resized_spacing,
    signed_distance_map,
)


def _strip() -> np.ndarray:
    m = np.zeros((5, 5), bool)
    m[:, :2] = True  # left two columns foreground
    return m


def test_strip_with_anisotropic_spacing_exact_values():
    # columns 2 units apart: col 1 is the boundary (0), col 0 one column inside, cols 2-4 outside
    d = signed_distance_map(_strip(), spacing=(1.0, 2.0))
    assert d.dtype == np.float32
    np.testing.assert_array_equal(d, np.tile([-2.0, 0.0, 2.0, 4.0, 6.0], (5, 1)))
    assert not np.signbit(d[:, 1]).any()  # +0 on the boundary, not -0
    rows = signed_distance_map(_strip().T, spacing=(1.0, 2.0))  # the strip along rows: spacing 1
    np.testing.assert_array_equal(rows, np.tile([-1.0, 0.0, 1.0, 2.0, 3.0], (5, 1)).T)


def test_single_pixel_gives_euclidean_distances():
    m = np.zeros((5, 5), bool)
    m[2, 2] = True
    d = signed_distance_map(m, spacing=(3.0, 4.0))
    assert d[2, 2] == 0 and d[2, 3] == 4 and d[3, 2] == 3
    assert d[3, 3] == pytest.approx(5.0) and d[0, 0] == pytest.approx(10.0)


def test_volume_with_slice_spacing():
    m = np.zeros((4, 3, 3), bool)
    m[:2] = True  # two slices of foreground, slices 2.5 apart
    d = signed_distance_map(m, spacing=(2.5, 1.0, 1.0))
    for z, v in enumerate([-2.5, 0.0, 2.5, 5.0]):
        np.testing.assert_allclose(d[z], v)


def test_unit_spacing_matches_kervadec_formula_on_a_rectangle():
    m = np.zeros((12, 10), bool)
    m[3:10, 2:7] = True
    kervadec = ndimage.distance_transform_edt(~m) * ~m - (ndimage.distance_transform_edt(m) - 1) * m
    np.testing.assert_allclose(signed_distance_map(m), kervadec)


def test_empty_and_full_masks_give_zeros():
    for m in (np.zeros((6, 6), bool), np.ones((6, 6), bool)):
        d = signed_distance_map(m, spacing=(0.5, 0.5))
        assert d.shape == (6, 6) and not d.any()


def test_bad_spacing_and_shape():
    with pytest.raises(ValueError, match="spacing"):
        signed_distance_map(_strip(), spacing=(1.0, 0.0))
    with pytest.raises(ValueError, match="spacing"):
        signed_distance_map(_strip(), spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="shape"):
        signed_distance_map(np.zeros(5, bool))


def test_class_maps_per_task():
    ids = np.zeros((6, 7), np.int64)
    ids[1:4, 1:3], ids[3:6, 4:7] = 1, 2
    maps = class_distance_maps(ids, 3, (1.0, 0.5), "multiclass")
    assert maps.shape == (3, 6, 7) and maps.dtype == np.float32
    for c in range(3):
        np.testing.assert_array_equal(maps[c], signed_distance_map(ids == c, (1.0, 0.5)))
    binary = class_distance_maps(ids == 1, 1, None, "binary")
    np.testing.assert_array_equal(binary, class_distance_maps((ids == 1)[None].astype(float), 1, None, "binary"))
    stack = np.stack([ids == 1, ids >= 1])  # overlapping labels
    first = class_distance_maps(stack, 2, None, "multilabel")
    np.testing.assert_array_equal(
        first, class_distance_maps(np.moveaxis(stack, 0, -1), 2, None, "multilabel", channel_last=True)
    )
    np.testing.assert_array_equal(first[1], signed_distance_map(ids >= 1))
    with pytest.raises(ValueError, match=r"3 channels .*\(2, 6, 7\)"):
        class_distance_maps(stack, 3, None, "multilabel")


def test_distance_maps_follow_the_augmented_mask():
    mask = _strip().astype(np.uint8)
    image = np.zeros((5, 5, 3), np.uint8)
    pipeline = A.Compose([A.HorizontalFlip(p=1.0)])
    out = DistanceMaps(classes=1, task="binary", spacing=(1.0, 2.0))(**pipeline(image=image, mask=mask))
    assert out["mask"][:, -2:].all()
    np.testing.assert_array_equal(out["dist_maps"][0], np.tile([6.0, 4.0, 2.0, 0.0, -2.0], (5, 1)))
    # a spacing carried by the sample wins over the transform's own
    again = DistanceMaps(classes=1, task="binary", spacing=(1.0, 2.0))(mask=mask, spacing=(1.0, 1.0))
    np.testing.assert_array_equal(again["dist_maps"][0], np.tile([-1.0, 0.0, 1.0, 2.0, 3.0], (5, 1)))
    with pytest.raises(KeyError, match="mask"):
        DistanceMaps(1, "binary")(image=image)


def test_resized_spacing():
    assert resized_spacing((1.0, 0.5), (100, 200), (50, 50)) == (2.0, 2.0)


# --- boundary loss -------------------------------------------------------------------------------


def _strip_batch():
    g = torch.from_numpy(_strip()).float()[None, None]
    phi = torch.from_numpy(signed_distance_map(_strip(), (1.0, 2.0)))[None, None]
    return g, phi


def test_boundary_loss_of_perfect_and_inverted_predictions():
    g, phi = _strip_batch()
    loss = BoundaryLoss("binary", from_logits=False)
    # perfect: the inside distances (-2 in col 0, 0 in col 1) averaged over all 25 pixels
    assert loss(g, g, dist_maps=phi).item() == pytest.approx(5 * -2.0 / 25)
    assert loss(1 - g, g, dist_maps=phi).item() == pytest.approx(5 * (2 + 4 + 6) / 25)
    shifted = BoundaryLoss("binary", from_logits=False, nonnegative=True)
    assert shifted(g, g, dist_maps=phi).item() == pytest.approx(0.0, abs=1e-7)
    assert shifted(1 - g, g, dist_maps=phi).item() == pytest.approx((5 * 12 + 10) / 25)
    saturated = BoundaryLoss("binary")(g * 60 - 30, g, dist_maps=phi.numpy())  # logits, numpy maps
    assert saturated.item() == pytest.approx(-0.4, abs=1e-6)


def test_boundary_loss_gradient_pushes_outside_down_inside_up():
    g, phi = _strip_batch()
    x = torch.zeros_like(g, requires_grad=True)
    BoundaryLoss("binary")(x, g, dist_maps=phi).backward()
    grad = x.grad[0, 0]
    assert (grad[:, 2:] > 0).all() and (grad[:, 0] < 0).all() and (grad[:, 1] == 0).all()
    # d/dx mean(sigmoid(x) * phi) at x = 0 is 0.25 * phi / N
    torch.testing.assert_close(grad, 0.25 * phi[0, 0] / 25)


def test_boundary_loss_multiclass_skips_background_channel():
    ids = torch.zeros(1, 5, 5, dtype=torch.long)
    ids[0, :, :2] = 1
    maps = torch.from_numpy(class_distance_maps(ids[0].numpy(), 2, (1.0, 2.0), "multiclass"))[None]
    probs = torch.nn.functional.one_hot(ids, 2).movedim(-1, 1).float()
    loss = BoundaryLoss("multiclass", from_logits=False)
    assert loss(probs, ids, dist_maps=maps).item() == pytest.approx(-0.4)
    maps[:, 0] = 1000.0  # background channel is not scored
    assert loss(probs, ids, dist_maps=maps).item() == pytest.approx(-0.4)
    both = BoundaryLoss("multiclass", classes=[0, 1], from_logits=False)
    assert both(probs, ids, dist_maps=maps).item() > 100


def test_boundary_loss_needs_maps_of_the_logits_shape():
    g, phi = _strip_batch()
    with pytest.raises(MissingDistanceMapsError, match="DistanceMaps"):
        BoundaryLoss("binary")(g, g)
    with pytest.raises(ValueError, match="do not fit"):
        BoundaryLoss("binary")(g, g, dist_maps=phi[:, :, :4])


# --- Hausdorff distance-transform loss -----------------------------------------------------------


def _squares():
    g = torch.zeros(1, 1, 5, 5)
    g[0, 0, 1:3, 1:3] = 1
    p = torch.zeros(1, 1, 5, 5)
    p[0, 0, 1:3, 2:4] = 1  # the same 2x2 square one pixel to the right
    return p, g


def test_hd_dt_perfect_prediction_is_zero():
    _, g = _squares()
    assert HausdorffDTLoss("binary", from_logits=False)(g, g).item() == 0.0
    assert HausdorffDTLoss("binary")(g * 60 - 30, g[:, 0]).item() == pytest.approx(0.0, abs=1e-9)


def test_hd_dt_shifted_square_by_hand():
    p, g = _squares()
    # 4 pixels differ; at each, pred's and target's distance fields are 1 (or 1 and 2 along a
    # column spacing of 2): (1 + 1) * 4 / 25 and (1 + 4) * 4 / 25
    assert HausdorffDTLoss("binary", from_logits=False)(p, g).item() == pytest.approx(8 / 25)
    assert HausdorffDTLoss("binary", from_logits=False, spacing=(1.0, 2.0))(p, g).item() == pytest.approx(20 / 25)
    assert HausdorffDTLoss("binary", from_logits=False, alpha=1.0)(p, g).item() == pytest.approx(8 / 25)
    assert HausdorffDTLoss("binary", from_logits=False, alpha=1.0, spacing=(1.0, 2.0))(p, g).item() == pytest.approx(
        12 / 25
    )


def test_hd_dt_gradient_flows_through_probabilities_only():
    p, g = _squares()
    x = (p * 4 - 2).requires_grad_(True)
    loss = HausdorffDTLoss("binary")(x, g)
    loss.backward()
    assert loss.item() > 0 and x.grad is not None
    wrong = (p != g)[0, 0]
    assert (x.grad[0, 0][wrong].abs() > 0).all() and (x.grad[0, 0][~wrong].abs() < x.grad.abs().max()).all()


def test_hd_dt_multiclass_equals_binary_on_the_foreground_channel():
    p, g = _squares()
    ids = g[:, 0].long()
    logits = torch.cat([1 - p, p], dim=1) * 10
    probs = logits.softmax(1)
    expected = HausdorffDTLoss("binary", from_logits=False)(probs[:, 1:], g)
    assert HausdorffDTLoss("multiclass")(logits, ids).item() == pytest.approx(expected.item(), rel=1e-6)
    assert math.isfinite(expected.item()) and expected.item() > 0
