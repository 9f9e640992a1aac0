"""Histogram equalisation / CLAHE as preprocessing: trained with, stored in the checkpoint, applied at inference."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from medseg.cli import main
from medseg.errors import ConfigError
from medseg.inference import Predictor
from medseg.inference.preprocess import model_input
from medseg.io import load
from medseg.io.resize import resize_image
from medseg.models import load_checkpoint, save_checkpoint
from medseg.models.spec import Preprocessing
from medseg.training.config import TrainConfig
from medseg.training.trainer import Trainer

CLAHE = {"method": "clahe", "clip_limit": 0.02, "kernel_size": [8, 8], "nbins": 256}


def _xrays(root, n: int = 6, size: int = 48):
    """16-bit grey chest-X-ray-like images (dark lungs in a bright, low-contrast body) and binary masks."""
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[:size, :size]
    for k in range(n):
        lung = ((yy - size / 2) / (size * 0.3)) ** 2 + ((xx - size * (0.3 + 0.05 * k % 3)) / (size * 0.15)) ** 2 <= 1
        body = 2600 + 300 * np.sin(xx / 7.0) + 200 * (yy / size)  # a slow gradient equalisation flattens
        img = body - 250 * lung + rng.normal(0, 40, (size, size))
        Image.fromarray(img.clip(0, 4095).astype(np.uint16)).save(root / "images" / f"case{k}.png")
        Image.fromarray((lung * 255).astype(np.uint8)).save(root / "masks" / f"case{k}.png")
    return root


def _config(data, out, equalize):
    return {
        "data": {
            "root": str(data),
            "group_by": "stem",
            "val_fraction": 0.34,
            "image_size": [32, 32],
            "channels": 1,
            "cache_mb": 0,
            "equalize": equalize,
        },
        "model": {"arch": "PlainUNet", "kwargs": {"depth": 2, "base_channels": 4, "dropout": 0.0}},
        "loss": "seed004_bce_dice",
        "augment": "none",
        "optim": {"name": "adam", "lr": 0.03, "scheduler": "constant"},
        "epochs": 3,
        "max_steps_per_epoch": 2,
        "batch_size": 2,
        "device": "cpu",
        "precision": "fp32",
        "out_dir": str(out),
        "val_overlays": 0,
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained six steps with CLAHE, its Trainer and its checkpoint folder."""
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("equalize")
    data = _xrays(tmp / "data")
    trainer = Trainer(_config(data, tmp / "run", CLAHE))
    list(trainer.run())
    ckpt = next(p for p in (tmp / "run" / "best.medseg", tmp / "run" / "last.medseg") if p.is_dir())
    return trainer, ckpt, tmp


def test_training_and_inference_see_the_same_equalised_input(trained):
    trainer, ckpt, _ = trained
    ck = load_checkpoint(ckpt)
    assert ck.preprocessing.equalize == CLAHE
    predictor = Predictor(str(ckpt), device="cpu")
    for index, sample in enumerate(trainer.val_samples):
        seen = trainer.val_data[(index, 0)]["image"].numpy()  # what validation (and, unaugmented, training) fed
        image = sample.load_image()
        x, windows = predictor._inputs(image)
        assert x.shape == (1, 1, 32, 32) and windows == ["None, clahe"]
        np.testing.assert_allclose(x[0].numpy(), seen, atol=1e-6)
        # the same image without the equalisation is another input: the comparison can fail
        plain, _ = model_input(image, dataclasses.replace(ck.preprocessing, equalize=None))
        plain = np.moveaxis(resize_image(np.moveaxis(plain, 0, -1), (32, 32)), -1, 0)
        assert np.abs(plain - seen).max() > 0.1


