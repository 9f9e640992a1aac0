"""The shipped training recipes (configs/*.yaml) are valid and build their models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from medseg.datasets.classmap import ClassMap
from medseg.errors import ConfigError
from medseg.jobs import Result
from medseg.models import ModelSpec
from medseg.training.config import TrainConfig
from medseg.training.data import mirror_permutation
from medseg.training.distance_maps import class_distance_maps
from medseg.training.events import EpochEnd, Step
from medseg.training.trainer import Trainer
from medseg.training.trainer_setup import build_loss, build_model

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_recipes_exist():
    names = {p.stem for p in CONFIGS}
    assert {
        "seed004_unet_effb1",
        "seed004_unetpp_effb1",
        "seed001_pspnet_lungs",
        "seed000_resattunet",
        "seed003_plain_unet",
        "cpu_quick",
    } <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_recipe_builds_and_runs_one_step(path):
    cfg = TrainConfig.from_dict(yaml.safe_load(path.read_text()))
    lungs = cfg.data.channels == 1
    classmap = ClassMap.from_names(["left_lung", "right_lung"], task="multiclass") if lungs else ClassMap.binary()
    model, spec, prep, source = build_model(cfg, classmap)
    assert source == "new" and prep.resize and prep.input_size == cfg.data.image_size
    loss = build_loss(cfg, classmap.task, spec)
    x = torch.rand(2, cfg.data.channels, 64, 64)
    out = model(x)
    logits = out[0] if isinstance(out, (tuple, list)) else out
    assert logits.shape == (2, classmap.num_classes, 64, 64)
    if lungs:
        target = torch.randint(0, 3, (2, 64, 64))
    else:
        target = (torch.rand(2, 1, 64, 64) > 0.5).float()
    dist = None
    if loss.needs_dist_maps:  # the data pipeline computes them per sample; here by hand
        dist = torch.from_numpy(
            np.stack([class_distance_maps(t.numpy(), classmap.num_classes, task=classmap.task) for t in target])
        )
    aux = out[1] if isinstance(out, (tuple, list)) else getattr(model, "last_aux", None)
    total, parts = loss(logits, target, dist_maps=dist, aux_logits=aux)
    assert ("aux" in parts) == bool(cfg.model.aux)
    total.backward()
    assert torch.isfinite(total)


def _cvc_like(root: Path, n: int = 6, size: int = 64) -> Path:
    """images/ + masks/ RGB frames with a bright disk (the CVC-ClinicDB layout), numbered 1..n."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[:size, :size]
    for i in range(1, n + 1):
        cy, cx = rng.integers(16, size - 16, 2)
        m = (yy - cy) ** 2 + (xx - cx) ** 2 <= 100
        img = (rng.normal(70, 20, (size, size, 3)) + 120 * m[..., None]).clip(0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / "images" / f"{i}.png")
        Image.fromarray((m * 255).astype(np.uint8)).save(root / "masks" / f"{i}.png")
    return root


def _montgomery_like(root: Path, patients: int = 5, size: int = 64) -> Path:
    """CXR_png/ + ManualMask/{leftMask,rightMask}/: the patient's left lung on the image's right."""
    rng = np.random.default_rng(0)
    for d in ("CXR_png", "ManualMask/leftMask", "ManualMask/rightMask"):
        (root / d).mkdir(parents=True)
    yy, xx = np.mgrid[:size, :size]
    for k in range(patients):
        stem = f"MCUCXR_{k + 1:04d}_{k % 2}"
        lungs = {
            side: ((yy - size / 2) / (size * 0.35)) ** 2 + ((xx - size * cx) / (size * 0.16)) ** 2 <= 1
            for side, cx in (("left", 0.72), ("right", 0.28))
        }
        img = rng.normal(160, 20, (size, size)) - 90 * (lungs["left"] | lungs["right"])
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(root / "CXR_png" / f"{stem}.png")
        for side, m in lungs.items():
            Image.fromarray((m * 255).astype(np.uint8)).save(root / "ManualMask" / f"{side}Mask" / f"{stem}.png")
    return root


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_recipe_trains_one_step_as_shipped(path, tmp_path):
    """The recipe file itself (only sizes, steps and the data root made tiny) runs the real Trainer."""
    shipped = yaml.safe_load(path.read_text())
    lungs = shipped["data"].get("channels") == 1
    root = _montgomery_like(tmp_path / "lungs") if lungs else _cvc_like(tmp_path / "frames")
    over = {
        "root": str(root),
        "image_size": [64, 64],
        "val_fraction": 0.4,
        "num_workers": 0,
        "cache_mb": 0,
    }
    if not lungs:  # six numbered frames make one video block; the lungs keep the recipe's grouping by patient
        over["group_by"] = "stem"
    cfg = {
        **shipped,
        "data": {**shipped["data"], **over},
        "model": {**shipped["model"], "encoder_weights": None},
        "epochs": 1,
        "max_steps_per_epoch": 1,
        "batch_size": 2,
        "device": "cpu",
        "precision": "fp32",
        "out_dir": str(tmp_path / "run"),
        "val_overlays": 0,
    }
    torch.set_num_threads(1)
    trainer = Trainer(cfg)
    if lungs:  # the shipped names are the layout's: a mirror exchanges the two lung channels
        assert trainer.classmap.names == ["left_lung", "right_lung"]
        assert mirror_permutation(trainer.classmap, shipped["data"]["mirror_swap"]).tolist() == [0, 2, 1]
    events = list(trainer.run())
    steps = [e for e in events if isinstance(e, Step)]
    ends = [e for e in events if isinstance(e, EpochEnd)]
    assert len(steps) == 1 and len(ends) == 1
    assert np.isfinite(ends[0].train_loss)
    assert isinstance(events[-1], Result)
    assert (tmp_path / "run" / "best.medseg").is_dir() or (tmp_path / "run" / "last.medseg").is_dir()


