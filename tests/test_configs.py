"""The shipped training recipes (configs/*.yaml) are valid and build their models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from medseg.datasets.classmap import ClassMap
from medseg.training.config import TrainConfig
from medseg.training.distance_maps import class_distance_maps
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
    classmap = ClassMap.from_names(["left lung", "right lung"], task="multiclass") if lungs else ClassMap.binary()
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
    assert ("aux" in parts) == cfg.model.aux
    total.backward()
    assert torch.isfinite(total)
