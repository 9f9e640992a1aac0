"""Mask content rules of the workspace: one canonical form per label state, and pixel differences.

A label state has exactly one stored form, so "the same mask" means the same
hash whatever array type the caller used:
  * binary / multiclass: class ids in the smallest unsigned type that holds
    them (uint8 up to 255, then uint16, uint32); bool becomes uint8 0/1.
  * multilabel: bool with the classes on the last axis, in class-map order.
Values outside the class map are refused, so nothing unlabelled slips into
an export.
"""

from __future__ import annotations

import numpy as np

from medseg.datasets.classmap import ClassMap
from medseg.errors import WorkspaceError


def canonical_mask(mask: np.ndarray, classmap: ClassMap, sample_id: str = "") -> np.ndarray:
    arr = np.asarray(mask)
    who = f"sample {sample_id}: " if sample_id else ""
    if arr.ndim < 2:
        raise WorkspaceError(f"{who}a mask needs at least 2 dimensions, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise WorkspaceError(f"{who}masks hold integers or booleans, not {arr.dtype}")
    if arr.dtype.kind == "f" and not (np.all(np.isfinite(arr)) and np.array_equal(arr, np.round(arr))):
        raise WorkspaceError(f"{who}a float mask must hold whole class ids; threshold or round it first")
    if classmap.task == "multilabel":
        return _multilabel(arr, classmap, who)
    if arr.size and arr.min() < 0:
        raise WorkspaceError(f"{who}mask holds negative values (min {arr.min()}); 0 is background")
    top = int(arr.max()) if arr.size else 0
    dtype = np.uint8 if top <= 0xFF else np.uint16 if top <= 0xFFFF else np.uint32
    if top > 0xFFFFFFFF:
        raise WorkspaceError(f"{who}class id {top} is too large")
    ids = np.ascontiguousarray(arr, dtype=dtype)
    valid = {0, *classmap.ids}
    present = np.flatnonzero(np.bincount(ids.ravel())) if top <= 0xFFFF else np.unique(ids)
    bad = sorted(int(v) for v in present if int(v) not in valid)
    if bad:
        hint = " (a 0/255 mask must be binarised to 0/1 first)" if classmap.task == "binary" and 255 in bad else ""
        raise WorkspaceError(
            f"{who}mask values {_short(bad)} are not in the class map "
            f"(valid: 0 = {classmap.background}, {_valid(classmap)}){hint}"
        )
    return ids


def _multilabel(arr: np.ndarray, classmap: ClassMap, who: str) -> np.ndarray:
    n = len(classmap.classes)
    if arr.ndim < 3 or arr.shape[-1] != n:
        raise WorkspaceError(
            f"{who}a multilabel mask is (..., C) with C = {n} classes "
            f"({', '.join(classmap.names)}), got shape {arr.shape}"
        )
    if arr.dtype.kind != "b":
        values = np.unique(arr)
        if not set(values.tolist()) <= {0, 1}:
            raise WorkspaceError(
                f"{who}a multilabel mask holds 0/1 or booleans per class, got values {_short(values.tolist())}"
            )
    return np.ascontiguousarray(arr, dtype=bool)


def _short(values: list, limit: int = 10) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f", ... ({len(values) - limit} more)" if len(values) > limit else "")


def _valid(classmap: ClassMap) -> str:
    return ", ".join(f"{c.id} = {c.name}" for c in classmap.classes)


def changed_pixels(old: np.ndarray, new: np.ndarray, classmap: ClassMap) -> tuple[dict[int, int], int]:
    """(changed pixels per foreground class id, pixels changed at all) between two canonical masks.

    For id masks a pixel moved from class a to class b counts for a and for b
    (it left one and joined the other); background is not listed. For
    multilabel masks class c counts the pixels whose channel c flipped.
    """
    if old.shape != new.shape:
        raise WorkspaceError(f"cannot compare masks of shapes {old.shape} and {new.shape}")
    if classmap.task == "multilabel":
        flips = old != new
        per = flips.reshape(-1, flips.shape[-1]).sum(axis=0)
        changed = {c.id: int(k) for c, k in zip(classmap.classes, per) if k}
        return changed, int(flips.any(axis=-1).sum())
    differ = old != new
    n = int(differ.sum())
    if not n:
        return {}, 0
    size = int(max(old.max(), new.max())) + 1
    counts = np.bincount(old[differ].ravel(), minlength=size) + np.bincount(new[differ].ravel(), minlength=size)
    return {int(c): int(counts[c]) for c in np.nonzero(counts)[0] if c != 0}, n
