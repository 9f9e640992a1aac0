"""Named losses: smp's classes in smp's modes, target layouts, errors."""

from __future__ import annotations

import pytest
import segmentation_models_pytorch.losses as smp_losses
import torch
import torch.nn.functional as F
from torch import nn

from medseg.errors import UnknownNameError
from medseg.training.losses import build_loss, list_losses

SMP = {
    "dice": smp_losses.DiceLoss,
    "jaccard": smp_losses.JaccardLoss,
    "tversky": smp_losses.TverskyLoss,
    "focal": smp_losses.FocalLoss,
    "lovasz": smp_losses.LovaszLoss,
}
CHANNELS = {"binary": 1, "multiclass": 3, "multilabel": 3}


def _batch(mode: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, CHANNELS[mode], 8, 8, generator=g)
    if mode == "multiclass":
        target = torch.randint(0, 3, (2, 8, 8), generator=g)
    elif mode == "binary":
        target = (torch.rand(2, 8, 8, generator=g) > 0.5).float()
    else:
        target = (torch.rand(2, 3, 8, 8, generator=g) > 0.5).float()
    return logits, target


@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("name", sorted(SMP))
def test_smp_losses_are_smps_own(name, mode):
    logits, target = _batch(mode)
    ours = build_loss(name, mode)
    expected = SMP[name](mode=mode)(logits, target)
    assert torch.allclose(ours(logits, target), expected)
    x = logits.clone().requires_grad_(True)
    ours(x, target).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(SMP) + ["bce", "soft_bce"])
def test_binary_target_with_or_without_channel_axis(name):
    logits, target = _batch("binary", seed=1)
    loss = build_loss(name, "binary")
    assert torch.allclose(loss(logits, target), loss(logits, target[:, None]))
    assert torch.allclose(loss(logits, target), loss(logits, target.long()))


def test_bce_binary_and_multilabel_match_torch():
    for mode in ("binary", "multilabel"):
        logits, target = _batch(mode, seed=2)
        full = target if mode == "multilabel" else target[:, None]
        assert torch.allclose(build_loss("bce", mode)(logits, target), F.binary_cross_entropy_with_logits(logits, full))


def test_bce_multiclass_scores_each_class_channel_one_hot():
    logits, target = _batch("multiclass", seed=3)
    onehot = torch.stack([(target == c).float() for c in range(3)], dim=1)
    assert torch.allclose(
        build_loss("bce", "multiclass")(logits, target), F.binary_cross_entropy_with_logits(logits, onehot)
    )


def test_bce_pos_weight_per_class_broadcasts_over_channels():
    logits, target = _batch("multilabel", seed=4)
    pw = [1.0, 2.0, 5.0]
    expected = F.binary_cross_entropy_with_logits(logits, target, pos_weight=torch.tensor(pw).view(3, 1, 1))
    assert torch.allclose(build_loss("bce", "multilabel", pos_weight=pw)(logits, target), expected)


def test_soft_bce_smoothing_is_smps():
    logits, target = _batch("binary", seed=5)
    ours = build_loss("soft_bce", "binary", smooth_factor=0.1)(logits, target)
    assert torch.allclose(ours, smp_losses.SoftBCEWithLogitsLoss(smooth_factor=0.1)(logits, target[:, None]))
    assert not torch.allclose(ours, build_loss("soft_bce", "binary")(logits, target))


def test_ce_multiclass_matches_torch_and_takes_channel_axis():
    logits, target = _batch("multiclass", seed=6)
    ce = build_loss("ce", "multiclass")
    assert torch.allclose(ce(logits, target), F.cross_entropy(logits, target))
    assert torch.allclose(ce(logits, target[:, None]), F.cross_entropy(logits, target))
    weighted = build_loss("ce", "multiclass", weight=[0.2, 1.0, 3.0])(logits, target)
    assert torch.allclose(weighted, F.cross_entropy(logits, target, weight=torch.tensor([0.2, 1.0, 3.0])))
    soft = build_loss("soft_ce", "multiclass", smooth_factor=0.0)(logits, target)
    assert torch.allclose(soft, F.cross_entropy(logits, target), atol=1e-6)


def test_ce_refuses_binary_and_points_to_bce():
    with pytest.raises(ValueError, match="bce"):
        build_loss("ce", "binary")


def test_tversky_arguments_reach_smp():
    logits, target = _batch("multilabel", seed=7)
    dice = build_loss("dice", "multilabel")(logits, target)
    half = build_loss("tversky", "multilabel", alpha=0.5, beta=0.5)(logits, target)
    skewed = build_loss("tversky", "multilabel", alpha=0.2, beta=0.8)(logits, target)
    assert torch.allclose(dice, half, atol=1e-6)  # Tversky(0.5, 0.5) is Dice
    assert not torch.allclose(half, skewed)


def test_confident_correct_prediction_costs_nothing():
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[0, 2:6, 2:6] = 2
    logits = F.one_hot(target, 3).movedim(-1, 1).float() * 40 - 20
    for name in ("dice", "jaccard", "tversky", "ce", "bce"):
        assert build_loss(name, "multiclass")(logits, target).item() < 1e-4, name


def test_unknown_name_lists_valid_and_suggests():
    with pytest.raises(UnknownNameError) as e:
        build_loss("tverski", "binary")
    assert "tversky" in str(e.value) and set(e.value.valid) == set(list_losses())


def test_unknown_mode_and_argument():
    with pytest.raises(UnknownNameError, match="binary"):
        build_loss("dice", "multi-class")
    with pytest.raises(TypeError, match="'dice'"):
        build_loss("dice", "binary", alhpa=0.3)


def test_target_that_does_not_fit_is_named():
    logits, _ = _batch("multilabel")
    with pytest.raises(ValueError, match="does not fit"):
        build_loss("bce", "multilabel")(logits, torch.zeros(2, 2, 8, 8))
    with pytest.raises(ValueError, match="does not fit"):
        build_loss("dice", "multilabel")(logits, torch.zeros(2, 2, 8, 8))


def test_every_loss_is_a_module():
    for name in list_losses():
        mode = "multiclass"
        assert isinstance(build_loss(name, mode), nn.Module)
