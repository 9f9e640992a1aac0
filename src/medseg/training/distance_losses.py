"""Distance-based losses: Kervadec's boundary loss and Karimi's Hausdorff distance-transform loss.

Both are called ``loss(logits, target, dist_maps=None)`` with the logits and
target layouts of ``medseg.training.losses``; both score the foreground
channels by default (multiclass: 1..C-1, binary: the one channel,
multilabel: every channel), or the channel indices given as ``classes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

from medseg.errors import MissingDistanceMapsError
from medseg.training.surface_metrics import as_spacing

_MODES = ("binary", "multiclass", "multilabel")


def _probabilities(logits: torch.Tensor, mode: str, from_logits: bool) -> torch.Tensor:
    if not from_logits:
        return logits
    return logits.softmax(dim=1) if mode == "multiclass" else logits.sigmoid()


def _channels(mode: str, n: int, classes: Sequence[int] | None) -> list[int]:
    if classes is not None:
        bad = [c for c in classes if not 0 <= c < n]
        if bad:
            raise ValueError(f"class channels {bad} are outside the logits' {n} channels")
        return list(classes)
    return list(range(1, n)) if mode == "multiclass" else list(range(n))


def _check(mode: str) -> None:
    if mode not in _MODES:
        raise ValueError(f"unknown loss mode {mode!r}; valid: {', '.join(_MODES)}")


class BoundaryLoss(nn.Module):
    """Boundary loss (Kervadec et al. 2019): mean over batch, foreground channels and pixels of p * phi.

    ``phi`` are the precomputed signed distance maps (B, C, H, W) of the
    target (``distance_maps.DistanceMaps`` in the data pipeline), negative
    inside; ``p`` the softmax (multiclass) or sigmoid probabilities. Its
    minimum, reached by the perfect prediction, is the (negative) mean of the
    inside distances; ``nonnegative=True`` subtracts that minimum so the loss
    is >= 0 and 0 for a perfect prediction (same gradients; needed under
    uncertainty weighting, where a negative term would drive its weight to
    infinity).
    """

    needs_dist_maps = True

    def __init__(
        self, mode: str, classes: Sequence[int] | None = None, from_logits: bool = True, nonnegative: bool = False
    ):
        super().__init__()
        _check(mode)
        self.mode, self.classes, self.from_logits, self.nonnegative = mode, classes, from_logits, nonnegative

    def forward(self, logits: torch.Tensor, target: torch.Tensor | None = None, dist_maps: Any = None) -> torch.Tensor:
        if dist_maps is None:
            raise MissingDistanceMapsError(
                "the boundary loss needs the batch's signed distance maps (dist_maps=...); add "
                "medseg.training.distance_maps.DistanceMaps to the data pipeline"
            )
        # float32 whatever the autocast dtype: a mean over many pixels in fp16 loses the small terms
        phi = torch.as_tensor(dist_maps, device=logits.device, dtype=torch.float32)
        if phi.shape != logits.shape:
            raise ValueError(
                f"distance maps of shape {tuple(phi.shape)} do not fit logits of shape "
                f"{tuple(logits.shape)} (one map per logit channel)"
            )
        idc = _channels(self.mode, logits.shape[1], self.classes)
        probs = _probabilities(logits.float(), self.mode, self.from_logits)[:, idc]
        phi = phi[:, idc]
        loss = (probs * phi).mean()
        if self.nonnegative:
            loss = loss - phi.clamp(max=0).mean()
        return loss

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, classes={self.classes}, nonnegative={self.nonnegative}"


def distance_field(mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Unsigned distance to the other side of the contour: edt(fg) + edt(bg); zeros without a contour."""
    if not mask.any() or mask.all():
        return np.zeros(mask.shape, dtype=np.float32)
    fg = ndimage.distance_transform_edt(mask, sampling=spacing)
    bg = ndimage.distance_transform_edt(~mask, sampling=spacing)
    return (fg + bg).astype(np.float32)


def _fields(masks: torch.Tensor, spacing: Sequence[float]) -> torch.Tensor:
    arr = masks.detach().cpu().numpy().astype(bool)
    out = np.zeros(arr.shape, dtype=np.float32)
    for b, c in np.ndindex(*arr.shape[:2]):
        out[b, c] = distance_field(arr[b, c], spacing)
    return torch.from_numpy(out).to(masks.device)


class HausdorffDTLoss(nn.Module):
    """Hausdorff distance-transform loss (Karimi & Salcudean 2019, "Reducing the Hausdorff distance ...").

    ``((p - g)^2 * (d_p^alpha + d_g^alpha)).mean()`` over batch, foreground
    channels and pixels, with ``d_g`` the distance field of the target and
    ``d_p`` that of the *thresholded* prediction (argmax for multiclass,
    p > 0.5 otherwise). Both fields are computed on the CPU with scipy
    (``edt(fg) + edt(bg)``, in units of ``spacing``, pixels by default) and
    carry no gradient, as in the paper: the gradient flows through
    ``(p - g)^2`` only. Costs two EDTs per image and channel each step.
    """

    def __init__(
        self,
        mode: str,
        classes: Sequence[int] | None = None,
        alpha: float = 2.0,
        from_logits: bool = True,
        spacing: float | Sequence[float] | None = None,
    ):
        super().__init__()
        _check(mode)
        self.mode, self.classes, self.alpha = mode, classes, float(alpha)
        self.from_logits, self.spacing = from_logits, spacing

    def _target(self, target: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        if self.mode == "multiclass":
            if target.ndim == like.ndim:
                target = target[:, 0]
            return F.one_hot(target.long(), like.shape[1]).movedim(-1, 1).to(like.dtype)
        if self.mode == "binary" and target.ndim == like.ndim - 1:
            target = target.unsqueeze(1)
        if target.shape != like.shape:
            raise ValueError(
                f"{self.mode} target of shape {tuple(target.shape)} does not fit logits of shape {tuple(like.shape)}"
            )
        return (target > 0.5).to(like.dtype)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, dist_maps: Any = None) -> torch.Tensor:
        probs = _probabilities(logits.float(), self.mode, self.from_logits)
        g = self._target(target, probs)
        with torch.no_grad():
            if self.mode == "multiclass":
                hard = F.one_hot(probs.argmax(1), probs.shape[1]).movedim(-1, 1).bool()
            else:
                hard = probs > 0.5
        idc = _channels(self.mode, probs.shape[1], self.classes)
        sp = as_spacing(self.spacing, probs.ndim - 2)
        d_p = _fields(hard[:, idc], sp).to(probs.dtype)
        d_g = _fields(g[:, idc] > 0.5, sp).to(probs.dtype)
        err = (probs[:, idc] - g[:, idc]) ** 2
        return (err * (d_p**self.alpha + d_g**self.alpha)).mean()

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, classes={self.classes}, alpha={self.alpha}"
