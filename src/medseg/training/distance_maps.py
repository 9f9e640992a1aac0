"""Signed distance maps for the boundary loss, computed in the data pipeline.

The boundary loss of Kervadec et al. ("Boundary loss for highly unbalanced
segmentation", MIDL 2019 / MedIA 2021) weights each predicted probability by
the signed distance of its pixel to the ground-truth contour. Those maps
depend only on the target, so they are computed per sample on the CPU after
augmentation (``DistanceMaps``, called like an albumentations transform) and
reach the loss through the batch, never inside the training step.

Convention (``signed_distance_map``): the *boundary* is the set of foreground
pixels with a background face-neighbour (the image edge is not a boundary:
the object may go on beyond the field of view); a boundary pixel is 0, a
pixel outside the mask is +distance and a pixel inside -distance to the
nearest boundary pixel, in physical units (``scipy.ndimage.
distance_transform_edt`` with ``sampling=spacing``). Outside, this equals
Kervadec's ``edt(~mask)``; inside it equals his ``-(edt(mask) - 1)`` for unit
spacing on axis-aligned contours, and unlike that formula (whose ``- 1`` is in
pixels, not in physical units) it keeps the boundary at 0 for anisotropic
spacing. A mask with no boundary (empty, or foreground everywhere) gets a map
of zeros, as in Kervadec's code: the boundary loss says nothing about that
class in that image and the region term (Dice) supervises it alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from medseg.training.surface_metrics import as_spacing

TASKS = ("binary", "multiclass", "multilabel")


def boundary(mask: np.ndarray) -> np.ndarray:
    """Foreground pixels with a background face-neighbour (image edges do not count)."""
    mask = np.asarray(mask, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, border_value=1)


def signed_distance_map(mask: np.ndarray, spacing: float | Sequence[float] | None = None) -> np.ndarray:
    """Signed distance (float32, shape of ``mask``) to the contour of a (H, W) or (D, H, W) mask.

    Negative inside, 0 on the boundary pixels, positive outside, in the units
    of ``spacing`` (one entry per axis, or a scalar; None = 1 per pixel).
    Empty and full masks give zeros (see the module docstring).
    """
    mask = np.asarray(mask)
    if mask.ndim not in (2, 3):
        raise ValueError(f"a mask for a distance map is (H, W) or (D, H, W), got shape {mask.shape}")
    mask = mask.astype(bool)
    sp = as_spacing(spacing, mask.ndim)
    edge = boundary(mask)
    if not edge.any():
        return np.zeros(mask.shape, dtype=np.float32)
    dist = ndimage.distance_transform_edt(~edge, sampling=sp)
    return np.where(mask & ~edge, -dist, dist).astype(np.float32)


def class_masks(target: Any, classes: int, task: str, channel_last: bool = False) -> np.ndarray:
    """One boolean mask per channel (C, *spatial) from a target in the layout of ``task``.

    ``binary``: (*spatial) or (1, *spatial) of 0/1 -> C = 1. ``multiclass``:
    (*spatial) ids in [0, classes) -> C = classes (background 0 included).
    ``multilabel``: (C, *spatial) 0/1, or (*spatial, C) with ``channel_last``.
    """
    t = np.asarray(target.detach().cpu() if hasattr(target, "detach") else target)
    if task == "binary":
        if classes != 1:
            raise ValueError(f"a binary task has 1 class channel, got classes={classes}")
        if t.ndim in (3, 4) and t.shape[0] == 1:
            t = t[0]
        return (t > 0.5)[None]
    if task == "multiclass":
        if t.ndim in (3, 4) and t.shape[0] == 1:
            t = t[0]
        ids = t.astype(np.int64)
        return np.stack([ids == c for c in range(classes)])
    if task == "multilabel":
        if channel_last:
            t = np.moveaxis(t, -1, 0)
        if t.shape[0] != classes:
            raise ValueError(
                f"a multilabel target has {classes} channels (channel "
                f"{'last' if channel_last else 'first'}), got shape {t.shape}"
            )
        return t > 0.5
    raise ValueError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")


def class_distance_maps(
    target: Any,
    classes: int,
    spacing: float | Sequence[float] | None = None,
    task: str = "multiclass",
    channel_last: bool = False,
) -> np.ndarray:
    """Signed distance maps (C, *spatial) float32, one per class channel of ``target``.

    Channels follow the model's logits: 1 for binary, ``classes`` (with
    background) for multiclass, ``classes`` for multilabel; the loss picks
    the foreground channels it uses. Target layouts: see ``class_masks``.
    """
    masks = class_masks(target, classes, task, channel_last)
    return np.stack([signed_distance_map(m, spacing) for m in masks])


def resized_spacing(spacing: Sequence[float], old_shape: Sequence[int], new_shape: Sequence[int]) -> tuple[float, ...]:
    """Physical pixel size after resizing an image of ``old_shape`` (spatial) to ``new_shape``."""
    if not len(spacing) == len(old_shape) == len(new_shape):
        raise ValueError(
            f"spacing {tuple(spacing)}, old shape {tuple(old_shape)} and new shape "
            f"{tuple(new_shape)} need one entry per spatial axis"
        )
    return tuple(float(s) * o / n for s, o, n in zip(spacing, old_shape, new_shape))


class DistanceMaps:
    """Adds ``sample[key]`` = ``class_distance_maps(sample["mask"], ...)`` to a sample dict.

    Called like an albumentations transform (``t(image=..., mask=...)`` returns
    the dict), so it goes right after the augmentation pipeline (the maps
    must follow the augmented mask). ``sample["spacing"]``, when present,
    overrides the spacing given here (pass the spacing of the mask as it is
    now, e.g. ``resized_spacing`` after a resize).
    """

    def __init__(
        self,
        classes: int,
        task: str,
        spacing: float | Sequence[float] | None = None,
        channel_last: bool = False,
        key: str = "dist_maps",
    ):
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
        self.classes, self.task, self.spacing = classes, task, spacing
        self.channel_last, self.key = channel_last, key

    def __call__(self, **sample: Any) -> dict[str, Any]:
        if "mask" not in sample:
            raise KeyError(f"DistanceMaps needs a 'mask' in the sample, got keys {sorted(sample)}")
        spacing = sample.get("spacing", self.spacing)
        sample[self.key] = class_distance_maps(sample["mask"], self.classes, spacing, self.task, self.channel_last)
        return sample

    def __repr__(self) -> str:
        return (
            f"DistanceMaps(classes={self.classes}, task={self.task!r}, spacing={self.spacing!r}, "
            f"channel_last={self.channel_last})"
        )
