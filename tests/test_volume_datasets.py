"""Volume dataset layouts on synthetic CT-like cases (rotated, shifted grids): nnU-Net 3-D, Decathlon task
folders, image/label volume folders; geometry from headers, grid mismatches, label names, detection."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from _volume_data import NAMES, make_nnunet3d, make_volume_folders, rotated_affine, save_nifti, synthetic_case
from _volume_layouts import make_msd
from PIL import Image

from medseg.datasets import open_dataset
from medseg.datasets.dataset import (
    BAD_ROW,
    GRID_MISMATCH,
    IMAGE_WITHOUT_MASK,
    MASK_VOLUME,
    MASK_WITHOUT_IMAGE,
    UNSUPPORTED_FILE,
)
from medseg.datasets.layouts import detect_layout
from medseg.io.volume_geometry import Geometry, index_map, to_source_order

MAKERS = {"nnunet3d": make_nnunet3d, "msd": make_msd, "volume_folders": make_volume_folders}


@pytest.mark.parametrize("layout", sorted(MAKERS))
def test_each_volume_layout_gives_one_sample_per_case_on_the_image_grid(tmp_path, layout):
    root = MAKERS[layout](tmp_path / layout)
    ds = open_dataset(root)
    assert ds.layout == detect_layout(root) == layout and not ds.problems
    assert len(ds) == 3 and ds.classmap.names == list(NAMES.values()) and ds.classmap.ids == [1, 2, 3]
    for s in ds:
        assert s.is_volume and s.mask_kind == MASK_VOLUME and s.group == s.id and s.classmap is ds.classmap
        assert json.loads(json.dumps(s.extra["geometry"])) == s.extra["geometry"]  # stored as plain JSON
        image = s.load_image()
        # the grid read from the header at index is the one the decoded volume has
        assert Geometry.from_image(image) == s.geometry
        labels = s.load_mask()
        assert labels.shape == image.array.shape == s.geometry.shape == (10, 36, 40)
        assert set(np.unique(labels)) == {0, 1, 2, 3}
        # back in the file's voxel order the ids are exactly those stored
        src = nib.load(s.mask_paths[1])
        perm, flip = index_map(s.geometry.matrix, src.affine, src.shape)
        assert np.array_equal(to_source_order(labels, perm, flip), np.asarray(src.dataobj))


def test_indexing_reads_headers_only(tmp_path, monkeypatch):
    from nibabel.arrayproxy import ArrayProxy

    root = make_nnunet3d(tmp_path / "nn")

    def no_voxels(*args, **kwargs):
        raise AssertionError("a voxel was decoded while indexing")

    for name in ("__array__", "__getitem__", "_get_scaled", "get_unscaled"):
        monkeypatch.setattr(ArrayProxy, name, no_voxels)
    ds = open_dataset(root)
    assert len(ds) == 3 and ds[0].geometry.shape == (10, 36, 40)
    monkeypatch.undo()
    assert ds[0].load_mask().max() == 3


def test_geometry_is_each_images_own(tmp_path):
    ds = open_dataset(make_nnunet3d(tmp_path / "nn"))
    # make_nnunet3d turns each case by 3 more degrees: three different grids, each with its spacing
    grids = [s.geometry for s in ds]
    assert len({g.affine for g in grids}) == 3
    for g in grids:
        assert g.spacing == pytest.approx((2.5, 0.8, 0.8))
        assert g.origin == pytest.approx(tuple(np.asarray(g.affine)[:3, 3]))


def test_a_label_off_the_image_grid_is_a_problem_naming_both_files(tmp_path):
    root = make_nnunet3d(tmp_path / "nn")
    image, labels = synthetic_case((40, 36, 10), seed=1)
    shifted = rotated_affine(angle_deg=13.0)
    shifted[:3, 3] += (0.0, 2.0, 0.0)  # 2 mm off in y
    save_nifti(root / "labelsTr" / "case_001.nii.gz", labels, shifted)
    save_nifti(root / "labelsTr" / "case_002.nii.gz", labels[:, :, :9], rotated_affine(angle_deg=16.0))
    ds = open_dataset(root)
    assert [s.id for s in ds] == ["case_000"]
    said = {p.path.name: p for p in ds.problems}
    off = said["case_001.nii.gz"]
    assert off.kind == GRID_MISMATCH
    assert "case_001.nii.gz" in off.message and "case_001_0000.nii.gz" in off.message
    assert "2 mm apart" in off.message
    cut = said["case_002.nii.gz"]
    assert cut.kind == GRID_MISMATCH and "shape 9x36x40 differs from 10x36x40" in cut.message
    assert "case_002_0000.nii.gz" in cut.message


def test_a_label_moved_under_the_tolerance_is_on_the_grid(tmp_path):
    root = make_nnunet3d(tmp_path / "nn", n_cases=1)
    _, labels = synthetic_case((40, 36, 10), seed=0)
    nudged = rotated_affine(angle_deg=10.0)
    nudged[:3, 3] += 2e-4  # float32 rounding in a header is far below 1e-3 mm
    save_nifti(root / "labelsTr" / "case_000.nii.gz", labels, nudged)
    ds = open_dataset(root)
    assert len(ds) == 1 and not ds.problems


def test_sparse_ids_named_in_a_labels_json_beside_the_labels(tmp_path):
    root = make_volume_folders(tmp_path / "vf", n_cases=2)
    for c in range(2):
        path = root / "labels" / f"patient{c}.nii.gz"
        img = nib.load(path)
        ids = np.asarray(img.dataobj).astype(np.uint8)
        ids[ids == 2] = 117  # TotalSegmentator numbers its structures sparsely
        ids[ids == 3] = 52
        save_nifti(path, ids, img.affine)
    (root / "labels" / "labels.json").write_text(
        json.dumps({"0": "background", "1": "liver", "52": "aorta", "117": "costal_cartilages"})
    )
    ds = open_dataset(root)
    assert ds.classmap.ids == [1, 52, 117] and ds.classmap.name_of(117) == "costal_cartilages"
    assert ds.classmap.extra["source"] == "labels.json" and ds.classmap.task == "multiclass"
    assert len(set(ds.classmap.colour_table().values())) == 3
    assert set(np.unique(ds[0].load_mask())) == {0, 1, 52, 117}


def test_nnunet_dataset_json_names_classes_name_to_value(tmp_path):
    root = make_nnunet3d(tmp_path / "nn", n_cases=1, names={1: "tumour", 2: "cyst", 3: "vessel"})
    ds = open_dataset(root)
    assert ds.classmap.names == ["tumour", "cyst", "vessel"] and ds.classmap.extra["source"] == "dataset.json"


def test_without_names_the_ids_are_read_from_the_labels(tmp_path):
    root = make_nnunet3d(tmp_path / "nn", n_cases=2)
    (root / "dataset.json").unlink()
    ds = open_dataset(root)
    assert ds.layout == "nnunet3d" and ds.classmap.names == ["class_1", "class_2", "class_3"]


def test_nnunet3d_lists_what_it_cannot_index(tmp_path):
    root = make_nnunet3d(tmp_path / "nn", n_cases=3)
    image, labels = synthetic_case((40, 36, 10), seed=5)
    save_nifti(root / "imagesTr" / "case_000_0001.nii.gz", image, rotated_affine(angle_deg=10.0))  # a 2nd channel
    (root / "labelsTr" / "case_002.nii.gz").rename(root / "labelsTr" / "orphan.nii.gz")
    (root / "imagesTr" / "notes.txt").write_text("scanner notes")
    ds = open_dataset(root)
    assert [s.id for s in ds] == ["case_000", "case_001"]
    said = {p.path.name: p for p in ds.problems}
    assert said["case_000_0001.nii.gz"].message.startswith("channel 1 of case case_000")
    assert said["case_002_0000.nii.gz"].kind == IMAGE_WITHOUT_MASK
    assert said["orphan.nii.gz"].kind == MASK_WITHOUT_IMAGE
    assert said["notes.txt"].kind == UNSUPPORTED_FILE


def test_numbered_cases_are_their_own_groups(tmp_path):
    root = make_nnunet3d(tmp_path / "nn", n_cases=3)
    for p in sorted((root / "imagesTr").iterdir()):
        p.rename(p.with_name(p.name.replace("case_", "")))
    for p in sorted((root / "labelsTr").glob("*.nii.gz")):
        p.rename(p.with_name(p.name.replace("case_", "")))
    ds = open_dataset(root)  # integer stems: no video frame blocks for volumes
    assert [(s.id, s.group) for s in ds] == [("000", "000"), ("001", "001"), ("002", "002")]


def test_volume_folders_match_labels_with_a_suffix_and_list_orphans(tmp_path):
    root = make_volume_folders(tmp_path / "vf", n_cases=3)
    (root / "labels" / "patient1.nii.gz").rename(root / "labels" / "patient1_seg.nii.gz")
    (root / "labels" / "patient2.nii.gz").rename(root / "labels" / "patient9.nii.gz")
    ds = open_dataset(root)
    assert [s.id for s in ds] == ["patient0", "patient1"]
    assert ds[1].mask_paths[1].name == "patient1_seg.nii.gz"
    said = {p.path.name: p.kind for p in ds.problems}
    assert said == {"patient2.nii.gz": IMAGE_WITHOUT_MASK, "patient9.nii.gz": MASK_WITHOUT_IMAGE}


def test_msd_takes_the_pairs_from_dataset_json(tmp_path):
    root = make_msd(tmp_path / "Task03_Liver", n_cases=3)
    meta = json.loads((root / "dataset.json").read_text())
    meta["training"][1]["label"] = "./labelsTr/missing.nii.gz"
    meta["training"].append({"image": "../elsewhere.nii.gz", "label": "./labelsTr/liver_0.nii.gz"})
    meta["training"].append("liver_2")
    (root / "dataset.json").write_text(json.dumps(meta))
    shutil.copy(root / "imagesTr" / "liver_0.nii.gz", root / "imagesTr" / "liver_extra.nii.gz")
    ds = open_dataset(root)
    assert ds.layout == "msd" and [s.id for s in ds] == ["liver_0", "liver_2"]
    assert ds.classmap.names == list(NAMES.values())
    said = [(p.path.name, p.kind, p.message) for p in ds.problems]
    assert ("liver_1.nii.gz", IMAGE_WITHOUT_MASK, "its label ./labelsTr/missing.nii.gz is not on disk") in said
    assert ("dataset.json", BAD_ROW, "'training' entry 3 names a file outside Task03_Liver/") in said
    assert ("dataset.json", BAD_ROW, '\'training\' entry 4 is not {"image": ..., "label": ...}') in said
    unlisted = "not listed in dataset.json's 'training' pairs: not indexed"
    assert [(name, kind) for name, kind, message in said if message == unlisted] == [
        ("liver_extra.nii.gz", UNSUPPORTED_FILE)
    ]


def test_msd_reads_nnunet_v1_channel_names(tmp_path):
    root = make_msd(tmp_path / "Task500", n_cases=2)
    for p in (root / "imagesTr").glob("*.nii.gz"):
        p.rename(p.with_name(p.name.replace(".nii.gz", "_0000.nii.gz")))
    ds = open_dataset(root)
    assert ds.layout == "msd" and [s.image_path.name for s in ds] == ["liver_0_0000.nii.gz", "liver_1_0000.nii.gz"]
    assert not ds.problems


def test_a_stray_volume_leaves_a_2d_nnunet_dataset_2d(tmp_path):
    root = tmp_path / "nn2d"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for case in ("a", "b"):
        Image.fromarray(np.full((8, 10), 50, np.uint8)).save(root / "imagesTr" / f"{case}_0000.png")
        Image.fromarray(np.eye(8, 10, dtype=np.uint8)).save(root / "labelsTr" / f"{case}.png")
    image, _ = synthetic_case((40, 36, 10))
    save_nifti(root / "imagesTr" / "vol_0000.nii.gz", image, rotated_affine())
    ds = open_dataset(root)
    assert ds.layout == "nnunet" and [s.id for s in ds] == ["a", "b"]
    (p,) = ds.problems
    assert p.kind == UNSUPPORTED_FILE and "is a volume of 10 slices" in p.message and "nnunet3d" in p.message


def test_a_3d_nnunet_forced_as_2d_says_it_holds_volumes(tmp_path):
    root = make_nnunet3d(tmp_path / "nn", n_cases=2)
    ds = open_dataset(root, layout="nnunet")
    assert not ds.samples
    assert {p.kind for p in ds.problems} == {UNSUPPORTED_FILE}
    assert all("nnunet3d" in p.message for p in ds.problems if p.path.parent.name == "imagesTr")


def test_an_archive_folder_around_a_task_is_looked_into(tmp_path):
    make_msd(tmp_path / "download" / "Task09_Spleen", n_cases=2)
    ds = open_dataset(tmp_path / "download")
    assert ds.layout == "msd" and ds.root == tmp_path / "download" / "Task09_Spleen" and len(ds) == 2


@pytest.mark.parametrize("layout", ["msd", "volume_folders"])
def test_a_workspace_over_a_volume_layout_holds_each_case_on_its_grid(tmp_path, layout):
    from medseg.workspace import Workspace

    root = MAKERS[layout](tmp_path / layout, n_cases=2)
    ds = open_dataset(root)
    with Workspace.create(tmp_path / "ws", root) as ws:
        for s in ds:
            assert ws.is_volume(s.id) and ws.geometry(s.id) == s.geometry
            assert np.array_equal(ws.current_mask(s.id), s.load_mask())
