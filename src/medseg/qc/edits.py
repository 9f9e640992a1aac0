"""A reviewer's label helpers: fill holes, remove specks, smooth, grow or shrink by one pixel.

Pure functions: a mask in the workspace's form (class ids; booleans with the
classes on the last axis for multilabel class maps) in, a new mask of the same
form out; nothing is saved. ``classes`` limits an edit to some class ids
(default: every class). Neighbourhoods are over the spatial axes, so the same
helpers work on 2-D masks and on volumes.

* ``fill_holes`` / ``remove_specks``: the QC fixes (:mod:`medseg.qc.fixes`),
  with "specks" meaning components smaller than ``min_pixels``.
* ``smooth``: each pixel takes the label held by most of its 3x3 (3x3x3)
  neighbourhood; a tie keeps the pixel's label. Jagged edges and one-pixel
  spurs and notches go, shapes stay.
* ``dilate``: background pixels touching a class (face neighbours) join it
  (the class with most such neighbours); other classes are never overwritten.
* ``erode``: class pixels touching anything else (face neighbours) become
  background; the image border does not erode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from medseg.datasets.classmap import ClassMap
from medseg.errors import UnknownNameError
from medseg.qc.fixes import FixError, apply_fix


def fill_holes(mask: np.ndarray, classmap: ClassMap, classes: Iterable[int] | None = None) -> np.ndarray:
    new, _ = apply_fix("fill_holes", mask, classmap)
    return _only(mask, new, classmap, classes)


def remove_specks(
    mask: np.ndarray, classmap: ClassMap, min_pixels: int = 20, classes: Iterable[int] | None = None
) -> np.ndarray:
    """Connected components (8-connected) of fewer than ``min_pixels`` pixels take their surroundings' label."""
    if int(min_pixels) < 1:
        raise FixError(f"remove_specks: min_pixels must be >= 1, got {min_pixels!r}")
    chosen = None if classes is None else [int(c) for c in classes]
    new, _ = apply_fix("remove_specks", mask, classmap, max_pixels=int(min_pixels) - 1, classes=chosen)
    return new


def smooth(mask: np.ndarray, classmap: ClassMap, classes: Iterable[int] | None = None) -> np.ndarray:
    if classmap.task == "multilabel":
        return _per_channel(mask, classmap, classes, lambda m: _majority(m.astype(np.uint8), [0, 1]) == 1)
    mask = np.asarray(mask)
    labels = [int(v) for v in np.unique(mask)]
    new = _majority(mask, labels) if len(labels) > 1 else mask.copy()
    return _only(mask, new, classmap, classes)


def dilate(mask: np.ndarray, classmap: ClassMap, classes: Iterable[int] | None = None) -> np.ndarray:
    from scipy import ndimage as ndi

    if classmap.task == "multilabel":
        return _per_channel(mask, classmap, classes, lambda m: ndi.binary_dilation(m, structure=_cross(m.ndim)))
    mask = np.asarray(mask)
    chosen = _chosen_ids(mask, classes)
    if not chosen:
        return mask.copy()
    cross = _cross(mask.ndim).astype(np.int32)
    counts = np.stack([ndi.correlate((mask == c).astype(np.int32), cross, mode="constant") for c in chosen])
    best = np.asarray(chosen, dtype=mask.dtype)[counts.argmax(axis=0)]
    grow = (mask == 0) & (counts.max(axis=0) > 0)
    new = mask.copy()
    new[grow] = best[grow]
    return new


def erode(mask: np.ndarray, classmap: ClassMap, classes: Iterable[int] | None = None) -> np.ndarray:
    from scipy import ndimage as ndi

    if classmap.task == "multilabel":
        return _per_channel(
            mask, classmap, classes, lambda m: ndi.binary_erosion(m, structure=_cross(m.ndim), border_value=1)
        )
    mask = np.asarray(mask)
    new = mask.copy()
    for c in _chosen_ids(mask, classes):
        inside = mask == c
        kept = ndi.binary_erosion(inside, structure=_cross(mask.ndim), border_value=1)
        new[inside & ~kept] = 0
    return new


EDITS: dict[str, Callable[..., np.ndarray]] = {
    "fill_holes": fill_holes,
    "remove_specks": remove_specks,
    "smooth": smooth,
    "dilate": dilate,
    "erode": erode,
}


def apply_edit(name: str, mask: np.ndarray, classmap: ClassMap, **params) -> tuple[np.ndarray, dict]:
    """``mask`` after edit ``name`` (one of ``EDITS``) and a summary: the edit, its parameters, pixels changed."""
    if name not in EDITS:
        raise UnknownNameError("label edit", name, list(EDITS))
    mask = np.asarray(mask)
    try:
        new = EDITS[name](mask, classmap, **params)
    except TypeError as e:
        raise FixError(f"label edit {name!r}: {e}") from None
    differ = mask != new
    n = int(differ.any(axis=-1).sum()) if classmap.task == "multilabel" else int(differ.sum())
    return new, {"edit": name, "params": params, "n_changed": n}


def _cross(ndim: int) -> np.ndarray:
    from scipy import ndimage as ndi

    return ndi.generate_binary_structure(ndim, 1)


def _majority(mask: np.ndarray, labels: list[int]) -> np.ndarray:
    """Each pixel's most common label in its full 3^n neighbourhood; ties keep the pixel's own label."""
    from scipy import ndimage as ndi

    box = np.ones((3,) * mask.ndim, np.int32)
    votes = np.stack([ndi.correlate((mask == v).astype(np.int32), box, mode="nearest") for v in labels])
    top = votes.max(axis=0)
    own = np.take_along_axis(votes, np.searchsorted(labels, mask)[None], axis=0)[0]
    winner = np.asarray(labels, dtype=mask.dtype)[votes.argmax(axis=0)]
    return np.where(top > own, winner, mask)


def _chosen_ids(mask: np.ndarray, classes: Iterable[int] | None) -> list[int]:
    present = [int(v) for v in np.unique(mask) if v != 0]
    if classes is None:
        return present
    wanted = {int(c) for c in classes}
    return [c for c in present if c in wanted]


def _only(old: np.ndarray, new: np.ndarray, classmap: ClassMap, classes: Iterable[int] | None) -> np.ndarray:
    """Keep the changes of ``new`` that touch ``classes`` (a pixel leaving or joining one of them)."""
    if classes is None:
        return new
    wanted = [int(c) for c in classes]
    if classmap.task == "multilabel":
        keep = np.isin(classmap.ids, wanted)
        return np.where(keep, new, old)
    touched = np.isin(old, wanted) | np.isin(new, wanted)
    return np.where(touched, new, old)


def _per_channel(
    mask: np.ndarray, classmap: ClassMap, classes: Iterable[int] | None, fn: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    wanted = None if classes is None else {int(c) for c in classes}
    new = mask.copy()
    for k, cid in enumerate(classmap.ids):
        if wanted is None or cid in wanted:
            new[..., k] = fn(mask[..., k])
    return new
