"""Per-class Dice, IoU, HD95 and ASSD, and an accumulator over images (MONAI's pattern).

Inputs (numpy arrays or torch tensors, any device):

* target: binary (B, *S) or (B, 1, *S) of 0/1; multiclass (B, *S) or
  (B, 1, *S) of class ids; multilabel (B, C, *S) of 0/1. ``*S`` are the
  ``spatial_dims`` spatial axes (2 or 3).
* pred: either hard labels in the target's layout (integer or bool), or
  *logits* (any floating dtype, (B, C, *S)), discretised as the models are
  read: argmax for multiclass, logit > 0 (sigmoid > 0.5) otherwise. A
  probability map must be thresholded first (``p > 0.5``): floats are logits.

Empty cases, per image and class: both empty -> Dice 1, IoU 1, HD95 0,
ASSD 0; exactly one empty -> Dice 0, IoU 0, HD95 / ASSD = ``empty_distance``
(NaN by default: undefined, left out of every mean and counted in
``compute()["<metric>_undefined"]``; a number, or "diagonal" for the
image's physical diagonal, scores it as that distance instead).

Means: per class over images first, then over classes (NaNs skipped).
Multiclass metrics skip the background class 0 unless
``include_background=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from medseg.training.surface_metrics import assd, hd95, image_diagonal

MODES = ("binary", "multiclass", "multilabel")
METRICS = ("dice", "iou", "hd95", "assd")


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dtype == torch.bfloat16:
            x = x.float()  # numpy has no bfloat16
        return x.cpu().numpy()
    return np.asarray(x)


def to_masks(x: Any, mode: str, num_classes: int, spatial_dims: int = 2, is_target: bool = False) -> np.ndarray:
    """Boolean masks (B, C, *S) from labels or logits (see the module docstring)."""
    a = _numpy(x)
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    logits = not is_target and np.issubdtype(a.dtype, np.floating)
    with_channel = a.ndim == spatial_dims + 2
    if not with_channel and a.ndim != spatial_dims + 1:
        raise ValueError(
            f"a {mode} {'target' if is_target else 'prediction'} with {spatial_dims} spatial axes "
            f"is (B, {'C, ' if mode == 'multilabel' else ''}*S), got shape {a.shape}"
        )
    if mode == "multiclass":
        if logits:
            if not with_channel or a.shape[1] != num_classes:
                raise ValueError(f"multiclass logits are (B, {num_classes}, *S), got shape {a.shape}")
            ids = a.argmax(1)
        else:
            if with_channel and a.shape[1] != 1:
                raise ValueError(f"multiclass labels are (B, *S) or (B, 1, *S) of ids, got shape {a.shape}")
            ids = a[:, 0] if with_channel else a
        return np.stack([ids == c for c in range(num_classes)], axis=1)
    if not with_channel:
        if mode == "multilabel":
            raise ValueError(f"multilabel masks are (B, {num_classes}, *S), got shape {a.shape}")
        a = a[:, None]
    if a.shape[1] != num_classes:
        raise ValueError(f"{mode} masks have {num_classes} channel(s), got shape {a.shape}")
    return a > 0 if logits else a > 0.5


def dice_iou(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dice and IoU (B, C) of boolean masks (B, C, *S); both empty -> 1, one empty -> 0."""
    axes = tuple(range(2, pred.ndim))
    inter = np.logical_and(pred, target).sum(axes).astype(np.float64)
    sp, st = pred.sum(axes).astype(np.float64), target.sum(axes).astype(np.float64)
    union = sp + st - inter
    empty = union == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(empty, 1.0, 2 * inter / (sp + st))
        iou = np.where(empty, 1.0, inter / union)
    return dice, iou


def _spacings(spacing: Any, batch: int, spatial_dims: int) -> list[Any]:
    if spacing is None or np.isscalar(spacing):
        return [spacing] * batch
    arr = np.asarray(_numpy(spacing), dtype=np.float64)
    if arr.ndim == 1:
        return [tuple(arr)] * batch
    if arr.shape != (batch, spatial_dims):
        raise ValueError(
            f"spacing is one value, {spatial_dims} values, or ({batch}, {spatial_dims}) per image; "
            f"got shape {arr.shape}"
        )
    return [tuple(r) for r in arr]


