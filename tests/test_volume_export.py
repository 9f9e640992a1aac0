"""Volume export through the format writers: every image and label read back on the source's grid, nnU-Net raw
3-D checked by nnU-Net's own verify_dataset_integrity, sparse ids renumbered 1..N with the mapping kept."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from _volume_data import make_nnunet3d, rotated_affine, save_nifti, synthetic_case
from _volume_export_data import (
    assert_same_grid,
    case_item,
    classmap_of,
    nnunet_items,
    raw_voxels,
    run_writer,
    sitk_grid,
    verify_nnunet,
)

from medseg.classmap import ClassMap
from medseg.errors import ExportError
from medseg.export.item import ExportItem
from medseg.export.mask_out import renumber
from medseg.io import load
from medseg.io.types import ImageData
from medseg.io.volume_geometry import Geometry
from medseg.io.volume_labels import read_label_volume


@pytest.fixture
def synth(tmp_path) -> Path:
    return make_nnunet3d(tmp_path / "src", n_cases=2)


def _headers_equal(a: Path, b: Path) -> None:
    ha, hb = nib.load(str(a)).header, nib.load(str(b)).header
    for key in ("dim", "pixdim", "qform_code", "sform_code", "quatern_b", "quatern_c", "quatern_d"):
        np.testing.assert_array_equal(ha[key], hb[key], err_msg=f"{a} vs {b}: {key}")
    for key in ("qoffset_x", "qoffset_y", "qoffset_z", "srow_x", "srow_y", "srow_z"):
        np.testing.assert_array_equal(ha[key], hb[key], err_msg=f"{a} vs {b}: {key}")


def test_nnunet_volume_export_passes_nnunet_verify_with_the_source_grid(synth, tmp_path, capfd):
    items, out = nnunet_items(synth), tmp_path / "Dataset501_Synth"
    written = run_writer("nnunet", out, classmap_of(synth), items)
    dj = json.loads((out / "dataset.json").read_text())
    assert dj["channel_names"] == {"0": "CT"}  # from the source's own dataset.json
    assert dj["labels"] == {"background": 0, "liver": 1, "spleen": 2, "kidney_left": 3}
    assert dj["numTraining"] == 2 and dj["file_ending"] == ".nii.gz"
    assert "medseg_label_ids" not in dj  # ids 1..3 are already consecutive
    verify_nnunet(out, capfd)
    for item in items:
        image, label = out / "imagesTr" / f"{item.stem}_0000.nii.gz", out / "labelsTr" / f"{item.stem}.nii.gz"
        assert [f.path for f in written[item.stem].images] == [image]
        assert written[item.stem].images[0].how == "copied"
        assert image.read_bytes() == item.image_path.read_bytes()
        source = Geometry.from_image(load(item.image_path))
        assert_same_grid(image, source)
        assert_same_grid(label, source)
        ids, _ = read_label_volume(label)
        np.testing.assert_array_equal(ids, item.mask)
        # the label carries the image's own header: the source's voxel order, qform and sform with their codes
        source_label = synth / "labelsTr" / f"{item.stem}.nii.gz"
        np.testing.assert_array_equal(raw_voxels(label), raw_voxels(source_label))
        _headers_equal(label, item.image_path)
        assert sitk_grid(label) == sitk_grid(image)


def test_the_nnunet_check_catches_a_label_off_its_image_grid(synth, tmp_path, capfd):
    # what issue 15 measured: a label written with another affine is only *warned* about by nnU-Net
    out = tmp_path / "Dataset502_Off"
    run_writer("nnunet", out, classmap_of(synth), nnunet_items(synth))
    label = out / "labelsTr" / "case_000.nii.gz"
    shifted = rotated_affine(angle_deg=10.0)
    shifted[:3, 3] += (5.0, 0.0, 0.0)
    save_nifti(label, raw_voxels(label), shifted)
    with pytest.raises(AssertionError, match="Origin mismatch"):
        verify_nnunet(out, capfd)


def test_sparse_ids_become_consecutive_labels_with_the_mapping_kept(synth, tmp_path, capfd):
    sparse = {1: 5, 2: 17, 3: 117}
    classmap = ClassMap.from_id_names({5: "liver", 17: "spleen", 117: "kidney_left"})
    items = []
    for item in nnunet_items(synth):
        lut = np.zeros(4, np.uint8)
        for old, new in sparse.items():
            lut[old] = new
        items.append(case_item(item.image_path, synth / "labelsTr" / f"{item.stem}.nii.gz", mask=lut[item.mask]))
    out = tmp_path / "Dataset503_Sparse"
    run_writer("nnunet", out, classmap, items)
    dj = json.loads((out / "dataset.json").read_text())
    assert dj["labels"] == {"background": 0, "liver": 1, "spleen": 2, "kidney_left": 3}
    assert dj["medseg_label_ids"] == {"1": 5, "2": 17, "3": 117}
    assert run_writer.last.manifest_extra()["nnunet_label_ids"] == {"5": 1, "17": 2, "117": 3}
    verify_nnunet(out, capfd)
    back = np.zeros(4, np.uint8)
    for label, cid in dj["medseg_label_ids"].items():
        back[int(label)] = cid
    for item in items:
        ids, _ = read_label_volume(out / "labelsTr" / f"{item.stem}.nii.gz")
        assert set(np.unique(ids).tolist()) <= {0, 1, 2, 3}
        np.testing.assert_array_equal(back[ids], item.mask)  # the mapping restores the workspace's ids exactly


def test_an_uncompressed_nifti_is_gzip_wrapped_for_nnunet_and_copied_as_is_for_folders(tmp_path, capfd):
    image, labels = synthetic_case((30, 28, 8), seed=3)
    affine = rotated_affine(spacing=(0.9, 0.7, 3.0), angle_deg=-20.0)
    src = save_nifti(tmp_path / "src" / "imagesTr" / "pt_000_0000.nii", image, affine)
    lab = save_nifti(tmp_path / "src" / "labelsTr" / "pt_000.nii", labels, affine)
    cm = ClassMap.from_id_names({1: "liver", 2: "spleen", 3: "kidney_left"})
    out = tmp_path / "Dataset504_Nii"
    written = run_writer("nnunet", out, cm, [case_item(src, lab)])["pt_000"]
    exported = out / "imagesTr" / "pt_000_0000.nii.gz"
    assert written.images[0].how == "gzipped"
    assert gzip.decompress(exported.read_bytes()) == src.read_bytes()
    verify_nnunet(out, capfd)
    folders = run_writer("folders", tmp_path / "plain", cm, [case_item(src, lab)])["pt_000"]
    assert folders.images[0].path == tmp_path / "plain" / "images" / "pt_000.nii"
    assert folders.images[0].path.read_bytes() == src.read_bytes()
    source = Geometry.from_image(load(src))
    for path in (exported, out / "labelsTr" / "pt_000.nii.gz", folders.masks[0].path):
        assert_same_grid(path, source)


def test_a_sagittal_source_keeps_its_voxel_order_in_the_label(tmp_path):
    # voxel axes stored (k, i, j): the reader permutes them to axial slices, the label must go back
    image, labels = synthetic_case((24, 20, 7), seed=5)
    affine = rotated_affine(angle_deg=25.0)
    perm = [2, 0, 1]
    sag = affine.copy()
    sag[:3, :3] = affine[:3, perm]
    src = save_nifti(tmp_path / "src" / "images" / "sag.nii.gz", image.transpose(perm), sag)
    lab = save_nifti(tmp_path / "src" / "labels" / "sag.nii.gz", labels.transpose(perm), sag)
    item = case_item(src, lab, "sag")
    assert item.mask.shape != raw_voxels(lab).shape  # display order differs from the file's
    cm = ClassMap.from_id_names({1: "liver", 2: "spleen", 3: "kidney_left"})
    for fmt, folder in (("folders", "masks"), ("monai", "labels")):
        w = run_writer(fmt, tmp_path / fmt, cm, [case_item(src, lab, "sag")])["sag"]
        assert w.masks[0].path == tmp_path / fmt / folder / "sag.nii.gz"
        np.testing.assert_array_equal(raw_voxels(w.masks[0].path), raw_voxels(lab))
        _headers_equal(w.masks[0].path, src)
        assert_same_grid(w.masks[0].path, Geometry.from_image(load(src)))


def _series_item(tmp_path, modality="CT") -> tuple[ExportItem, Geometry]:
    """A volume whose source is a DICOM series folder: the writers get its decoded array and affine."""
    image, labels = synthetic_case((20, 18, 6), seed=7)
    display = np.ascontiguousarray(image.transpose(2, 1, 0))  # (slice, row, col)
    # an oblique axial series as DICOM stores it: columns to patient left, rows to posterior, slices upwards,
    # turned 15 degrees about the body axis, origin off the scanner centre
    turn = rotated_affine(spacing=(1.0, 1.0, 1.0), angle_deg=15.0)[:3, :3]
    affine = np.eye(4)
    affine[:3, 0] = (0.0, 0.0, 2.0)
    affine[:3, 1] = turn @ (0.0, -0.7, 0.0)
    affine[:3, 2] = turn @ (-0.7, 0.0, 0.0)
    affine[:3, 3] = (95.5, -40.25, -310.0)
    series = tmp_path / "series"
    series.mkdir()
    (series / "IM0001.dcm").write_bytes(b"stand-in: the writers take the decoded volume")
    meta = {"source": str(series), "modality": modality, "affine": affine.tolist()}
    img = ImageData(display, (2.0, 0.7, 0.7), meta)
    record = type("R", (), {"image_path": series, "geometry": None})()
    mask = np.ascontiguousarray(labels.transpose(2, 1, 0))
    return ExportItem("series 1", "series_1", record, mask, lambda: img, volume=True), Geometry.from_image(img)


def test_a_dicom_series_becomes_nifti_with_its_affine_and_passes_nnunet(tmp_path, capfd):
    item, geometry = _series_item(tmp_path)
    out = tmp_path / "Dataset505_Series"
    w = run_writer("nnunet", out, ClassMap.from_id_names({1: "liver", 2: "spleen", 3: "kidney_left"}), [item])
    image, label = w["series_1"].images[0], w["series_1"].masks[0]
    assert image.how == "converted" and image.path.name == "series_1_0000.nii.gz"
    assert json.loads((out / "dataset.json").read_text())["channel_names"] == {"0": "CT"}  # DICOM Modality
    assert run_writer.last.manifest_extra()["nnunet_channel"] == {"name": "CT", "from": "DICOM Modality"}
    verify_nnunet(out, capfd)
    assert_same_grid(image.path, geometry)
    assert_same_grid(label.path, geometry)
    np.testing.assert_array_equal(load(image.path).array, item.image().array)
    np.testing.assert_array_equal(read_label_volume(label.path)[0], item.mask)
    _headers_equal(label.path, image.path)


def test_monai_datalist_of_volumes_loads_image_and_label_on_one_affine(synth, tmp_path):
    from monai.data import load_decathlon_datalist
    from monai.transforms import LoadImaged

    out = tmp_path / "monai"
    run_writer("monai", out, classmap_of(synth), nnunet_items(synth))
    entries = load_decathlon_datalist(str(out / "datalist.json"), data_list_key="training", base_dir=str(out))
    assert [Path(e["image"]).name for e in entries] == ["case_000.nii.gz", "case_001.nii.gz"]
    for entry in entries:
        assert (
            Path(entry["image"]).read_bytes()
            == (synth / "imagesTr" / f"{Path(entry['image']).name[:8]}_0000.nii.gz").read_bytes()
        )
        data = LoadImaged(keys=["image", "label"])(entry)
        assert data["image"].shape == data["label"].shape
        np.testing.assert_allclose(data["image"].affine, data["label"].affine, atol=1e-5)
        assert set(np.unique(np.asarray(data["label"])).tolist()) == {0, 1, 2, 3}


def test_real_ct_as_nnunet_3d_sparse_ids_and_geometry(ct_mr_dir, tmp_path, capfd):
    from _volume_data import real_nnunet3d

    src = real_nnunet3d(ct_mr_dir, tmp_path / "src", "ct")
    classmap = classmap_of(src)
    assert len(classmap.ids) == 41 and max(classmap.ids) == 117
    items, out = nnunet_items(src), tmp_path / "Dataset506_RealCT"
    run_writer("nnunet", out, classmap, items)
    dj = json.loads((out / "dataset.json").read_text())
    assert list(dj["labels"].values()) == list(range(42))
    assert dj["channel_names"] == {"0": "CT"}  # no dataset.json in the source: found from the Hounsfield range
    mapping = run_writer.last.manifest_extra()["nnunet_label_ids"]
    assert mapping["117"] == 41 and mapping["13"] == 12
    verify_nnunet(out, capfd)
    image, label = out / "imagesTr" / "ct_000_0000.nii.gz", out / "labelsTr" / "ct_000.nii.gz"
    assert image.read_bytes() == (src / "imagesTr" / "ct_000_0000.nii.gz").read_bytes()
    source = Geometry.from_image(load(image))
    assert_same_grid(label, source)
    assert sitk_grid(label) == sitk_grid(image)
    source_raw = raw_voxels(src / "labelsTr" / "ct_000.nii.gz")
    np.testing.assert_array_equal(raw_voxels(label), renumber(source_raw, {int(k): v for k, v in mapping.items()}))


def test_real_mr_keeps_its_orientation_and_is_not_taken_for_ct(ct_mr_dir, tmp_path, capfd):
    from _volume_data import real_nnunet3d

    src = real_nnunet3d(ct_mr_dir, tmp_path / "src", "mr")
    out = tmp_path / "Dataset507_RealMR"
    run_writer("nnunet", out, classmap_of(src), nnunet_items(src))
    assert json.loads((out / "dataset.json").read_text())["channel_names"] == {"0": "image"}  # z-score for MR
    verify_nnunet(out, capfd)
    image = out / "imagesTr" / "mr_000_0000.nii.gz"
    for path in (image, out / "labelsTr" / "mr_000.nii.gz"):
        assert nib.aff2axcodes(nib.load(str(path)).affine) == ("L", "P", "S")
        assert_same_grid(path, Geometry.from_image(load(src / "imagesTr" / "mr_000_0000.nii.gz")))
    folders = run_writer("folders", tmp_path / "plain", classmap_of(src), nnunet_items(src))["mr_000"]
    assert_same_grid(folders.masks[0].path, Geometry.from_image(load(image)))
    ids, _ = read_label_volume(folders.masks[0].path)
    np.testing.assert_array_equal(ids, read_label_volume(src / "labelsTr" / "mr_000.nii.gz")[0])  # ids as stored


def test_a_label_off_its_image_grid_is_refused_naming_the_sample(synth, tmp_path):
    item = nnunet_items(synth)[0]
    bad = case_item(item.image_path, synth / "labelsTr" / "case_000.nii.gz", mask=item.mask[:, :-1])
    with pytest.raises(ExportError, match=r"sample case_000: its label volume is 10x35x40 but the image .* 10x36x40"):
        run_writer("folders", tmp_path / "out", classmap_of(synth), [bad])


def test_a_recorded_grid_the_image_file_no_longer_has_is_refused_naming_the_file(synth, tmp_path):
    item = nnunet_items(synth)[0]
    g = item.volume_geometry()
    rotated = Geometry(
        g.shape,
        g.spacing,
        np.diag([*g.spacing, 1.0]) @ np.array([[1, 0, 0, 0], [0, 0.6, -0.8, 0], [0, 0.8, 0.6, 0], [0, 0, 0, 1.0]]),
    )
    item.geometry = rotated  # e.g. a workspace made before the file was rewritten in place
    with pytest.raises(ExportError, match=r"case_000_0000.nii.gz: labels cannot be put on this image's grid"):
        run_writer("monai", tmp_path / "out", classmap_of(synth), [item])
