"""A folder of image volumes beside a folder of label volumes, matched by name.

``images/<case>.nii.gz`` + ``labels/<case>.nii.gz`` (the folder names of the
2-D image/mask layouts: ``images|imgs|...`` and ``labels|masks|gt|...``; a
label may carry a suffix such as ``_seg`` or ``_label``). The layout takes the
pair when the first NIfTI files of the image folder hold volumes (headers
only). Class names come from a labels JSON (``{value: name}``) in the label
folder or the root; one sample per case, grouped by case.
"""

from __future__ import annotations

from pathlib import Path

from medseg.classmap import ClassMap
from medseg.datasets import dataset as ds
from medseg.datasets.layout import Layout
from medseg.datasets.layout_generic import by_stem, pair_dirs, pair_source_data, slice_mask_stem
from medseg.datasets.slice_files import file_stem, is_nifti_name
from medseg.datasets.volumes import volume_classmap, volume_folder, volume_sample, with_classmap
from medseg.errors import ReadError


def is_volume_folders(folder: Path) -> bool:
    dirs = pair_dirs(folder)
    return dirs is not None and volume_folder(dirs[0])


def _is_json(p: Path) -> bool:
    return p.suffix.lower() == ".json"  # class names beside the labels


def index_volume_folders(root: Path) -> tuple[list[ds.Sample], list[ds.Problem], ClassMap]:
    dirs = pair_dirs(root)
    if dirs is None:
        raise ReadError(root, "has no image folder and label folder pair (images/ + labels/)")
    image_dir, label_dir = dirs
    problems: list[ds.Problem] = []
    images, ambiguous = by_stem(image_dir, file_stem, problems, is_nifti_name, _is_json)
    labels, ambiguous_labels = by_stem(label_dir, slice_mask_stem, problems, is_nifti_name, _is_json)
    samples = []
    for case, image in sorted(images.items()):
        label = labels.get(case)
        if label is None:
            if case not in ambiguous_labels:
                problems.append(
                    ds.Problem(
                        image, ds.IMAGE_WITHOUT_MASK, f"no label volume named {case}.nii.gz in {label_dir.name}/"
                    )
                )
            continue
        sample = volume_sample(case, image, label, problems)
        if sample is not None:
            samples.append(sample)
    for case, label in sorted(labels.items()):
        if case not in images and case not in ambiguous:
            problems.append(
                ds.Problem(label, ds.MASK_WITHOUT_IMAGE, f"no image volume named {case}.nii.gz in {image_dir.name}/")
            )
    classmap = volume_classmap(label_dir, root, [s.mask_paths[1] for s in samples])
    return with_classmap(samples, classmap), problems, classmap


VOLUME_FOLDERS = Layout(
    "volume_folders",
    "images/<case>.nii.gz + labels/<case>.nii.gz (+ labels/labels.json {value: name}): image and label volumes",
    detect=is_volume_folders,
    index=index_volume_folders,
    source_data=pair_source_data,
    auto_group=lambda case: case,
)