def test_cross_entropy_class_weights_from_the_config():
    cfg = TrainConfig.from_dict(
        {"data": {"root": "x"}, "loss": {"terms": [{"name": "ce", "weight": 1.0}], "class_weights": [0.2, 1.0, 3.0]}}
    )
    spec = ModelSpec("PlainUNet", "none", in_channels=1, classes=3, task="multiclass")
    loss = build_loss(cfg, "multiclass", spec)
    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(2, 3, 8, 8, generator=g), torch.randint(0, 3, (2, 8, 8), generator=g)
    total, _ = loss(logits, target)
    expected = F.cross_entropy(logits, target, weight=torch.tensor([0.2, 1.0, 3.0]))
    assert torch.allclose(total, expected) and not torch.allclose(total, F.cross_entropy(logits, target))
    # a term's own class_weights win over the loss-wide ones
    cfg.loss = {"terms": [{"name": "ce", "class_weights": [1, 1, 9]}, {"name": "dice"}], "class_weights": [1, 2, 3]}
    assert build_loss(cfg, "multiclass", spec).losses[0].loss.weight.tolist() == [1.0, 1.0, 9.0]


@pytest.mark.parametrize(
    "loss, message",
    [
        ({"terms": [{"name": "ce"}], "class_weights": [1.0, 2.0]}, "2 weights but the model has 3 classes"),
        ({"terms": [{"name": "ce"}], "class_weights": [1.0, 0.0, 2.0]}, r"numbers > 0, got \[0.0\]"),
        ({"terms": [{"name": "ce"}], "class_weights": "heavy"}, "must be a list of numbers"),
        ({"terms": [{"name": "dice"}], "class_weights": [1, 1, 1]}, "the loss has none"),
        ({"terms": [{"name": "dice", "class_weights": [1, 1, 1]}]}, "apply to ce terms only"),
        ({"terms": [{"name": "ce", "class_weights": [1, 1, 1, 1]}]}, r"terms\[0\] \(ce\): class_weights has 4"),
    ],
)
def test_bad_class_weights_are_named(loss, message):
    cfg = TrainConfig.from_dict({"data": {"root": "x"}, "loss": loss})
    spec = ModelSpec("PlainUNet", "none", in_channels=1, classes=3, task="multiclass")
    with pytest.raises(ConfigError, match=message):
        build_loss(cfg, "multiclass", spec)


def test_class_weights_are_checked_against_the_datasets_classes(tmp_path):
    """Montgomery: background, left_lung, right_lung; two weights stop the run before its first step."""
    root = _montgomery_like(tmp_path / "lungs")
    cfg = {
        "data": {"root": str(root), "channels": 1, "image_size": [32, 32], "val_fraction": 0.4},
        "model": {"arch": "PlainUNet", "kwargs": {"depth": 2, "base_channels": 4}},
        "loss": {"terms": [{"name": "ce"}], "class_weights": [0.5, 2.0]},
        "device": "cpu",
        "out_dir": str(tmp_path / "run"),
    }
    with pytest.raises(ConfigError, match="loss: .*2 weights but the model has 3 classes"):
        Trainer(cfg)
    assert not (tmp_path / "run").exists()
