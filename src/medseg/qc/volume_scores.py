"""Label quality of a volume (a CT or MR case) from a slice model: per-slice scores, and the volume's from
its worst slices.

A 2-D (or 2.5-D) model predicts each slice (``Predictor.predict_slice``, the
volume's intensity window read once); each slice's label is scored against
that prediction as a 2-D label is (:func:`medseg.qc.label_scores.label_score`,
HD95 in mm from the in-plane spacing). Slices where neither the label nor the
prediction holds anything are right by both and are not judged.

The volume's score is the mean of its ``k`` worst judged slices' scores,
``k = max(MIN_WORST, WORST_SHARE x judged slices)`` (all of them when fewer):
a label wrong on 3 of 300 slices is a wrong label for the person who trains
on it, and a mean over every slice would hide it among the 297 good ones; a
few slices rather than the single worst keep one slice the model finds hard
(the first slice of an organ, a partial volume) from deciding alone.

Details (what the review queue and ``medseg rank`` show): ``worst_slices``
(up to ``WORST_LISTED`` z, worst first), ``worst_k``, ``n_slices``,
``n_judged``, ``slice_scores`` {z: score} for every judged slice, the worst
slices' mean ``dice`` / ``iou`` / ``cleanlab`` / ``soft_dice`` /
``separation`` and largest ``hd95`` (mm), and ``volume_dice``: the
per-class Dice over the whole volume (mean over the classes in the label or
the prediction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from medseg.datasets.classmap import ClassMap
from medseg.jobs import CancelToken, check
from medseg.qc.label_scores import LabelScore, label_score, prediction_labels

WORST_SHARE = 0.1
MIN_WORST = 3
WORST_LISTED = 10


@dataclass
class _Overlap:
    """Per-class voxel counts summed over slices, for the whole volume's Dice."""

    inter: np.ndarray
    pred: np.ndarray
    label: np.ndarray

    @classmethod
    def empty(cls, n: int) -> _Overlap:
        return cls(np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64))

    def add(self, pred: np.ndarray, label: np.ndarray, ids: list[int]) -> None:
        for k, cid in enumerate(ids):
            p, t = pred == cid, label == cid
            self.inter[k] += int(np.count_nonzero(p & t))
            self.pred[k] += int(np.count_nonzero(p))
            self.label[k] += int(np.count_nonzero(t))

    def dice(self) -> float:
        present = (self.pred + self.label) > 0
        if not present.any():
            return 1.0
        return float(np.mean(2.0 * self.inter[present] / (self.pred[present] + self.label[present])))


def worst_count(n_judged: int) -> int:
    return min(n_judged, max(MIN_WORST, math.ceil(WORST_SHARE * n_judged)))


def volume_score(per_slice: dict[int, LabelScore], n_slices: int, volume_dice: float | None = None) -> tuple:
    """(score in [0, 1], details) from the judged slices' scores (module doc); a volume with no judged
    slice (label and prediction empty throughout) scores 1."""
    judged = {z: s for z, s in per_slice.items() if s.label_pixels or s.predicted_pixels}
    details: dict = {"n_slices": int(n_slices), "n_judged": len(judged), "volume_dice": volume_dice}
    if not judged:
        return 1.0, {**details, "worst_slices": [], "worst_k": 0, "slice_scores": {}, "dice": 1.0}
    order = sorted(judged, key=lambda z: (judged[z].score, z))
    k = worst_count(len(judged))
    worst = [judged[z] for z in order[:k]]
    score = float(np.mean([s.score for s in worst]))
    details.update(
        worst_slices=[int(z) for z in order[:WORST_LISTED]],
        worst_k=k,
        slice_scores={int(z): round(float(s.score), 4) for z, s in sorted(judged.items())},
        slice_dice={int(z): round(float(judged[z].dice), 4) for z in order[:WORST_LISTED]},
        dice=float(np.mean([s.dice for s in worst])),
        iou=float(np.mean([s.iou for s in worst])),
        cleanlab=float(np.mean([s.cleanlab for s in worst])),
        soft_dice=float(np.mean([s.soft_dice for s in worst])),
        separation=float(np.mean([s.separation for s in worst])),
        hd95=float(max(s.hd95 for s in worst)),
        label_pixels=int(sum(s.label_pixels for s in judged.values())),
        predicted_pixels=int(sum(s.predicted_pixels for s in judged.values())),
    )
    return score, details


def score_volume(predictor, sample, classmap: ClassMap, cancel: CancelToken | None = None) -> tuple[float, dict]:
    """Predict every slice of a volume sample and score its label: (score, details) as in the module doc.

    Raises ``Cancelled`` between slices when ``cancel`` is set; a label whose shape is not the image's
    raises RankingError naming the sample."""
    from medseg.errors import RankingError

    image = sample.load_image()
    mask = np.asarray(sample.load_mask())
    if mask.shape[:3] != tuple(image.array.shape[:3]):
        raise RankingError(
            f"sample {sample.id}: label volume {mask.shape} and image {image.array.shape} differ ({sample.image_path})"
        )
    spacing = tuple(float(s) for s in image.spacing[-2:]) if len(image.spacing) == 3 else None
    volume = predictor.volume_input(image)
    ids = list(classmap.ids)
    overlap = _Overlap.empty(len(ids))
    per_slice: dict[int, LabelScore] = {}
    for z in range(mask.shape[0]):
        check(cancel, z, mask.shape[0], f"slices of {sample.id}")
        pred = predictor.predict_slice(volume, z)
        per_slice[z] = label_score(pred.probs, mask[z], classmap, threshold=predictor.threshold, spacing=spacing)
        overlap.add(prediction_labels(pred.probs, classmap, predictor.threshold), mask[z], ids)
    return volume_score(per_slice, mask.shape[0], overlap.dice())
