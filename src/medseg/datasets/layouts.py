"""Which dataset layout a folder holds, and ``open_dataset`` to index it.

Layouts:
  * ``images_masks``: ``images/`` + ``masks/`` paired by stem (Kvasir-SEG, CVC-ClinicDB PNG).
  * ``cvc_original``: CVC-ClinicDB as released, ``Original/`` + ``Ground Truth/`` TIFFs.
  * ``palette``: ``images/`` + ``masks/`` whose masks are palette ('P') PNGs (class ids).
  * ``montgomery``: ``CXR_png/`` + ``ManualMask/leftMask/`` + ``ManualMask/rightMask/``.
  * ``uwmadison``: ``train.csv`` (id, class, segmentation) + ``train/caseN/caseN_dayM/scans/``.
  * ``nnunet``: nnU-Net v2 raw, 2-D: ``imagesTr/<case>_0000.png`` + ``labelsTr/<case>.png`` + ``dataset.json``
    (what ``medseg export --format nnunet`` writes).

A folder holding a single sub-folder (as archives often unpack) is looked into.
A folder whose layout is recognised always opens: files that cannot be used
are listed in ``Dataset.problems`` and the rest is indexed. A folder with no
recognised layout (empty, or only loose files) raises ReadError.
"""

from __future__ import annotations

from pathlib import Path

from medseg.datasets import groups as grp
from medseg.datasets.classmap import ClassMap
from medseg.datasets.dataset import MASK_BINARY, MASK_IDS, Dataset
from medseg.datasets.files import is_junk, norm_name, numeric_key
from medseg.datasets.layout_generic import (
    has_rasters,
    index_pairs,
    masks_are_palette,
    pair_dirs,
)
from medseg.datasets.layout_montgomery import index_montgomery, montgomery_dirs
from medseg.datasets.layout_nnunet import index_nnunet, is_nnunet
from medseg.errors import ReadError

LAYOUTS = ("images_masks", "cvc_original", "palette", "montgomery", "uwmadison", "nnunet")
GROUP_BY = ("auto", "stem", "frames", "pattern")

_EXPECTED = ("expected one of: images/ + masks/ (Kvasir-SEG, CVC-ClinicDB, palette masks), "
             "Original/ + Ground Truth/ (CVC-ClinicDB .tif), CXR_png/ + ManualMask/leftMask/ + "
             "ManualMask/rightMask/ (Montgomery), train.csv + train/caseN/caseN_dayM/scans/ (UW-Madison), "
             "imagesTr/ + labelsTr/ (nnU-Net raw, 2-D)")


def detect_layout(folder: str | Path) -> str | None:
    """The layout name of ``folder`` (or of its only sub-folder), or None; never raises."""
    try:
        folder = Path(folder)
    except TypeError:
        return None
    found = _resolve(folder)
    return found[1] if found else None


def is_dataset_folder(folder: str | Path) -> bool:
    """Cheap check (folder names and a few headers) that ``open_dataset`` would take ``folder``."""
    return detect_layout(folder) is not None


def open_dataset(folder: str | Path, layout: str | None = None, *, group_by: str = "auto",
                 group_pattern: str | None = None, classmap: ClassMap | None = None) -> Dataset:
    """Index a dataset folder: samples, class map, groups and problems; no pixels are decoded.

    ``group_by``: "auto" (UW-Madison case, Montgomery patient, frame blocks for
    integer stems, else the stem), "stem", "frames" (see ``groups.frame_blocks``)
    or "pattern" (``group_pattern`` regex on the stem). ``classmap`` replaces the
    inferred one (e.g. to name the foreground class, or to declare ids).
    """
    folder = Path(folder)
    if group_by not in GROUP_BY:
        raise ValueError(f"unknown group_by {group_by!r}; valid: {', '.join(GROUP_BY)}")
    if group_by == "pattern" and not group_pattern:
        raise ValueError("group_by='pattern' needs group_pattern, a regex applied to each file stem")
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    if not folder.exists():
        raise ReadError(folder, "no such folder")
    if not folder.is_dir():
        raise ReadError(folder, f"is a file, not a dataset folder; {_EXPECTED}")

    found = _resolve(folder)
    if layout is None:
        if found is None:
            raise ReadError(folder, f"no known dataset layout here ({_listing(folder)}); {_EXPECTED}")
        root, layout = found
    else:
        root = found[0] if found and found[1] == layout else folder

    samples, problems, inferred = _INDEXERS[layout](root, layout)
    if classmap is not None:
        _apply_classmap(samples, classmap)
    samples.sort(key=lambda s: numeric_key(s.id))
    _assign_groups(samples, layout, group_by, group_pattern)
    return Dataset(root, layout, classmap or inferred, samples, problems)


