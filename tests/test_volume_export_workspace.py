"""Volume workspaces exported end to end (export_dataset and ``medseg export``): corrected slices in the
exported labels and in the manifest / CHANGES.md, every file on the source's grid, nnU-Net's own check passed,
NIfTI volumes, DICOM series and the real CT."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _volume_data import make_dicom_series_dataset, make_nnunet3d, real_nnunet3d
from _volume_export_data import assert_same_grid, sitk_grid, verify_nnunet

from medseg.cli import main
from medseg.export import export_dataset
from medseg.export.mask_out import renumber
from medseg.io import load
from medseg.io.volume_labels import read_label_volume
from medseg.workspace import Workspace


def _ws(tmp_path, source) -> Workspace:
    return Workspace.create(tmp_path / "ws", source, author="importer")


def _correct(ws: Workspace, case: str, zs, cid: int, author="reader"):
    """Paint a square of class ``cid`` into slices ``zs`` and save only those slices."""
    head = ws.current_mask(case)
    slices = {}
    for z in zs:
        s = head[z].copy()
        s[4:9, 6:12] = cid
        slices[z] = s
    return ws.save_slices(case, slices, origin="manual", author=author)


def test_corrected_slices_reach_the_nnunet_export_and_its_manifest(tmp_path, capfd):
    src = make_nnunet3d(tmp_path / "src", n_cases=3)
    with _ws(tmp_path, src) as ws:
        rev = _correct(ws, "case_000", [2, 3, 7], cid=2)
        assert ws.changed_slices(rev.id) == [2, 3, 7]
        ws.set_status("case_001", "accepted")
        ws.set_status("case_002", "excluded", "motion")
        out = tmp_path / "Dataset510_Vol"
        result = export_dataset(ws, out, "nnunet")
        heads = {c: ws.current_mask(c) for c in ("case_000", "case_001")}
        grids = {c: ws.geometry(c) for c in ("case_000", "case_001")}
    assert result.n_samples == 2
    dj = json.loads((out / "dataset.json").read_text())
    assert dj["numTraining"] == 2 and dj["channel_names"] == {"0": "CT"} and dj["file_ending"] == ".nii.gz"
    verify_nnunet(out, capfd)
    for case, head in heads.items():
        image, label = out / "imagesTr" / f"{case}_0000.nii.gz", out / "labelsTr" / f"{case}.nii.gz"
        assert image.read_bytes() == (src / "imagesTr" / f"{case}_0000.nii.gz").read_bytes()
        assert_same_grid(image, grids[case])
        assert_same_grid(label, grids[case])
        np.testing.assert_array_equal(read_label_volume(label)[0], head)
    assert not (out / "imagesTr" / "case_002_0000.nii.gz").exists()

    manifest = json.loads((out / "manifest.json").read_text())
    entry = {s["id"]: s for s in manifest["samples"]}
    corrected = entry["case_000"]
    assert corrected["status"] == "corrected" and corrected["geometry"] == grids["case_000"].to_dict()
    revs = corrected["revisions"]
    assert revs["slices_changed_vs_imported"] == [2, 3, 7]
    assert [h["changed_slices"] for h in revs["history"]] == [[], [2, 3, 7]]
    assert revs["history"][1]["author"] == "reader"
    assert entry["case_001"]["revisions"]["slices_changed_vs_imported"] == []
    assert entry["case_002"]["exported"] is None and "motion" in entry["case_002"]["left_out"]
    exported = {f["path"]: f["sha256"] for f in corrected["exported"]["images"] + corrected["exported"]["masks"]}
    assert set(exported) == {"imagesTr/case_000_0000.nii.gz", "labelsTr/case_000.nii.gz"}
    assert corrected["exported"]["images"][0]["how"] == "copied"
    changes = (out / "CHANGES.md").read_text()
    assert "| slices changed |" in changes
    row = next(line for line in changes.splitlines() if line.startswith("| case_000 "))
    assert row.endswith("| 2-3, 7 |")
    assert "case_002: status excluded: motion" in changes


def test_a_reverted_volume_exports_its_imported_labels_and_says_so(tmp_path):
    src = make_nnunet3d(tmp_path / "src", n_cases=1)
    with _ws(tmp_path, src) as ws:
        imported = ws.revisions("case_000")[0]
        _correct(ws, "case_000", [5], cid=3)
        ws.revert("case_000", imported.id)
        export_dataset(ws, tmp_path / "out", "folders")
    label = tmp_path / "out" / "masks" / "case_000.nii.gz"
    np.testing.assert_array_equal(
        read_label_volume(label)[0], read_label_volume(src / "labelsTr" / "case_000.nii.gz")[0]
    )
    revs = json.loads((tmp_path / "out" / "manifest.json").read_text())["samples"][0]["revisions"]
    assert revs["slices_changed_vs_imported"] == []
    assert [h["origin"] for h in revs["history"]] == ["imported", "manual", "revert"]
    assert [h["changed_slices"] for h in revs["history"]] == [[], [5], [5]]


def test_cli_exports_a_volume_workspace_as_monai_folds_and_plain_folders(tmp_path, capsys):
    from monai.data import load_decathlon_datalist
    from monai.transforms import LoadImaged

    src = make_nnunet3d(tmp_path / "src", n_cases=3)
    with _ws(tmp_path, src) as ws:
        _correct(ws, "case_001", [4], cid=1)
        grids = {c: ws.geometry(c) for c in ws.sample_ids()}
        heads = {c: ws.current_mask(c) for c in ws.sample_ids()}
    out = tmp_path / "monai"
    assert main(["export", str(tmp_path / "ws"), "--format", "monai", "--out", str(out), "--folds", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n_samples"] == 3
    datalist = json.loads((out / "datalist.json").read_text())
    assert sorted(e["fold"] for e in datalist["training"]) == [0, 1, 2]
    for entry in load_decathlon_datalist(str(out / "datalist.json"), data_list_key="training", base_dir=str(out)):
        case = entry["image"].split("/")[-1].split(".")[0]
        assert_same_grid(entry["image"], grids[case])
        assert_same_grid(entry["label"], grids[case])
        data = LoadImaged(keys=["image", "label"])(entry)
        np.testing.assert_allclose(data["image"].affine, data["label"].affine, atol=1e-5)
        np.testing.assert_array_equal(read_label_volume(entry["label"])[0], heads[case])

    plain = tmp_path / "plain"
    assert main(["export", str(tmp_path / "ws"), "--format", "folders", "--out", str(plain), "--quiet"]) == 0
    assert "1 corrected" in capsys.readouterr().out
    for case in grids:
        assert (plain / "images" / f"{case}.nii.gz").read_bytes() == (
            src / "imagesTr" / f"{case}_0000.nii.gz"
        ).read_bytes()
        assert_same_grid(plain / "masks" / f"{case}.nii.gz", grids[case])
    assert json.loads((plain / "classmap.json").read_text())["classes"][0]["name"] == "liver"


def test_cli_exports_dicom_series_as_nnunet_nifti_on_the_series_grid(tmp_path, capfd):
    src = make_dicom_series_dataset(tmp_path / "src", n_cases=2)
    with _ws(tmp_path, src) as ws:
        _correct(ws, "case1", [0, 9], cid=3)
        grids = {c: ws.geometry(c) for c in ws.sample_ids()}
        heads = {c: ws.current_mask(c) for c in ws.sample_ids()}
        volumes = {c: ws.image(c).array for c in ws.sample_ids()}
    out = tmp_path / "Dataset511_Series"
    assert main(["export", str(tmp_path / "ws"), "--format", "nnunet", "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "dataset.json").read_text())["channel_names"] == {"0": "CT"}  # the DICOM Modality
    verify_nnunet(out, capfd)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["nnunet_channel"] == {"name": "CT", "from": "DICOM Modality"}
    for case in grids:
        image, label = out / "imagesTr" / f"{case}_0000.nii.gz", out / "labelsTr" / f"{case}.nii.gz"
        assert_same_grid(image, grids[case])
        assert_same_grid(label, grids[case])
        assert sitk_grid(image) == sitk_grid(label)
        np.testing.assert_array_equal(load(image).array, volumes[case])  # HU values, not stored values
        np.testing.assert_array_equal(read_label_volume(label)[0], heads[case])
    entry = {s["id"]: s for s in manifest["samples"]}
    assert entry["case1"]["exported"]["images"][0]["how"] == "converted"
    assert entry["case1"]["revisions"]["slices_changed_vs_imported"] == [0, 9]


def test_real_ct_workspace_exported_for_nnunet_with_a_corrected_slice(ct_mr_dir, tmp_path, capfd):
    src = real_nnunet3d(ct_mr_dir, tmp_path / "src", "ct")
    with _ws(tmp_path, src) as ws:
        (case,) = ws.sample_ids()
        head = ws.current_mask(case)
        liver = ws.classmap.id_of("liver")
        z = int(np.argmax((head == liver).sum(axis=(1, 2))))
        erased = np.where(head[z] == liver, 0, head[z])
        ws.save_slices(case, {z: erased}, origin="manual")
        corrected, grid = ws.current_mask(case), ws.geometry(case)
    out = tmp_path / "Dataset512_RealCT"
    assert main(["export", str(tmp_path / "ws"), "--format", "nnunet", "--out", str(out), "--quiet"]) == 0
    verify_nnunet(out, capfd)
    dj = json.loads((out / "dataset.json").read_text())
    assert len(dj["labels"]) == 42 and list(dj["labels"].values()) == list(range(42))
    assert dj["channel_names"] == {"0": "CT"}
    manifest = json.loads((out / "manifest.json").read_text())
    mapping = {int(k): v for k, v in manifest["nnunet_label_ids"].items()}
    assert mapping[117] == 41
    label = out / "labelsTr" / f"{case}.nii.gz"
    assert_same_grid(label, grid)
    assert_same_grid(out / "imagesTr" / f"{case}_0000.nii.gz", grid)
    np.testing.assert_array_equal(read_label_volume(label)[0], renumber(corrected, mapping))
    revs = manifest["samples"][0]["revisions"]
    assert revs["slices_changed_vs_imported"] == [z] and revs["changed_vs_imported"]["liver"] > 0


@pytest.mark.parametrize("fmt", ["nnunet", "folders"])
def test_a_volume_whose_image_changed_since_import_is_left_out_naming_it(tmp_path, fmt):
    src = make_nnunet3d(tmp_path / "src", n_cases=2)
    with _ws(tmp_path, src) as ws:
        image = src / "imagesTr" / "case_001_0000.nii.gz"
        data = image.read_bytes()
        image.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
        export_dataset(ws, tmp_path / "out", fmt)
    entry = {s["id"]: s for s in json.loads((tmp_path / "out" / "manifest.json").read_text())["samples"]}
    assert entry["case_001"]["exported"] is None
    assert "case_001_0000.nii.gz changed since the workspace imported it" in entry["case_001"]["left_out"]
