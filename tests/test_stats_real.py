"""The dataset overview on the real data: CVC-ClinicDB frames and the abdominal CT / MR volumes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from medseg.cli import main
from medseg.stats import stats
from tests._volume_data import real_nnunet3d

pytestmark = pytest.mark.realdata


def test_cvc_clinicdb_frames(cvc_dir, tmp_path, capsys):
    root = cvc_dir
    out = tmp_path / "overview"
    assert main(["stats", str(root), "--out", str(out), "--intensity-images", "20", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "612 samples" in text and "288x384 (612)" in text
    d = json.loads((out / "stats.json").read_text())
    assert d["images"]["modalities"] == {"PNG RGB": 612} and d["images"]["read_pixels"] == 20
    fg = d["labels"]["classes"]["foreground"]
    assert fg["samples"] == 612 - d["labels"]["empty_masks"]
    # the pixel count read back from three frames by hand agrees with the sum's share
    some = [np.count_nonzero(np.asarray(Image.open(root / "masks" / f"{i}.png")) > 127) for i in (1, 300, 612)]
    assert all(0 < n < 288 * 384 for n in some)
    assert fg["pixels"] > sum(some) and 0.01 < fg["pixel_fraction"] < 0.5
    assert fg["objects"] >= fg["samples"]
    assert {p.name for p in out.glob("*.png")} == {"images.png", "classes.png", "areas.png", "intensity.png"}


@pytest.mark.parametrize("modality, classes, shape", [("ct", 41, "30x101x122"), ("mr", 23, "20x91x117")])
def test_real_volumes(ct_mr_dir, tmp_path, modality, classes, shape):
    root = real_nnunet3d(ct_mr_dir, tmp_path / modality, modality)
    d = stats(root, workers=1).to_dict()
    assert d["samples"] == 1 and d["images"]["sizes"] == {shape: 1}
    assert d["images"]["spacings"] == {"3 x 3 x 3": 1} and d["images"]["spacing_known"] == 1
    labels = d["labels"]["classes"]
    assert len(labels) == classes and all(c["samples"] == 1 for c in labels.values())
    import nibabel as nib

    ids = np.asarray(nib.load(root / "labelsTr" / f"{modality}_000.nii.gz").dataobj)
    liver = labels["liver"]
    assert liver["pixels"] == int(np.count_nonzero(ids == liver["id"]))
    assert liver["volume_ml"]["max"] == pytest.approx(liver["pixels"] * 27 / 1000)
    grey = d["images"]["intensity"]["NIFTI grey"]["channels"]["grey"]
    image = np.asarray(nib.load(root / "imagesTr" / f"{modality}_000_0000.nii.gz").dataobj)
    assert (grey["min"], grey["max"]) == (float(image.min()), float(image.max()))
