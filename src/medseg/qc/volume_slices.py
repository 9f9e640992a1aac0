"""A label volume's per-slice facts and words, shared by the volume checks (:mod:`medseg.qc.checks_volume`,
:mod:`medseg.qc.stray_islands`), ``mask_values``, ``object_count`` and the review queue.

A volume finding is about one volume and names the slices to look at:
``details["slices"]`` (every slice concerned, ascending) and ``details["z"]``
(the one to open first); :func:`volume_finding` makes one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medseg.qc.checks_base import SampleView
from medseg.qc.findings import Finding

LISTED = 4  # classes or slices spelled out in a message; the rest are in the details


def slice_areas(v: SampleView) -> tuple[np.ndarray, np.ndarray]:
    """(ids present, ascending, 0 included when present; (Z, n ids) voxels of each id on each slice)."""

    def make():
        m = v.mask
        top = int(m.max()) if m.size else 0
        if m.dtype.kind in "ub" and top < 1 << 16:
            table = np.stack([np.bincount(m[z].ravel(), minlength=top + 1) for z in range(m.shape[0])])
            ids = np.flatnonzero(table.sum(axis=0))
            return ids, table[:, ids]
        ids = np.unique(m)
        table = np.zeros((m.shape[0], ids.size), np.int64)
        for z in range(m.shape[0]):
            u, c = np.unique(m[z], return_counts=True)
            table[z, np.searchsorted(ids, u)] = c
        return ids, table

    return v.cached("slice_areas", make)


def class_box(v: SampleView, cid: int) -> tuple[slice, slice, slice]:
    """The bounding box of class ``cid`` in the volume (from the per-slice areas and one pass per class)."""

    def make():
        from scipy import ndimage as ndi

        m = v.mask
        top = int(m.max()) if m.size else 0
        if m.dtype.kind in "ub" and top < 1 << 16:
            return {k + 1: box for k, box in enumerate(ndi.find_objects(m)) if box is not None}
        return {}

    boxes = v.cached("class_boxes", make)
    if cid in boxes:
        return boxes[cid]
    where = np.nonzero(v.mask == cid)
    return tuple(slice(int(a.min()), int(a.max()) + 1) for a in where)


def foreground_ids(v: SampleView) -> list[tuple[int, np.ndarray]]:
    """(class id, voxels per slice) for every class of the class map in the volume (ids it lacks are
    ``mask_values``' error, not judged again here)."""
    ids, table = slice_areas(v)
    known = set(v.classmap.ids)
    return [(int(c), table[:, k]) for k, c in enumerate(ids) if int(c) in known]


def runs(zs: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive runs of sorted indices as (first, last) pairs."""
    if zs.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(zs) > 1)
    starts = np.r_[zs[0], zs[breaks + 1]]
    ends = np.r_[zs[breaks], zs[-1]]
    return [(int(a), int(b)) for a, b in zip(starts, ends)]


def slice_words(zs, ordered: bool = False) -> str:
    """'slice 4', 'slices 4..6', 'slices 2, 7..9 and 12' for slice indices (sorted and runs joined unless
    ``ordered``: then listed as given, most telling first)."""
    if ordered:
        zs = [int(z) for z in zs]
        parts = [str(z) for z in zs]
    else:
        zs = sorted(int(z) for z in zs)
        parts = [str(a) if a == b else f"{a}..{b}" for a, b in runs(np.asarray(zs, dtype=np.int64))]
    if not parts:
        return "no slice"
    word = "slice" if len(zs) == 1 else "slices"
    if len(parts) > LISTED + 1:
        parts = [*parts[:LISTED], f"{len(parts) - LISTED} more {'slices' if ordered else 'runs'}"]
    return f"{word} {parts[0]}" if len(parts) == 1 else f"{word} {', '.join(parts[:-1])} and {parts[-1]}"


def cname(v: SampleView, cid: int) -> str:
    try:
        return v.classmap.name_of(int(cid))
    except (KeyError, ValueError):
        return f"id {cid}"


def listing(parts: list[str]) -> str:
    more = f"; {len(parts) - LISTED} more classes in the details" if len(parts) > LISTED else ""
    return "; ".join(parts[:LISTED]) + more


def mm3(v: float) -> str:
    """A volume in mm^3 in words: ml from 1000 mm^3."""
    return f"{v / 1000:.3g} ml" if v >= 1000 else f"{v:.3g} mm^3"


def volume_finding(v: SampleView, check: str, severity: str, message: str, value: int, **details: Any) -> Finding:
    """A finding about the volume ``v``; ``details`` start with "slices" and "z" (the module docstring)."""
    return Finding(v.id, check, severity, message, value=value, path=v.where(), details=details)
