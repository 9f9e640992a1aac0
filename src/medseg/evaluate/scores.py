"""One sample's scores per class: Dice, IoU, HD95, ASSD and object counts, with the training metrics' rules.

The overlap and distance definitions are the ones validation uses
(:mod:`medseg.training.metrics`, :mod:`medseg.training.surface_metrics`, both
checked against MONAI), so a run's validation Dice and ``medseg evaluate``'s
agree at the same resolution. Empty masks, per sample and class:

* both empty: Dice 1, IoU 1, HD95 0, ASSD 0;
* exactly one empty: Dice 0, IoU 0, HD95 and ASSD undefined (NaN: left out of
  means and medians, counted as ``undefined`` in the summary; an empty cell in
  the CSV).

Distances are in the image's physical unit when its file states a spacing
(mm for DICOM and NIfTI, the volume's voxel spacing included), else in pixels
(``unit`` says which per row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medseg.datasets.classmap import ClassMap
from medseg.evaluate.objects import ObjectCounts, match_objects
from medseg.training.metrics import dice_iou
from medseg.training.surface_metrics import assd, hd95

METRICS = ("dice", "iou", "hd95", "assd")
LOWER_IS_BETTER = ("hd95", "assd")
COLUMNS = (
    "sample_id",
    "class",
    "dice",
    "iou",
    "hd95",
    "assd",
    "unit",
    "object_precision",
    "object_recall",
    "objects_predicted",
    "objects_labelled",
    "objects_matched",
    "predicted_pixels",
    "labelled_pixels",
    "group",
    "revision",
)


@dataclass
class SampleScore:
    """The scores of one sample and one class: a row of ``per_sample.csv``."""

    sample_id: str
    class_name: str
    dice: float
    iou: float
    hd95: float
    assd: float
    unit: str
    objects: ObjectCounts
    predicted_pixels: int
    labelled_pixels: int
    group: str = ""
    revision: int | None = None

    def value(self, metric: str) -> float:
        return float(getattr(self, metric))

    def row(self) -> dict[str, Any]:
        """The CSV row: NaN (undefined) as an empty cell."""
        values = {
            "sample_id": self.sample_id,
            "class": self.class_name,
            **{m: self.value(m) for m in METRICS},
            "unit": self.unit,
            "object_precision": self.objects.precision,
            "object_recall": self.objects.recall,
            "objects_predicted": self.objects.predicted,
            "objects_labelled": self.objects.labelled,
            "objects_matched": self.objects.matched,
            "predicted_pixels": self.predicted_pixels,
            "labelled_pixels": self.labelled_pixels,
            "group": self.group,
            "revision": "" if self.revision is None else self.revision,
        }
        return {k: ("" if isinstance(v, float) and np.isnan(v) else v) for k, v in values.items()}


def class_masks(labels: np.ndarray, classmap: ClassMap, spatial_ndim: int) -> list[tuple[str, np.ndarray]]:
    """(class name, boolean mask) per foreground class of a label array: class ids (binary: 0/1) with
    ``spatial_ndim`` axes, or one channel per class on the last axis for multilabel."""
    a = np.asarray(labels)
    if classmap.task == "multilabel":
        if a.ndim != spatial_ndim + 1 or a.shape[-1] != classmap.num_classes:
            raise ValueError(
                f"multilabel masks are (*S, {classmap.num_classes}) with {spatial_ndim} spatial axes, got {a.shape}"
            )
        return [(name, a[..., k] > 0) for k, name in enumerate(classmap.names)]
    if a.ndim != spatial_ndim:
        raise ValueError(f"class-id masks have {spatial_ndim} axes, got shape {a.shape}")
    if classmap.task == "binary":
        return [(classmap.names[0], a > 0)]
    return [(name, a == cid) for cid, name in zip(classmap.ids, classmap.names)]


def score_sample(
    sample_id: str,
    prediction: np.ndarray,
    target: np.ndarray,
    classmap: ClassMap,
    spacing: Sequence[float] | None = None,
    unit: str = "px",
    min_iou: float = 0.5,
    group: str = "",
    revision: int | None = None,
) -> list[SampleScore]:
    """The rows of one sample: ``prediction`` and ``target`` are label arrays of the same grid (see
    :func:`class_masks`); ``spacing`` one value per spatial axis (None: 1 per pixel)."""
    pred, true = np.asarray(prediction), np.asarray(target)
    if pred.shape != true.shape:
        raise ValueError(f"sample {sample_id}: prediction {pred.shape} and label {true.shape} differ in shape")
    spatial = pred.ndim - (1 if classmap.task == "multilabel" else 0)
    rows = []
    for (name, p), (_, t) in zip(class_masks(pred, classmap, spatial), class_masks(true, classmap, spatial)):
        dice, iou = dice_iou(p[None, None], t[None, None])
        rows.append(
            SampleScore(
                sample_id=str(sample_id),
                class_name=name,
                dice=float(dice[0, 0]),
                iou=float(iou[0, 0]),
                hd95=hd95(p, t, spacing),
                assd=assd(p, t, spacing),
                unit=unit,
                objects=match_objects(p, t, min_iou),
                predicted_pixels=int(p.sum()),
                labelled_pixels=int(t.sum()),
                group=str(group),
                revision=revision,
            )
        )
    return rows
