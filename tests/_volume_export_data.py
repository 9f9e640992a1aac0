"""Volume export helpers: ExportItems built straight from a volume dataset's files, one format writer run over
them, the geometry of what was written read back, and nnU-Net's own verify_dataset_integrity run on a folder."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from medseg.classmap import ClassMap
from medseg.export.formats import get_writer
from medseg.export.item import ExportItem, Written
from medseg.io import load
from medseg.io.volume_geometry import Geometry
from medseg.io.volume_labels import read_label_volume


def case_item(image: Path, label: Path, stem: str | None = None, *, mask=None, record_geometry=True) -> ExportItem:
    """An ExportItem as the workspace export builds one: the label volume as the head mask (display order),
    the image's grid recorded on the sample (``record_geometry``) or left for the writer to read."""
    ids, _ = read_label_volume(label)
    geometry = Geometry.from_image(load(image)).to_dict() if record_geometry else None
    record = SimpleNamespace(image_path=image, geometry=geometry)
    stem = stem or image.name.split(".")[0].removesuffix("_0000")
    return ExportItem(stem, stem, record, ids if mask is None else mask, lambda: load(image), volume=True)


def nnunet_items(root: Path) -> list[ExportItem]:
    images = sorted((root / "imagesTr").glob("*_0000.nii*"))
    return [case_item(p, root / "labelsTr" / p.name.replace("_0000", "")) for p in images]


def classmap_of(root: Path) -> ClassMap:
    """The class map a volume dataset declares: dataset.json ``labels`` or labelsTr/labels.json ({id: name})."""
    names = root / "labelsTr" / "labels.json"
    if names.is_file():
        return ClassMap.from_id_names({int(k): v for k, v in json.loads(names.read_text()).items()})
    labels = json.loads((root / "dataset.json").read_text())["labels"]
    return ClassMap.from_id_names({int(v): k for k, v in labels.items()})


def run_writer(fmt: str, out: Path, classmap: ClassMap, items: list[ExportItem], **kw) -> dict[str, Written]:
    """``items`` through one format's writer, its metadata files included (what iter_export does per format)."""
    writer = get_writer(fmt)(out, classmap, name=out.name, **kw)
    written = {item.stem: writer.write(item) for item in items}
    writer.finish(written, None, {})
    run_writer.last = writer
    return written


def grid_of(path: Path) -> Geometry:
    """The grid medseg reads a written NIfTI image or label on."""
    return Geometry.from_image(load(path))


def assert_same_grid(path: Path, source: Geometry) -> None:
    problem = source.mismatch(grid_of(path))
    assert problem is None, f"{path}: {problem}"


def sitk_grid(path: Path) -> tuple:
    """(size, spacing, origin, direction) as SimpleITK, nnU-Net's default NIfTI reader, sees the file."""
    import SimpleITK as sitk

    img = sitk.ReadImage(str(path))
    return img.GetSize(), img.GetSpacing(), img.GetOrigin(), img.GetDirection()


def verify_nnunet(folder: Path, capfd) -> str:
    """nnU-Net's verify_dataset_integrity on ``folder``; its output, which must hold no error nor warning
    (nnU-Net only *warns* about an origin, direction or affine mismatch: those count as failures here)."""
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    capfd.readouterr()
    verify_dataset_integrity(str(folder), num_processes=1)
    out = "".join(capfd.readouterr())
    assert "verify_dataset_integrity Done" in out, out
    # its findings read "Error: ...", "Warning: ... mismatch" or "... contain(s) NaN ..."
    bad = [line for line in out.splitlines() if re.search(r"\b(Error|Warning):|NaN", line)]
    assert not bad, out
    return out


def raw_voxels(path: Path) -> np.ndarray:
    """The file's voxels in its own storage order (no reorientation)."""
    import nibabel as nib

    return np.asarray(nib.load(str(path)).dataobj)
