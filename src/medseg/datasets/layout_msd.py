"""Medical Segmentation Decathlon task folders: ``dataset.json`` listing ``training`` image/label pairs.

``TaskXX_Name/dataset.json`` holds ``"training": [{"image": "./imagesTr/la_003.nii.gz",
"label": "./labelsTr/la_003.nii.gz"}, ...]`` and ``"labels": {"0": "background",
"1": "left atrium"}``; the volumes are NIfTI. The pairs are taken from the
list, not from the folders (nnU-Net v1 datasets share this ``dataset.json``
but name their images ``<case>_0000.nii.gz``: that file is used when the
listed one is absent). One sample per case (the label's name), grouped by
case. Four of the ten tasks (BrainTumour, Prostate) store several MR
sequences in one 4-D image: such a case is listed as a problem naming the file
and its 4th axis' size.
"""

from __future__ import annotations

import json
from pathlib import Path

from medseg.classmap import ClassMap
from medseg.datasets import dataset as ds
from medseg.datasets.layout import Layout
from medseg.datasets.slice_files import file_stem, is_nifti_name
from medseg.datasets.volumes import nifti_files, volume_index, volume_sample
from medseg.errors import ReadError

META, IMAGES, LABELS, TEST_IMAGES = "dataset.json", "imagesTr", "labelsTr", "imagesTs"


def _training(root: Path) -> list | None:
    """``dataset.json``'s ``training`` list, or None when there is none (not this layout)."""
    path = root / META
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    training = meta.get("training") if isinstance(meta, dict) else None
    if not isinstance(training, list) or not any(isinstance(t, dict) and "label" in t for t in training):
        return None
    return training


def is_msd(folder: Path) -> bool:
    return _training(folder) is not None


def msd_source_data(root: Path) -> tuple[str, set[Path]] | None:
    if not is_msd(root):  # without the list, the folders are nnU-Net's (that layout guards them)
        return None
    return "Decathlon task layout", {root / IMAGES, root / LABELS, root / TEST_IMAGES, root / META}


def index_msd(root: Path) -> tuple[list[ds.Sample], list[ds.Problem], ClassMap]:
    training = _training(root)
    if training is None:
        raise ReadError(root / META, 'has no \'training\' list of {"image": ..., "label": ...} pairs')
    problems: list[ds.Problem] = []
    samples: list[ds.Sample] = []
    used: set[Path] = set()
    cases: set[str] = set()
    for k, entry in enumerate(training):
        pair = _pair(root, k, entry, problems, used)
        if pair is None:
            continue
        image, label = pair
        case = file_stem(label)
        if case in cases:
            problems.append(ds.Problem(label, ds.DUPLICATE_STEM, f"{META} lists case {case} twice; the first is used"))
            continue
        cases.add(case)
        sample = volume_sample(case, image, label, problems)
        if sample is not None:
            samples.append(sample)
    if (root / IMAGES).is_dir():
        for p in nifti_files(root / IMAGES):
            if p not in used:
                problems.append(
                    ds.Problem(p, ds.UNSUPPORTED_FILE, f"not listed in {META}'s 'training' pairs: not indexed")
                )
    label_dir = samples[0].mask_paths[1].parent if samples else root / LABELS
    return volume_index(samples, problems, label_dir, root)


def _pair(root: Path, k: int, entry, problems: list[ds.Problem], used: set[Path]) -> tuple[Path, Path] | None:
    """The (image, label) of ``training`` entry ``k``, or None with a problem; the image listed joins ``used``."""
    meta = root / META
    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("image"), str)
        or not isinstance(entry.get("label"), str)
    ):
        problems.append(ds.Problem(meta, ds.BAD_ROW, f'\'training\' entry {k} is not {{"image": ..., "label": ...}}'))
        return None
    image, label = _inside(root, entry["image"]), _inside(root, entry["label"])
    if image is None or label is None:
        problems.append(ds.Problem(meta, ds.BAD_ROW, f"'training' entry {k} names a file outside {root.name}/"))
        return None
    if not image.is_file():
        v1 = image.with_name(file_stem(image) + "_0000.nii.gz")  # nnU-Net v1 lists cases without the channel
        image = v1 if v1.is_file() else image
    used.add(image)
    if not is_nifti_name(image) or not is_nifti_name(label):
        problems.append(ds.Problem(meta, ds.BAD_ROW, f"'training' entry {k} names files that are not NIfTI"))
        return None
    if not image.is_file() and not label.is_file():
        problems.append(ds.Problem(meta, ds.BAD_ROW, f"neither file of 'training' entry {k} is on disk ({entry})"))
        return None
    if not image.is_file():
        problems.append(ds.Problem(label, ds.MASK_WITHOUT_IMAGE, f"its image {entry['image']} is not on disk"))
        return None
    if not label.is_file():
        problems.append(ds.Problem(image, ds.IMAGE_WITHOUT_MASK, f"its label {entry['label']} is not on disk"))
        return None
    return image, label


def _inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` when it stays inside ``root`` (a listed '../x' or '/x' is refused)."""
    path = Path(relative)
    if path.is_absolute() or ".." in path.parts:
        return None
    return root / path


MSD = Layout(
    "msd",
    "dataset.json listing 'training' [{image, label}] NIfTI pairs (Medical Segmentation Decathlon task)",
    detect=is_msd,
    index=index_msd,
    source_data=msd_source_data,
    auto_group=lambda case: case,
)
