"""nnU-Net v2 raw datasets of 2-D images: ``imagesTr/<case>_0000.<ext>`` + ``labelsTr/<case>.<ext>`` + ``dataset.json``.

The layout nnU-Net trains from, and the one ``medseg export --format nnunet``
writes, so an exported dataset can be opened again to go on cleaning it.
Image files carry a four-digit channel suffix; a case is indexed from its
``_0000`` file (an RGB PNG is one file holding its three channels). Images may
also be 2-D DICOM files or NIfTI files of one slice (nnU-Net's 2-D NIfTI sets
store ``(x, y, 1)``), labels PNG or one-slice NIfTI. Further channel files
(``_0001``, ...: other modalities) are listed as problems, as are volumes in a
folder of 2-D images (a folder of volumes is the ``nnunet3d`` layout). Labels are the class ids nnU-Net requires
(background 0, classes 1..N); their names come from ``dataset.json``
``labels`` ({"background": 0, "polyp": 1}). Region-based labels (lists of
values) are refused with a clear error. ``imagesTs`` (no labels) is not
indexed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from medseg.classmap import ClassMap
from medseg.datasets import dataset as ds
from medseg.datasets.layout import Layout
from medseg.errors import ReadError

IMAGES, LABELS, META, TEST_IMAGES = "imagesTr", "labelsTr", "dataset.json", "imagesTs"
CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
_VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


def is_nnunet(folder: Path) -> bool:
    return (folder / IMAGES).is_dir() and (folder / LABELS).is_dir()


def nnunet_source_data(root: Path) -> tuple[str, set[Path]] | None:
    if not is_nnunet(root):
        return None
    return "nnU-Net layout", {root / IMAGES, root / LABELS, root / TEST_IMAGES, root / META}


def nnunet_classmap(root: Path) -> ClassMap | None:
    """The class map ``dataset.json`` declares, or None without one; ReadError for labels it cannot hold."""
    path = root / META
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ReadError(path, f"is not readable JSON ({e})") from None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    if not isinstance(labels, dict) or not labels:
        raise ReadError(path, 'has no \'labels\' mapping ({"background": 0, "<class>": 1, ...})')
    if any(isinstance(v, list) for v in labels.values()):
        raise ReadError(
            path, "declares region-based labels (lists of values); open the per-class export (--format folders) instead"
        )
    try:
        by_value = {int(v): str(k) for k, v in labels.items()}
    except (TypeError, ValueError):
        raise ReadError(path, f"'labels' values must be integers, got {labels}") from None
    classes = sorted(v for v in by_value if v != 0)
    if 0 not in by_value or classes != list(range(1, len(classes) + 1)):
        raise ReadError(path, f"'labels' must be background 0 and classes 1..N (nnU-Net's rule), got {labels}")
    if not classes:
        raise ReadError(path, "'labels' declares no class besides the background")
    names = [by_value[v] for v in classes]
    try:
        return ClassMap(
            ClassMap.from_names(names).classes,
            task="binary" if len(names) == 1 else "multiclass",
            background=by_value[0],
            extra={"source": META},
        )
    except ValueError as e:
        raise ReadError(path, f"'labels' cannot be a class map: {e}") from None


def channel_case(p: Path, stem: str, example: str, problems: list[ds.Problem], unit: str = "file") -> str | None:
    """The case of ``p`` (its ``stem``: ``<case>_0000``) when it is a case's first channel, else None with
    the problem appended: no channel suffix (``example``: the suffix the message shows), or a further channel
    (``unit``: what a channel is, in the message)."""
    m = CHANNEL.match(stem)
    if m is None:
        problems.append(ds.Problem(p, ds.UNSUPPORTED_FILE, f"no channel suffix (<case>_0000{example}) in {IMAGES}/"))
        return None
    if m["channel"] != "0000":
        problems.append(
            ds.Problem(
                p,
                ds.UNSUPPORTED_FILE,
                f"channel {int(m['channel'])} of case {m['case']}: only a case's first {unit} (_0000) is indexed",
            )
        )
        return None
    return m["case"]


def _suffix(p: Path) -> str:
    name = p.name.lower()
    return next((s for s in _VOLUME_SUFFIXES if name.endswith(s)), p.suffix.lower())


def index_nnunet(root: Path, layout: str = "nnunet") -> tuple[list[ds.Sample], list[ds.Problem], ClassMap]:
    from medseg.datasets.files import is_raster, list_files
    from medseg.datasets.layout_generic import infer_classmap, sizes_agree
    from medseg.datasets.slice_files import file_stem, is_nifti_name, is_slice_file

    problems: list[ds.Problem] = []
    images: dict[str, Path] = {}
    for p in list_files(root / IMAGES):
        suffix = _suffix(p)
        stem = p.name[: -len(suffix)] if suffix else p.name
        if is_slice_file(p) and not _one_slice(p, problems):
            continue
        if suffix in _VOLUME_SUFFIXES and not is_nifti_name(p):
            problems.append(
                ds.Problem(
                    p,
                    ds.UNSUPPORTED_FILE,
                    f"a volume in {IMAGES}/: this index holds 2-D images (open volumes in napari with the reader)",
                )
            )
        elif not (is_raster(p) or is_slice_file(p)):
            problems.append(
                ds.Problem(p, ds.UNSUPPORTED_FILE, f"not an image file ({p.suffix or 'no suffix'}) in {IMAGES}/")
            )
        elif (case := channel_case(p, stem, p.suffix, problems)) is not None:
            images[case] = p
    labels: dict[str, Path] = {}
    for p in list_files(root / LABELS):
        if is_raster(p) or (is_nifti_name(p) and _one_slice(p, problems)):
            labels[file_stem(p)] = p
        elif is_nifti_name(p):
            continue  # a volume, reported by _one_slice
        else:
            problems.append(
                ds.Problem(p, ds.UNSUPPORTED_FILE, f"not a 2-D label image ({_suffix(p) or 'no suffix'}) in {LABELS}/")
            )
    pairs = []
    for case, image in sorted(images.items()):
        label = labels.get(case)
        if label is None:
            problems.append(ds.Problem(image, ds.IMAGE_WITHOUT_MASK, f"no label {case}.* in {LABELS}/"))
        elif sizes_agree(image, label, problems):
            pairs.append((case, image, label))
    for case, label in labels.items():
        if case not in images:
            problems.append(ds.Problem(label, ds.MASK_WITHOUT_IMAGE, f"no image {case}_0000.* in {IMAGES}/"))
    classmap = nnunet_classmap(root) or infer_classmap([m for _, _, m in pairs], palette=False)
    kind = ds.MASK_BINARY if classmap.task == "binary" else ds.MASK_IDS
    samples = [
        ds.Sample(case, image, {1: label}, group=case, classmap=classmap, mask_kind=kind)
        for case, image, label in pairs
    ]
    return samples, problems, classmap


def _one_slice(path: Path, problems: list[ds.Problem]) -> bool:
    """True for a 2-D DICOM or one-slice NIfTI; a volume or an unreadable header is a problem."""
    from medseg.datasets.slice_files import slice_size
    from medseg.errors import NotASliceError

    try:
        slice_size(path)
    except NotASliceError as e:
        problems.append(
            ds.Problem(
                path,
                ds.UNSUPPORTED_FILE,
                f"a volume in {path.parent.name}/: {path.name} {e.reason} (a folder of volumes opens as the "
                "nnunet3d layout)",
            )
        )
        return False
    except ReadError as e:
        problems.append(ds.Problem(path, ds.UNREADABLE, e.reason))
        return False
    return True


def is_nnunet2d(folder: Path) -> bool:
    """nnU-Net's folders holding 2-D images: not a folder of volumes (nnunet3d), not a Decathlon task."""
    from medseg.datasets.layout_msd import is_msd
    from medseg.datasets.volumes import volume_folder

    return is_nnunet(folder) and not is_msd(folder) and not volume_folder(folder / IMAGES)


NNUNET = Layout(
    "nnunet",
    "imagesTr/<case>_0000.png + labelsTr/<case>.png + dataset.json (nnU-Net v2 raw, 2-D)",
    detect=is_nnunet2d,
    index=index_nnunet,
    source_data=nnunet_source_data,
)
