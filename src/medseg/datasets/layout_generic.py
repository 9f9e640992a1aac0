"""An image folder beside a mask folder, paired by file stem.

Covers Kvasir-SEG (``images/`` + ``masks/``, JPEG), CVC-ClinicDB (PNG, or the
original ``Original/`` + ``Ground Truth/`` TIFFs) and palette-mask sets (mode
'P' PNG masks whose palette indices are the class ids). Mask stems may carry a
suffix such as ``_mask``; folder names are matched case-insensitively. Images
may be 2-D DICOM files or one-slice NIfTI files, masks one-slice NIfTI files
(:mod:`medseg.datasets.slice_files`); a folder of NIfTI volumes is the
``volume_folders`` layout.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from medseg.classmap import MAX_STORED_ID, ClassMap, LabelClass
from medseg.datasets import dataset as ds
from medseg.datasets.files import (
    child_dir,
    header_mode,
    header_size,
    holds_data,
    is_raster,
    list_files,
    list_names,
    mask_stem,
    norm_name,
)
from medseg.datasets.layout import Layout
from medseg.datasets.slice_files import SLICE_SUFFIXES, file_stem, is_nifti_name, is_slice_file
from medseg.errors import NotASliceError, ReadError
from medseg.io.limits import open_image
from medseg.process_pool import chunked, current, ordered_map

IMAGE_DIR_NAMES = ("images", "image", "imgs", "img", "original")
MASK_DIR_NAMES = ("masks", "mask", "labels", "label", "ground truth", "groundtruth", "gt", "annotations")

# Class maps are inferred from this many masks spread over the dataset, so that
# opening a folder stays cheap; pass a ClassMap to open_dataset to override.
CLASSMAP_SAMPLE = 16


def pair_dirs(root: Path) -> tuple[Path, Path] | None:
    images, masks = child_dir(root, IMAGE_DIR_NAMES), child_dir(root, MASK_DIR_NAMES)
    if images is None or masks is None or images == masks:
        return None
    return images, masks


def has_rasters(folder: Path, limit: int = 50) -> bool:
    """True when one of the first ``limit`` entries is a 2-D image file by name (rasters, DICOM, NIfTI)."""
    try:
        for k, p in enumerate(folder.iterdir()):
            if p.is_file() and (is_raster(p) or p.name.lower().endswith(SLICE_SUFFIXES)):
                return True
            if k >= limit:
                break
    except OSError:
        return False
    return False


def pair_kind(folder: Path) -> str | None:
    """Which of this module's layouts ``folder`` is ("cvc_original", "palette", "images_masks"), or None."""
    from medseg.datasets.volumes import volume_folder

    dirs = pair_dirs(folder)
    if dirs is None or not has_rasters(dirs[0]) or volume_folder(dirs[0]):
        return None  # a folder of volumes is the volume_folders layout
    images, masks = dirs
    if norm_name(images.name) == "original" and norm_name(masks.name) == "groundtruth":
        return "cvc_original"
    return "palette" if masks_are_palette(masks) else "images_masks"


def pair_source_data(folder: Path) -> tuple[str, set[Path]] | None:
    """The image and mask folders when either holds data files; the three pair layouts share this."""
    pair = pair_dirs(folder)
    if pair is not None and (holds_data(pair[0]) or holds_data(pair[1])):
        real = {Path(os.path.realpath(p)) for p in pair}
        return f"{pair[0].name}/ + {pair[1].name}/ layout", real
    return None


def masks_are_palette(mask_dir: Path, probe: int = 5) -> bool:
    """True when the first readable masks are mode 'P' images."""
    modes = []
    for name in list_names(mask_dir):  # Paths only for the few read: a detection lists the folder 3 times
        p = mask_dir / name
        if is_raster(p):
            mode = header_mode(p)
            if mode is not None:
                modes.append(mode)
        if len(modes) >= probe:
            break
    return bool(modes) and all(m == "P" for m in modes)


