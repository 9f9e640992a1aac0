"""Export a workspace over the first 30 real CVC-ClinicDB frames in nnU-Net format (skipped without the data)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
from PIL import Image

from medseg.export import export_dataset
from medseg.workspace import Workspace

N = 30


def test_cvc_clinicdb_frames_export_to_nnunet(cvc_dir, tmp_path):
    ds = tmp_path / "cvc30"
    for sub in ("images", "masks"):  # symlinks: the shared data is never touched
        (ds / sub).mkdir(parents=True)
        for n in range(1, N + 1):
            (ds / sub / f"{n}.png").symlink_to(cvc_dir / sub / f"{n}.png")
    with Workspace.create(tmp_path / "ws", ds, author="test") as ws:
        assert len(ws.sample_ids()) == N
        mask = ws.current_mask("5")
        mask[:20, :20] = 1 - mask[:20, :20]  # a correction of exactly 400 pixels
        ws.save_revision("5", mask, origin="manual")
        ws.set_status("7", "excluded", "blurred")
        out = tmp_path / "Dataset503_CVC30"
        result = export_dataset(ws, out, "nnunet", split=(0.8, 0.2))
        groups = {s: ws.sample(s).group for s in ws.sample_ids()}
        heads = {s: ws.current_mask(s) for s in ws.sample_ids() if s != "7"}

    assert result.n_samples == N - 1
    dj = json.loads((out / "dataset.json").read_text())
    assert dj["channel_names"] == {"0": "R", "1": "G", "2": "B"}
    assert dj["labels"] == {"background": 0, "foreground": 1}
    assert dj["numTraining"] == N - 1 and dj["file_ending"] == ".png"
    assert len(list((out / "imagesTr").iterdir())) == len(list((out / "labelsTr").iterdir())) == N - 1
    assert not (out / "imagesTr" / "7_0000.png").exists()
    for sid, head in heads.items():
        image = out / "imagesTr" / f"{sid}_0000.png"
        assert (
            hashlib.sha256(image.read_bytes()).hexdigest()
            == hashlib.sha256((cvc_dir / "images" / f"{sid}.png").read_bytes()).hexdigest()
        )
        with Image.open(out / "labelsTr" / f"{sid}.png") as im:
            labels = np.array(im)
        np.testing.assert_array_equal(labels, head)
        assert set(np.unique(labels)) <= {0, 1}
    split = json.loads((out / "splits_final.json").read_text())[0]
    assert sorted(split["train"] + split["val"], key=int) == sorted(heads, key=int)
    assert not {groups[s] for s in split["train"]} & {groups[s] for s in split["val"]}
    m = json.loads((out / "manifest.json").read_text())
    assert m["counts"]["by_status"] == {"unreviewed": N - 2, "accepted": 0, "corrected": 1, "excluded": 1}
    assert m["pixels_changed"] == {"foreground": 400}
    assert (
        "30 samples: 1 corrected (400 foreground pixels changed), 1 excluded (1 blurred)"
        in (out / "CHANGES.md").read_text()
    )
