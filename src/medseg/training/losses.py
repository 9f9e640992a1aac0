"""Segmentation losses by name, taken from ``segmentation_models_pytorch.losses``.

``build_loss(name, mode, **kwargs)`` returns the smp (or torch) loss itself
for "dice", "jaccard", "tversky", "focal", "lovasz", "soft_bce" and "soft_ce",
and torch's ``BCEWithLogitsLoss`` / ``CrossEntropyLoss`` for "bce" / "ce";
keyword arguments go to that class unchanged. Every loss is called as
``loss(logits, target)`` with raw logits (B, C, H, W) and targets in the
layout of smp's modes:

* ``binary``: logits (B, 1, H, W); target (B, 1, H, W) or (B, H, W) of 0/1
  (float or integer).
* ``multiclass``: logits (B, C, H, W) with C including background; target
  (B, H, W) of long class ids in [0, C).
* ``multilabel``: logits (B, C, H, W); target (B, C, H, W) of 0/1 (float),
  one channel per class, classes may overlap.

Losses that are not written for every mode are adapted rather than
rewritten: the BCE losses get a float target of the logits' shape (a binary
(B, H, W) target gains its channel axis; a multiclass target becomes one-hot,
so BCE scores each class channel on its own), and the CE losses take a long
(B, H, W) target (a binary target cannot be scored by a softmax over one
channel, so "ce" asks for multiclass and says to use "bce" otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from segmentation_models_pytorch import losses as smp_losses
from torch import nn

from medseg.errors import UnknownNameError

MODES = ("binary", "multiclass", "multilabel")


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise UnknownNameError("loss mode", mode, list(MODES))
    return mode


class _TargetAdapter(nn.Module):
    """Runs ``loss`` on a target reshaped / cast to what that loss expects."""

    def __init__(self, loss: nn.Module, mode: str, kind: str):
        super().__init__()
        self.loss, self.mode, self.kind = loss, mode, kind

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.kind == "bce":
            target = bce_target(logits, target, self.mode)
        else:
            target = ce_target(target)
        return self.loss(logits, target)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


def bce_target(logits: torch.Tensor, target: torch.Tensor, mode: str) -> torch.Tensor:
    """A float target of ``logits``' shape for a per-channel BCE (see the module docstring)."""
    if mode == "multiclass":
        if target.ndim == logits.ndim and target.shape[1] == 1:
            target = target[:, 0]
        onehot = F.one_hot(target.long(), logits.shape[1]).movedim(-1, 1)
        return onehot.to(logits.dtype)
    if mode == "binary" and target.ndim == logits.ndim - 1:
        target = target.unsqueeze(1)
    if target.shape != logits.shape:
        raise ValueError(
            f"{mode} target of shape {tuple(target.shape)} does not fit logits of shape "
            f"{tuple(logits.shape)}; see medseg.training.losses for the layouts"
        )
    return target.to(logits.dtype)


def ce_target(target: torch.Tensor) -> torch.Tensor:
    """A (B, H, W) long target of class ids (a (B, 1, H, W) target loses its channel axis)."""
    if target.ndim >= 4 and target.shape[1] == 1:
        target = target[:, 0]
    return target.long()


class _ModeLoss(nn.Module):
    """A smp loss whose binary target may come with or without its channel axis.

    smp's Dice/Jaccard/Tversky/Focal/Lovasz flatten binary targets, so both
    shapes already work; only the dtype is normalised here (smp one-hots a
    multiclass target and needs it long).
    """

    def __init__(self, loss: nn.Module, mode: str):
        super().__init__()
        self.loss, self.mode = loss, mode

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.mode == "multiclass":
            target = ce_target(target)
        elif target.shape[0] != logits.shape[0] or target.numel() != logits.numel():
            raise ValueError(
                f"{self.mode} target of shape {tuple(target.shape)} does not fit logits of "
                f"shape {tuple(logits.shape)}; see medseg.training.losses for the layouts"
            )
        return self.loss(logits, target)


def _smp(cls: type) -> Callable[..., nn.Module]:
    return lambda mode, **kw: _ModeLoss(cls(mode=mode, **kw), mode)


def _bce(cls: type) -> Callable[..., nn.Module]:
    return lambda mode, **kw: _TargetAdapter(cls(**kw), mode, "bce")


def _ce(cls: type) -> Callable[..., nn.Module]:
    def make(mode: str, **kw: Any) -> nn.Module:
        if mode != "multiclass":
            raise ValueError(
                f"a cross-entropy loss needs mode 'multiclass' (softmax over classes), got "
                f"{mode!r}; use 'bce' or 'soft_bce' for binary and multilabel tasks"
            )
        return _TargetAdapter(cls(**kw), mode, "ce")

    return make


LOSSES: dict[str, Callable[..., nn.Module]] = {
    "dice": _smp(smp_losses.DiceLoss),
    "jaccard": _smp(smp_losses.JaccardLoss),
    "tversky": _smp(smp_losses.TverskyLoss),
    "focal": _smp(smp_losses.FocalLoss),
    "lovasz": _smp(smp_losses.LovaszLoss),
    "bce": _bce(nn.BCEWithLogitsLoss),
    "soft_bce": _bce(smp_losses.SoftBCEWithLogitsLoss),
    "ce": _ce(nn.CrossEntropyLoss),
    "soft_ce": _ce(smp_losses.SoftCrossEntropyLoss),
}


def list_losses() -> list[str]:
    """The names ``build_loss`` takes (the distance losses live in ``loss_combo``'s registry)."""
    return sorted(LOSSES)


def build_loss(name: str, mode: str, **kwargs: Any) -> nn.Module:
    """The loss called ``name`` for ``mode`` (binary / multiclass / multilabel).

    ``kwargs`` are the underlying class's own arguments (e.g. ``alpha``,
    ``beta`` for Tversky, ``smooth_factor`` for soft_bce, ``weight`` for ce).
    An unknown name raises ``UnknownNameError`` listing the valid ones; an
    argument the class does not take raises ``TypeError`` naming the loss.
    """
    _check_mode(mode)
    if name not in LOSSES:
        raise UnknownNameError("loss", name, list_losses())
    for key in ("pos_weight", "weight"):
        if kwargs.get(key) is not None and not isinstance(kwargs[key], torch.Tensor):
            kwargs[key] = torch.as_tensor(kwargs[key], dtype=torch.float32)
    if name in ("bce", "soft_bce") and kwargs.get("pos_weight") is not None and kwargs["pos_weight"].numel() > 1:
        # one weight per class channel: broadcast over (B, C, H, W), not over W
        kwargs["pos_weight"] = kwargs["pos_weight"].reshape(-1, 1, 1)
    try:
        return LOSSES[name](mode, **kwargs)
    except TypeError as e:
        raise TypeError(f"loss {name!r}: {e}") from e