def index_pairs(root: Path, layout: str):
    """(samples, problems, classmap) for an image folder and a mask folder."""
    dirs = pair_dirs(root)
    if dirs is None:
        raise ReadError(
            root,
            "has no image folder and mask folder pair "
            f"(images: {'|'.join(IMAGE_DIR_NAMES)}; masks: {'|'.join(MASK_DIR_NAMES)})",
        )
    image_dir, mask_dir = dirs
    problems: list[ds.Problem] = []
    images, ambiguous = by_stem(image_dir, file_stem, problems, is_image_file)
    masks, ambiguous_masks = by_stem(mask_dir, slice_mask_stem, problems, is_mask_file)

    found = [(stem, image, masks.get(stem)) for stem, image in images.items()]
    both = [(image, mask) for _, image, mask in found if mask is not None]
    checked = iter(c for chunk in ordered_map(current(), _check_sizes, chunked(both)) for c in chunk)
    pairs = []
    for stem, image, mask in found:  # problems in the order a walk over the images gives them
        if mask is None:
            if stem not in ambiguous_masks:
                problems.append(ds.Problem(image, ds.IMAGE_WITHOUT_MASK, f"no mask named {stem}.* in {mask_dir.name}/"))
            continue
        agree, found_problems = next(checked)
        problems += found_problems
        if agree:
            pairs.append((stem, image, mask))
    for stem, mask in masks.items():
        if stem not in images and stem not in ambiguous:
            problems.append(ds.Problem(mask, ds.MASK_WITHOUT_IMAGE, f"no image named {stem}.* in {image_dir.name}/"))

    classmap = infer_classmap([m for _, _, m in pairs], palette=layout == "palette")
    kind = ds.MASK_BINARY if classmap.task == "binary" else ds.MASK_IDS
    samples = [
        ds.Sample(stem, image, {1: mask}, group=stem, classmap=classmap, mask_kind=kind) for stem, image, mask in pairs
    ]
    return samples, problems, classmap


def is_image_file(p: Path) -> bool:
    return is_raster(p) or is_slice_file(p)


def is_mask_file(p: Path) -> bool:
    return is_raster(p) or is_nifti_name(p)


def slice_mask_stem(p: Path) -> str:
    """``mask_stem`` with ``.nii.gz`` as one suffix."""
    return mask_stem(p.with_name(file_stem(p) + ".x")) if is_nifti_name(p) else mask_stem(p)


def by_stem(
    folder: Path, stem_of, problems: list[ds.Problem], accept=is_raster, ignore=None
) -> tuple[dict[str, Path], set[str]]:
    """Files ``accept`` takes, keyed by stem, and the stems claimed by several files.

    Other files (but those ``ignore`` names) and every file of an ambiguous stem become problems.
    """
    found: dict[str, list[Path]] = defaultdict(list)
    for p in list_files(folder):
        if ignore is not None and ignore(p):
            continue
        if accept(p):
            found[stem_of(p)].append(p)
        else:
            problems.append(
                ds.Problem(p, ds.UNSUPPORTED_FILE, f"not an image file ({p.suffix or 'no suffix'}) in {folder.name}/")
            )
    out, ambiguous = {}, set()
    for stem, paths in found.items():
        if len(paths) == 1:
            out[stem] = paths[0]
            continue
        ambiguous.add(stem)
        names = ", ".join(p.name for p in paths)
        for p in paths:
            problems.append(
                ds.Problem(
                    p,
                    ds.DUPLICATE_STEM,
                    f"{len(paths)} files in {folder.name}/ claim sample {stem!r} "
                    f"({names}); none is used until one is removed",
                )
            )
    return out, ambiguous


def _check_sizes(pairs) -> list[tuple[bool, list[ds.Problem]]]:
    """``sizes_agree`` of each (image, mask) and the problems it found (a worker's task: headers of many files)."""
    out = []
    for image, mask in pairs:
        problems: list[ds.Problem] = []
        out.append((sizes_agree(image, mask, problems), problems))
    return out


