"""medseg.evaluate's per-sample scores against MONAI's on random masks with anisotropic spacing (2-D and
3-D, several classes), the empty-mask conventions, object matching and the summary's numbers."""

from __future__ import annotations

import math
import warnings

import monai.metrics as mm
import numpy as np
import pytest
import torch
from scipy import ndimage

from medseg.datasets.classmap import ClassMap
from medseg.evaluate import EvaluationResult, match_objects, read_per_sample, score_sample
from medseg.evaluate.result import summarise

TOL = 1e-4


def _labels(rng: np.random.Generator, shape: tuple[int, ...], classes: int) -> np.ndarray:
    """Smooth random class ids 0..classes (blobs, so surfaces are realistic)."""
    field = ndimage.gaussian_filter(rng.random((classes + 1, *shape)), (0, *([2] * len(shape))))
    return field.argmax(0).astype(np.uint8)


def _monai(pred: np.ndarray, true: np.ndarray, spacing: tuple[float, ...]) -> dict[str, float]:
    p, t = torch.from_numpy(pred)[None, None].float(), torch.from_numpy(true)[None, None].float()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dice = mm.DiceMetric(include_background=True, ignore_empty=False)
        hd = mm.HausdorffDistanceMetric(include_background=True, percentile=95)
        sd = mm.SurfaceDistanceMetric(include_background=True, symmetric=True)
        iou = mm.MeanIoU(include_background=True, ignore_empty=False)
        dice(p, t)
        iou(p, t)
        hd(p, t, spacing=spacing)
        sd(p, t, spacing=spacing)
        return {
            "dice": dice.aggregate().item(),
            "iou": iou.aggregate().item(),
            "hd95": hd.aggregate().item(),
            "assd": sd.aggregate().item(),
        }


@pytest.mark.parametrize(
    "shape,spacing,seed",
    [((48, 56), (0.7, 1.9), 0), ((40, 40), (2.5, 0.4), 1), ((10, 28, 24), (3.0, 0.8, 0.6), 2)],
    ids=["2d", "2d-flat-pixels", "3d-thick-slices"],
)
def test_scores_match_monai_per_class_with_anisotropic_spacing(shape, spacing, seed):
    rng = np.random.default_rng(seed)
    cm = ClassMap.from_names(["liver", "spleen", "kidney"])
    target = _labels(rng, shape, 3)
    # the prediction: the target shifted and a class eroded, so every class differs somewhat
    pred = np.roll(target, 2, axis=-1)
    pred[ndimage.binary_erosion(pred == 2, iterations=2) ^ (pred == 2)] = 0
    rows = score_sample("s1", pred, target, cm, spacing=spacing, unit="mm")
    assert [r.class_name for r in rows] == ["liver", "spleen", "kidney"]
    for cid, row in zip(cm.ids, rows):
        want = _monai(pred == cid, target == cid, spacing)
        for metric, value in want.items():
            assert row.value(metric) == pytest.approx(value, abs=TOL), (row.class_name, metric)
        assert row.predicted_pixels == int((pred == cid).sum())
        assert row.labelled_pixels == int((target == cid).sum())
        assert row.unit == "mm"


def test_spacing_changes_distances_not_overlap():
    rng = np.random.default_rng(5)
    cm = ClassMap.from_names(["organ"])
    t = _labels(rng, (8, 30, 30), 1)
    p = np.roll(t, 1, axis=0)
    iso = score_sample("a", p, t, cm, spacing=(1.0, 1.0, 1.0))[0]
    thick = score_sample("a", p, t, cm, spacing=(5.0, 1.0, 1.0))[0]
    assert thick.dice == iso.dice and thick.iou == iso.iou
    assert thick.hd95 > iso.hd95 and thick.assd > iso.assd


def test_empty_mask_conventions_and_their_csv_cells(tmp_path):
    cm = ClassMap.from_names(["a", "b", "c"])
    target = np.zeros((20, 20), np.uint8)
    pred = np.zeros((20, 20), np.uint8)
    target[2:6, 2:6] = 2  # b: labelled, not predicted
    pred[10:14, 10:14] = 3  # c: predicted, not labelled; a: neither
    a, b, c = score_sample("x", pred, target, cm)
    assert (a.dice, a.iou, a.hd95, a.assd) == (1.0, 1.0, 0.0, 0.0)
    assert (a.objects.precision, a.objects.recall) == (1.0, 1.0)
    for row in (b, c):
        assert (row.dice, row.iou) == (0.0, 0.0)
        assert math.isnan(row.hd95) and math.isnan(row.assd)
    assert math.isnan(b.objects.precision) and b.objects.recall == 0.0
    assert c.objects.precision == 0.0 and math.isnan(c.objects.recall)
    result = EvaluationResult([a, b, c], list(cm.names))
    s = result.summary
    assert s["b"]["hd95"] == {**s["b"]["hd95"], "mean": None, "n": 0, "undefined": 1}
    assert s["a"]["dice"]["mean"] == 1.0 and s["a"]["labelled_samples"] == 0 and s["a"]["predicted_samples"] == 0
    assert s["b"]["objects"]["precision"] is None and s["b"]["objects"]["recall"] == 0.0
    # the class neither labelled nor predicted is left out of the mean over classes
    assert result.mean("dice") == 0.0
    paths = result.write(tmp_path / "out")
    rows = read_per_sample(paths[0])
    assert [r["class"] for r in rows] == ["a", "b", "c"]
    assert rows[1]["hd95"] == "" and rows[1]["object_precision"] == "" and rows[1]["object_recall"] == "0.0"


