"""Optimisation: accumulation, clipping, frozen encoders, fine-tuning, the schedule, learnable loss weights."""

from __future__ import annotations

import math

import pytest
import torch
from _train_data import config, make_disks, make_palette, one_thread  # noqa: F401 - autouse fixture
from torch import nn

import medseg.models
from medseg.training.config import ConfigError, OptimConfig
from medseg.training.events import EpochEnd, Step
from medseg.training.optim import EpochSchedule, build_optimizer, encoder_parameters
from medseg.training.trainer import Trainer


@pytest.fixture(scope="module")
def disks(tmp_path_factory):
    return make_disks(tmp_path_factory.mktemp("optim"), n=12)


def _without_batchnorm(module: nn.Module) -> nn.Module:
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, nn.Identity())
        else:
            _without_batchnorm(child)
    return module


def test_accumulating_two_micro_batches_equals_one_batch(disks, tmp_path, monkeypatch):
    # BatchNorm normalises per micro-batch, so equality needs a model without it
    real = medseg.models.create_model
    monkeypatch.setattr(medseg.models, "create_model", lambda spec, **kw: _without_batchnorm(real(spec, **kw)))
    common = {
        "model": {"kwargs": {"depth": 3, "base_channels": 8, "dropout": 0.0}},
        "loss": {"terms": [{"name": "bce"}]},
        "max_steps_per_epoch": 1,
        "epochs": 1,
        "optim": {"name": "sgd", "lr": 0.5, "momentum": 0.0, "weight_decay": 0.0},
    }
    params = {}
    for name, batch, acc in (("one", 4, 1), ("two", 2, 2), ("four", 1, 4)):
        tr = Trainer(config(disks, tmp_path / name, batch_size=batch, accumulate=acc, **common))
        init = [p.detach().clone() for p in tr.model.parameters()]
        assert list(tr.run())[-1].kind == "result"
        params[name] = [p.detach() for p in tr.model.parameters()]
    moved = max(float((a - b).abs().max()) for a, b in zip(params["one"], init))
    assert moved > 1e-3  # the update is large against the tolerance below, so a wrong scale would show
    for name in ("two", "four"):
        for a, b in zip(params["one"], params[name]):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_clipping_bounds_the_gradient_norm(disks, tmp_path):
    tr = Trainer(
        config(disks, tmp_path / "c", grad_clip=0.05, max_steps_per_epoch=2, optim={"name": "sgd", "lr": 1e-3})
    )
    steps = [e for e in tr.run() if isinstance(e, Step)]
    assert all(s.grad_norm > 0.05 for s in steps)  # the raw norm was above the bound: clipping acted
    clipped = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in tr.model.parameters()]))
    assert float(clipped) <= 0.05 * (1 + 1e-4)
    free = [e for e in Trainer(config(disks, tmp_path / "f", max_steps_per_epoch=1)).run() if isinstance(e, Step)]
    assert free[0].grad_norm is None


@pytest.mark.parametrize(
    "model", [{"arch": "PlainUNet"}, {"arch": "Unet", "encoder": "resnet18", "kwargs": {"encoder_depth": 3}}]
)
def test_a_frozen_encoder_does_not_change(disks, tmp_path, model):
    tr = Trainer(
        config(
            disks,
            tmp_path,
            model={**model, "freeze_encoder": True},
            max_steps_per_epoch=2,
            optim={"name": "adamw", "lr": 1e-2},
        )
    )
    enc = dict(tr.model.encoder.state_dict())  # parameters and BatchNorm statistics
    enc = {k: v.clone() for k, v in enc.items()}
    rest = {n: p.detach().clone() for n, p in tr.model.named_parameters() if not n.startswith("encoder.")}
    ids = {id(p) for p in encoder_parameters(tr.model)}
    assert not ids & {id(p) for g in tr.optimizer.param_groups for p in g["params"]}
    assert list(tr.run())[-1].kind == "result"
    assert all(torch.equal(enc[k], v) for k, v in tr.model.encoder.state_dict().items())
    changed = [n for n, p in tr.model.named_parameters() if n in rest and not torch.equal(rest[n], p)]
    assert len(changed) > len(rest) // 2


