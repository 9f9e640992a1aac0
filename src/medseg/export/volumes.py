"""Exported volumes: the image as its source file, every label on exactly the image's grid.

A volume's image is never resampled or re-encoded when it is already NIfTI:
a ``.nii``/``.nii.gz`` source is copied byte for byte (a ``.nii`` gzip-wrapped
when the format wants ``.nii.gz``, the decompressed bytes unchanged). A DICOM
series (or an array with no file) becomes a ``.nii.gz`` of the decoded
(slice, row, col) array with the series' affine. Labels are built by
:func:`medseg.io.volume_geometry.label_image_like`: for a NIfTI source they take
the source's own header (voxel order, qform/sform with their codes), so
nnU-Net, SimpleITK and ITK-SNAP read image and label on one grid; for a
converted image they carry the same affine and codes as the image written here.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medseg.errors import ExportError
from medseg.export.files import copy_hashed, image_suffix
from medseg.export.images import CONVERTED, COPIED, WrittenFile
from medseg.io.volume_geometry import Geometry, label_image_like
from medseg.ownership import sha256_file

NIFTI_SUFFIXES = (".nii", ".nii.gz")
GZIPPED = "gzipped"  # the source's bytes unchanged inside a gzip stream (.nii -> .nii.gz)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Grid:
    """Where a volume's labels must lie: the NIfTI file whose header they take (None: a converted image), and
    the grid in display order."""

    source: Path | None
    geometry: Geometry


def nifti_source(path: Path) -> Path | None:
    return path if path.is_file() and image_suffix(path) in NIFTI_SUFFIXES else None


def volume_grid(item) -> Grid:
    """The grid of ``item`` (an ExportItem of a volume); ExportError naming the sample when its mask is off it."""
    geometry = item.volume_geometry()
    shape = tuple(item.mask.shape[:3])
    if shape != geometry.shape:
        raise ExportError(
            f"sample {item.sample_id}: its label volume is {'x'.join(map(str, shape))} but the image "
            f"{item.image_path} is {'x'.join(map(str, geometry.shape))} (slice x row x col); nothing was written"
        )
    return Grid(nifti_source(item.image_path), geometry)


def write_volume_image(item, dst_stem: Path, *, ending: str | None = None) -> WrittenFile:
    """The volume's image at ``dst_stem`` + its suffix (``ending`` forces ".nii.gz").

    A NIfTI source is copied (or gzip-wrapped), anything else converted from the decoded array.
    """
    src = nifti_source(item.image_path)
    if src is not None:
        suffix = image_suffix(src)
        if ending in (None, suffix):
            dst = _dst(dst_stem, suffix)
            return WrittenFile(dst, copy_hashed(src, dst), COPIED)
        if ending == ".nii.gz" and suffix == ".nii":
            dst = _dst(dst_stem, ".nii.gz")
            return WrittenFile(dst, _gzip_copy(src, dst), GZIPPED)
        raise ExportError(f"{src}: a {suffix} volume cannot be exported as {ending}")
    image = item.image()
    if image.rgb:
        raise ExportError(f"sample {item.sample_id}: colour volumes ({item.image_path}) cannot be exported as NIfTI")
    grid = volume_grid(item)
    if tuple(image.array.shape[:3]) != grid.geometry.shape:
        raise ExportError(
            f"sample {item.sample_id}: image {item.image_path} decodes to {image.array.shape}, "
            f"not the {grid.geometry.shape} of its recorded geometry"
        )
    # the same header builder as the labels: image and label get one affine and one set of qform/sform codes
    dst = _dst(dst_stem, ".nii.gz")
    _save(label_image_like(image.array, None, grid.geometry), dst)
    return WrittenFile(dst, sha256_file(dst), CONVERTED)


def write_volume_labels(dst_stem: Path, ids: np.ndarray, dtype: np.dtype, grid: Grid) -> WrittenFile:
    """``dst_stem``.nii.gz: ``ids`` (display order) stored as ``dtype`` on the image's grid."""
    a = np.asarray(ids).astype(dtype, copy=False)
    try:
        img = label_image_like(a, grid.source, grid.geometry)
    except ValueError as e:  # the source header is no axis permutation of the recorded grid: it changed
        raise ExportError(f"{grid.source}: labels cannot be put on this image's grid: {e}") from None
    dst = _dst(dst_stem, ".nii.gz")
    _save(img, dst)
    return WrittenFile(dst, sha256_file(dst))


def channel_name(item) -> tuple[str, str]:
    """(nnU-Net channel name, where it came from) for a single-channel volume.

    "CT" switches nnU-Net to its CT intensity normalisation, so it is worth
    finding: the channel the source dataset's own dataset.json declares
    (nnU-Net's ``channel_names`` or the Decathlon's ``modality``), else the
    DICOM Modality, else "CT" when the voxels are Hounsfield units (air at
    about -1000 occurs in no MR or PET image), else "image" (z-score).
    """
    for folder in (item.image_path.parent, item.image_path.parent.parent):
        meta = folder / "dataset.json"
        if not meta.is_file():
            continue
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        names = (data.get("channel_names") or data.get("modality")) if isinstance(data, dict) else None
        if isinstance(names, dict) and len(names) == 1:
            name = str(next(iter(names.values()))).strip()
            if name:
                return name, str(meta)
    image = item.image()
    modality = image.metadata.get("modality")
    if modality:
        return str(modality), "DICOM Modality"
    a = image.array
    if a.dtype.kind in "iu" or (a.dtype.kind == "f" and np.array_equal(a.flat[:4096], np.round(a.flat[:4096]))):
        if a.size and float(np.percentile(a[:: max(1, a.shape[0] // 8)], 1)) <= -900:
            return "CT", "Hounsfield range (1st percentile <= -900)"
    return "image", "default (z-score normalisation)"


def _dst(stem: Path, suffix: str) -> Path:
    dst = stem.with_name(stem.name + suffix)
    dst.parent.mkdir(parents=True, exist_ok=True)
    return dst


def _save(img, dst: Path) -> None:
    import nibabel as nib

    nib.save(img, str(dst))


def _gzip_copy(src: Path, dst: Path) -> str:
    # mtime 0 and no file name: the same source always gives the same bytes (and hash)
    with open(src, "rb") as fi, open(dst, "wb") as raw, gzip.GzipFile("", "wb", fileobj=raw, mtime=0) as fo:
        while chunk := fi.read(_CHUNK):
            fo.write(chunk)
    return sha256_file(dst)


__all__ = [
    "COPIED",
    "GZIPPED",
    "Grid",
    "channel_name",
    "nifti_source",
    "volume_grid",
    "write_volume_image",
    "write_volume_labels",
]