def test_objects_match_one_to_one_at_the_iou_threshold():
    target = np.zeros((40, 60), bool)
    pred = np.zeros((40, 60), bool)
    target[2:12, 2:12] = True  # exact match: IoU 1
    pred[2:12, 2:12] = True
    target[2:12, 20:30] = True  # shifted by 2 columns: IoU 80 / 120 = 0.667
    pred[2:12, 22:32] = True
    target[20:30, 2:12] = True  # half of it: IoU 0.5 -> matches at 0.5 exactly
    pred[20:30, 2:7] = True
    target[20:30, 20:30] = True  # a third: IoU 0.4 -> no match at 0.5
    pred[20:24, 20:30] = True
    pred[30:34, 40:44] = True  # a false positive
    pred[36, 50], pred[37, 51] = True, True  # diagonal neighbours: one object (full connectivity)
    counts = match_objects(pred, target, 0.5)
    assert (counts.predicted, counts.labelled, counts.matched) == (6, 4, 3)
    assert counts.precision == 0.5 and counts.recall == 0.75
    assert match_objects(pred, target, 0.35).matched == 4
    assert match_objects(pred, target, 0.9).matched == 1
    # two predicted halves of one object: at most one of them can match it
    t2 = np.zeros((10, 20), bool)
    t2[2:8, 2:18] = True
    p2 = np.zeros((10, 20), bool)
    p2[2:8, 2:12], p2[2:8, 13:18] = True, True
    assert match_objects(p2, t2, 0.2).matched == 1
    with pytest.raises(ValueError, match="IoU must be in"):
        match_objects(p2, t2, 0.0)


def test_summary_numbers_and_worst_samples_exactly():
    cm = ClassMap.from_names(["polyp"])
    rows = []
    sizes = {"s1": 10, "s2": 8, "s3": 5, "s4": 0}
    for sid, k in sizes.items():
        t = np.zeros((12, 12), np.uint8)
        t[1:11, 1:11] = 1
        p = np.zeros_like(t)
        p[1 : 1 + k, 1:11] = 1
        rows += score_sample(sid, p, t, cm)
    dice = {"s1": 1.0, "s2": 160 / 180, "s3": 100 / 150, "s4": 0.0}
    s = summarise(rows, ["polyp"])["polyp"]
    assert s["dice"]["mean"] == pytest.approx(np.mean(list(dice.values())))
    assert s["dice"]["median"] == pytest.approx((dice["s2"] + dice["s3"]) / 2)
    assert [w[0] for w in s["dice"]["worst"]] == ["s4", "s3", "s2"]
    assert s["hd95"]["undefined"] == 1 and s["hd95"]["n"] == 3
    assert s["hd95"]["worst"][0][0] == "s3"  # the largest distance among defined ones
    assert s["objects"] == {
        "precision": 1.0,
        "recall": 0.75,
        "predicted": 3,
        "labelled": 4,
        "matched": 3,
        "mean_precision": 1.0,
        "mean_recall": 0.75,
    }
    assert s["samples"] == 4 and s["labelled_samples"] == 4 and s["predicted_samples"] == 3


def test_multilabel_and_binary_layouts_and_shape_mismatch():
    ml = ClassMap.from_names(["stomach", "bowel"], task="multilabel")
    t = np.zeros((16, 16, 2), bool)
    t[2:8, 2:8, 0] = t[4:12, 4:12, 1] = True
    rows = score_sample("m", t.copy(), t, ml)
    assert [(r.class_name, r.dice) for r in rows] == [("stomach", 1.0), ("bowel", 1.0)]
    binary = ClassMap.from_names(["polyp"], task="binary")
    assert score_sample("b", t[..., 0].astype(np.uint8), t[..., 0].astype(np.uint8), binary)[0].dice == 1.0
    with pytest.raises(ValueError, match="differ in shape"):
        score_sample("b", t[..., 0], t[:8, :, 0], binary)
