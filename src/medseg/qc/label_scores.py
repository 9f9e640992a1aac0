"""Per-sample label-quality scores from a model's per-pixel probabilities and a label.

Two views of one question, "does this label agree with what a model that did
not learn it sees?":

* overlap of the model's hard prediction with the label: Dice, IoU and HD95
  (computed by :mod:`medseg.training.metrics` / ``surface_metrics``);
* cleanlab's segmentation label-quality score: each pixel's self-confidence
  ``p[given label]``, pooled over the image with softmin (temperature 0.1),
  as ``cleanlab.segmentation.rank.get_label_quality_scores(method="softmin")``
  does: ``sum(s * softmax((1 - s) / T))``. It is dominated by the pixels the
  model most confidently says are mislabelled, so one missing object or a
  shifted outline drags it down even when most of the image agrees.

``score`` (what the review queue ranks by, lower = more likely wrong) is the
mean of Dice and the cleanlab score: Dice catches outlines that disagree
broadly; the cleanlab score catches confident local contradictions and is
defined (not 1 by convention) when both masks are empty.

Probabilities are the Predictor's: (C, H, W) float with C = 1 (foreground,
sigmoid) for binary, one channel per class with background first for
multiclass (softmax), one per class for multilabel (sigmoids). Masks are the
workspace's canonical ones (class ids, or (H, W, C) bool for multilabel).

Empty cases: label and prediction both empty -> Dice 1, IoU 1, HD95 0;
exactly one empty -> Dice 0, IoU 0, HD95 = the image diagonal in pixels
(the worst distance, not NaN, so a missing object ranks as bad as it is).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from medseg.datasets.classmap import ClassMap
from medseg.training.metrics import dice_iou
from medseg.training.surface_metrics import hd95, image_diagonal

SOFTMIN_TEMPERATURE = 0.1


@dataclass(frozen=True)
class LabelScore:
    """One sample's scores; ``score`` in [0, 1], lower = label more likely wrong."""

    score: float
    dice: float
    iou: float
    hd95: float
    cleanlab: float
    label_pixels: int
    predicted_pixels: int

    def to_dict(self) -> dict:
        return asdict(self)


def channel_ids(classmap: ClassMap) -> list[int]:
    """The label id each probability channel stands for (binary: [1]; multiclass: [0, *ids])."""
    return [0, *classmap.ids] if classmap.task == "multiclass" else list(classmap.ids)


def _check(probs: np.ndarray, mask: np.ndarray, classmap: ClassMap) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float32)
    mask = np.asarray(mask)
    n = len(channel_ids(classmap))
    if probs.ndim != 3 or probs.shape[0] != n:
        raise ValueError(f"probabilities for a {classmap.task} class map are ({n}, H, W), got {probs.shape}")
    spatial = mask.shape[:2]
    if classmap.task == "multilabel" and (mask.ndim != 3 or mask.shape[-1] != n):
        raise ValueError(f"a multilabel mask is (H, W, {n}), got {mask.shape}")
    if classmap.task != "multilabel" and mask.ndim != 2:
        raise ValueError(f"a {classmap.task} mask is (H, W) of class ids, got {mask.shape}")
    if tuple(spatial) != tuple(probs.shape[1:]):
        raise ValueError(f"probabilities {probs.shape[1:]} and mask {tuple(spatial)} differ in size")
    return probs, mask


def channel_index(mask: np.ndarray, classmap: ClassMap) -> np.ndarray:
    """Multiclass mask of ids -> (H, W) of channel indices (ids need not be 0..N)."""
    lut = np.zeros(max(channel_ids(classmap)) + 1, dtype=np.int64)
    for c, i in enumerate(channel_ids(classmap)):
        lut[i] = c
    return lut[mask]


def self_confidence(probs: np.ndarray, mask: np.ndarray, classmap: ClassMap) -> np.ndarray:
    """(H, W) probability the model gives the label's class at each pixel (cleanlab's pixel score).

    Multilabel: per class ``p`` where the label has it, else ``1 - p``; the
    pixel takes its least confident class.
    """
    probs, mask = _check(probs, mask, classmap)
    if classmap.task == "binary":
        return np.where(mask > 0, probs[0], 1.0 - probs[0])
    if classmap.task == "multiclass":
        idx = channel_index(mask, classmap)
        return np.take_along_axis(probs, idx[None], axis=0)[0]
    per_class = np.where(np.moveaxis(mask, -1, 0), probs, 1.0 - probs)
    return per_class.min(axis=0)


def softmin_pool(pixel_scores: np.ndarray, temperature: float = SOFTMIN_TEMPERATURE) -> float:
    """cleanlab's softmin: ``sum(s * softmax((1 - s) / T))`` over every pixel, in float64."""
    if temperature is None or temperature <= 0:
        raise ValueError(f"softmin temperature must be > 0, got {temperature}")
    s = np.asarray(pixel_scores, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError("cannot pool the scores of an image without pixels")
    z = (1.0 - s) / temperature
    w = np.exp(z - z.max())  # shifted: no overflow for tiny temperatures
    return float(np.dot(s, w) / w.sum())


def suspicion(probs: np.ndarray, mask: np.ndarray, classmap: ClassMap) -> np.ndarray:
    """(H, W) float32 in [0, 1]: ``1 - p[label]``, high where the model confidently disagrees."""
    return (1.0 - self_confidence(probs, mask, classmap)).astype(np.float32)


def _boolean_channels(labels: np.ndarray, classmap: ClassMap) -> np.ndarray:
    """(C_fg, H, W) bool per foreground class, from ids or a multilabel (H, W, C) mask."""
    if classmap.task == "multilabel":
        return np.moveaxis(np.asarray(labels, dtype=bool), -1, 0)
    return np.stack([labels == i for i in classmap.ids])


def prediction_labels(probs: np.ndarray, classmap: ClassMap, threshold: float = 0.5) -> np.ndarray:
    """Hard labels from probabilities, as the Predictor makes them (threshold / argmax)."""
    if classmap.task == "multiclass":
        return np.asarray(channel_ids(classmap))[probs.argmax(0)]
    fg = probs >= threshold
    return fg[0].astype(np.uint8) if classmap.task == "binary" else np.moveaxis(fg, 0, -1)


def label_score(probs: np.ndarray, mask: np.ndarray, classmap: ClassMap, *, threshold: float = 0.5,
                spacing=None, temperature: float = SOFTMIN_TEMPERATURE) -> LabelScore:
    """Scores of one label against one prediction (see the module docstring).

    Multi-class Dice / IoU average the classes present in the label or the
    prediction; HD95 is the worst such class.
    """
    probs, mask = _check(probs, mask, classmap)
    pred = _boolean_channels(prediction_labels(probs, classmap, threshold), classmap)
    target = _boolean_channels(mask, classmap)
    dice, iou = dice_iou(pred[None], target[None])
    present = [c for c in range(pred.shape[0]) if pred[c].any() or target[c].any()]
    worst = image_diagonal(mask.shape[:2], spacing)
    dists = [hd95(pred[c], target[c], spacing, empty_value=worst) for c in present]
    d = float(np.mean(dice[0, present])) if present else 1.0
    j = float(np.mean(iou[0, present])) if present else 1.0
    clean = softmin_pool(self_confidence(probs, mask, classmap), temperature)
    return LabelScore(score=float(np.clip((d + clean) / 2.0, 0.0, 1.0)), dice=d, iou=j,
                      hd95=float(max(dists)) if dists else 0.0, cleanlab=clean,
                      label_pixels=int(target.any(0).sum()), predicted_pixels=int(pred.any(0).sum()))
