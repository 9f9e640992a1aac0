"""DICOM series, one per case folder, with NIfTI label volumes: how CT and MR arrive from a PACS export.

Layout (folder names matched case- and space-insensitively)::

    <root>/images/<case>/*.dcm        one series per case folder; file names do not matter
    <root>/labels/<case>.nii.gz       (or .nii; a suffix such as _seg or _label is allowed)
    <root>/labels/labels.json         {value: name} (or <root>/dataset.json "labels"), optional

The series folder may also be called ``dicom``/``series`` (or any image-folder
name of the 2-D layouts), or the case folders may sit in the root itself beside
the labels folder (``<root>/<case>/*.dcm`` + ``<root>/labels/<case>.nii.gz``).

A series' slices are ordered by ImagePositionPatient, never by file name, and
its grid (shape, spacing, affine to RAS+ in the display order of
:mod:`medseg.io.volume_orient`) is read from the headers only: no pixel is
decoded at index. A label must lie on that grid (``grid_mismatch`` naming both
files otherwise). A case folder the loop cannot use as one volume is a problem
naming the file: several series in it, a lone slice, no PixelSpacing, no
positions, a slice missing from the stack or two at one position.
"""

from __future__ import annotations

import os
from pathlib import Path

from medseg.classmap import ClassMap
from medseg.datasets import dataset as ds
from medseg.datasets.files import child_dir, is_junk, list_files
from medseg.datasets.layout import Layout
from medseg.datasets.layout_generic import IMAGE_DIR_NAMES, MASK_DIR_NAMES, by_stem, slice_mask_stem
from medseg.datasets.slice_files import is_nifti_name
from medseg.datasets.volumes import pair_cases, volume_index, volume_sample
from medseg.errors import ReadError

SERIES_DIR_NAMES = (*IMAGE_DIR_NAMES, "dicom", "series")
_PROBE_CASES = 3  # case folders whose first DICOM file detect() looks for


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not is_junk(p))


def _holds_dicom(folder: Path, probe: int = 20) -> bool:
    """True when one of the first ``probe`` files of ``folder`` is DICOM (cheap: a few bytes each)."""
    from medseg.io.dicom import is_dicom_file

    try:
        with os.scandir(folder) as it:
            for k, e in enumerate(it):
                if k >= probe:
                    break
                if e.is_file() and is_dicom_file(Path(e.path)):
                    return True
    except OSError:
        return False
    return False


def _dirs(root: Path) -> tuple[Path, Path] | None:
    """(the folder holding the case folders, the label folder), or None when ``root`` is not this layout."""
    labels = child_dir(root, MASK_DIR_NAMES)
    if labels is None or not any(is_nifti_name(p) for p in list_files(labels)):
        return None
    parent = child_dir(root, SERIES_DIR_NAMES)
    candidates = [parent] if parent is not None and parent != labels else []
    candidates.append(root)
    for folder in candidates:
        # an image folder holding DICOM files itself is 2-D slices (images_masks), never a case folder
        cases = [d for d in _subdirs(folder) if d not in (labels, parent)][:_PROBE_CASES]
        if any(_holds_dicom(d) for d in cases):
            return folder, labels
    return None


def is_dicom_series_dataset(folder: Path) -> bool:
    return _dirs(folder) is not None


def dicom_series_source_data(folder: Path) -> tuple[str, set[Path]] | None:
    dirs = _dirs(folder)
    if dirs is None:
        return None
    parent, labels = dirs
    held = {labels} | ({parent} if parent != folder else set(_subdirs(folder)))
    return "DICOM series layout", {Path(os.path.realpath(p)) for p in held}


def _is_json(p: Path) -> bool:
    return p.suffix.lower() == ".json"


def index_dicom_series(root: Path) -> tuple[list[ds.Sample], list[ds.Problem], ClassMap]:
    dirs = _dirs(root)
    if dirs is None:
        raise ReadError(root, "has no folder of DICOM series folders beside a labels/ folder of NIfTI volumes")
    parent, label_dir = dirs
    problems: list[ds.Problem] = []
    labels, ambiguous = by_stem(label_dir, slice_mask_stem, problems, is_nifti_name, _is_json)
    if parent != root:
        for p in list_files(parent):
            problems.append(
                ds.Problem(
                    p, ds.UNSUPPORTED_FILE, f"a loose file in {parent.name}/: each series has a folder of its own"
                )
            )
    series = {d.name: d for d in _subdirs(parent) if d != label_dir}
    samples = pair_cases(
        series,
        labels,
        problems,
        no_label=lambda case: f"no label volume named {case}.nii.gz in {label_dir.name}/",
        no_image=lambda case: f"no series folder {case}/ in {parent.name}/ for this label",
        ambiguous_labels=ambiguous,
        make=_series_sample,
    )
    return volume_index(samples, problems, label_dir, root)


def _series_sample(name: str, case: Path, label: Path, problems: list[ds.Problem]) -> ds.Sample | None:
    """The sample of the series folder ``case``, its grid from the headers; None with the problems appended."""
    from medseg.io.dicom_series import scan_series

    try:
        scan = scan_series(case, strict=True)
    except ReadError as e:
        problems.append(ds.Problem(e.path, ds.UNSUPPORTED_VOLUME, e.reason))
        return None
    for path, why in sorted(scan.series_meta["skipped_reasons"].items()):
        problems.append(ds.Problem(Path(path), ds.UNSUPPORTED_FILE, f"{why}, in the series folder {name}/"))
    grid = scan.grid()
    if scan.is_colour or grid is None:
        why = "is a colour series" if scan.is_colour else "has no voxel grid"
        problems.append(ds.Problem(case, ds.UNSUPPORTED_VOLUME, f"{why}: not a CT or MR volume"))
        return None
    sample = volume_sample(name, case, label, problems, image_grid=grid.geometry)
    if sample is not None:
        first = scan.headers[scan.files[0]]
        sample.extra.update(modality=str(first.get("Modality", "")) or None, n_files=len(scan.files))
    return sample


DICOM_SERIES = Layout(
    "dicom_series",
    "images/<case>/*.dcm (one DICOM series per case folder) + labels/<case>.nii.gz (+ labels/labels.json)",
    detect=is_dicom_series_dataset,
    index=index_dicom_series,
    source_data=dicom_series_source_data,
    auto_group=lambda case: case,
)
