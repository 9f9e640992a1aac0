"""The real abdominal CT (41 structures, ids up to 117) and MR (23) as volume datasets: nnU-Net 3-D, a
Decathlon task and image/label folders index the same case on the same grid, with the names beside the labels."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from _volume_data import real_nnunet3d

from medseg.cli import main
from medseg.datasets import open_dataset
from medseg.io.volume_geometry import Geometry

REAL = {
    "ct": {"shape": (30, 101, 122), "classes": 41, "top": 117},
    "mr": {"shape": (20, 91, 117), "classes": 23, "top": 49},
}


@pytest.mark.parametrize("modality", sorted(REAL))
def test_the_real_volume_indexes_as_nnunet3d_with_its_names_and_grid(ct_mr_dir, tmp_path, modality):
    want = REAL[modality]
    ds = open_dataset(real_nnunet3d(ct_mr_dir, tmp_path / modality, modality))
    assert ds.layout == "nnunet3d" and not ds.problems and [s.id for s in ds] == [f"{modality}_000"]
    cm = ds.classmap
    names = json.loads((ct_mr_dir / f"{modality}_abdomen_labels.json").read_text())
    assert len(cm.classes) == want["classes"] and max(cm.ids) == want["top"]
    assert {str(c.id): c.name for c in cm.classes} == {k: v for k, v in names.items() if k != "0"}
    assert len(set(cm.colour_table().values())) == want["classes"]  # one colour per structure
    (s,) = ds.samples
    g = s.geometry
    assert g.shape == want["shape"] and g.spacing == pytest.approx((3.0, 3.0, 3.0))
    image = s.load_image()
    assert Geometry.from_image(image) == g
    labels = s.load_mask()
    assert labels.shape == g.shape
    found = {int(v) for v in np.unique(labels)} - {0}
    assert found == set(cm.ids)  # every named structure is in the volume and nothing else
    # the source file maps each display voxel where the geometry says: compare world positions of a voxel
    src = nib.load(s.image_path)
    vox = np.array([7, 40, 50, 1.0])
    ijk = np.rint(np.linalg.solve(src.affine, g.matrix @ vox)).astype(int)
    assert image.array[7, 40, 50] == np.asarray(src.dataobj)[tuple(ijk[:3])]


def test_the_real_ct_indexes_alike_in_every_volume_layout(ct_mr_dir, tmp_path):
    nn = open_dataset(real_nnunet3d(ct_mr_dir, tmp_path / "nn", "ct"))
    folders = tmp_path / "folders"
    (folders / "images").mkdir(parents=True)
    (folders / "labels").mkdir()
    shutil.copy(ct_mr_dir / "ct_abdomen.nii.gz", folders / "images" / "ct_abdomen.nii.gz")
    shutil.copy(ct_mr_dir / "ct_abdomen_labels.nii.gz", folders / "labels" / "ct_abdomen_labels.nii.gz")
    shutil.copy(ct_mr_dir / "ct_abdomen_labels.json", folders / "labels" / "ct_abdomen_labels.json")
    task = tmp_path / "Task99_Abdomen"
    (task / "imagesTr").mkdir(parents=True)
    (task / "labelsTr").mkdir()
    shutil.copy(ct_mr_dir / "ct_abdomen.nii.gz", task / "imagesTr" / "abdomen_000.nii.gz")
    shutil.copy(ct_mr_dir / "ct_abdomen_labels.nii.gz", task / "labelsTr" / "abdomen_000.nii.gz")
    names = json.loads((ct_mr_dir / "ct_abdomen_labels.json").read_text())
    pair = {"image": "./imagesTr/abdomen_000.nii.gz", "label": "./labelsTr/abdomen_000.nii.gz"}
    (task / "dataset.json").write_text(json.dumps({"labels": names, "modality": {"0": "CT"}, "training": [pair]}))
    opened = {"nnunet3d": nn, "volume_folders": open_dataset(folders), "msd": open_dataset(task)}
    for layout, ds in opened.items():
        assert ds.layout == layout and len(ds) == 1 and not ds.problems, layout
        assert ds[0].geometry == nn[0].geometry, layout
        assert ds.classmap.to_dict()["classes"] == nn.classmap.to_dict()["classes"], layout
    assert opened["volume_folders"][0].id == "ct_abdomen"  # '_labels' is a label suffix


def test_the_real_mr_label_shifted_by_one_voxel_is_named_as_off_the_grid(ct_mr_dir, tmp_path):
    root = real_nnunet3d(ct_mr_dir, tmp_path / "mr", "mr")
    label = root / "labelsTr" / "mr_000.nii.gz"
    img = nib.load(label)
    moved = img.affine.copy()
    moved[:3, 3] += img.affine[:3, 2]  # one slice along k
    out = nib.Nifti1Image(np.asarray(img.dataobj), moved, img.header)
    out.set_sform(moved, code=1)
    out.set_qform(moved, code=1)
    nib.save(out, label)
    ds = open_dataset(root)
    (p,) = ds.problems
    assert not ds.samples and p.kind == "grid_mismatch"
    assert "mr_000.nii.gz" in p.message and "mr_000_0000.nii.gz" in p.message and "3 mm apart" in p.message


def test_index_and_info_describe_the_real_ct(ct_mr_dir, tmp_path, capsys):
    root = real_nnunet3d(ct_mr_dir, tmp_path / "ct", "ct")
    assert main(["index", str(root)]) == 0
    out = capsys.readouterr().out
    assert "layout nnunet3d, 1 samples in 1 groups" in out
    assert "spleen (1)" in out and "costal_cartilages (117)" in out
    assert "1 volume (slice x row x col): 30x101x122 voxels; spacing 3 x 3 x 3 mm" in out
    assert "ct_000: 30x101x122, spacing 3 x 3 x 3 mm, first voxel at (" in out and "0 problems" in out
    assert main(["index", "--json", str(root)]) == 0
    d = json.loads(capsys.readouterr().out)
    (v,) = d["volumes"]
    assert d["layout"] == "nnunet3d" and len(d["classmap"]["classes"]) == 41
    assert v["id"] == "ct_000" and v["shape"] == [30, 101, 122] and v["spacing"] == [3.0, 3.0, 3.0]
    assert v["label"].endswith("labelsTr/ct_000.nii.gz") and len(v["affine"]) == 4
    assert main(["info", "--json", str(root)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["dataset"]["layout"] == "nnunet3d" and d["volumes"][0]["shape"] == [30, 101, 122]
