"""``medseg workspace create|info|history|verify`` on volume datasets: a synthetic nnU-Net 3-D set on a
rotated, shifted grid, and the real abdominal CT (41 structures, sparse ids up to 117)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _volume_data import make_nnunet3d, real_nnunet3d, rotated_affine, save_nifti, synthetic_case

from medseg.cli import main
from medseg.datasets import open_dataset
from medseg.errors import WorkspaceError
from medseg.io.volume_labels import read_label_volume
from medseg.workspace import Workspace


def test_workspace_create_on_a_nnunet3d_dataset(tmp_path, capsys):
    data = make_nnunet3d(tmp_path / "Dataset007_Synth", n_cases=3)
    ws_path = tmp_path / "ws"
    assert main(["workspace", "create", str(data), str(ws_path), "--author", "cli", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "3 samples" in out and "layout nnunet3d" in out and "volumes: 3 (" in out and "imported 3" in out

    ds = open_dataset(data)
    with Workspace.open(ws_path) as ws:
        for sample in ds.samples:
            labels, grid = read_label_volume(sample.mask_paths[1])
            assert ws.is_volume(sample.id) and ws.sample(sample.id).group == sample.group
            assert ws.geometry(sample.id) == sample.geometry and ws.geometry(sample.id).mismatch(grid) is None
            assert np.array_equal(ws.current_mask(sample.id), labels)
        mask = ws.current_mask("case_001")
        z = mask.shape[0] // 2
        fixed = mask[z].copy()
        fixed[fixed == 1] = 2  # liver relabelled spleen on one slice
        rev = ws.save_slices("case_001", {z: fixed}, origin="manual", author="ann")
        assert ws.changed_slices(rev.id) == [z]

    assert main(["workspace", "history", str(ws_path), "case_001"]) == 0
    out = capsys.readouterr().out
    shape = "x".join(map(str, mask.shape))
    assert f"volume {shape}" in out and "manual by ann" in out and f"px changed (liver {rev.changed[1]}" in out
    assert f", slices {z}\n" in out and "status corrected" in out
    assert main(["workspace", "info", str(ws_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_volumes"] == 3 and info["n_slices"] == 3 * mask.shape[0] and info["schema_version"] == 2
    assert main(["workspace", "verify", str(ws_path)]) == 0
    assert "database and mask files are sound" in capsys.readouterr().out


def test_a_label_off_its_image_grid_is_named_and_the_rest_imported(tmp_path, capsys):
    data = make_nnunet3d(tmp_path / "Dataset008_Shifted", n_cases=2)
    _, labels = synthetic_case(seed=1)
    shifted = rotated_affine(angle_deg=13.0)
    shifted[:3, 3] += (0.0, 3.0, 0.0)
    save_nifti(data / "labelsTr" / "case_001.nii.gz", labels, shifted)
    ws_path = tmp_path / "ws"
    assert main(["workspace", "create", str(data), str(ws_path), "--quiet"]) == 0
    assert "grid_mismatch 1" in capsys.readouterr().out
    with Workspace.open(ws_path) as ws:
        assert ws.sample_ids() == ["case_000"]
        (finding,) = ws.findings(check="grid_mismatch")
        assert "case_001_0000.nii.gz" in finding.message + str(finding.path)
        assert "case_001.nii.gz" in finding.message + str(finding.path)
        assert finding.sample_id == "case_001"  # the case, not the file name with half its suffix


def test_the_real_ct_in_a_workspace_slice_corrected_and_reverted(ct_mr_dir, tmp_path, capsys):
    data = real_nnunet3d(ct_mr_dir, tmp_path / "Dataset009_CT", "ct")
    ws_path = tmp_path / "ws"
    assert main(["workspace", "create", str(data), str(ws_path), "--quiet"]) == 0
    assert "volumes: 1 (30 slices" in capsys.readouterr().out
    labels, _ = read_label_volume(data / "labelsTr" / "ct_000.nii.gz")
    with Workspace.open(ws_path) as ws:
        assert len(ws.classmap.ids) == 41 and max(ws.classmap.ids) == 117
        original = ws.current_mask("ct_000")
        assert original.shape == (30, 101, 122) and np.array_equal(original, labels)
        assert original.dtype == np.uint8 and 117 in np.unique(original)
        files = {p.name for p in (ws_path / "masks").rglob("*.npz")}
        gap = min(set(range(1, 118)) - set(ws.classmap.ids))  # sparse ids: a value between two classes
        bad = original.copy()
        bad[7, 50, 60] = gap
        with pytest.raises(WorkspaceError, match=f"ct_000 slice 7: mask values {gap} are not in the class map"):
            ws.save_revision("ct_000", bad, origin="manual")
        liver = ws.classmap.id_of("liver")
        z = int(np.argmax((original == liver).sum(axis=(1, 2))))
        fixed = np.where(original[z] == liver, 0, original[z])  # the liver erased on its largest slice
        rev = ws.save_slices("ct_000", {z: fixed}, origin="manual", note="liver removed on one slice")
        assert rev.changed == {liver: int((original[z] == liver).sum())} and ws.changed_slices(rev.id) == [z]
        assert len({p.name for p in (ws_path / "masks").rglob("*.npz")} - files) == 1
        after = ws.current_mask("ct_000")
        assert np.array_equal(after[z], fixed) and np.array_equal(np.delete(after, z, 0), np.delete(original, z, 0))
        back = ws.revert("ct_000", 1)
        assert np.array_equal(ws.current_mask("ct_000"), original) and ws.changed_slices(back.id) == [z]
        assert [r.origin for r in ws.revisions("ct_000")] == ["imported", "manual", "revert"]
        assert ws.check_integrity() == []


def test_a_dicom_series_workspace_sees_a_changed_slice_file(tmp_path, capsys):
    """A DICOM series is a folder: its hash covers every file, so one edited slice file is a changed source."""
    from _volume_data import make_dicom_series_dataset

    data = make_dicom_series_dataset(tmp_path / "series", n_cases=2)
    ws_path = tmp_path / "ws"
    assert main(["workspace", "create", str(data), str(ws_path), "--quiet"]) == 0
    assert "volumes: 2 (" in capsys.readouterr().out
    with Workspace.open(ws_path, verify="hash") as ws:
        assert ws.source_changes == [] and ws.sample("case0").image_path == data / "images" / "case0"
        labels, grid = read_label_volume(data / "labels" / "case0.nii.gz")
        assert np.array_equal(ws.current_mask("case0"), labels) and ws.geometry("case0").mismatch(grid) is None
    victim = sorted((data / "images" / "case1").iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:-2] + b"\x00\x01")  # same size: only the hash can tell
    assert main(["workspace", "info", str(ws_path), "--verify", "hash"]) == 0
    out = capsys.readouterr().out
    assert f"[changed] sample case1: {data / 'images' / 'case1'}" in out and "sample case0" not in out
