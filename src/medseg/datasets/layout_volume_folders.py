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
from medseg.datasets.volumes import pair_cases, volume_folder, volume_index
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
    samples = pair_cases(
        images,
        labels,
        problems,
        no_label=lambda case: f"no label volume named {case}.nii.gz in {label_dir.name}/",
        no_image=lambda case: f"no image volume named {case}.nii.gz in {image_dir.name}/",
        ambiguous_images=ambiguous,
        ambiguous_labels=ambiguous_labels,
    )
    return volume_index(samples, problems, label_dir, root)


VOLUME_FOLDERS = Layout(
    "volume_folders",
    "images/<case>.nii.gz + labels/<case>.nii.gz (+ labels/labels.json {value: name}): image and label volumes",
    detect=is_volume_folders,
    index=index_volume_folders,
    source_data=pair_source_data,
    auto_group=lambda case: case,
)
