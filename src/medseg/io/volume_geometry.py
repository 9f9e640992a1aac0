"""Where a volume's voxels lie in the patient: the grid every image, label and export of a case shares.

Readers return volumes in one display order, (slice, row, col) (see
:mod:`medseg.io.nifti`), with ``metadata['affine']``: the 4x4 matrix from
(slice, row, col, 1) to RAS+ millimetres. A source file may store its voxels
in another order (a NIfTI in LAS, a sagittal acquisition): the reader permutes
and flips axes, never interpolates. ``to_source_order`` undoes exactly that, so
a label written beside its image carries the image's own header (shape, affine,
qform/sform codes) and any tool (nnU-Net, SimpleITK, ITK-SNAP) sees the two on
one grid.

Two volumes share a grid when their shapes are equal and their affines agree
within ``ATOL_MM`` at every corner of the volume (so a rotation that only
shows far from the origin is caught too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medseg.io.types import ImageData

ATOL_MM = 1e-3  # nnU-Net's own check allows 1e-3 relative on origin/spacing/direction


@dataclass(frozen=True)
class Geometry:
    """A volume's grid in display order: shape and spacing (slice, row, col), affine to RAS+ mm."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    affine: tuple[tuple[float, ...], ...]  # 4x4, rows; a tuple so the geometry is hashable and frozen

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in self.shape)
        spacing = tuple(float(s) for s in self.spacing)
        affine = np.asarray(self.affine, dtype=float)
        if len(shape) != 3 or len(spacing) != 3 or affine.shape != (4, 4):
            raise ValueError(f"a volume geometry is 3 axes and a 4x4 affine, got {shape}, {spacing}, {affine.shape}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "affine", tuple(tuple(float(v) for v in row) for row in affine))

    @property
    def matrix(self) -> np.ndarray:
        return np.asarray(self.affine, dtype=float)

    @property
    def origin(self) -> tuple[float, float, float]:
        """RAS+ mm of the first voxel's centre."""
        return tuple(float(v) for v in self.matrix[:3, 3])

    @classmethod
    def from_image(cls, image: ImageData) -> Geometry:
        """The grid of a decoded volume (its ``metadata['affine']``, else a diagonal of its spacing)."""
        if image.spatial_ndim != 3:
            raise ValueError(f"{image.source}: not a volume (array shape {image.array.shape})")
        return cls(image.array.shape[:3], image.spacing, display_affine(image.spacing, image.metadata.get("affine")))

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "spacing": list(self.spacing), "affine": [list(r) for r in self.affine]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Geometry:
        return cls(tuple(d["shape"]), tuple(d["spacing"]), tuple(tuple(r) for r in d["affine"]))

    def mismatch(self, other: Geometry, atol_mm: float = ATOL_MM) -> str | None:
        """None when ``other`` lies on this grid, else what differs, in words."""
        if self.shape != other.shape:
            return f"shape {_shape(other.shape)} differs from {_shape(self.shape)}"
        worst, corner = _corner_distance(self, other)
        if worst > atol_mm:
            return (
                f"the voxel grids are {worst:.3g} mm apart at voxel {corner} "
                f"(spacing {_mm(other.spacing)} vs {_mm(self.spacing)}, "
                f"origin {_mm(other.origin)} vs {_mm(self.origin)})"
            )
        return None


def display_affine(spacing, affine: object = None) -> np.ndarray:
    """``affine`` when it is a finite 4x4 matrix, else a diagonal of ``spacing`` (unknown position)."""
    if affine is not None:
        m = np.asarray(affine, dtype=float)
        if m.shape == (4, 4) and np.all(np.isfinite(m)):
            return m
    return np.diag([*(float(s) for s in spacing), 1.0])


def _corner_distance(a: Geometry, b: Geometry) -> tuple[float, tuple[int, int, int]]:
    corners = [(i, j, k) for i in (0, a.shape[0] - 1) for j in (0, a.shape[1] - 1) for k in (0, a.shape[2] - 1)]
    pts = np.c_[np.asarray(corners, float), np.ones(len(corners))].T
    d = np.linalg.norm((a.matrix @ pts - b.matrix @ pts)[:3], axis=0)
    i = int(np.argmax(d))
    return float(d[i]), corners[i]


def _shape(shape) -> str:
    return "x".join(str(n) for n in shape)


def _mm(values) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


# --- back to the source file's voxel order ------------------------------------------------------------


def index_map(display: np.ndarray, source: np.ndarray, source_shape) -> tuple[list[int], list[bool]]:
    """How display axes become source axes: ``(perm, flip)`` such that
    ``np.flip(display_array.transpose(perm), axes where flip)`` is the array in the source's voxel order.

    ``display`` and ``source`` are the 4x4 index -> world matrices of one grid;
    ValueError when they are not a permutation and flips of each other (the
    reader never resamples, so for a volume it read they always are).
    """
    t = np.linalg.solve(np.asarray(source, float), np.asarray(display, float))  # display index -> source index
    p = np.rint(t[:3, :3])
    if not np.allclose(t[:3, :3], p, atol=1e-3) or sorted(np.abs(p).sum(axis=0)) != [1, 1, 1]:
        raise ValueError(f"the display grid is not an axis permutation of the source grid (index map {t[:3, :3]})")
    perm, flip = [], []
    for src_axis in range(3):
        disp_axis = int(np.flatnonzero(p[src_axis])[0])
        perm.append(disp_axis)
        flip.append(bool(p[src_axis, disp_axis] < 0))
    n = [int(v) for v in source_shape[:3]]
    for src_axis in range(3):  # a flipped axis must start where the source's axis ends
        want = n[src_axis] - 1 if flip[src_axis] else 0
        if abs(t[src_axis, 3] - want) > 1e-3:
            raise ValueError(f"the display grid is offset from the source grid along source axis {src_axis}")
    return perm, flip


def to_source_order(array: np.ndarray, perm: list[int], flip: list[bool]) -> np.ndarray:
    """``array`` (display order, possibly with trailing channel axes) in the source's voxel order."""
    extra = list(range(3, array.ndim))
    out = np.transpose(array, [*perm, *extra])
    axes = tuple(i for i, f in enumerate(flip) if f)
    return np.ascontiguousarray(np.flip(out, axis=axes) if axes else out)


# How the reader shows a volume whose affine has no closest axis-aligned frame: stored axes kept, then the one
# display transpose and flips (a test holds this equal to volume_orient.display_grid's axis map).
DEGENERATE_AXIS_MAP = ([2, 1, 0], [True, True, False])


def label_image_like(labels: np.ndarray, image_path: str | Path | None, geometry: Geometry):
    """A nibabel NIfTI-1 image of ``labels`` (display order) that lies on the image's grid.

    For a NIfTI source the label takes the source's header (shape in its voxel
    order, qform and sform with their codes, units) with an integer voxel type
    and no intensity scaling; for any other source (a DICOM series) the label
    is written in display order with ``geometry``'s affine.
    """
    import nibabel as nib

    labels = np.asarray(labels)
    if labels.shape[:3] != geometry.shape:
        raise ValueError(f"labels of shape {labels.shape} do not fit the volume {_shape(geometry.shape)}")
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    src = _nifti_source(image_path)
    if src is None:
        img = nib.Nifti1Image(labels, geometry.matrix)
        img.header.set_data_dtype(labels.dtype)
        img.set_qform(geometry.matrix, code=1)
        img.set_sform(geometry.matrix, code=1)
        img.header.set_xyzt_units("mm")
        return img
    if _degenerate(src.affine):
        perm, flip = DEGENERATE_AXIS_MAP  # the reader kept the stored voxel axes (volume_orient.display_grid)
    else:
        perm, flip = index_map(geometry.matrix, src.affine, src.shape)
    data = to_source_order(labels, perm, flip)
    header = src.header.copy()
    header.set_data_dtype(data.dtype)
    header.set_slope_inter(1.0, 0.0)
    if len(header.get_data_shape()) > 3:
        header.set_data_shape(data.shape)
    if not np.all(np.isfinite(src.affine)):
        return type(src)(data, None, header)  # the header as it is: nibabel cannot decompose a NaN affine
    img = type(src)(data, src.affine, header)
    # nibabel keeps the header's qform/sform when they equal the affine; set them with the source's codes
    qform, qcode = src.header.get_qform(coded=True)
    sform, scode = src.header.get_sform(coded=True)
    if qform is not None and np.all(np.isfinite(qform)):  # a NaN pixdim makes the qform undecomposable
        img.set_qform(qform, code=int(qcode))
    if sform is not None and np.all(np.isfinite(sform)):
        img.set_sform(sform, code=int(scode))
    return img


def _degenerate(affine) -> bool:
    """No closest axis-aligned frame (NaN, zero or singular): readers take such a file's voxel axes as stored."""
    from nibabel.orientations import io_orientation

    m = np.asarray(affine, dtype=float)
    return not np.all(np.isfinite(m)) or bool(np.isnan(io_orientation(m)).any())


def _nifti_source(image_path):
    if image_path is None:
        return None
    path = Path(image_path)
    if path.is_dir() or not path.name.lower().endswith((".nii", ".nii.gz")):
        return None
    import nibabel as nib

    return nib.load(path)
