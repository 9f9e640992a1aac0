"""A dataset layout from outside the package, as a plugin would add one: the ISIC 2018 lesion layout.

``ISIC2018_Task1-2_Training_Input/ISIC_<n>.jpg`` beside
``ISIC2018_Task1_Training_GroundTruth/ISIC_<n>_segmentation.png``. One module
built only from the public layout protocol and the generic indexing helpers;
tests/test_layout_registry.py registers it and checks that detection, indexing
and the write guard all take it.
"""

from __future__ import annotations

import os
from pathlib import Path

from medseg.datasets import dataset as ds
from medseg.datasets.files import child_dir, holds_data
from medseg.datasets.layout import Layout
from medseg.datasets.layout_generic import by_stem, infer_classmap, sizes_agree
from medseg.errors import ReadError

INPUT, TRUTH = "ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth"
SUFFIX = "_segmentation"


def isic_dirs(root: Path) -> tuple[Path, Path] | None:
    images, truth = child_dir(root, (INPUT,)), child_dir(root, (TRUTH,))
    return None if images is None or truth is None else (images, truth)


def _mask_stem(p: Path) -> str:
    return p.stem[: -len(SUFFIX)] if p.stem.endswith(SUFFIX) else p.stem


def index_isic(root: Path):
    dirs = isic_dirs(root)
    if dirs is None:
        raise ReadError(root, f"is not an ISIC 2018 folder: expected {INPUT}/ and {TRUTH}/")
    problems: list[ds.Problem] = []
    images, _ = by_stem(dirs[0], lambda p: p.stem, problems)
    masks, _ = by_stem(dirs[1], _mask_stem, problems)
    pairs = []
    for stem, image in images.items():
        if stem not in masks:
            problems.append(ds.Problem(image, ds.IMAGE_WITHOUT_MASK, f"no {stem}{SUFFIX}.png in {TRUTH}/"))
        elif sizes_agree(image, masks[stem], problems):
            pairs.append((stem, image, masks[stem]))
    classmap = infer_classmap([m for _, _, m in pairs], palette=False)
    samples = [
        ds.Sample(stem, image, {1: mask}, classmap=classmap, mask_kind=ds.MASK_BINARY) for stem, image, mask in pairs
    ]
    return samples, problems, classmap


def isic_source_data(root: Path):
    dirs = isic_dirs(root)
    if dirs is None or not any(holds_data(d) for d in dirs):
        return None
    return "ISIC 2018 layout", {Path(os.path.realpath(d)) for d in dirs}


ISIC = Layout(
    "isic",
    f"{INPUT}/ + {TRUTH}/ (ISIC 2018 skin lesions)",
    detect=lambda root: isic_dirs(root) is not None,
    index=index_isic,
    source_data=isic_source_data,
)
