"""The fitted model's loss counts a grown, shrunk or moved outline that fits its prediction better."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from medseg.datasets.classmap import ClassMap, LabelClass
from medseg.qc.label_scores import label_score
from medseg.qc.refit import refit_penalty

BINARY = ClassMap.binary("polyp")


def disk(shape=(96, 128), cy=48, cx=60, r=20) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def test_a_sloppy_outline_is_penalised_a_right_one_is_not():
    truth = disk()
    soft_edge = ndi.gaussian_filter(truth.astype(float), 1.5)  # a model's soft outline around the object
    probs = (0.03 + 0.94 * soft_edge)[None].astype(np.float32)
    right = label_score(probs, truth.astype(np.uint8), BINARY)
    assert refit_penalty(probs, truth, BINARY, -np.log(right.fit)) == 0.0  # no alternative fits better
    grown, shrunk = ndi.binary_dilation(truth, iterations=7), ndi.binary_erosion(truth, iterations=7)
    for sloppy in (grown, shrunk, np.roll(truth, 10, axis=1)):
        wrong = label_score(probs, sloppy.astype(np.uint8), BINARY)
        assert wrong.fit < right.fit
        assert refit_penalty(probs, sloppy, BINARY, 2.0) > 0  # the true outline is among its alternatives


def test_empty_labels_and_other_tasks_keep_the_plain_loss():
    probs = np.full((1, 32, 32), 0.1, np.float32)
    assert refit_penalty(probs, np.zeros((32, 32), bool), BINARY, 1.0) == 0.0
    multi = ClassMap([LabelClass(1, "a", (255, 0, 0)), LabelClass(2, "b", (0, 255, 0))], task="multiclass")
    label = np.zeros((32, 32), np.uint8)
    label[8:20, 8:20] = 1
    assert refit_penalty(np.full((3, 32, 32), 1 / 3, np.float32), label, multi, 5.0) == 0.0


def test_an_outline_moved_along_a_diagonal_finds_the_true_one_among_its_alternatives():
    truth = disk()
    probs = (0.03 + 0.94 * ndi.gaussian_filter(truth.astype(float), 1.5))[None].astype(np.float32)
    sloppy = np.roll(np.roll(truth, 7, axis=0), 7, axis=1)  # half the radius (20 px) down and to the right
    loss = -np.log(label_score(probs, sloppy.astype(np.uint8), BINARY).fit)
    from medseg.qc.refit import WEIGHT, outline_loss

    p = probs[0].astype(np.float64)
    # the best alternative is the true outline itself, moved back (four directions alone do not hold it)
    expected = WEIGHT * (outline_loss(p, sloppy) - outline_loss(p, truth))
    assert refit_penalty(probs, sloppy, BINARY, outline_loss(p, sloppy)) == pytest.approx(expected, rel=1e-9)
    assert expected > 0.1 and loss > 0


def test_a_round_object_grown_round_is_shrunk_back_round():
    from medseg.qc.refit import alternatives

    truth = disk(r=20)
    grown = ndi.distance_transform_edt(~truth) <= 5  # a fifth of the grown outline's radius (25 px)
    best = max(alternatives(grown), key=lambda m: (m & truth).sum() / (m | truth).sum())
    assert (best & truth).sum() / (best | truth).sum() > 0.99  # city-block erosion by 5 px: IoU 0.972


def test_a_grown_outline_the_model_sees_comes_before_a_right_one_it_is_unsure_of():
    # the margin outweighs the plain loss of a hard but right label: a model unsure of an object (0.15 around,
    # 0.55 inside) loses more on its right outline than a confident one does on the same object's outline grown
    # by a fifth of its radius, unless the grown outline's better neighbour counts (weight 3: 0.75 < 0.87)
    truth = disk(r=20)
    unsure = (0.15 + 0.4 * ndi.gaussian_filter(truth.astype(float), 3))[None].astype(np.float32)
    sure = (0.03 + 0.94 * ndi.gaussian_filter(truth.astype(float), 1.5))[None].astype(np.float32)
    grown = ndi.distance_transform_edt(~truth) <= 4
    right = -np.log(label_score(unsure, truth.astype(np.uint8), BINARY).fit)
    wrong = -np.log(label_score(sure, grown.astype(np.uint8), BINARY).fit)
    assert wrong > right


def test_a_right_label_of_an_object_the_model_is_unsure_of_comes_after_a_grown_one():
    # a small object the model half sees (0.1 around, at most 0.6 inside) costs its right label more loss than a
    # large object's outline grown by 4 px (a sixth of its radius) costs against a confident model, unless what
    # no label could do better than is taken off (without the floor: 1.12 > 0.89; with it 0.58 < 0.80)
    small, big = disk(r=7), disk(r=25)
    unsure = (0.1 + 0.5 * ndi.gaussian_filter(small.astype(float), 2.5))[None].astype(np.float32)
    sure = (0.03 + 0.94 * ndi.gaussian_filter(big.astype(float), 1.5))[None].astype(np.float32)
    grown = ndi.distance_transform_edt(~big) <= 4
    right = label_score(unsure, small.astype(np.uint8), BINARY).fit
    wrong = label_score(sure, grown.astype(np.uint8), BINARY).fit
    assert wrong < right


def test_the_loss_floor_is_the_thresholded_predictions_own_loss():
    from medseg.qc.refit import FLOOR_SHARE, loss_floor, outline_loss

    truth = disk()
    probs = (0.1 + 0.6 * ndi.gaussian_filter(truth.astype(float), 2.5))[None].astype(np.float32)
    p = probs[0].astype(np.float64)
    assert loss_floor(probs, BINARY) == pytest.approx(FLOOR_SHARE * outline_loss(p, p >= 0.5), rel=1e-12)
    assert 0 < FLOOR_SHARE < 1  # the floor is at most the loss of the best label: a fit stays in (0, 1]
    for label in (truth, np.roll(truth, 9, axis=1), np.zeros_like(truth)):
        assert 0.0 < label_score(probs, label.astype(np.uint8), BINARY).fit <= 1.0
    multi = ClassMap([LabelClass(1, "a", (255, 0, 0)), LabelClass(2, "b", (0, 255, 0))], task="multiclass")
    assert loss_floor(np.full((3, 32, 32), 1 / 3, np.float32), multi) == 0.0
