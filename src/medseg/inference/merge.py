"""Copying a model's prediction into a label map: all of it, one plane, one class, or a region.

Both arrays are class-id maps of one shape ``(*lead, H, W)``: a 2-D image has
no leading axes, a stack or volume has one ``(slice, H, W)`` (or more).
``predicted`` says which planes hold a prediction at all (live inference fills
a stack one slice at a time); planes without one are never touched, so copying
"everything" cannot wipe the labels of slices the model has not seen.

Modes:
  * ``"whole"``: every predicted pixel replaces the label.
  * ``"slice"``: only the plane ``plane`` (the one on screen).
  * ``"label"``: only class ``label``: pixels predicted as it become it, pixels
    labelled it that the model puts elsewhere become background; other classes
    keep their labels where the model does not claim them for ``label``.
  * ``"region"``: only inside ``region`` (a boolean (H, W) mask applied to the
    planes in scope, or a full-shape mask), e.g. polygons the user drew.
``"label"`` and ``"region"`` are further limited to ``plane`` when it is given.
The input arrays are never modified; the result is a new array.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medseg.errors import InferenceError

MODES = ("whole", "slice", "label", "region")


@dataclass(frozen=True)
class MergeResult:
    """The merged label map (a new array) and how many pixels changed value."""

    labels: np.ndarray
    changed: int


def plane_scope(lead: tuple[int, ...], predicted: np.ndarray | None, plane: Sequence[int] | None) -> np.ndarray:
    """Boolean array over the leading axes: the planes a copy may write."""
    scope = np.ones(lead, bool) if predicted is None else np.asarray(predicted, bool)
    if scope.shape != lead:
        raise InferenceError(f"'predicted' has shape {scope.shape}; the label map's planes are {lead}")
    if plane is not None:
        plane = tuple(int(i) for i in plane)
        if len(plane) != len(lead) or any(not 0 <= i < n for i, n in zip(plane, lead)):
            raise InferenceError(f"plane {plane} is not a plane of a label map with leading axes {lead}")
        only = np.zeros(lead, bool)
        only[plane] = True
        scope = scope & only
    return scope


def merge_prediction(
    labels: np.ndarray,
    prediction: np.ndarray,
    mode: str = "whole",
    *,
    plane: Sequence[int] | None = None,
    predicted: np.ndarray | None = None,
    label: int | None = None,
    region: np.ndarray | None = None,
) -> MergeResult:
    """The label map with (part of) the prediction copied in; see the module docstring."""
    labels, prediction = np.asarray(labels), np.asarray(prediction)
    if mode not in MODES:
        raise InferenceError(f"unknown copy mode {mode!r}; valid: {', '.join(MODES)}")
    if labels.ndim < 2 or labels.shape != prediction.shape:
        raise InferenceError(
            f"cannot copy a prediction of shape {prediction.shape} into labels of shape "
            f"{labels.shape}: they must be the same (H, W) or (..., H, W) class-id maps"
        )
    for what, a in (("labels", labels), ("prediction", prediction)):
        if a.dtype.kind not in "biu":
            raise InferenceError(f"the {what} must hold integer class ids, not {a.dtype}")
    lead = labels.shape[:-2]
    if mode == "slice" and plane is None:
        if lead:
            raise InferenceError("copying the current slice needs the plane on screen")
        plane = ()
    scope = plane_scope(lead, predicted, plane if mode != "whole" else None)
    if not scope.any():
        where = f"plane {tuple(plane)}" if plane is not None and lead else "this image"
        raise InferenceError(f"there is no prediction for {where} yet: predict first")
    where = np.broadcast_to(scope.reshape(lead + (1, 1)), labels.shape)
    values = prediction
    if mode == "label":
        if label is None or int(label) <= 0:
            raise InferenceError(f"copying one class needs a class id > 0 (0 is background), got {label!r}")
        label = int(label)
        claimed = prediction == label
        where = where & (claimed | (labels == label))
        values = np.where(claimed, label, 0)
    elif mode == "region":
        if region is None:
            raise InferenceError("copying a region needs a region mask (draw shapes first)")
        region = np.asarray(region, bool)
        if region.shape not in (labels.shape, labels.shape[-2:]):
            raise InferenceError(
                f"the region mask has shape {region.shape}; expected {labels.shape[-2:]} or {labels.shape}"
            )
        where = where & np.broadcast_to(region, labels.shape)
        if not where.any():
            raise InferenceError("the drawn region covers no predicted pixel of the labels")
    out = labels.astype(_result_dtype(labels, values), copy=True)
    out[where] = values[where]
    changed = int(np.count_nonzero(out[where] != labels[where]))
    return MergeResult(out, changed)


def _result_dtype(labels: np.ndarray, values: np.ndarray) -> np.dtype:
    """The labels' own type unless the copied ids do not fit in it."""
    if labels.dtype.kind == "b":
        return np.dtype(np.uint8) if values.size == 0 or int(values.max()) <= 255 else np.dtype(np.uint16)
    top = int(values.max()) if values.size else 0
    if top <= np.iinfo(labels.dtype).max:
        return labels.dtype
    return np.promote_types(labels.dtype, np.min_scalar_type(top))
