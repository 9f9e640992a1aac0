"""``medseg evaluate`` on the real data: CVC-ClinicDB frames at their own size (384x288, pixels) and the real
abdominal CT volume with its 41 TotalSegmentator structures (3 mm voxels, distances in mm). Skipped cleanly
when ../shared/data is absent."""

from __future__ import annotations

import json
import shutil
import warnings

import monai.metrics as mm
import nibabel as nib
import numpy as np
import pytest
import torch
from _train_data import one_thread  # noqa: F401 - module-scoped autouse fixture
from _train_run import tiny_config
from _volume_data import real_nnunet3d
from _volume_train_data import volume_config
from PIL import Image
from scipy import ndimage

from medseg.cli.main import main
from medseg.evaluate import read_per_sample
from medseg.jobs import run

FRAMES = range(1, 13)


def _train(cfg: dict):
    from medseg.training.trainer import Trainer

    trainer = Trainer(cfg)
    run(trainer.run())
    return trainer.best_path if trainer.best_path.exists() else trainer.last_path


def test_cvc_frames_scored_at_their_own_size_against_their_masks(cvc_dir, tmp_path, capsys):
    data = tmp_path / "cvc"
    for sub in ("images", "masks"):
        (data / sub).mkdir(parents=True)
        for k in FRAMES:
            shutil.copy(cvc_dir / sub / f"{k}.png", data / sub / f"{k}.png")
    ckpt = _train(tiny_config(data, tmp_path / "run", data__image_size=[48, 64], data__val_fraction=0.0, epochs=1))
    out = tmp_path / "eval"
    rc = main(["evaluate", str(ckpt), str(data), "--out", str(out), "--device", "cpu", "--quiet"])
    stdout, err = capsys.readouterr()
    assert rc == 0, err
    assert "12 sample(s) of" in stdout and "HD95 (px)" in stdout
    rows = {r["sample_id"]: r for r in read_per_sample(out / "per_sample.csv")}
    assert sorted(rows, key=int) == [str(k) for k in FRAMES]
    for k in FRAMES:
        mask = np.asarray(Image.open(cvc_dir / "masks" / f"{k}.png").convert("L")) > 127
        row = rows[str(k)]
        # the real mask at its own 288x384 grid, its polyps counted as 8-connected objects
        assert int(row["labelled_pixels"]) == int(mask.sum())
        assert int(row["objects_labelled"]) == ndimage.label(mask, np.ones((3, 3)))[1]
        assert 0 <= int(row["predicted_pixels"]) <= mask.size and row["unit"] == "px"
        assert 0.0 <= float(row["dice"]) <= 1.0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["meta"]["distance_unit"] == "px" and summary["classes"]["foreground"]["samples"] == 12


def test_real_ct_volume_scored_in_3d_in_mm_per_structure(ct_mr_dir, tmp_path, capsys):
    root = real_nnunet3d(ct_mr_dir, tmp_path / "ct", "ct")
    ckpt = _train(volume_config(root, tmp_path / "run"))
    out = tmp_path / "eval"
    rc = main(["evaluate", str(ckpt), str(root), "--out", str(out), "--device", "cpu", "--quiet"])
    stdout, err = capsys.readouterr()
    assert rc == 0, err
    assert "HD95 (mm)" in stdout
    names = json.loads((root / "labelsTr" / "labels.json").read_text())
    rows = read_per_sample(out / "per_sample.csv")
    assert [r["class"] for r in rows] == [v for k, v in names.items() if int(k)]
    assert {r["sample_id"] for r in rows} == {"ct_000"} and {r["unit"] for r in rows} == {"mm"}
    labels = np.asarray(nib.load(root / "labelsTr" / "ct_000.nii.gz").dataobj)
    by_name = {r["class"]: r for r in rows}
    for k, name in names.items():
        if int(k):
            assert int(by_name[name]["labelled_pixels"]) == int((labels == int(k)).sum()), name
    # the same scores as medseg predict's label volume measured by MONAI with the 3 mm voxel spacing
    assert (
        main(
            [
                "predict",
                str(ckpt),
                str(root / "imagesTr" / "ct_000_0000.nii.gz"),
                "--out",
                str(tmp_path / "p"),
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    (written,) = (tmp_path / "p").glob("*_mask.nii.gz")
    pred = np.asarray(nib.load(written).dataobj)
    both = [(int(k), v) for k, v in names.items() if int(k) and (labels == int(k)).any() and (pred == int(k)).any()]
    assert both, "the tiny model predicts none of the labelled structures"
    for k, name in both[:6]:
        p, t = (torch.from_numpy(a == k)[None, None].float() for a in (pred, labels))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hd = mm.compute_hausdorff_distance(p, t, percentile=95, spacing=(3.0, 3.0, 3.0)).item()
            dice = mm.compute_dice(p, t, ignore_empty=False).item()
        assert float(by_name[name]["hd95"]) == pytest.approx(hd, abs=1e-4), name
        assert float(by_name[name]["dice"]) == pytest.approx(dice, abs=1e-6), name
    meta = json.loads((out / "summary.json").read_text())["meta"]
    assert meta["distance_unit"] == "mm" and meta["task"] == "multiclass" and meta["samples"] == 1