class MetricAccumulator:
    """Collects per-image, per-class Dice / IoU / HD95 / ASSD; ``compute()`` reduces them.

    ``num_classes`` is the number of logit channels (multiclass: with
    background; binary: 1). ``class_names`` name the channels in the result
    (default: the channel index). ``surface=False`` skips HD95 / ASSD (the
    costly part: two EDTs per image and class on the CPU).
    """

    def __init__(
        self,
        mode: str,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        include_background: bool = False,
        spatial_dims: int = 2,
        surface: bool = True,
        empty_distance: float | str | None = None,
    ):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
        if mode == "binary" and num_classes != 1:
            raise ValueError(f"binary mode has 1 channel, got num_classes={num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} channels")
        if not (empty_distance is None or empty_distance == "diagonal" or isinstance(empty_distance, (int, float))):
            raise ValueError(f"empty_distance is None (NaN), 'diagonal' or a number, got {empty_distance!r}")
        self.mode, self.num_classes, self.spatial_dims = mode, num_classes, spatial_dims
        self.surface, self.empty_distance = surface, empty_distance
        first = 1 if mode == "multiclass" and not include_background else 0
        self.channels = list(range(first, num_classes))
        names = list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
        self.names = [names[c] for c in self.channels]
        self.reset()

    def reset(self) -> None:
        self._rows: dict[str, list[np.ndarray]] = {m: [] for m in METRICS}

    def update(self, pred: Any, target: Any, spacing: Any = None) -> dict[str, np.ndarray]:
        """Adds a batch; returns this batch's (B, classes) values per metric."""
        p = to_masks(pred, self.mode, self.num_classes, self.spatial_dims)[:, self.channels]
        t = to_masks(target, self.mode, self.num_classes, self.spatial_dims, is_target=True)[:, self.channels]
        if p.shape != t.shape:
            raise ValueError(f"prediction {p.shape} and target {t.shape} differ in shape")
        dice, iou = dice_iou(p, t)
        out = {"dice": dice, "iou": iou}
        if self.surface:
            out["hd95"] = np.full(dice.shape, np.nan)
            out["assd"] = np.full(dice.shape, np.nan)
            for b, sp in enumerate(_spacings(spacing, p.shape[0], self.spatial_dims)):
                worst = self._worst(p.shape[2:], sp)
                for c in range(p.shape[1]):
                    out["hd95"][b, c] = hd95(p[b, c], t[b, c], sp, worst)
                    out["assd"][b, c] = assd(p[b, c], t[b, c], sp, worst)
        for k, v in out.items():
            self._rows[k].append(v)
        return out

    def _worst(self, shape: Sequence[int], spacing: Any) -> float:
        if self.empty_distance is None:
            return float("nan")
        if self.empty_distance == "diagonal":
            return image_diagonal(shape, spacing)
        return float(self.empty_distance)

    def values(self, metric: str) -> np.ndarray:
        """All collected values (images, classes) of ``metric``."""
        rows = self._rows[metric]
        return np.concatenate(rows) if rows else np.zeros((0, len(self.channels)))

    def compute(self) -> dict[str, float]:
        """``{metric: mean, "metric/class": per-class mean, "metric_undefined": count, "images": n}``."""
        result: dict[str, float] = {"images": float(self.values("dice").shape[0])}
        for m in METRICS:
            vals = self.values(m)
            if not self._rows[m]:
                continue
            defined = ~np.isnan(vals)
            counts = defined.sum(0)
            per_class = np.where(counts > 0, np.where(defined, vals, 0).sum(0) / np.maximum(counts, 1), np.nan)
            for name, v in zip(self.names, per_class):
                result[f"{m}/{name}"] = float(v)
            result[m] = float(np.nanmean(per_class)) if np.any(counts > 0) else float("nan")
            result[f"{m}_undefined"] = float((~defined).sum())
        return result
