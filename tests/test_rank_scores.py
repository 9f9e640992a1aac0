"""Label-quality scores on crafted cases, validated against cleanlab; stored predictions; corruptions."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.datasets.classmap import ClassMap
from medseg.qc import corruptions
from medseg.qc.label_scores import label_score, self_confidence, softmin_pool, suspicion

BINARY = ClassMap.binary("polyp")


def disk(shape=(48, 48), cy=24, cx=24, r=10) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def confident_probs(obj: np.ndarray, inside: float = 0.97, outside: float = 0.02) -> np.ndarray:
    """A model sure of ``obj``, a little less sure along its outline (as real models are)."""
    from scipy import ndimage as ndi

    p = np.where(obj, inside, outside).astype(np.float32)
    edge = obj ^ ndi.binary_erosion(obj)
    p[edge] = 0.7
    return p[None]


def test_perfect_label_scores_high_and_each_error_lower():
    obj = disk()
    probs = confident_probs(obj)
    perfect = label_score(probs, obj.astype(np.uint8), BINARY)
    assert perfect.dice == pytest.approx(1.0) and perfect.iou == pytest.approx(1.0) and perfect.hd95 == 0
    assert perfect.score > 0.7
    wrong = {
        "shifted": np.roll(obj, (8, 8), axis=(0, 1)),
        "eroded": disk(r=6),
        "dilated": disk(r=14),
        "missing": np.zeros_like(obj),
        "other object": disk(cy=8, cx=8, r=5),
    }
    for name, label in wrong.items():
        s = label_score(probs, label.astype(np.uint8), BINARY)
        assert s.score < perfect.score - 0.2, (name, s)
        assert s.cleanlab < perfect.cleanlab, name
        assert s.dice < 0.9, name
    # separation alone is blind to a label inside the model's object; the score is not
    eroded = label_score(probs, disk(r=6).astype(np.uint8), BINARY)
    assert eroded.separation > 0.9 and eroded.soft_dice < 0.6
    # the worse the shift, the lower the score
    scores = [
        label_score(probs, np.roll(obj, (d, 0), axis=(0, 1)).astype(np.uint8), BINARY).score for d in (0, 2, 5, 10, 20)
    ]
    assert scores == sorted(scores, reverse=True)


def test_empty_cases_are_defined():
    empty = np.zeros((32, 32), np.uint8)
    nothing = np.full((1, 32, 32), 0.01, np.float32)
    both = label_score(nothing, empty, BINARY)
    assert (both.dice, both.iou, both.hd95) == (1.0, 1.0, 0.0)
    assert both.cleanlab == pytest.approx(0.99, abs=1e-6)
    assert both.separation == both.soft_dice == pytest.approx(0.99, abs=1e-6)  # 1 - p99: the model sees none
    obj = disk((32, 32), 16, 16, 6)
    missed = label_score(confident_probs(obj), empty, BINARY)  # label forgot the object
    assert missed.dice == 0 and missed.iou == 0
    assert missed.hd95 == pytest.approx(np.hypot(32, 32))  # worst distance, not NaN
    assert missed.score < 0.1 and missed.separation == pytest.approx(0.03, abs=1e-6)  # 1 - p99 of a sure model
    invented = label_score(nothing, obj.astype(np.uint8), BINARY)  # label draws what the model does not see
    assert invented.separation == 0.5  # a flat map orders nothing: no evidence either way...
    assert invented.dice == 0 and invented.soft_dice < 0.05 and invented.score < 0.3  # ...soft Dice tells it


def test_softmin_matches_hand_computation():
    s = np.array([1.0, 0.5, 0.0])
    w = np.exp((1 - s) / 0.1)
    assert softmin_pool(s) == pytest.approx(float((s * w).sum() / w.sum()))
    assert softmin_pool(np.full(100, 0.8)) == pytest.approx(0.8)
    # tiny temperature -> the minimum; huge -> the mean
    assert softmin_pool(s, temperature=1e-4) == pytest.approx(0.0, abs=1e-9)
    assert softmin_pool(s, temperature=1e4) == pytest.approx(0.5, abs=1e-3)
    with pytest.raises(ValueError, match="temperature"):
        softmin_pool(s, temperature=0)


def test_separation_is_the_pixel_auroc():
    from medseg.qc.label_scores import pixel_auroc

    p = np.array([0, 1, 2, 3, 3, 5], np.float64) / 1023
    inside = np.array([False, True, False, True, False, True])
    # inside {1, 3, 5} vs outside {0, 2, 3}: pairs won 1 + (2 + 0.5) + 3 = 6.5 of 9
    assert pixel_auroc(p, inside) == pytest.approx(6.5 / 9)
    assert pixel_auroc(p, ~inside) == pytest.approx(2.5 / 9)
    # order only: an unsure but well-placed model separates a right label perfectly
    obj = disk()
    unsure = np.where(obj, 0.3, 0.1).astype(np.float32)[None]
    s = label_score(unsure, obj.astype(np.uint8), BINARY)
    assert s.separation == pytest.approx(1.0) and s.dice == 0.0  # hard Dice sees nothing above 0.5
    shifted = label_score(unsure, np.roll(obj, (12, 0), axis=(0, 1)).astype(np.uint8), BINARY)
    assert shifted.separation < 0.8 and shifted.score < s.score


def test_cleanlab_score_equals_cleanlabs_own():
    """Our pooled self-confidence against cleanlab.segmentation.rank on the same images."""
    rank = pytest.importorskip("cleanlab.segmentation.rank", reason="cleanlab is in the testing extra")
    rng = np.random.default_rng(0)
    obj = disk()
    cases = [obj, np.roll(obj, (6, 0), axis=(0, 1)), np.zeros_like(obj), disk(r=5)]
    fg = np.clip(confident_probs(obj)[0] + rng.normal(0, 0.05, obj.shape), 0.001, 0.999).astype(np.float32)
    labels = np.stack(cases).astype(np.int64)
    pred_probs = np.repeat(np.stack([1 - fg, fg])[None], len(cases), axis=0)
    theirs, pixel = rank.get_label_quality_scores(labels, pred_probs, verbose=False)
    for k, label in enumerate(cases):
        ours = label_score(fg[None], label.astype(np.uint8), BINARY)
        assert ours.cleanlab == pytest.approx(theirs[k], rel=1e-6, abs=1e-9)
        np.testing.assert_allclose(self_confidence(fg[None], label.astype(np.uint8), BINARY), pixel[k], rtol=1e-6)


def test_multiclass_ids_and_multilabel():
    cm = ClassMap.from_names(["a", "b"])  # ids 1, 2; channels 0 (background), 1, 2
    mask = np.zeros((20, 20), np.uint8)
    mask[2:8, 2:8] = 1
    mask[10:18, 10:18] = 2
    probs = np.stack([mask == 0, mask == 1, mask == 2]).astype(np.float32) * 0.9 + 0.05
    good = label_score(probs, mask, cm)
    assert good.dice == pytest.approx(1.0) and good.cleanlab == pytest.approx(0.95, abs=1e-5)
    swapped = np.where(mask == 1, 2, np.where(mask == 2, 1, 0)).astype(np.uint8)
    assert label_score(probs, swapped, cm).score < good.score - 0.6
    ml = ClassMap.from_names(["x", "y"], task="multilabel")
    m = np.stack([mask > 0, mask == 2], axis=-1)
    p = np.moveaxis(m, -1, 0).astype(np.float32) * 0.9 + 0.05
    right = label_score(p, m, ml)
    assert right.dice == pytest.approx(1.0) and right.score > 0.9
    partly = label_score(p, m[..., ::-1].copy(), ml)  # x drawn as y's square only, y as both squares
    assert 0.7 < partly.dice < 0.8 and partly.score < right.score - 0.1
    assert label_score(p, np.roll(m, 9, axis=1), ml).score < right.score - 0.4
    with pytest.raises(ValueError, match=r"\(2, H, W\)"):
        label_score(p[:1], m, ml)
    with pytest.raises(ValueError, match="differ in size"):
        label_score(probs[:, :10], mask, cm)


def test_suspicion_is_high_where_the_model_disagrees():
    obj = disk()
    probs = confident_probs(obj)
    label = np.roll(obj, (8, 0), axis=(0, 1)).astype(np.uint8)
    s = suspicion(probs, label, BINARY)
    assert s.dtype == np.float32 and s.shape == obj.shape and 0 <= s.min() and s.max() <= 1
    disagree = obj ^ label.astype(bool)
    assert s[disagree].mean() > 0.9 and s[~disagree].mean() < 0.1


@pytest.mark.parametrize("kind", corruptions.KINDS)
def test_corruptions_change_the_label(kind):
    rng = np.random.default_rng(1)
    obj = disk((96, 128), 48, 50, 20)
    other = disk((96, 128), 30, 100, 12)
    out = corruptions.corrupt(kind, obj, rng, other=other)
    assert out.shape == obj.shape
    if kind == "grey_noise":
        levels = set(np.unique(out).tolist()) - {0, 255}
        assert len(levels) > 20 and np.array_equal(out >= 128, obj)  # binarising restores the label
        return
    assert out.dtype == bool and not np.array_equal(out, obj)
    inter = (out & obj).sum() / max(1, (out | obj).sum())
    assert inter < 0.8, f"{kind} is too subtle to be a label error (IoU {inter:.2f})"


def test_an_extra_object_finds_a_place_beside_an_object_that_fills_most_of_the_frame():
    big = np.zeros((60, 80), bool)
    big[:, :50] = True
    for seed in range(5):
        out = corruptions.extra(big, np.random.default_rng(seed))
        assert out.sum() > big.sum()
