"""Workspace over the real CVC-ClinicDB folder and the real noisy mask of its original release."""

from __future__ import annotations

import shutil
import time

import numpy as np
from _workspace_data import snapshot

from medseg.io.masks import binarise, read_mask_values
from medseg.workspace import Workspace


def test_workspace_over_cvc_clinicdb(cvc_dir, tmp_path):
    before = snapshot(cvc_dir)
    t0 = time.perf_counter()
    ws = Workspace.create(tmp_path / "cvc-ws", cvc_dir)
    seconds = time.perf_counter() - t0
    print(f"\nworkspace over CVC-ClinicDB: 612 samples indexed, hashed and imported in {seconds:.1f} s")
    s = ws.summary()
    assert s["n_samples"] == 612 and s["by_status"]["unreviewed"] == 612
    assert s["n_revisions"] == 612 and s["revisions_by_origin"] == {"imported": 612}
    assert s["task"] == "binary" and s["by_check"] == {}
    ids = ws.sample_ids()
    assert len(ids) == 612 and ids[:3] == ["1", "2", "3"]
    for sid in ("1", "300", "612"):
        assert len(ws.revisions(sid)) == 1
        expected, _ = binarise(cvc_dir / "masks" / f"{sid}.png")
        np.testing.assert_array_equal(ws.current_mask(sid), expected)
    ws.close()
    t0 = time.perf_counter()
    with Workspace.open(tmp_path / "cvc-ws") as again:
        assert again.source_changes == []
    print(f"re-opened with a source check in {time.perf_counter() - t0:.2f} s")
    assert snapshot(cvc_dir) == before


def test_the_binarise_report_of_a_real_grey_mask_is_in_the_history(noisy_mask_dir, tmp_path):
    data = tmp_path / "cvc-original"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    shutil.copy2(noisy_mask_dir / "1.tif", data / "images" / "1.tif")
    shutil.copy2(noisy_mask_dir / "1_mask.tif", data / "masks" / "1.tif")
    with Workspace.create(tmp_path / "ws", data) as ws:
        (rev,) = ws.revisions("1")
        assert "42 grey levels (8..112) in 7,209 pixels: 7,209 set to background" in rev.note
        assert rev.details["binarise"]["mask"]["n_to_background"] == 7209
        raw = read_mask_values(ws.source_sample("1").mask_paths[1])
        assert len(set(np.unique(raw).tolist()) - {0, 255}) == 42  # QC can still see the noise
        assert set(np.unique(ws.current_mask("1")).tolist()) == {0, 1}
