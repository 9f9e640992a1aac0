"""``medseg predict`` with a tiny saved checkpoint on generated images, folders, datasets and a volume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from medseg.cli import main
from medseg.datasets.classmap import ClassMap
from medseg.inference import Predictor
from medseg.io import load
from medseg.models.spec import ModelSpec, Preprocessing


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    import segmentation_models_pytorch as smp
    import torch

    from medseg.models import save_checkpoint

    spec = ModelSpec(
        arch="Unet", encoder="resnet18", classes=1, kwargs={"encoder_depth": 3, "decoder_channels": [16, 8, 8]}
    )
    torch.manual_seed(1)
    model = smp.create_model(
        "Unet", encoder_name="resnet18", encoder_weights=None, classes=1, encoder_depth=3, decoder_channels=[16, 8, 8]
    )
    return save_checkpoint(
        tmp_path_factory.mktemp("c") / "tiny",
        model,
        spec,
        ClassMap.binary(),
        Preprocessing(input_size=[64, 64], divisible_by=8),
    )


def _rgb(path, h, w, seed=0):
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)


def test_files_and_folders_write_masks_probs_and_uncertainty(ckpt, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    _rgb(folder / "a.png", 70, 90)
    Image.fromarray(np.random.default_rng(1).integers(0, 65535, (50, 41)).astype(np.uint16)).save(folder / "b.png")
    (folder / "notes.txt").write_text("not an image")
    single = tmp_path / "c.jpg"
    _rgb(single, 33, 47, seed=2)
    out = tmp_path / "out"
    rc = main(
        [
            "predict",
            str(ckpt),
            str(folder),
            str(single),
            "--out",
            str(out),
            "--probs",
            "--uncertainty",
            "--tta",
            "hflip",
            "--device",
            "cpu",
            "--keep-going",
        ]
    )
    assert rc == 0  # notes.txt is skipped and listed; --keep-going makes that exit 0
    for stem, shape in (("a", (70, 90)), ("b", (50, 41)), ("c", (33, 47))):
        mask = np.asarray(Image.open(out / f"{stem}_mask.png"))
        assert mask.shape == shape and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
        probs = tifffile.imread(out / f"{stem}_probs.tif")
        assert probs.shape == (1, *shape) and probs.dtype == np.uint16
        np.testing.assert_array_equal(mask, (probs[0] >= 32768).astype(np.uint8))
        unc = tifffile.imread(out / f"{stem}_uncertainty.tif")
        assert unc.shape == shape and unc.dtype == np.float32 and 0 <= unc.min() and unc.max() <= 1
        assert tifffile.imread(out / f"{stem}_variance.tif").shape == shape
    assert not list(out.glob("notes*"))
    captured = capsys.readouterr()
    assert "a.png -> " in captured.out and "3 of 4 inputs predicted" in captured.err
    assert f"skipped {folder / 'notes.txt'}: not an image" in captured.err and "1 skipped" in captured.err


def test_npy_probs_match_the_predictor_and_visible_masks_are_0_255(ckpt, tmp_path):
    _rgb(tmp_path / "x.png", 80, 100, seed=3)
    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                str(ckpt),
                str(tmp_path / "x.png"),
                "--out",
                str(out),
                "--probs",
                "--probs-format",
                "npy",
                "--mask-format",
                "visible",
                "--tile",
                "32",
                "--overlap",
                "0.5",
                "--threshold",
                "0.4",
                "--quiet",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    expected = Predictor(str(ckpt), device="cpu", tile_size=32, overlap=0.5).predict(
        np.asarray(Image.open(tmp_path / "x.png"))
    )
    probs = np.load(out / "x_probs.npy")
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs, expected.probs, atol=1e-6)
    mask = np.asarray(Image.open(out / "x_mask.png"))
    np.testing.assert_array_equal(mask, np.where(expected.probs[0] >= 0.4, 255, 0))


def test_bad_files_are_reported_and_the_rest_still_written(ckpt, tmp_path, capsys):
    _rgb(tmp_path / "good.png", 40, 40)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    rc = main(
        [
            "predict",
            str(ckpt),
            str(tmp_path / "broken.png"),
            str(tmp_path / "good.png"),
            "--out",
            str(tmp_path / "out"),
            "--device",
            "cpu",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "skipped " + str(tmp_path / "broken.png") in err and "1 skipped" in err
    assert (tmp_path / "out" / "good_mask.png").is_file()


def test_dataset_folder_predicts_samples_and_unlabelled_images(ckpt, tmp_path, capsys):
    ds = tmp_path / "ds"
    (ds / "images").mkdir(parents=True)
    (ds / "masks").mkdir()
    for i in range(3):
        _rgb(ds / "images" / f"p{i}.png", 32, 40, seed=i)
        if i < 2:
            Image.fromarray(np.zeros((32, 40), np.uint8)).save(ds / "masks" / f"p{i}.png")
    assert main(["predict", str(ckpt), str(ds), "--out", str(tmp_path / "out"), "--json", "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        ".medseg-outputs.jsonl",
        "p0_mask.png",
        "p1_mask.png",
        "p2_mask.png",
    ]  # the ownership record and the masks
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 3 and lines[0]["meta"]["device"] in ("cpu", "cuda:0", "mps")


def test_same_stem_in_two_folders_gets_a_suffix(ckpt, tmp_path):
    for d in ("one", "two"):
        (tmp_path / d).mkdir()
        _rgb(tmp_path / d / "img.png", 24, 24)
    assert (
        main(
            [
                "predict",
                str(ckpt),
                str(tmp_path / "one"),
                str(tmp_path / "two"),
                "--out",
                str(tmp_path / "out"),
                "--quiet",
            ]
        )
        == 0
    )
    assert (tmp_path / "out" / "img_mask.png").is_file() and (tmp_path / "out" / "img_2_mask.png").is_file()


def test_a_volume_gets_a_label_volume_on_its_grid(ckpt, anatomical_nii, tmp_path):
    import nibabel as nib

    assert main(["predict", str(ckpt), str(anatomical_nii), "--out", str(tmp_path), "--quiet"]) == 0
    label, source = nib.load(tmp_path / "anatomical_mask.nii.gz"), nib.load(anatomical_nii)
    assert label.shape == source.shape[:3] and label.get_data_dtype() == np.uint8
    np.testing.assert_allclose(label.affine, source.affine)
    assert load(tmp_path / "anatomical_mask.nii.gz").array.shape == (25, 41, 33)


def test_missing_checkpoint_or_input_exits_2_naming_it(ckpt, tmp_path, capsys):
    _rgb(tmp_path / "a.png", 20, 20)
    out = str(tmp_path / "out")
    assert main(["predict", str(tmp_path / "none.medseg"), str(tmp_path / "a.png"), "--out", out]) == 2
    assert "none.medseg" in capsys.readouterr().err
    assert main(["predict", str(ckpt), str(tmp_path / "missing.png"), "--out", out]) == 2
    assert "missing.png: does not exist" in capsys.readouterr().err
    assert main(["predict", str(ckpt), str(tmp_path / "a.png"), "--out", out, "--device", "tpu"]) == 2
    err = capsys.readouterr().err
    assert "unknown device 'tpu'" in err and "Traceback" not in err


def test_help_says_masks_hold_class_ids(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "class ids as uint8" in out and "--mask-format" in out and "--tta" in out