def sizes_agree(image: Path, mask: Path, problems: list[ds.Problem]) -> bool:
    sizes = {}
    for p in (image, mask):
        try:
            sizes[p] = header_size(p)
        except NotASliceError as e:  # a volume or multi-frame file among 2-D ones
            problems.append(ds.Problem(p, ds.UNSUPPORTED_FILE, e.reason))
        except ReadError as e:
            problems.append(ds.Problem(p, ds.UNREADABLE, e.reason))
    if len(sizes) < 2:
        return False
    if sizes[image] != sizes[mask]:
        (ih, iw), (mh, mw) = sizes[image], sizes[mask]
        problems.append(
            ds.Problem(mask, ds.SIZE_MISMATCH, f"mask is {mh}x{mw} (rows x cols) but image {image.name} is {ih}x{iw}")
        )
        return False
    return True


def infer_classmap(masks: list[Path], palette: bool) -> ClassMap:
    """Binary unless the sampled masks hold several small integer ids or palette indices."""
    picks = [masks[int(i)] for i in np.unique(np.linspace(0, len(masks) - 1, CLASSMAP_SAMPLE).round())] if masks else []
    values: set[int] = set()
    fractional = False  # a float mask with values between integers is grey, never class ids
    colours: dict[int, tuple[int, int, int]] = {}
    for p in picks:
        if is_nifti_name(p):
            a = _nifti_mask(p)
            if a is None:
                continue
            values.update(int(v) for v in np.unique(a) if np.isfinite(v))
            fractional = fractional or bool(np.any(a != np.round(a)))
            continue
        try:
            with open_image(p) as im:  # a mask over the size limits is skipped (and reported by indexing)
                if palette and im.mode == "P":
                    pal = im.getpalette() or []
                    a = np.asarray(im)
                    for i in np.unique(a).tolist():
                        if 3 * i + 2 < len(pal):
                            colours.setdefault(i, tuple(pal[3 * i : 3 * i + 3]))
                elif im.mode in ("RGB", "RGBA", "LA", "YCbCr", "CMYK"):
                    a = np.asarray(im.convert("L"))
                else:
                    a = np.asarray(im)
        except (OSError, ValueError, SyntaxError):  # ReadError included
            continue  # already reported, or reported when the mask is loaded
        found = np.unique(a)
        if found.dtype.kind == "f":
            # NaN and inf say nothing about classes (loading such a mask fails, naming it)
            found = found[np.isfinite(found)]
            fractional = fractional or bool(np.any(found != np.round(found)))
        values.update(int(v) for v in found)
    ids = sorted(v for v in values if v > 0)
    if palette and ids == [1]:
        return ClassMap([LabelClass(1, "foreground", colours.get(1, (255, 255, 255)))], task="binary")
    if palette and ids:
        classes = [LabelClass(i, f"class_{i}", colours.get(i, (255, 255, 255))) for i in ids]
        return ClassMap(classes, task="multiclass", extra={"source": "palette indices", "masks_inspected": len(picks)})
    if len(ids) >= 2 and max(ids) <= MAX_STORED_ID and not fractional:
        cm = ClassMap.from_names([f"class_{i}" for i in range(1, max(ids) + 1)], task="multiclass")
        cm.extra = {"source": "integer ids", "masks_inspected": len(picks)}
        return cm
    return ClassMap.binary("foreground")


def _nifti_mask(path: Path) -> np.ndarray | None:
    from medseg.io.mask_read import read_mask_values

    try:
        a = np.asarray(read_mask_values(path))
    except (OSError, ValueError):  # ReadError included: reported when the mask is loaded
        return None
    return a[np.isfinite(a)] if a.dtype.kind == "f" else a


def _pair_layout(name: str, description: str) -> Layout:
    return Layout(
        name,
        description,
        detect=lambda folder: pair_kind(folder) == name,
        index=lambda root: index_pairs(root, name),
        source_data=pair_source_data,
    )


CVC_ORIGINAL = _pair_layout("cvc_original", "Original/ + Ground Truth/ TIFFs (CVC-ClinicDB as released)")
PALETTE = _pair_layout("palette", "images/ + masks/ whose masks are palette ('P') PNGs holding class ids")
IMAGES_MASKS = _pair_layout("images_masks", "images/ + masks/ paired by file stem (Kvasir-SEG, CVC-ClinicDB PNG)")
