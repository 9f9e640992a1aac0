"""The dicom_series layout: a DICOM series per case folder with NIfTI labels, indexed from headers only,
labels checked on the series' grid, and every series the loop cannot use named as a problem."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
from _volume_data import make_dicom_series_dataset, make_volume_folders, save_nifti, write_dicom_series

import medseg.io.dicom_lazy as dicom_lazy
import medseg.io.dicom_series as dicom_series
from medseg.cli import main
from medseg.datasets import dataset as ds
from medseg.datasets import open_dataset
from medseg.io import load
from medseg.io.volume_geometry import Geometry


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def test_series_folders_with_nifti_labels_index_from_headers(tmp_path: Path, monkeypatch) -> None:
    root = make_dicom_series_dataset(tmp_path / "ds", n_cases=2)

    def no_decoding(*a, **k):
        raise AssertionError("indexing decoded pixels")

    monkeypatch.setattr(dicom_series, "decode_pixels", no_decoding)
    monkeypatch.setattr(dicom_lazy, "decode_pixels", no_decoding)
    dataset = open_dataset(root)
    monkeypatch.undo()
    assert dataset.layout == "dicom_series" and dataset.problems == []
    assert [s.id for s in dataset] == ["case0", "case1"] and [s.group for s in dataset] == ["case0", "case1"]
    assert dataset.classmap.names == ["liver", "spleen", "kidney_left"]
    for sample in dataset:
        assert sample.is_volume and sample.image_path == root / "images" / sample.id
        assert sample.extra["modality"] == "CT" and sample.extra["n_files"] == 10
        image = sample.load_image()
        assert sample.geometry.mismatch(Geometry.from_image(image)) is None
        assert sample.geometry.shape == (10, 36, 40)
        labels = sample.load_mask()
        assert labels.shape == image.array.shape and set(np.unique(labels)) <= {0, 1, 2, 3}
        # the label marks the organs the synthetic CT draws: liver voxels are liver-bright (~60 HU)
        assert abs(float(image.array[labels == 1].mean()) - 60) < 10


def test_case_folders_may_sit_in_the_root_beside_the_labels(tmp_path: Path) -> None:
    root = make_dicom_series_dataset(tmp_path / "ds", n_cases=2)
    for case in (root / "images").iterdir():
        shutil.move(case, root / case.name)
    (root / "images").rmdir()
    dataset = open_dataset(root)
    assert dataset.layout == "dicom_series" and [s.id for s in dataset] == ["case0", "case1"]
    assert dataset.problems == []


def test_other_volume_layouts_keep_their_detection(tmp_path: Path) -> None:
    assert open_dataset(make_volume_folders(tmp_path / "vf", n_cases=2)).layout == "volume_folders"


def _by_kind(dataset) -> dict[str, list[ds.Problem]]:
    out: dict[str, list[ds.Problem]] = {}
    for p in dataset.problems:
        out.setdefault(p.kind, []).append(p)
    return out


def test_unusable_series_are_problems_naming_the_file_and_nothing_is_written(tmp_path: Path) -> None:
    root = make_dicom_series_dataset(tmp_path / "ds", n_cases=2)
    images, labels = root / "images", root / "labels"
    base = sorted((images / "case0").iterdir())
    volume = load(images / "case0")
    affine = np.asarray(volume.metadata["affine"])

    def case(name: str, **kw) -> list[Path]:
        files = write_dicom_series(images / name, volume.array, affine, **kw)
        shutil.copy(labels / "case0.nii.gz", labels / f"{name}.nii.gz")
        return files

    gap = case("gap")
    gap[4].unlink()  # a slice missing from the stack
    dup = case("dup")
    ds_dup = pydicom.dcmread(dup[2])
    ds_dup.SOPInstanceUID = pydicom.uid.generate_uid()
    ds_dup.save_as(images / "dup" / "zz.dcm")
    mixed = case("mixed")
    other = write_dicom_series(tmp_path / "other", volume.array[:3], affine, prefix="OT")
    for f in other:
        shutil.move(f, images / "mixed" / f.name)
    nospacing = case("nospacing", drop_tags=("PixelSpacing",))
    # a label on another grid: the image's origin moved by 2 mm
    shifted = affine.copy()
    shifted[:3, 3] += [2.0, 0.0, 0.0]
    save_nifti(labels / "case1.nii.gz", np.zeros(volume.array.shape, np.uint8), shifted)
    save_nifti(labels / "orphan.nii.gz", np.zeros(volume.array.shape, np.uint8), affine)
    shutil.copytree(images / "case0", images / "nolabel")
    (images / "case0" / "notes.txt").write_text("not an image")
    before = _tree_hash(root)

    mixed_named = images / "mixed" / min(f.name for f in other)  # the other series' first file by name
    dataset = open_dataset(root)
    assert _tree_hash(root) == before
    assert [s.id for s in dataset] == ["case0"]
    kinds = _by_kind(dataset)
    unusable = {p.path: p.message for p in kinds[ds.UNSUPPORTED_VOLUME]}
    assert set(unusable) == {
        gap[5],
        images / "dup" / "zz.dcm",
        mixed_named,
        nospacing[0],
    }
    assert "a slice is missing" in unusable[gap[5]] and gap[3].name in unusable[gap[5]]
    assert "same position" in unusable[images / "dup" / "zz.dcm"]
    assert "one folder holds one series" in unusable[mixed_named]
    assert mixed[0].parent.name in unusable[mixed_named]
    assert "has no PixelSpacing" in unusable[nospacing[0]]
    (grid,) = kinds[ds.GRID_MISMATCH]
    assert grid.path == labels / "case1.nii.gz" and "case1" in grid.message and "mm apart" in grid.message
    assert [p.path for p in kinds[ds.IMAGE_WITHOUT_MASK]] == [images / "nolabel"]
    assert [p.path for p in kinds[ds.MASK_WITHOUT_IMAGE]] == [labels / "orphan.nii.gz"]
    assert [p.path for p in kinds[ds.UNSUPPORTED_FILE]] == [images / "case0" / "notes.txt"]
    assert base == sorted(p for p in (images / "case0").iterdir() if p.suffix == ".dcm")


def test_cli_index_and_info_take_the_layout(tmp_path: Path, capsys) -> None:
    root = make_dicom_series_dataset(tmp_path / "ds", n_cases=2)
    assert main(["index", "--json", str(root)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["layout"] == "dicom_series" and out["samples"] == 2 and out["problems"] == []
    assert main(["info", str(root / "images" / "case1")]) == 0
    assert "shape (10, 36, 40)" in capsys.readouterr().out


def test_workspace_imports_the_series_cases(tmp_path: Path) -> None:
    from medseg.workspace import Workspace

    root = make_dicom_series_dataset(tmp_path / "ds", n_cases=2)
    ws = Workspace.create(tmp_path / "ws", root)
    assert ws.is_volume("case1")
    image = load(root / "images" / "case1")
    assert ws.geometry("case1").mismatch(Geometry.from_image(image)) is None
    np.testing.assert_array_equal(ws.current_mask("case1"), open_dataset(root).by_id("case1").load_mask())


def test_an_empty_case_folder_is_named(tmp_path: Path) -> None:
    root = make_dicom_series_dataset(tmp_path / "ds", n_cases=1)
    (root / "images" / "empty").mkdir()
    shutil.copy(root / "labels" / "case0.nii.gz", root / "labels" / "empty.nii.gz")
    dataset = open_dataset(root)
    (p,) = [p for p in dataset.problems if p.path == root / "images" / "empty"]
    assert p.kind == ds.UNSUPPORTED_VOLUME and "no DICOM image files" in p.message
