"""Per-sample label-quality scores from a model's per-pixel probabilities and a label.

All answer "does this label agree with what a model that did not learn it sees?":

* overlap of the model's hard prediction with the label: Dice, IoU and HD95
  (computed by :mod:`medseg.training.metrics` / ``surface_metrics``);
* cleanlab's segmentation label-quality score: each pixel's self-confidence
  ``p[given label]``, pooled over the image with softmin (temperature 0.1),
  as ``cleanlab.segmentation.rank.get_label_quality_scores(method="softmin")``
  does: ``sum(s * softmax((1 - s) / T))``;
* soft Dice of the probability map with the label;
* fit: ``exp(-(pixel cross-entropy + 1 - soft Dice))``, the training loss of
  a model as a score in (0, 1]: what :mod:`medseg.qc.fit_all` ranks by (its
  model learnt the labels, so how far it is from fitting one is the evidence),
  with a better-fitting sloppy outline's margin added and part of the loss no
  label could avoid (an object the model is unsure of) taken off
  (:mod:`medseg.qc.refit`);
* separation: how well the model's probabilities separate the label's inside
  from its outside, as an AUROC over the image's pixels (the chance that a
  pixel inside the label gets a higher probability than one outside). It
  depends only on the order of the probabilities, so a model that is right
  about *where* but unsure or badly calibrated still judges the label well.

``score`` (what the review queue ranks by, in [0, 1], lower = more likely
wrong) is the mean of soft Dice and separation; each covers the other's
blind spot. Separation depends only on the order of the probabilities, so it
judges labels well even with a weak, badly calibrated model, but it cannot
see a label that is too small (an eroded outline inside the model's object
is still perfectly separated) and gives 0.5 on a flat map (a label drawn
where the model confidently sees nothing); soft Dice sees both. Measured on
CVC-ClinicDB with planted errors and small CPU-trained fold models
(benchmarks/bench_rank.py; AUROC alone, corrupted vs clean): separation
0.68, score 0.63, Dice 0.62, soft Dice 0.60, cleanlab 0.58. Separation alone
ranked that benchmark a little better (its model was weak: median Dice
0.52), at the price of the blind spots above. Cleanlab's pooled score is kept
as a detail, not ranked by: with a weak model most pixels of an image are
confidently background, so it stays high for a label that leaves out an
object the model only half sees.

Empty cases, per class: a label without the class has no inside to separate
and no overlap to measure; both then become "the model sees none of it
either": ``1 - p99`` (the 99th percentile of the class's probability), and a
label that is all one class becomes ``p1``. Hard metrics: label and prediction
both empty -> Dice 1, IoU 1, HD95 0; exactly one empty -> Dice 0, IoU 0, HD95
= the image diagonal in pixels (the worst distance, not NaN).

Probabilities are the Predictor's: (C, H, W) float with C = 1 (foreground,
sigmoid) for binary, one channel per class with background first for
multiclass (softmax), one per class for multilabel (sigmoids). Masks are the
workspace's canonical ones (class ids, or (H, W, C) bool for multilabel).
Multi-class values average the classes present in the label or the
prediction; HD95 is the worst such class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from medseg.datasets.classmap import ClassMap
from medseg.qc.refit import loss_floor, refit_penalty
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
    soft_dice: float
    separation: float
    label_pixels: int
    predicted_pixels: int
    fit: float = 1.0

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


def foreground_probs(probs: np.ndarray, classmap: ClassMap) -> np.ndarray:
    """(C_fg, H, W): the probability of each foreground class (multiclass drops the background channel)."""
    return probs[1:] if classmap.task == "multiclass" else probs


def pixel_auroc(p: np.ndarray, inside: np.ndarray) -> float:
    """Chance that a pixel inside gets a higher ``p`` than one outside (ties half), from 1/1024 bins.

    ``inside`` must hold both kinds of pixels."""
    q = np.clip(np.round(np.asarray(p, dtype=np.float64) * 1023), 0, 1023).astype(np.int64).ravel()
    inside = inside.ravel()
    pos = np.bincount(q[inside], minlength=1024).astype(np.float64)
    neg = np.bincount(q[~inside], minlength=1024).astype(np.float64)
    below = np.cumsum(neg) - neg
    return float((pos * (below + 0.5 * neg)).sum() / (pos.sum() * neg.sum()))


def _agreement(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(soft Dice, separation) of one class's probabilities ``p`` with its label ``y``."""
    n = y.sum()
    if n == 0:
        v = 1.0 - float(np.percentile(p, 99))
        return v, v
    if n == y.size:
        v = float(np.percentile(p, 1))
        return v, v
    soft = 2.0 * float((p * y).sum()) / (float(p.sum()) + float(n))
    return soft, pixel_auroc(p, y)


def label_score(
    probs: np.ndarray,
    mask: np.ndarray,
    classmap: ClassMap,
    *,
    threshold: float = 0.5,
    spacing=None,
    temperature: float = SOFTMIN_TEMPERATURE,
) -> LabelScore:
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
    fg = foreground_probs(probs, classmap)
    pairs = [_agreement(fg[c], target[c]) for c in (present or range(fg.shape[0]))]
    soft, sep = (float(np.mean(v)) for v in zip(*pairs))
    # a training loss (pixel cross-entropy + soft Dice loss) as a score: what a model fitted to the labels
    # (medseg.qc.fit_all) failed to fit; cross-entropy sees a grown outline, soft Dice a moved or shrunk one
    confidence = np.clip(self_confidence(probs, mask, classmap), 1e-6, 1.0)
    loss = float(-np.log(confidence).mean()) + (1.0 - soft)
    loss += refit_penalty(probs, mask, classmap, loss)  # a grown, shrunk or moved outline that fits better
    loss = max(0.0, loss - loss_floor(probs, classmap))  # what no label could do better than: the object is hard
    return LabelScore(
        score=float(np.clip((soft + sep) / 2.0, 0.0, 1.0)),
        dice=d,
        iou=j,
        hd95=float(max(dists)) if dists else 0.0,
        cleanlab=clean,
        soft_dice=soft,
        separation=sep,
        label_pixels=int(target.any(0).sum()),
        predicted_pixels=int(pred.any(0).sum()),
        fit=float(np.exp(-loss)),
    )
