"""nnU-Net v2 raw 3-D: ``imagesTr/<case>_0000.nii.gz`` + ``labelsTr/<case>.nii.gz`` + ``dataset.json``.

The folders are those of the 2-D layout (:mod:`medseg.datasets.layout_nnunet`);
what tells them apart is the images: this layout takes the folder when the
first NIfTI files of ``imagesTr/`` hold volumes (more than one slice, read from
their headers) and no 2-D image is among them. A ``dataset.json`` listing
``training`` pairs is a Decathlon task (:mod:`medseg.datasets.layout_msd`).

One sample per case, grouped by case. Class names come from a labels JSON
beside the labels (``labelsTr/labels.json``, ``{value: name}``, sparse ids
allowed) or ``dataset.json``'s ``labels`` (``{name: value}``); other JSON
files in ``labelsTr/`` are not labels. Further channels (``_0001``: another MR
sequence) are listed as problems: a case is indexed from its first.
"""

from __future__ import annotations

from pathlib import Path

from medseg.datasets import dataset as ds
from medseg.datasets.files import list_files
from medseg.datasets.layout import Layout
from medseg.datasets.layout_msd import is_msd
from medseg.datasets.layout_nnunet import IMAGES, LABELS, channel_case, is_nnunet, nnunet_source_data
from medseg.datasets.slice_files import file_stem, is_nifti_name
from medseg.datasets.volumes import pair_cases, volume_folder, volume_index


def is_nnunet3d(folder: Path) -> bool:
    return is_nnunet(folder) and not is_msd(folder) and volume_folder(folder / IMAGES)


def index_nnunet3d(root: Path) -> tuple[list[ds.Sample], list[ds.Problem], object]:
    problems: list[ds.Problem] = []
    images: dict[str, Path] = {}
    for p in list_files(root / IMAGES):
        if not is_nifti_name(p):
            problems.append(ds.Problem(p, ds.UNSUPPORTED_FILE, f"not a NIfTI volume (.nii.gz) in {IMAGES}/"))
        elif (case := channel_case(p, file_stem(p), ".nii.gz", problems, "channel")) is not None:
            images[case] = p
    labels: dict[str, Path] = {}
    for p in list_files(root / LABELS):
        if p.suffix.lower() == ".json":
            continue  # class names, not a label volume
        if is_nifti_name(p):
            labels[file_stem(p)] = p
        else:
            problems.append(ds.Problem(p, ds.UNSUPPORTED_FILE, f"not a NIfTI label volume in {LABELS}/"))
    samples = pair_cases(
        images,
        labels,
        problems,
        no_label=lambda case: f"no label {case}.nii.gz in {LABELS}/",
        no_image=lambda case: f"no image {case}_0000.nii.gz in {IMAGES}/",
    )
    return volume_index(samples, problems, root / LABELS, root)


NNUNET3D = Layout(
    "nnunet3d",
    "imagesTr/<case>_0000.nii.gz + labelsTr/<case>.nii.gz + dataset.json or labelsTr/labels.json (nnU-Net v2 raw, 3-D)",
    detect=is_nnunet3d,
    index=index_nnunet3d,
    source_data=nnunet_source_data,
    auto_group=lambda case: case,
)