def _index_uwmadison(root: Path, layout: str):
    # Imported here so that the other layouts open even without the UW name parser.
    from medseg.datasets.layout_uwmadison import index_uwmadison

    return index_uwmadison(root, layout)


_INDEXERS = {
    "images_masks": index_pairs,
    "cvc_original": index_pairs,
    "palette": index_pairs,
    "montgomery": index_montgomery,
    "uwmadison": _index_uwmadison,
    "nnunet": index_nnunet,
}


def _resolve(folder: Path, depth: int = 1) -> tuple[Path, str] | None:
    try:
        if not folder.is_dir():
            return None
        layout = _layout_here(folder)
        if layout is not None:
            return folder, layout
        if depth > 0:
            subdirs = [p for p in folder.iterdir() if p.is_dir() and not is_junk(p)]
            files = [p for p in folder.iterdir() if p.is_file() and not is_junk(p)]
            if len(subdirs) == 1 and not files:
                return _resolve(subdirs[0], depth - 1)
    except (OSError, ValueError):  # permissions, broken links, NUL in a path
        return None
    return None


def _layout_here(folder: Path) -> str | None:
    from medseg.datasets.layout_uwmadison import CSV_NAME, is_uw_csv

    if (folder / CSV_NAME).is_file() and is_uw_csv(folder / CSV_NAME):
        return "uwmadison"
    if montgomery_dirs(folder) is not None:
        return "montgomery"
    if is_nnunet(folder):
        return "nnunet"
    dirs = pair_dirs(folder)
    if dirs is None or not has_rasters(dirs[0]):
        return None
    images, masks = dirs
    if norm_name(images.name) == "original" and norm_name(masks.name) == "groundtruth":
        return "cvc_original"
    return "palette" if masks_are_palette(masks) else "images_masks"


def _listing(folder: Path, limit: int = 8) -> str:
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir() if not is_junk(p))
    if not entries:
        return "the folder is empty"
    more = f", ... ({len(entries)} entries)" if len(entries) > limit else ""
    return "found " + ", ".join(entries[:limit]) + more


def _apply_classmap(samples, classmap: ClassMap) -> None:
    for s in samples:
        s.classmap = classmap
        if s.mask_kind in (MASK_BINARY, MASK_IDS):
            s.mask_kind = MASK_BINARY if classmap.task == "binary" else MASK_IDS


def _assign_groups(samples, layout: str, group_by: str, pattern: str | None) -> None:
    ids = [s.id for s in samples]
    if group_by == "auto" and pattern:
        group_by = "pattern"
    if group_by == "auto":
        if layout == "uwmadison":
            names = [grp.uw_case(i) for i in ids]
        elif layout == "montgomery":
            names = [grp.montgomery_patient(i) for i in ids]
        elif len(ids) > 1 and all(i.isdigit() for i in ids):
            names = grp.frame_blocks([s.image_path for s in samples], ids=ids)
        else:
            names = ids
    elif group_by == "stem":
        names = ids
    elif group_by == "pattern":
        names = grp.stem_groups(ids, pattern)
    else:
        names = grp.frame_blocks([s.image_path for s in samples], ids=ids)
    for s, name in zip(samples, names):
        s.group = name