def test_fine_tuning_starts_from_the_checkpoint(disks, tmp_path):
    first = list(Trainer(config(disks, tmp_path / "a", max_steps_per_epoch=2)).run())
    best = first[-1].value.best_checkpoint
    ck = medseg.models.load_checkpoint(best)
    tr = Trainer(config(disks, tmp_path / "b", model={"arch": "Unet", "init_checkpoint": best, "freeze_encoder": True}))
    assert tr.spec.arch == "PlainUNet"  # the checkpoint's model, not the config's arch
    assert all(torch.equal(v, tr.model.state_dict()[k]) for k, v in ck.model.state_dict().items())
    assert tr.preprocessing.channels == ck.preprocessing.channels
    assert tr.model_source.startswith("fine-tuned from")
    events = list(tr.run())
    assert events[-1].kind == "result"
    assert (
        medseg.models.load_checkpoint(events[-1].value.last_checkpoint)
        .provenance["training"]["model_source"]
        .startswith("fine-tuned")
    )
    palette = make_palette(tmp_path / "pal", n=4)
    with pytest.raises(ConfigError, match="same"):
        Trainer(config(palette, tmp_path / "c", model={"init_checkpoint": best}))


def test_warmup_then_cosine_by_fractional_epoch():
    s = EpochSchedule("cosine", epochs=4, warmup_epochs=0.5, min_ratio=0.01, steps_per_epoch=4)
    f = [s(i) for i in range(4)]
    assert f == pytest.approx([0.5, 1.0, 1.0, 1.0 - 0.99 * (1 - math.cos(math.pi * 0.25 / 3.5)) / 2])
    s.begin_epoch(3, first_step=12, n_steps=8)  # a longer last epoch (pseudo-labels) keeps the curve
    assert s(12) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 2.5 / 3.5)))
    assert s(20) == pytest.approx(0.01)  # the end of the last epoch: min_lr / lr
    const = EpochSchedule("constant", epochs=4, warmup_epochs=1.0, min_ratio=0.0, steps_per_epoch=2)
    assert [const(i) for i in range(4)] == [0.5, 1.0, 1.0, 1.0]


def test_lr_in_the_step_events_follows_the_schedule(disks, tmp_path):
    cfg = config(
        disks,
        tmp_path,
        epochs=2,
        max_steps_per_epoch=2,
        optim={"name": "adamw", "lr": 0.01, "min_lr": 0.0001, "scheduler": "cosine", "warmup_epochs": 1},
    )
    lrs = [e.lr for e in Trainer(cfg).run() if isinstance(e, Step)]
    assert lrs == pytest.approx([0.005, 0.01, 0.01, 0.0001 + (0.01 - 0.0001) * 0.5])


def test_learnable_loss_weights_are_trained_without_weight_decay(disks, tmp_path):
    cfg = config(
        disks,
        tmp_path,
        max_steps_per_epoch=2,
        epochs=2,
        loss={"terms": [{"name": "bce", "weight": 0.5}, {"name": "dice", "weight": 0.5}], "learnable": True},
    )
    tr = Trainer(cfg)
    assert len(tr.optimizer.param_groups) == 2 and tr.optimizer.param_groups[1]["weight_decay"] == 0.0
    start = tr.loss.log_vars.detach().clone()
    torch.testing.assert_close(start, torch.log(torch.tensor([2.0, 2.0])))
    assert list(tr.run())[-1].kind == "result"
    assert not torch.equal(start, tr.loss.log_vars.detach())


def test_optimisers():
    model = nn.Conv2d(1, 1, 3)
    assert isinstance(build_optimizer(model, OptimConfig(name="adam")), torch.optim.Adam)
    sgd = build_optimizer(model, OptimConfig(name="sgd", momentum=0.9, nesterov=True))
    assert sgd.param_groups[0]["nesterov"] and sgd.param_groups[0]["momentum"] == 0.9
    with pytest.raises(TypeError, match=r"no \.encoder"):
        encoder_parameters(model)


def test_epoch_end_reports_train_and_validation(disks, tmp_path):
    ends = [e for e in Trainer(config(disks, tmp_path, max_steps_per_epoch=1)).run() if isinstance(e, EpochEnd)]
    assert ends[0].train_loss > 0 and ends[0].val["images"] >= 2 and ends[0].seconds > 0
