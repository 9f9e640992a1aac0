"""Seed 001's auxiliary loss as PSPNet's deep supervision: trained, logged, and left out at inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _train_run import make_dataset

from medseg.errors import ConfigError
from medseg.models import ModelSpec, create_model
from medseg.models.aux_head import SegmentationAuxHead
from medseg.training.config import TrainConfig
from medseg.training.events import Step
from medseg.training.loss_combo import build_loss_from_config
from medseg.training.trainer import Trainer


def _pspnet(**kw) -> torch.nn.Module:
    torch.manual_seed(0)
    spec = ModelSpec("PSPNet", "resnet18", in_channels=1, classes=3, task="multiclass", aux="segmentation", **kw)
    return create_model(spec)


def test_the_head_reads_the_second_deepest_stage_and_its_loss_is_the_tasks_cross_entropy():
    torch.set_num_threads(1)
    model = _pspnet()
    assert isinstance(model.aux_segmentation, SegmentationAuxHead)
    assert model.aux_segmentation[0].in_channels == model.encoder.out_channels[-2]
    assert any(k.startswith("aux_segmentation.") for k in model.state_dict())
    x, y = torch.rand(2, 1, 64, 64), torch.randint(0, 3, (2, 64, 64))
    logits = model(x)
    assert logits.shape == (2, 3, 64, 64) and model.last_aux.shape == (2, 3, 64, 64)
    loss = build_loss_from_config("seed001_dice_boundary", "multiclass", 3)
    from medseg.training.distance_maps import class_distance_maps

    dist = torch.from_numpy(np.stack([class_distance_maps(t.numpy(), 3, task="multiclass") for t in y]))
    total, parts = loss(logits, y, dist_maps=dist, aux_logits=model.last_aux)
    assert torch.allclose(parts["aux"], F.cross_entropy(model.last_aux, y))
    expected = 0.01 * parts["dice"] + 0.99 * parts["boundary"] + 0.3 * parts["aux"]
    assert torch.allclose(total, expected, atol=1e-6)
    # the auxiliary gradient reaches the head and, through it, the encoder stage it reads
    model.zero_grad()
    (0.3 * F.cross_entropy(model.last_aux, y)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.aux_segmentation.parameters())
    assert model.encoder.layer1[0].conv1.weight.grad.abs().sum() > 0
    assert next(model.decoder.parameters()).grad is None  # the decoder is not on the aux path


def test_inference_ignores_the_head():
    model = _pspnet()
    model.eval()
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        with_head = model(x)
        assert model.last_aux is None  # not even computed in eval mode
        for p in model.aux_segmentation.parameters():
            p.add_(torch.randn_like(p))  # whatever the head holds, the masks are the same
        assert torch.equal(model(x), with_head)
    # validation (no gradients, eval mode) scores the loss without the aux term instead of failing
    loss = build_loss_from_config({"terms": [{"name": "ce"}], "aux_weight": 0.3}, "multiclass", 3)
    with torch.inference_mode():
        total, parts = loss(with_head, torch.randint(0, 3, (1, 64, 64)), aux_logits=None)
    assert "aux" not in parts and torch.isfinite(total)
    with pytest.raises(ValueError, match="no aux logits"):  # while training, a missing head is an error
        loss(with_head, torch.randint(0, 3, (1, 64, 64)), aux_logits=None)


def test_the_trainer_trains_and_logs_the_aux_loss(tmp_path):
    torch.set_num_threads(1)
    data = make_dataset(tmp_path / "data", n=6, size=32)
    cfg = {
        "data": {"root": str(data), "group_by": "stem", "val_fraction": 0.34, "image_size": [32, 32], "cache_mb": 0},
        "model": {"arch": "PSPNet", "encoder": "resnet18", "aux": "segmentation"},
        "loss": {"terms": [{"name": "dice", "weight": 1.0}], "aux_weight": 0.3},
        "augment": "none",
        "epochs": 1,
        "max_steps_per_epoch": 2,
        "batch_size": 2,
        "device": "cpu",
        "precision": "fp32",
        "out_dir": str(tmp_path / "run"),
        "val_overlays": 0,
    }
    trainer = Trainer(cfg)
    head_before = {k: v.clone() for k, v in trainer.model.aux_segmentation.state_dict().items()}
    steps = [e for e in trainer.run() if isinstance(e, Step)]
    assert steps and all("aux" in s.terms and np.isfinite(s.terms["aux"]) and s.terms["aux"] > 0 for s in steps)
    head_after = trainer.model.aux_segmentation.state_dict()
    assert any(not torch.equal(head_before[k], head_after[k]) for k in head_before if k.endswith("weight"))


def test_aux_values_are_checked():
    with pytest.raises(ConfigError, match="model.aux: must be true, false or one of presence, segmentation"):
        TrainConfig.from_dict({"data": {"root": "x"}, "model": {"aux": "deep"}})
    with pytest.raises(ValueError, match="built for smp architectures"):
        create_model(ModelSpec("PlainUNet", "none", in_channels=1, classes=1, aux="segmentation"))
    # aux: true is still the class-presence classifier older checkpoints hold
    presence = create_model(ModelSpec("PSPNet", "resnet18", in_channels=1, classes=1, aux=True))
    presence(torch.rand(1, 1, 64, 64))
    assert presence.last_aux.shape == (1, 1) and "aux_segmentation" not in dict(presence.named_children())
