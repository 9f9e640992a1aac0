"""Object-level precision and recall: connected components of prediction and label matched one to one.

An object is a connected component of one class's mask, with full
connectivity (8 neighbours in 2-D, 26 in 3-D), so a diagonal chain of pixels
is one object. A predicted object and a labelled object match when their IoU
is at least ``min_iou`` (0.5 by default); pairs are taken greedily by IoU,
highest first, each object used once (with ``min_iou >= 0.5`` at most one
partner can pass, so the greedy matching is the only one).

Conventions, per sample and class:

* precision = matched / predicted objects, recall = matched / labelled objects;
* neither has an object: precision 1, recall 1 (nothing to find, nothing wrong);
* objects predicted, none labelled: precision 0, recall undefined (NaN);
* objects labelled, none predicted: precision undefined (NaN), recall 0.

Pooled over samples the same rules apply to the summed counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class ObjectCounts:
    predicted: int
    labelled: int
    matched: int

    @property
    def precision(self) -> float:
        return ratio(self.matched, self.predicted, self.labelled)

    @property
    def recall(self) -> float:
        return ratio(self.matched, self.labelled, self.predicted)

    def __add__(self, other: ObjectCounts) -> ObjectCounts:
        return ObjectCounts(
            self.predicted + other.predicted, self.labelled + other.labelled, self.matched + other.matched
        )


def ratio(matched: int, of: int, other: int) -> float:
    """``matched / of`` with the conventions of the module docstring (``other``: the opposite side's count)."""
    if of:
        return matched / of
    return 1.0 if other == 0 else float("nan")


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Labelled connected components (full connectivity) of a boolean mask and their number."""
    mask = np.asarray(mask, dtype=bool)
    labels, n = ndimage.label(mask, structure=np.ones((3,) * mask.ndim, dtype=bool))
    return labels, int(n)


def match_objects(pred: np.ndarray, target: np.ndarray, min_iou: float = 0.5) -> ObjectCounts:
    """Predicted, labelled and matched object counts of two boolean masks of one class."""
    if not 0 < min_iou <= 1:
        raise ValueError(f"the object matching IoU must be in (0, 1], got {min_iou}")
    if pred.shape != target.shape:
        raise ValueError(f"masks of shapes {pred.shape} and {target.shape} cannot be compared")
    lp, n_pred = components(pred)
    lt, n_true = components(target)
    if n_pred == 0 or n_true == 0:
        return ObjectCounts(n_pred, n_true, 0)
    # overlap of every (predicted, labelled) pair in one pass: a 2-D histogram of the label pairs
    both = (lp > 0) & (lt > 0)
    inter = np.zeros((n_pred + 1, n_true + 1), np.int64)
    np.add.at(inter, (lp[both], lt[both]), 1)
    inter = inter[1:, 1:]
    area_p = np.bincount(lp.ravel(), minlength=n_pred + 1)[1:]
    area_t = np.bincount(lt.ravel(), minlength=n_true + 1)[1:]
    iou = inter / (area_p[:, None] + area_t[None, :] - inter)
    pi, ti = np.nonzero(iou >= min_iou)
    order = np.argsort(-iou[pi, ti], kind="stable")
    used_p, used_t, matched = set(), set(), 0
    for k in order:
        p, t = int(pi[k]), int(ti[k])
        if p not in used_p and t not in used_t:
            used_p.add(p)
            used_t.add(t)
            matched += 1
    return ObjectCounts(n_pred, n_true, matched)
