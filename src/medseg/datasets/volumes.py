"""What the volume layouts share: finding volumes, reading their grids from headers, pairing a case.

A volume sample is one case: an image volume and its label volume on one voxel
grid (:mod:`medseg.io.volume_geometry`). Indexing reads NIfTI headers only
(nibabel reads the first 348 bytes, also of a .nii.gz); voxels are decoded
when a sample is loaded. A pair that cannot be used is a problem naming the
file and the cause, never an exception:

  * a header that cannot be read: ``unreadable``;
  * a 4-D file (its 4th axis' size named), a voxel size of 0 (pixdim), an
    affine of NaN: ``unsupported_volume``;
  * image and label off one grid (shape, or the affine beyond 1e-3 mm at a
    corner): ``grid_mismatch``, naming both files and what differs.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Collection
from pathlib import Path

import numpy as np

from medseg.classmap import ClassMap
from medseg.datasets import dataset as ds
from medseg.datasets.label_names import label_names_file, read_label_names
from medseg.datasets.slice_files import is_nifti_name
from medseg.errors import MaskError, ReadError, UnsupportedFormatError
from medseg.io.volume_geometry import Geometry

# Label volumes decoded to find the class ids when no JSON names them (the rest stays unread at index).
INFER_FROM = 3


def nifti_files(folder: Path) -> list[Path]:
    """The visible NIfTI files of ``folder`` (not recursive), sorted by name."""
    from medseg.datasets.files import list_files

    return [p for p in list_files(folder) if is_nifti_name(p)]


def holds_volumes(folder: Path, probe: int = 3) -> bool:
    """True when one of the first ``probe`` NIfTI files of ``folder`` has several slices (headers only).

    A 4-D file counts: its layout then says why it cannot be used.
    """
    from medseg.io.nifti import read_nifti_shape

    try:
        files = nifti_files(folder)[:probe]
    except OSError:
        return False
    for p in files:
        try:
            shape = read_nifti_shape(p)
        except ReadError:
            continue
        if len(shape) >= 3 and all(n > 1 for n in shape[:3]):
            return True
    return False


def volume_folder(folder: Path, probe: int = 50) -> bool:
    """A folder of volumes: its first NIfTI files hold volumes and none of its first entries is a 2-D raster
    (a stray volume among PNGs leaves a 2-D dataset 2-D, its volume listed as a problem)."""
    from medseg.datasets.files import is_raster

    try:
        with os.scandir(folder) as it:
            entries = list(itertools.islice(it, probe))
    except OSError:
        return False
    if any(e.is_file() and is_raster(Path(e.name)) for e in entries):
        return False
    return holds_volumes(folder)


def volume_grid(path: Path, problems: list[ds.Problem], role: str = "volume") -> Geometry | None:
    """The grid of a NIfTI ``path`` from its header, or None with the reason appended to ``problems``."""
    from medseg.io.nifti import read_nifti_grid

    try:
        grid, notes = read_nifti_grid(path)
    except UnsupportedFormatError as e:
        problems.append(ds.Problem(path, ds.UNSUPPORTED_VOLUME, e.reason))
        return None
    except ReadError as e:
        problems.append(ds.Problem(path, ds.UNREADABLE, e.reason))
        return None
    if notes:
        problems.append(ds.Problem(path, ds.UNSUPPORTED_VOLUME, f"{role} has no usable voxel grid: {'; '.join(notes)}"))
        return None
    return grid


def volume_sample(
    case: str,
    image: Path,
    label: Path,
    problems: list[ds.Problem],
    *,
    image_grid: Geometry | None = None,
) -> ds.Sample | None:
    """The sample of one case, or None with its problems appended.

    ``image_grid`` is the image's grid when the caller read it (a DICOM series);
    else the image is a NIfTI file and its header is read here.
    """
    if image_grid is None:
        image_grid = volume_grid(image, problems, "image")
    label_grid = volume_grid(label, problems, "label")
    if image_grid is None or label_grid is None:
        return None
    why = image_grid.mismatch(label_grid)
    if why is not None:
        problems.append(
            ds.Problem(
                label,
                ds.GRID_MISMATCH,
                f"label volume {label.name} is not on the voxel grid of its image {image.name}: {why}",
            )
        )
        return None
    return ds.Sample(
        case,
        image,
        {1: label},
        group=case,
        extra={"geometry": image_grid.to_dict()},
        mask_kind=ds.MASK_VOLUME,
    )


def volume_classmap(label_dir: Path, root: Path, labels: list[Path]) -> ClassMap:
    """Class names from a labels JSON beside the labels (or the root's), else ids read from a few labels.

    ReadError naming the JSON when it cannot be a class map.
    """
    named = label_names_file(label_dir, root)
    if named is not None:
        return read_label_names(named)
    return infer_volume_classmap(labels)


def infer_volume_classmap(labels: list[Path]) -> ClassMap:
    """``class_<id>`` for the ids found in up to ``INFER_FROM`` label volumes spread over ``labels``."""
    from medseg.io.volume_labels import read_label_volume

    picks = [labels[int(i)] for i in np.unique(np.linspace(0, len(labels) - 1, INFER_FROM).round())] if labels else []
    ids: set[int] = set()
    for p in picks:
        try:
            found, _ = read_label_volume(p)
        except (ReadError, MaskError):
            continue  # reported when the sample is loaded
        ids.update(int(v) for v in np.unique(found) if v > 0)
    if not ids or ids == {1}:
        return ClassMap.binary("foreground")
    extra = {"source": "label values", "labels_inspected": len(picks)}
    return ClassMap.from_id_names({i: f"class_{i}" for i in sorted(ids)}, extra=extra)


def pair_cases(
    images: dict[str, Path],
    labels: dict[str, Path],
    problems: list[ds.Problem],
    *,
    no_label: Callable[[str], str],
    no_image: Callable[[str], str],
    ambiguous_images: Collection[str] = (),
    ambiguous_labels: Collection[str] = (),
    make: Callable[[str, Path, Path, list[ds.Problem]], ds.Sample | None] = volume_sample,
) -> list[ds.Sample]:
    """One sample per case found in both ``images`` and ``labels`` ({case: path}), in case order, made by
    ``make(case, image, label, problems)``; a case on one side only is a problem whose message is
    ``no_label(case)`` / ``no_image(case)`` (none for a name two files share: that is reported already)."""
    samples = []
    for case, image in sorted(images.items()):
        label = labels.get(case)
        if label is None:
            if case not in ambiguous_labels:
                problems.append(ds.Problem(image, ds.IMAGE_WITHOUT_MASK, no_label(case)))
            continue
        sample = make(case, image, label, problems)
        if sample is not None:
            samples.append(sample)
    for case, label in sorted(labels.items()):
        if case not in images and case not in ambiguous_images:
            problems.append(ds.Problem(label, ds.MASK_WITHOUT_IMAGE, no_image(case)))
    return samples


def volume_index(
    samples: list[ds.Sample], problems: list[ds.Problem], label_dir: Path, root: Path
) -> tuple[list[ds.Sample], list[ds.Problem], ClassMap]:
    """A volume layout's index: the samples with the class map of their labels (:func:`volume_classmap`)."""
    classmap = volume_classmap(label_dir, root, [s.mask_paths[1] for s in samples])
    for s in samples:
        s.classmap = classmap
    return samples, problems, classmap
