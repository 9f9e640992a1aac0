"""``medseg evaluate`` on 2-D images: HD95 / ASSD in mm when the files state a pixel spacing (2-D DICOM CT
slices, TIFF with physical resolution tags), equal to MONAI's with that spacing, the CSV's unit column "mm";
the same pixels as PNG (no spacing) are scored in pixels, unit "px"."""

from __future__ import annotations

import json
import warnings

import monai.metrics as mm
import numpy as np
import pydicom
import pytest
import tifffile
import torch
from _train_data import one_thread  # noqa: F401 - module-scoped autouse fixture
from _train_run import tiny_config
from _volume_data import synthetic_case
from _volume_layouts import write_dicom_slice
from PIL import Image

from medseg.cli.main import main
from medseg.evaluate import read_per_sample
from medseg.inference import Predictor
from medseg.io import load
from medseg.jobs import run

SPACING = (0.625, 1.25)  # (row, col) mm: anisotropic, so a swapped axis changes the distances
OFFSET = 1024  # stored value = HU + 1024, as CT scanners store it


def _slices():
    """(stem, HU int16 (36, 40), labels uint8 0..3): axial slices through three synthetic CT organs, made
    contrast-enhanced (a tiny model learns them in a few dozen steps)."""
    for case in range(4):
        image, labels = synthetic_case((40, 36, 10), seed=case)
        for k in (3, 4, 5, 6):
            hu, lab = image[:, :, k].T.astype(np.int16), labels[:, :, k].T.copy()
            hu += np.array([0, 120, 220, 380], np.int16)[lab]
            yield f"c{case}k{k}", hu, lab


def _write(root, kind: str):
    """The slices as images/ (DICOM with PixelSpacing, TIFF with resolution in cm, or plain 16-bit PNG) and
    masks/ (PNG class ids)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for stem, hu, labels in _slices():
        stored = (hu.astype(np.int32) + OFFSET).astype(np.uint16)
        if kind == "dicom":
            path = write_dicom_slice(root / "images" / f"{stem}.dcm", hu)
            ds = pydicom.dcmread(path)
            ds.PixelSpacing = list(SPACING)
            ds.save_as(path)
        elif kind == "tiff":
            per_cm = (10.0 / SPACING[1], 10.0 / SPACING[0])  # (x, y) pixels per cm
            tifffile.imwrite(root / "images" / f"{stem}.tif", stored, resolution=per_cm, resolutionunit="CENTIMETER")
        else:
            Image.fromarray(stored).save(root / "images" / f"{stem}.png")
        Image.fromarray(labels).save(root / "masks" / f"{stem}.png")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(a folder per kind of file, a tiny model trained on the DICOM slices with a per-image percentile
    window: the stored offset of PNG / TIFF values does not change its input)."""
    from medseg.training.trainer import Trainer

    tmp = tmp_path_factory.mktemp("evaluate_2d")
    folders = {kind: _write(tmp / kind, kind) for kind in ("dicom", "tiff", "png")}
    cfg = tiny_config(
        folders["dicom"],
        tmp / "run",
        data__channels=1,
        data__window="percentile",
        data__val_fraction=0.0,
        loss={"terms": [{"name": "ce"}, {"name": "dice"}]},
        optim__lr=0.03,
        epochs=10,
        max_steps_per_epoch=4,
        batch_size=4,
    )
    trainer = Trainer(cfg)
    run(trainer.run())
    return folders, trainer.last_path


def _monai(pred: np.ndarray, true: np.ndarray, spacing) -> tuple[float, float]:
    p, t = torch.from_numpy(pred)[None, None].float(), torch.from_numpy(true)[None, None].float()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hd = mm.HausdorffDistanceMetric(include_background=True, percentile=95)
        sd = mm.SurfaceDistanceMetric(include_background=True, symmetric=True)
        hd(p, t, spacing=spacing)
        sd(p, t, spacing=spacing)
        return hd.aggregate().item(), sd.aggregate().item()


def _evaluate(capsys, ckpt, data, out):
    rc = main(["evaluate", str(ckpt), str(data), "--out", str(out), "--quiet", "--device", "cpu"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return read_per_sample(out / "per_sample.csv"), json.loads((out / "summary.json").read_text()), captured.out


@pytest.mark.parametrize(
    ("kind", "suffix", "unit"), [("dicom", ".dcm", "mm"), ("tiff", ".tif", "mm"), ("png", ".png", "px")]
)
def test_distances_of_2d_images_are_in_mm_when_the_file_states_the_spacing(
    trained, tmp_path, capsys, kind, suffix, unit
):
    folders, ckpt = trained
    rows, summary, stdout = _evaluate(capsys, ckpt, folders[kind], tmp_path / "eval")
    assert {r["unit"] for r in rows} == {unit}
    assert summary["meta"]["distance_unit"] == unit and f"HD95 ({unit})" in stdout
    predictor = Predictor(str(ckpt), device="cpu")
    ids = dict(zip(predictor.classmap.names, predictor.classmap.ids))
    assert sorted(ids.values()) == [1, 2, 3]
    spacing = SPACING if unit == "mm" else (1.0, 1.0)
    by_sample = {}
    for r in rows:
        by_sample.setdefault(r["sample_id"], []).append(r)
    assert len(by_sample) == 16
    compared = differs = swapped = 0
    for sid, sample_rows in by_sample.items():
        image = load(folders[kind] / "images" / f"{sid}{suffix}")
        assert image.metadata["spacing_known"] is (unit == "mm")
        if unit == "mm":
            assert image.spacing == pytest.approx(SPACING)
        pred = predictor.predict(image).labels
        true = np.asarray(Image.open(folders[kind] / "masks" / f"{sid}.png"))
        for r in sample_rows:
            cid = ids[r["class"]]
            p, t = pred == cid, true == cid
            if not (p.any() and t.any()):
                assert r["hd95"] == "" or not (p.any() or t.any())
                continue
            want_hd, want_sd = _monai(p, t, spacing)
            assert float(r["hd95"]) == pytest.approx(want_hd, abs=1e-4), (sid, r["class"])
            assert float(r["assd"]) == pytest.approx(want_sd, abs=1e-4), (sid, r["class"])
            compared += 1
            differs += abs(_monai(p, t, (1.0, 1.0))[0] - want_hd) > 1e-3
            swapped += abs(_monai(p, t, spacing[::-1])[1] - want_sd) > 1e-3
    assert compared >= 8, f"only {compared} (sample, class) pairs had both masks non-empty"
    if unit == "mm":
        assert differs, "the spacing changed no distance: it was not applied"
        assert swapped, "swapping the spacing's axes changed no distance: the comparison cannot see a swap"