def test_checkpoint_round_trip_and_older_checkpoints(trained, tmp_path):
    _, ckpt, _ = trained
    ck = load_checkpoint(ckpt)
    config = json.loads((ckpt / "config.json").read_text())
    assert config["preprocessing"]["equalize"] == CLAHE
    assert Preprocessing.from_dict(ck.preprocessing.to_dict()) == ck.preprocessing
    # a checkpoint written before equalize existed has no such key: it loads, without equalisation
    old = save_checkpoint(
        tmp_path / "old", ck.model, ck.spec, ck.classmap, dataclasses.replace(ck.preprocessing, equalize=None)
    )
    cfg = json.loads((old / "config.json").read_text())
    del cfg["preprocessing"]["equalize"]
    (old / "config.json").write_text(json.dumps(cfg))
    assert load_checkpoint(old).preprocessing.equalize is None
    assert Preprocessing(equalize="histeq").equalize == {"method": "histeq", "nbins": 256}


def test_predict_applies_the_checkpoints_equalisation(trained, tmp_path):
    """``medseg predict`` (the Predictor) on the checkpoint vs the same weights saved without equalize."""
    _, ckpt, tmp = trained
    ck = load_checkpoint(ckpt)
    plain = save_checkpoint(
        tmp_path / "plain", ck.model, ck.spec, ck.classmap, dataclasses.replace(ck.preprocessing, equalize=None)
    )
    image = tmp / "data" / "images" / "case0.png"
    probs = {}
    for name, path in (("clahe", ckpt), ("plain", plain)):
        out = tmp_path / f"out_{name}"
        args = ["predict", str(path), str(image), "--out", str(out), "--device", "cpu", "--quiet"]
        rc = main([*args, "--probs", "--probs-format", "npy"])
        assert rc == 0
        written = sorted(out.glob("case0_probs*"))
        assert written, sorted(p.name for p in out.iterdir())
        probs[name] = np.load(written[0]).astype(np.float32)
    direct = Predictor(str(ckpt), device="cpu").predict(load(image))
    np.testing.assert_allclose(probs["clahe"].reshape(direct.probs.shape), direct.probs, atol=1e-6)
    # six steps leave the tiny model's probabilities near 0.5, yet the inputs differ by far more than rounding
    assert np.abs(probs["clahe"] - probs["plain"]).max() > 1e-4


@pytest.mark.parametrize(
    "value, message",
    [
        ("clahe2", "equalize method must be one of histeq, clahe, got 'clahe2'"),
        ({"method": "clahe", "clip_limit": 2}, r"clip_limit must be a number in \(0, 1\], got 2"),
        ({"method": "histeq", "kernel_size": 8}, "histeq takes nbins; unknown: kernel_size"),
        ({"method": "clahe", "kernel_size": [0, 8]}, "kernel_size must be null, an integer >= 2"),
        (3, 'must be null, "histeq", "clahe" or a mapping'),
    ],
)
def test_a_wrong_equalize_is_a_config_error(value, message):
    with pytest.raises(ConfigError, match="data.equalize: .*" + message):
        TrainConfig.from_dict({"data": {"root": "x", "equalize": value}})


def test_equalisation_of_grey_and_colour_channels():
    rng = np.random.default_rng(0)
    grey = (rng.random((24, 30)) ** 3 * 255).astype(np.uint8)
    x, _ = model_input(grey, Preprocessing(channels=3, equalize="histeq"))
    assert np.array_equal(x[0], x[1]) and np.array_equal(x[1], x[2])
    # equalised: the values' ranks spread evenly over [0, 1] instead of crowding at the dark end
    assert abs(float(np.median(x[0])) - 0.5) < 0.05 and float(np.median(grey / 255.0)) < 0.2
    colour = (rng.random((24, 30, 3)) ** np.array([1.0, 2.0, 4.0]) * 255).astype(np.uint8)
    y, _ = model_input(colour, Preprocessing(channels=3, equalize="histeq", mean=[0.5] * 3, std=[0.5] * 3))
    for c in range(3):  # channel by channel, then standardised
        assert abs(float(np.median(y[c]))) < 0.1
    flat, _ = model_input(np.full((8, 8), 7, np.uint8), Preprocessing(channels=1, equalize="histeq"))
    assert np.all(flat == 0)
