"""``medseg predict ... --rle-csv FILE``: predictions as a Kaggle-style CSV that the UW-Madison reader reads back."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from medseg.cli import main
from medseg.datasets import open_dataset
from medseg.datasets.classmap import ClassMap
from medseg.io.rle import rle_decode
from medseg.models import ModelSpec, create_model, save_checkpoint
from medseg.models.spec import Preprocessing

UW = ["large_bowel", "small_bowel", "stomach"]


def _checkpoint(path, classmap: ClassMap, classes: int):
    torch.manual_seed(4)
    task = classmap.task
    spec = ModelSpec(
        "PlainUNet", "none", in_channels=1, classes=classes, task=task, kwargs={"depth": 2, "base_channels": 4}
    )
    model = create_model(spec)
    with torch.no_grad():  # random weights, scaled so every class has some pixels on and some off
        model.head.weight.mul_(8.0)
        model.head.bias.zero_()
    return save_checkpoint(path, model, spec, classmap, Preprocessing(channels=1, divisible_by=4))


def _uw(root, slices=((1, 1), (1, 2), (2, 1))):
    """A UW-Madison folder: 16-bit slices and a train.csv whose rows are all empty."""
    rng = np.random.default_rng(0)
    rows = []
    for case, n in slices:
        scans = root / "train" / f"case{case}" / f"case{case}_day0" / "scans"
        scans.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 4000, (40, 48)).astype(np.uint16)).save(
            scans / f"slice_{n:04d}_48_40_1.50_1.50.png"
        )
        rows += [(f"case{case}_day0_slice_{n:04d}", c, "") for c in UW]
    with open(root / "train.csv", "w", newline="") as f:
        csv.writer(f).writerows([("id", "class", "segmentation"), *rows])
    return root


def test_predicted_masks_round_trip_through_the_uw_madison_reader(tmp_path):
    torch.set_num_threads(1)
    data = _uw(tmp_path / "uw")
    ckpt = _checkpoint(tmp_path / "ml", ClassMap.from_names(UW, task="multilabel"), 3)
    out, table = tmp_path / "out", tmp_path / "pred" / "submission.csv"
    rc = main(["predict", str(ckpt), str(data), "--out", str(out), "--device", "cpu", "--rle-csv", str(table)])
    assert rc == 0
    lines = table.read_text().splitlines()
    assert lines[0] == "id,class,segmentation" and len(lines) == 1 + 3 * 3
    # the CSV beside a copy of the slices is a UW-Madison dataset whose masks are the predicted mask files
    copy = tmp_path / "copy"
    shutil.copytree(data / "train", copy / "train")
    shutil.copy(table, copy / "train.csv")
    ds = open_dataset(copy)
    assert ds.layout == "uwmadison" and not ds.problems and len(ds.samples) == 3
    on = 0
    for sample in ds.samples:
        got = np.asarray(sample.load_mask()) > 0
        written = np.stack([np.asarray(Image.open(out / f"{sample.id}_mask_{c}.png")) > 0 for c in UW], axis=-1)
        assert got.shape == (40, 48, 3) and np.array_equal(got, written)
        on += int(written.sum())
    assert 0 < on < written.size * 3  # neither all empty nor all full: the comparison can fail
    # written by medseg: not replaced without --overwrite, and refused inside the data before predicting
    rc = main(["predict", str(ckpt), str(data), "--out", str(tmp_path / "o2"), "--rle-csv", str(table)])
    assert rc == 2 and not (tmp_path / "o2").exists()
    rc = main(["predict", str(ckpt), str(data), "--out", str(tmp_path / "o3"), "--rle-csv", str(data / "p.csv")])
    assert rc == 2 and not (data / "p.csv").exists()


def test_a_volume_is_written_slice_by_slice(tmp_path):
    nib = pytest.importorskip("nibabel")
    torch.set_num_threads(1)
    rng = np.random.default_rng(2)
    (tmp_path / "scans").mkdir()
    vol = tmp_path / "scans" / "scan.nii.gz"
    nib.save(nib.Nifti1Image(rng.normal(0, 100, (24, 20, 3)).astype(np.float32), np.eye(4)), vol)
    ckpt = _checkpoint(tmp_path / "mc", ClassMap.from_names(["a", "b"], task="multiclass"), 3)
    out, table = tmp_path / "out", tmp_path / "scan.csv"
    assert main(["predict", str(ckpt), str(vol), "--out", str(out), "--device", "cpu", "--rle-csv", str(table)]) == 0
    labels = np.asarray(nib.load(out / "scan_mask.nii.gz").dataobj)  # (x, y, z) as the image
    with open(table) as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows[::2]] == [f"scan_slice_{z:04d}" for z in (1, 2, 3)]
    from medseg.io import load

    ids = np.asarray(load(out / "scan_mask.nii.gz").array)  # medseg's (slice, row, col) order
    assert ids.shape[0] == 3 and labels.size == ids.size
    for r in rows:
        z = int(r["id"][-4:]) - 1
        cid = 1 if r["class"] == "a" else 2
        assert np.array_equal(rle_decode(r["segmentation"], ids.shape[1:]), ids[z] == cid)
    assert any(r["segmentation"] for r in rows)
