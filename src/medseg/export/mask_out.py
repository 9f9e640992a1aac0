"""Exported masks: class ids kept as ids, overlapping classes kept apart.

* binary / multiclass: one integer file per sample, the class map's ids as
  stored (uint8, uint16 when an id exceeds 255). PNG for 2-D, NIfTI for volumes.
* multilabel (classes may overlap): one 0/1 file per class in the folders and
  MONAI formats; for nnU-Net, which reads one integer map per case, each pixel
  holds the bit set of its classes (class k of the class map -> bit k), and
  dataset.json declares every class as the region of the values holding its
  bit (nnU-Net's region-based training). The label files decode exactly
  (:func:`region_decode`); nnU-Net's own predictions from such a model come
  back as one label per pixel, later classes of ``regions_class_order``
  overwriting earlier ones where they overlap (an nnU-Net limitation).

A ``scale`` of 255 spreads ids over 0..255 so the files look right in an
ordinary image viewer; it is for viewing only and off by default.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from medseg.datasets.classmap import ClassMap, LabelClass
from medseg.errors import ExportError
from medseg.export.files import write_nifti, write_png
from medseg.export.images import WrittenFile
from medseg.export.volumes import Grid, write_volume_labels

VIEW_SCALES = (1, 255)
MAX_REGION_CLASSES = 8  # 2**8 - 1 combinations still fit nnU-Net's uint8 label maps


def is_multilabel(classmap: ClassMap) -> bool:
    return classmap.task == "multilabel"


def spatial_shape(mask: np.ndarray, classmap: ClassMap) -> tuple[int, ...]:
    return tuple(mask.shape[:-1]) if is_multilabel(classmap) else tuple(mask.shape)


def id_dtype(classmap: ClassMap) -> np.dtype:
    return np.dtype(np.uint8) if max(classmap.ids, default=1) <= 255 else np.dtype(np.uint16)


def mask_problem(mask: np.ndarray, classmap: ClassMap) -> str | None:
    """Why this head-revision mask cannot be exported as the class map says, or None."""
    if is_multilabel(classmap):
        n = len(classmap.classes)
        if mask.ndim < 3 or mask.shape[-1] != n:
            return f"multilabel mask should have {n} class channels last, has shape {mask.shape}"
        if mask.dtype != bool and not np.isin(np.unique(mask), (0, 1)).all():
            return "multilabel mask channels hold values other than 0 and 1"
        return None
    values = np.unique(mask)
    bad = values[~np.isin(values, [0, *classmap.ids])]
    if bad.size:
        shown = ", ".join(str(v) for v in bad[:8].tolist()) + (" ..." if bad.size > 8 else "")
        return (
            f"mask holds {bad.size} value(s) outside the class map ({shown}; valid: 0, "
            f"{', '.join(map(str, classmap.ids))})"
        )
    return None


def view_scaled(ids: np.ndarray, classmap: ClassMap, scale: int) -> np.ndarray:
    if scale not in VIEW_SCALES:
        raise ExportError(f"mask scale must be one of {VIEW_SCALES}, got {scale!r}")
    if scale == 1:
        return ids
    step = 255 // max(max(classmap.ids, default=1), 1)
    if step < 1:
        raise ExportError(f"class ids up to {max(classmap.ids)} cannot be spread over 0..255 for viewing")
    return (ids.astype(np.uint16) * step).astype(np.uint8)


def write_ids(
    dst_stem: Path,
    ids: np.ndarray,
    dtype: np.dtype,
    *,
    affine: np.ndarray | None = None,
    volume_axis: bool = False,
    grid: Grid | None = None,
) -> WrittenFile:
    """``dst_stem``.png for 2-D ids (unless ``volume_axis``), else ``dst_stem``.nii.gz.

    ``grid``: a volume's labels, written on exactly its image's grid (:mod:`medseg.export.volumes`).
    """
    if grid is not None:
        return write_volume_labels(dst_stem, ids, dtype, grid)
    a = np.asarray(ids).astype(dtype, copy=False)
    if a.ndim == 2 and not volume_axis:
        dst = dst_stem.with_name(dst_stem.name + ".png")
        return WrittenFile(dst, write_png(dst, a))
    if a.ndim == 2:
        a = a[None]
    dst = dst_stem.with_name(dst_stem.name + ".nii.gz")
    return WrittenFile(dst, write_nifti(dst, a, affine if affine is not None else np.eye(4)))


def write_channels(
    channels: np.ndarray,
    classmap: ClassMap,
    stem_for: Callable[[LabelClass], Path],
    *,
    scale: int = 1,
    affine: np.ndarray | None = None,
    grid: Grid | None = None,
) -> list[WrittenFile]:
    """One 0/1 (or 0/255) file per class of the class map, in its order."""
    out = []
    for k, cls in enumerate(classmap.classes):
        layer = channels[..., k].astype(np.uint8) * (255 if scale == 255 else 1)
        written = write_ids(stem_for(cls), layer, np.dtype(np.uint8), affine=affine, grid=grid)
        out.append(WrittenFile(written.path, written.sha256, written.how, cls.name))
    return out


# ------------------------------------------------------------------ nnU-Net label values
def consecutive_ids(classmap: ClassMap) -> dict[int, int]:
    """{class id: nnU-Net label}: the ids themselves when they are 1..N, else renumbered in order."""
    return {cid: k + 1 for k, cid in enumerate(classmap.ids)}


def renumber(ids: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    if all(k == v for k, v in mapping.items()):
        return ids
    lut = np.zeros(max(mapping) + 1, dtype=np.uint16)
    for old, new in mapping.items():
        lut[old] = new
    return lut[ids]


def region_encode(channels: np.ndarray) -> np.ndarray:
    """(..., C) booleans -> one uint8 map, bit k set where class k is present."""
    c = channels.shape[-1]
    if c > MAX_REGION_CLASSES:
        raise ExportError(
            f"nnU-Net export of {c} overlapping classes is not supported: their "
            f"{2**c - 1} combinations exceed uint8 label maps (at most "
            f"{MAX_REGION_CLASSES} classes); use the folders or monai format"
        )
    out = np.zeros(channels.shape[:-1], dtype=np.uint8)
    for k in range(c):
        out |= channels[..., k].astype(bool).astype(np.uint8) << k
    return out


def region_decode(ids: np.ndarray, n_classes: int) -> np.ndarray:
    """The inverse of :func:`region_encode`."""
    return np.stack([(ids >> k) & 1 for k in range(n_classes)], axis=-1).astype(bool)


def region_labels(classmap: ClassMap) -> tuple[dict[str, object], list[int]]:
    """dataset.json ``labels`` (background 0, each class the values holding its bit) and ``regions_class_order``."""
    n = len(classmap.classes)
    labels: dict[str, object] = {classmap.background: 0}
    for k, cls in enumerate(classmap.classes):
        labels[cls.name] = [v for v in range(1, 2**n) if v >> k & 1]
    return labels, [1 << k for k in range(n)]
