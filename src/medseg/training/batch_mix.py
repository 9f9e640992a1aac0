"""Batch-level mixing in the training step: mixup (seed 004) and cutmix.

Both pair every sample with another of the same batch (a permutation drawn
from a ``torch.Generator``, so a run is reproducible and resumable) and draw
lambda ~ Beta(alpha, alpha) with numpy's Beta sampler seeded from that
generator (torch has no Beta sampler that takes a generator).

Targets are one tensor or a tuple / list / dict of tensors, all batch-first:
binary (B, 1, H, W), multiclass ids (B, H, W) long, multilabel (B, C, H, W),
and signed distance maps (B, C, H, W) for the boundary loss.

* mixup blends images only: ``lam * x + (1 - lam) * x[index]``. Targets are
  not blended (ids cannot be); they are returned as ``targets_a`` / ``targets_b``
  and :func:`mixed_loss` takes ``lam * L(pred, a) + (1 - lam) * L(pred, b)``
  as seed 004 does. Distance maps go with their masks in a and b and are not
  mixed: the boundary loss is linear in the distance map, so its mixed loss
  equals the loss against ``lam * d_a + (1 - lam) * d_b`` anyway.
* cutmix pastes one box of the partner images into the images and the same
  box of every target tensor (masks stay integer and exact), so the loss needs
  no mixing. ``area_ratio`` is the pasted fraction of the image. Pasted
  distance maps are those of the partner's mask: exact inside the box except
  within the box's reach of its edges, where the true distance of the pasted
  mask would differ; recomputing them would need a distance transform in the
  training step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

Targets = torch.Tensor | Sequence[torch.Tensor] | Mapping[str, torch.Tensor]


class MixupResult(NamedTuple):
    images: torch.Tensor
    targets_a: Any
    targets_b: Any
    lam: float
    index: torch.Tensor


class CutmixResult(NamedTuple):
    images: torch.Tensor
    targets: Any
    area_ratio: float
    box: tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open
    index: torch.Tensor


def sample_lambda(alpha: float, generator: torch.Generator | None = None) -> float:
    """lambda ~ Beta(alpha, alpha), drawn reproducibly from ``generator``."""
    if not (alpha > 0 and np.isfinite(alpha)):
        raise ValueError(f"alpha must be a positive number, got {alpha}")
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def mixup(
    images: torch.Tensor, targets: Targets, alpha: float = 1.0, generator: torch.Generator | None = None
) -> MixupResult:
    """Blend each image with a partner from the same batch (seed 004's mixup)."""
    _check_images(images)
    _map(lambda t: _check_batch(t, images.shape[0], "target"), targets)
    lam = sample_lambda(alpha, generator)
    index = _permutation(images, generator)
    mixed = lam * images + (1.0 - lam) * images[index]
    return MixupResult(mixed, targets, _map(lambda t: t[index], targets), lam, index)


def mixed_loss(
    loss_fn: Callable[..., torch.Tensor], pred: Any, targets_a: Targets, targets_b: Targets, lam: float
) -> torch.Tensor:
    """``lam * loss_fn(pred, a) + (1 - lam) * loss_fn(pred, b)``.

    A tuple / list of targets is passed as further positional arguments, a
    dict as keyword arguments.
    """
    return lam * _call(loss_fn, pred, targets_a) + (1.0 - lam) * _call(loss_fn, pred, targets_b)


def cutmix(
    images: torch.Tensor, targets: Targets, alpha: float = 1.0, generator: torch.Generator | None = None
) -> CutmixResult:
    """Paste one random box of the partner images and targets into each sample (Yun et al., 2019).

    The box covers about ``1 - lambda`` of the image, lambda ~ Beta(alpha, alpha);
    it is clipped at the border, and ``area_ratio`` is the clipped box's share.
    """
    _check_images(images)
    b, h, w = images.shape[0], images.shape[-2], images.shape[-1]

    def check(t: torch.Tensor) -> None:
        _check_batch(t, b, "target")
        if tuple(t.shape[-2:]) != (h, w):
            raise ValueError(f"cutmix target of shape {tuple(t.shape)} does not end in the images' (H, W) = ({h}, {w})")

    _map(check, targets)
    lam = sample_lambda(alpha, generator)
    index = _permutation(images, generator)
    cut = float(np.sqrt(1.0 - lam))
    cut_h, cut_w = int(h * cut), int(w * cut)
    cy = int(torch.randint(0, h, (1,), generator=generator).item())
    cx = int(torch.randint(0, w, (1,), generator=generator).item())
    y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)

    def paste(t: torch.Tensor) -> torch.Tensor:
        out = t.clone()
        out[..., y0:y1, x0:x1] = t[index][..., y0:y1, x0:x1]
        return out

    ratio = (y1 - y0) * (x1 - x0) / float(h * w)
    return CutmixResult(paste(images), _map(paste, targets), ratio, (y0, y1, x0, x1), index)


def _permutation(images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    # drawn on the CPU (where the generator lives), then moved to the batch's device
    return torch.randperm(images.shape[0], generator=generator).to(images.device)


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        raise ValueError(
            "images must be a floating (B, C, H, W) tensor, got "
            f"{type(images).__name__} {tuple(getattr(images, 'shape', ()))} "
            f"{getattr(images, 'dtype', '')}"
        )


def _check_batch(t: torch.Tensor, b: int, what: str) -> None:
    if not isinstance(t, torch.Tensor) or t.ndim < 1 or t.shape[0] != b:
        raise ValueError(
            f"{what} must be a tensor with the batch ({b}) first, got "
            f"{type(t).__name__} {tuple(getattr(t, 'shape', ()))}"
        )


def _map(fn: Callable[[torch.Tensor], Any], targets: Targets) -> Any:
    if isinstance(targets, torch.Tensor):
        return fn(targets)
    if isinstance(targets, Mapping):
        return {k: fn(v) for k, v in targets.items()}
    if isinstance(targets, Sequence) and not isinstance(targets, str):
        mapped = [fn(v) for v in targets]
        return tuple(mapped) if isinstance(targets, tuple) else mapped
    raise ValueError(f"targets must be a tensor, or a tuple / list / dict of tensors, got {type(targets).__name__}")


def _call(loss_fn: Callable[..., torch.Tensor], pred: Any, targets: Targets) -> torch.Tensor:
    if isinstance(targets, Mapping):
        return loss_fn(pred, **targets)
    if isinstance(targets, Sequence) and not isinstance(targets, (str, torch.Tensor)):
        return loss_fn(pred, *targets)
    return loss_fn(pred, targets)
