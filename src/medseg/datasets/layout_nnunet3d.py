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
from medseg.datasets.layout_nnunet import CHANNEL, IMAGES, LABELS, is_nnunet, nnunet_source_data
from medseg.datasets.slice_files import file_stem, is_nifti_name
from medseg.datasets.volumes import volume_classmap, volume_folder, volume_sample, with_classmap


def is_nnunet3d(folder: Path) -> bool:
    return is_nnunet(folder) and not is_msd(folder) and volume_folder(folder / IMAGES)


def index_nnunet3d(root: Path) -> tuple[list[ds.Sample], list[ds.Problem], object]:
    problems: list[ds.Problem] = []
    images: dict[str, Path] = {}
    for p in list_files(root / IMAGES):
        m = CHANNEL.match(file_stem(p))
        if not is_nifti_name(p):
            problems.append(ds.Problem(p, ds.UNSUPPORTED_FILE, f"not a NIfTI volume (.nii.gz) in {IMAGES}/"))
        elif m is None:
            problems.append(ds.Problem(p, ds.UNSUPPORTED_FILE, f"no channel suffix (<case>_0000.nii.gz) in {IMAGES}/"))
        elif m["channel"] != "0000":
            problems.append(
                ds.Problem(
                    p,
                    ds.UNSUPPORTED_FILE,
                    f"channel {int(m['channel'])} of case {m['case']}: only a case's first channel (_0000) is indexed",
                )
            )
        else:
            images[m["case"]] = p
    labels: dict[str, Path] = {}
    for p in list_files(root / LABELS):
        if p.suffix.lower() == ".json":
            continue  # class names, not a label volume
        if is_nifti_name(p):
            labels[file_stem(p)] = p
        else:
            problems.append(ds.Problem(p, ds.UNSUPPORTED_FILE, f"not a NIfTI label volume in {LABELS}/"))
    samples = []
    for case, image in sorted(images.items()):
        label = labels.get(case)
        if label is None:
            problems.append(ds.Problem(image, ds.IMAGE_WITHOUT_MASK, f"no label {case}.nii.gz in {LABELS}/"))
            continue
        sample = volume_sample(case, image, label, problems)
        if sample is not None:
            samples.append(sample)
    for case, label in sorted(labels.items()):
        if case not in images:
            problems.append(ds.Problem(label, ds.MASK_WITHOUT_IMAGE, f"no image {case}_0000.nii.gz in {IMAGES}/"))
    classmap = volume_classmap(root / LABELS, root, [s.mask_paths[1] for s in samples])
    return with_classmap(samples, classmap), problems, classmap


NNUNET3D = Layout(
    "nnunet3d",
    "imagesTr/<case>_0000.nii.gz + labelsTr/<case>.nii.gz + dataset.json or labelsTr/labels.json (nnU-Net v2 raw, 3-D)",
    detect=is_nnunet3d,
    index=index_nnunet3d,
    source_data=nnunet_source_data,
    auto_group=lambda case: case,
)
