"""Weighted loss combinations: presets, the aux term, the Dice-to-boundary schedule, learnable weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medseg.errors import MissingDistanceMapsError, UnknownNameError
from medseg.models import create_model
from medseg.models.spec import ModelSpec
from medseg.training.distance_losses import BoundaryLoss
from medseg.training.distance_maps import class_distance_maps
from medseg.training.loss_combo import (
    CombinedLoss,
    RebalanceSchedule,
    build_loss_from_config,
)
from medseg.training.losses import build_loss


def _multiclass(seed: int = 0, classes: int = 3, size: int = 16):
    g = torch.Generator().manual_seed(seed)
    ids = torch.zeros(2, size, size, dtype=torch.long)
    ids[0, 2:9, 3:10], ids[0, 10:14, 1:6], ids[1, 4:12, 4:12] = 1, 2, 2
    logits = torch.randn(2, classes, size, size, generator=g)
    maps = torch.from_numpy(np.stack([class_distance_maps(t.numpy(), classes, (1.0, 1.5), "multiclass") for t in ids]))
    return logits, ids, maps


def _multilabel(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, 8, 8, generator=g), (torch.rand(2, 3, 8, 8, generator=g) > 0.6).float()


def test_combined_is_the_weighted_sum_with_parts():
    logits, target = _multilabel()
    bce, dice = build_loss("bce", "multilabel"), build_loss("dice", "multilabel")
    total, parts = CombinedLoss([(0.3, bce), (0.7, dice)], names=["bce", "dice"])(logits, target)
    assert torch.allclose(total, 0.3 * bce(logits, target) + 0.7 * dice(logits, target))
    assert set(parts) == {"bce", "dice"} and torch.allclose(parts["dice"], dice(logits, target))
    x = logits.clone().requires_grad_(True)
    total, parts = CombinedLoss([(0.3, bce), (0.7, dice)], names=["bce", "dice"])(x, target)
    assert total.requires_grad and not parts["bce"].requires_grad  # parts are for logging only


@pytest.mark.parametrize(
    "preset,weights,kw",
    [
        ("seed004_bce_tversky", (0.5, 0.5), {"alpha": 0.5, "beta": 0.5}),
        ("seed004_bce_dice", (0.6, 0.4), {}),
    ],
)
def test_seed004_presets(preset, weights, kw):
    logits, target = _multilabel(1)
    second = "tversky" if "tversky" in preset else "dice"
    loss = build_loss_from_config(preset, "multilabel")
    total, parts = loss(logits, target)
    expected = weights[0] * F.binary_cross_entropy_with_logits(logits, target) + weights[1] * build_loss(
        second, "multilabel", **kw
    )(logits, target)
    assert torch.allclose(total, expected)
    assert list(parts) == ["bce", second]


def test_seed001_preset_dice_boundary_aux():
    logits, ids, maps = _multiclass()
    aux = torch.tensor([[0.5, -1.0, 2.0], [1.0, 0.0, -3.0]])
    loss = build_loss_from_config({"preset": "seed001_dice_boundary"}, "multiclass")
    total, parts = loss(logits, ids, dist_maps=maps, aux_logits=aux)
    presence = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    expected = (
        0.01 * build_loss("dice", "multiclass")(logits, ids)
        + 0.99 * BoundaryLoss("multiclass")(logits, ids, dist_maps=maps)
        + 0.3 * F.binary_cross_entropy_with_logits(aux, presence)
    )
    assert torch.allclose(total, expected)
    assert set(parts) == {"dice", "boundary", "aux"} and loss.needs_dist_maps
    with pytest.raises(MissingDistanceMapsError, match="'boundary'"):
        loss(logits, ids, aux_logits=aux)
    with pytest.raises(ValueError, match="aux=True"):
        loss(logits, ids, dist_maps=maps)


def test_seed001_trains_a_pspnet_with_its_aux_head():
    torch.manual_seed(0)
    spec = ModelSpec(
        "PSPNet",
        "resnet18",
        in_channels=1,
        classes=3,
        task="multiclass",
        aux=True,
        kwargs={"encoder_depth": 3, "psp_out_channels": 16},
    )
    model = create_model(spec)
    _, ids, maps = _multiclass(size=32)
    loss = build_loss_from_config("seed001_dice_boundary", "multiclass")
    logits = model(torch.randn(2, 1, 32, 32))
    total, _ = loss(logits, ids, dist_maps=maps, aux_logits=model.last_aux)
    total.backward()
    aux_params = [n for n, p in model.named_parameters() if "classification_head" in n and p.grad is not None]
    assert aux_params and torch.isfinite(total)


def test_schedule_moves_weight_from_dice_to_boundary():
    logits, ids, maps = _multiclass(2)
    loss = build_loss_from_config(
        {
            "preset": "seed001_dice_boundary",
            "aux_weight": 0.0,
            "schedule": {"region": "dice", "boundary": "boundary", "floor": 0.2, "step": 0.1},
        },
        "multiclass",
    )
    dice = build_loss("dice", "multiclass")(logits, ids)
    bnd = BoundaryLoss("multiclass")(logits, ids, dist_maps=maps)
    for epoch, alpha in [(0, 1.0), (3, 0.7), (8, 0.2), (50, 0.2)]:
        loss.set_epoch(epoch)
        assert loss.current_weights() == pytest.approx({"dice": alpha, "boundary": 1 - alpha})
        total, _ = loss(logits, ids, dist_maps=maps)
        assert torch.allclose(total, alpha * dice + (1 - alpha) * bnd)
    by_epochs = RebalanceSchedule.from_dict({"epochs": 10, "floor": 0.01})
    assert by_epochs.alpha(5) == pytest.approx(1 - 0.99 / 2) and by_epochs.alpha(10) == pytest.approx(0.01)


def test_learnable_uncertainty_weights():
    logits, ids, maps = _multiclass(3)
    loss = build_loss_from_config(
        {"preset": "seed001_dice_boundary", "aux_weight": 0.0, "learnable": True}, "multiclass"
    )
    (s,) = loss.loss_parameters()
    assert isinstance(s, torch.nn.Parameter) and s.requires_grad
    assert loss.current_weights() == pytest.approx({"dice": 0.01, "boundary": 0.99})  # starts as configured
    boundary = loss.losses[1]
    assert boundary.nonnegative  # a negative term would send its weight to infinity
    x = logits.clone().requires_grad_(True)
    total, parts = loss(x, ids, dist_maps=maps)
    expected = sum(math.exp(-v) * parts[n].item() + v for n, v in zip(["dice", "boundary"], s.tolist()))
    assert total.item() == pytest.approx(expected, rel=1e-5)
    assert parts["boundary"].item() >= 0
    total.backward()
    # d/ds (exp(-s) L + s) = 1 - exp(-s) L
    for i, n in enumerate(["dice", "boundary"]):
        assert s.grad[i].item() == pytest.approx(1 - math.exp(-s[i].item()) * parts[n].item(), rel=1e-5)
    opt = torch.optim.SGD(loss.loss_parameters(), lr=0.5)
    opt.step()
    assert loss.current_weights()["dice"] != pytest.approx(0.01)


def test_no_learnable_parameters_by_default():
    assert build_loss_from_config("seed004_bce_dice", "binary").loss_parameters() == []


def test_config_errors_are_listed_together():
    with pytest.raises(ValueError) as e:
        build_loss_from_config(
            {
                "terms": [{"name": "dice", "weight": -1}, {"name": "bce", "weight": 0.5, "smooth": 3}],
                "aux_weight": "lots",
                "shedule": {},
            },
            "binary",
        )
    msg = str(e.value)
    for part in ("'shedule'", "terms[0] (dice): weight", "terms[1] (bce)", "aux_weight"):
        assert part in msg
    with pytest.raises(UnknownNameError, match="boundary"):
        build_loss_from_config({"terms": [{"name": "boundry"}]}, "binary")
    with pytest.raises(UnknownNameError, match="seed004_bce_dice"):
        build_loss_from_config("seed004_bce_dyce", "binary")
    with pytest.raises(ValueError, match="schedule names terms"):
        build_loss_from_config({"terms": [{"name": "dice"}], "schedule": {}}, "binary")
    with pytest.raises(ValueError, match="exclude each other"):
        build_loss_from_config({"preset": "seed001_dice_boundary", "schedule": {}, "learnable": True}, "multiclass")


def test_binary_aux_presence_and_duplicate_names():
    logits = torch.randn(2, 1, 8, 8)
    target = torch.zeros(2, 8, 8)
    target[0, 2:4, 2:4] = 1
    aux = torch.tensor([[0.3], [-0.2]])
    dice = build_loss("dice", "binary")
    loss = CombinedLoss([(1.0, dice), (2.0, dice)], aux_weight=0.5, mode="binary", names=["dice", "dice"])
    total, parts = loss(logits, target, aux_logits=aux)
    assert list(parts) == ["dice", "dice_2", "aux"]
    expected = 3 * dice(logits, target) + 0.5 * F.binary_cross_entropy_with_logits(aux, torch.tensor([[1.0], [0.0]]))
    assert torch.allclose(total, expected)
