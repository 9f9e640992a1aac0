"""Export arrays that live in no workspace (e.g. napari layers): one label file, or image + label pairs as a
plain-folders dataset with a manifest.

* :func:`write_label_file`: class ids as they are (no colours, no rescaling) in
  the smallest unsigned type that holds them, with the spacing the format can
  carry: TIFF resolution tags (and ImageJ slice spacing for stacks), a NIfTI
  affine. NIfTI files are written in the orientation :func:`medseg.io.load`
  reads (slice, row, col) as, so reading one back gives the same array. An id
  the format cannot hold is refused, naming the file.
* :func:`export_arrays`: the folders layout of :mod:`medseg.export`
  (``images/``, ``masks/``, ``classmap.json``, ``manifest.json``), written
  through the same writer and the same staging as a workspace export.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from medseg import __version__
from medseg.datasets.classmap import ClassMap
from medseg.errors import ExportError, MedsegError
from medseg.export.export import ExportResult
from medseg.export.files import image_suffix, safe_stems, write_nifti, write_png
from medseg.export.item import ExportItem
from medseg.export.mask_out import mask_problem, spatial_shape
from medseg.export.staging import MANIFEST_KIND, MANIFEST_NAME, Staging
from medseg.export.target import check_target
from medseg.export.writers_folders import FoldersWriter
from medseg.io.types import ImageData
from medseg.io.volume_geometry import Geometry, label_image_like
from medseg.ownership import guarded_file

LABEL_SUFFIXES = (".png", ".tif", ".tiff", ".nii", ".nii.gz")
# the largest id each format stores losslessly, by number of spatial axes
_MAX_ID = {
    (".png", 2): 0xFFFF,
    (".tif", 2): 0xFFFFFFFF,
    (".tif", 3): 0xFFFF,
    (".nii", 2): 0xFFFFFFFF,
    (".nii", 3): 0xFFFFFFFF,
}


def write_label_file(
    path: str | Path,
    ids,
    spacing: Sequence[float] | None = None,
    *,
    affine=None,
    like: str | Path | None = None,
    sources: Sequence = (),
    overwrite: bool = False,
) -> Path:
    """Write a 2-D or 3-D label image of class ids to ``path`` (.png, .tif/.tiff, .nii/.nii.gz).

    ``spacing``: mm per pixel along each axis (row, col) / (slice, row, col);
    None writes no physical size (TIFF) or 1 mm (NIfTI). ``affine``: a NIfTI
    (slice, row, col) -> RAS matrix to use instead of one made from the spacing.
    ``like``: the NIfTI image the 3-D labels belong to; the label takes its
    header (voxel order, qform/sform and codes) so every tool sees one grid
    (:func:`medseg.io.volume_geometry.label_image_like`); ``affine`` is then
    the image's display affine (read from the file when None).
    A 2-D NIfTI is written as a one-slice volume. ``path`` is refused inside a
    dataset's source files or a workspace (``sources``: where the labels came
    from); an existing file is replaced only with ``overwrite`` and only when
    medseg wrote it and it is unchanged (:mod:`medseg.ownership`).
    """
    path = Path(path)
    suffix = image_suffix(path)
    if suffix not in LABEL_SUFFIXES:
        raise ExportError(f"{path}: labels are written as {', '.join(LABEL_SUFFIXES)}, not {suffix or 'no suffix'}")
    kind = {".tiff": ".tif", ".nii.gz": ".nii"}.get(suffix, suffix)
    a = _id_array(path, ids)
    limit = _MAX_ID.get((kind, a.ndim))
    if limit is None:
        what = (
            "PNG holds one 2-D plane; write (slice, row, col) labels as .tif or .nii.gz"
            if kind == ".png"
            else f"{suffix} labels are 2-D or 3-D"
        )
        raise ExportError(f"{path}: cannot write labels of shape {a.shape}: {what}")
    top = int(a.max()) if a.size else 0
    if top > limit:
        raise ExportError(
            f"{path}: class id {top} does not fit a {suffix} label file (ids up to {limit} "
            f"for {a.ndim}-D); use {'.nii.gz' if kind != '.nii' else 'fewer ids'}"
        )
    a = a.astype(np.uint8 if top <= 0xFF else np.uint16 if top <= 0xFFFF else np.uint32, copy=False)
    if spacing is not None and len(spacing) != a.ndim:
        raise ExportError(f"{path}: spacing {tuple(spacing)} has {len(spacing)} entries for {a.ndim}-D labels")
    folder, path = guarded_file(path, purpose="a label file", sources=sources, overwrite=overwrite)
    folder.mkdir()
    if kind == ".png":
        write_png(path, a)
    elif kind == ".tif":
        _write_tiff(path, a, spacing)
    else:
        _write_nifti(path, a, spacing, affine, like)
    folder.record(path)
    return path


def _id_array(path: Path, ids) -> np.ndarray:
    a = np.asarray(ids)
    if a.dtype == bool:
        return a.astype(np.uint8)
    if a.dtype.kind not in "iu":
        raise ExportError(f"{path}: labels hold integer class ids, not {a.dtype} values")
    if a.size and int(a.min()) < 0:
        raise ExportError(f"{path}: labels hold negative ids (min {int(a.min())}); class ids are >= 0")
    return a


def _write_tiff(path: Path, a: np.ndarray, spacing) -> None:
    import tifffile

    if a.ndim == 3:  # ImageJ hyperstack: the only widely read place for a slice spacing
        kw = (
            {}
            if spacing is None
            else {
                "resolution": (1 / spacing[2], 1 / spacing[1]),
                "metadata": {"spacing": float(spacing[0]), "unit": "mm", "axes": "ZYX"},
            }
        )
        tifffile.imwrite(path, a, imagej=True, **kw)
        return
    kw = {} if spacing is None else {"resolution": (10 / spacing[1], 10 / spacing[0]), "resolutionunit": "CENTIMETER"}
    tifffile.imwrite(path, a, **kw)


def spl_affine(spacing: Sequence[float]) -> np.ndarray:
    """The (slice, row, col) -> RAS matrix of :func:`medseg.io.load`'s NIfTI orientation: slices inferior to
    superior, rows anterior to posterior, columns patient right to left."""
    ss, sr, sc = (float(s) for s in spacing)
    return np.array([[0, 0, -sc, 0], [0, -sr, 0, 0], [ss, 0, 0, 0], [0, 0, 0, 1]], dtype=float)


def _write_nifti(path: Path, a: np.ndarray, spacing, affine, like) -> None:
    spacing = tuple(float(s) for s in spacing) if spacing is not None else (1.0,) * a.ndim
    if a.ndim == 2:
        a, spacing = a[None], (1.0, *spacing)
    if like is not None and a.ndim == 3:
        _write_like(path, a, Path(like), affine)
        return
    m = np.asarray(affine, dtype=float) if affine is not None else spl_affine(spacing)
    if m.shape != (4, 4):
        raise ExportError(f"{path}: a NIfTI affine is 4x4, got shape {m.shape}")
    write_nifti(path, a, m)


def _write_like(path: Path, a: np.ndarray, like: Path, affine) -> None:
    import nibabel as nib

    from medseg.io import load

    try:
        if affine is None:
            grid = Geometry.from_image(load(like))
        else:
            m = np.asarray(affine, dtype=float)
            grid = Geometry(a.shape, np.linalg.norm(m[:3, :3], axis=0), m)
        img = label_image_like(a, like, grid)
    except (OSError, ValueError, MedsegError) as e:
        raise ExportError(f"{path}: cannot write the labels on the grid of {like}: {e}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))


@dataclass
class ArraySample:
    """One image and its label mask (class ids; (..., C) booleans for a multilabel class map)."""

    sample_id: str
    image: ImageData
    mask: np.ndarray
    source: dict = field(default_factory=dict)  # where it came from (e.g. {"layer": name}), for the manifest


def infer_classmap(masks: Sequence[np.ndarray]) -> ClassMap:
    """Binary when the masks hold only 0/1, else multiclass with ids 1..max named class_<id>."""
    top = max((int(np.max(m)) for m in masks if np.size(m)), default=0)
    if top <= 1:
        return ClassMap.binary("foreground")
    return ClassMap.from_names([f"class_{i}" for i in range(1, top + 1)], task="multiclass")


def export_arrays(
    out: str | Path,
    samples: Sequence[ArraySample],
    classmap: ClassMap | None = None,
    *,
    overwrite: bool = False,
    sources: Sequence = (),
) -> ExportResult:
    """Write ``samples`` as a plain-folders dataset at ``out`` (nothing appears there unless all of it is written).

    ``classmap`` defaults to :func:`infer_classmap`; a mask that does not fit
    it, or whose spatial shape differs from its image's, raises ExportError
    naming the sample before anything is written. ``out`` is judged as a
    workspace export's is (:func:`medseg.export.target.check_target`);
    ``sources``: where the arrays were read from (never written into).
    """
    samples = list(samples)
    if not samples:
        raise ExportError("nothing to export: no image and label pair was given")
    classmap = classmap or infer_classmap([s.mask for s in samples])
    for s in samples:
        problem = mask_problem(np.asarray(s.mask), classmap)
        shape = spatial_shape(np.asarray(s.mask), classmap)
        image_shape = s.image.array.shape[: s.image.spatial_ndim]
        if problem is None and shape != image_shape:
            problem = f"labels of shape {shape} do not match the image's {image_shape}"
        if problem is not None:
            raise ExportError(f"sample {s.sample_id}: {problem}; nothing was written")
    target = check_target(out, overwrite=overwrite, sources=sources)
    stems = safe_stems([s.sample_id for s in samples])
    staging = Staging(target, overwrite)
    try:
        writer = FoldersWriter(staging.path, classmap)
        written, entries = {}, []
        for s in samples:
            mask = np.asarray(s.mask)
            # no source file: the image is written from the array (lossless PNG, else NIfTI)
            item = ExportItem(
                s.sample_id,
                stems[s.sample_id],
                SimpleNamespace(image_path=Path()),
                mask,
                lambda s=s: s.image,
                volume=len(spatial_shape(mask, classmap)) == 3,
            )
            w = written[item.stem] = writer.write(item)
            entries.append(
                {
                    "id": s.sample_id,
                    "export_id": item.stem,
                    "source": s.source,
                    "spacing": list(s.image.spacing),
                    "shape": list(mask.shape),
                    "exported": {
                        "images": [f.to_dict(staging.path) for f in w.images],
                        "masks": [f.to_dict(staging.path) for f in w.masks],
                    },
                }
            )
        files = [f.to_dict(staging.path) for f in writer.finish(written, None, {})]
        manifest = {
            "kind": MANIFEST_KIND,
            "manifest_version": 1,
            "medseg_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "format": "folders",
            "workspace": None,
            "dataset_root": None,
            "source": "arrays",
            "classmap": classmap.to_dict(),
            "counts": {"samples": len(samples), "exported": len(samples)},
            "files": files,
            "samples": entries,
        }
        (staging.path / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        staging.commit()
    finally:
        staging.abort()
    text = f"{len(samples)} sample{'s' if len(samples) != 1 else ''} written as folders to {target}."
    return ExportResult(target, len(samples), target / MANIFEST_NAME, text)


__all__ = ["LABEL_SUFFIXES", "ArraySample", "export_arrays", "infer_classmap", "spl_affine", "write_label_file"]
