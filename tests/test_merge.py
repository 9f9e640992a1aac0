"""Copying a prediction into labels: whole image, one slice, one class, a drawn region; inputs never modified."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import InferenceError
from medseg.inference.merge import merge_prediction


def _disk(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


@pytest.fixture
def pair():
    """Labels: class 1 disk at the left, class 2 band at the top; prediction: class 1 disk at the right."""
    labels = np.zeros((32, 32), np.uint8)
    labels[_disk(labels.shape, 16, 9, 5)] = 1
    labels[:4] = 2
    pred = np.zeros_like(labels)
    pred[_disk(pred.shape, 16, 22, 6)] = 1
    return labels, pred


def test_whole_replaces_everything_and_leaves_inputs(pair):
    labels, pred = pair
    before = labels.copy(), pred.copy()
    r = merge_prediction(labels, pred, "whole")
    np.testing.assert_array_equal(r.labels, pred)
    assert r.changed == int(np.count_nonzero(labels != pred))
    np.testing.assert_array_equal(labels, before[0])
    np.testing.assert_array_equal(pred, before[1])


def test_label_mode_moves_only_that_class(pair):
    labels, pred = pair
    pred[30:, :] = 2  # the model also predicts class 2 at the bottom: not copied in label-1 mode
    r = merge_prediction(labels, pred, "label", label=1)
    assert np.array_equal(r.labels == 1, pred == 1)  # class 1 is now where the model puts it
    assert np.array_equal(r.labels == 2, labels == 2)  # class 2 untouched (top band kept, bottom not added)
    assert r.changed == int(np.count_nonzero((labels == 1) != (pred == 1)))


def test_label_mode_claims_pixels_of_other_classes():
    labels = np.full((8, 8), 2, np.uint8)
    pred = np.zeros_like(labels)
    pred[2:4, 2:4] = 1
    out = merge_prediction(labels, pred, "label", label=1).labels
    assert (out[2:4, 2:4] == 1).all() and (out == 2).sum() == 64 - 4


def test_region_mode_copies_inside_only(pair):
    labels, pred = pair
    region = np.zeros(labels.shape, bool)
    region[:, 16:] = True  # the right half: the predicted disk, not the labelled one
    r = merge_prediction(labels, pred, "region", region=region)
    np.testing.assert_array_equal(r.labels[:, 16:], pred[:, 16:])
    np.testing.assert_array_equal(r.labels[:, :16], labels[:, :16])
    with pytest.raises(InferenceError, match="region mask has shape"):
        merge_prediction(labels, pred, "region", region=np.ones((5, 5), bool))
    with pytest.raises(InferenceError, match="needs a region"):
        merge_prediction(labels, pred, "region")


def test_stack_slice_and_unpredicted_planes():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (4, 16, 16)).astype(np.uint8)
    pred = np.zeros_like(labels)
    pred[1] = 1
    pred[2] = 2
    predicted = np.array([False, True, True, False])
    r = merge_prediction(labels, pred, "slice", plane=(2,), predicted=predicted)
    np.testing.assert_array_equal(r.labels[2], 2)
    np.testing.assert_array_equal(np.delete(r.labels, 2, 0), np.delete(labels, 2, 0))
    whole = merge_prediction(labels, pred, "whole", predicted=predicted).labels
    np.testing.assert_array_equal(whole[1:3], pred[1:3])
    np.testing.assert_array_equal(whole[[0, 3]], labels[[0, 3]])  # never predicted: kept
    with pytest.raises(InferenceError, match="no prediction for plane"):
        merge_prediction(labels, pred, "slice", plane=(0,), predicted=predicted)
    with pytest.raises(InferenceError, match="needs the plane"):
        merge_prediction(labels, pred, "slice")
    # a 2-D region on a stack applies to the plane given
    region = np.zeros((16, 16), bool)
    region[:8] = True
    out = merge_prediction(labels, pred, "region", plane=(1,), predicted=predicted, region=region).labels
    np.testing.assert_array_equal(out[1, :8], 1)
    np.testing.assert_array_equal(out[1, 8:], labels[1, 8:])
    np.testing.assert_array_equal(out[2], labels[2])


def test_ids_that_do_not_fit_widen_the_type():
    labels = np.zeros((4, 4), np.uint8)
    pred = np.full((4, 4), 300, np.uint16)
    out = merge_prediction(labels, pred, "whole").labels
    assert out.dtype == np.uint16 and (out == 300).all()


def test_bad_input_is_named():
    a = np.zeros((8, 8), np.uint8)
    with pytest.raises(InferenceError, match="same"):
        merge_prediction(a, np.zeros((8, 9), np.uint8))
    with pytest.raises(InferenceError, match="unknown copy mode"):
        merge_prediction(a, a, "everything")
    with pytest.raises(InferenceError, match="class id > 0"):
        merge_prediction(a, a, "label", label=0)
    with pytest.raises(InferenceError, match="integer class ids"):
        merge_prediction(a, a.astype(np.float32))
    with pytest.raises(InferenceError, match="not a plane"):
        merge_prediction(np.zeros((2, 4, 4), np.uint8), np.zeros((2, 4, 4), np.uint8), "slice", plane=(5,))
