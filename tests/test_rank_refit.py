"""The fitted model's loss counts a grown, shrunk or moved outline that fits its prediction better."""

from __future__ import annotations

import numpy as np
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
