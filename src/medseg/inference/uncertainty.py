"""Per-pixel uncertainty of a prediction, for display and for ranking labels in QC.

``predictive_entropy``: the entropy of the (mean) probabilities divided by its
maximum, so 0 is certain and 1 is a coin toss whatever the number of classes:
binary over (p, 1-p), multiclass over the classes (/ log K), multilabel as the
mean of each channel's binary entropy. ``member_variance``: how much the TTA or
ensemble members disagree: the variance over members of each probability
channel, averaged over channels (for binary, simply the variance of p).
"""

from __future__ import annotations

import math

import torch


def _binary_entropy(p: torch.Tensor) -> torch.Tensor:
    # special.entr is -x ln x with entr(0) = 0: no clamping and one pass per term
    h = torch.special.entr(p)
    h += torch.special.entr(1 - p)
    return h.mul_(1 / math.log(2))


def predictive_entropy(probs: torch.Tensor, task: str) -> torch.Tensor:
    """(H, W) float32 in [0, 1] from probabilities (C, H, W) (binary: C = 1)."""
    p = probs.float()
    if task == "multiclass":
        k = p.shape[0]
        if k < 2:
            return torch.zeros(p.shape[1:], dtype=torch.float32, device=p.device)
        h = torch.special.entr(p).sum(0).mul_(1 / math.log(k))
    elif task in ("binary", "multilabel"):
        h = _binary_entropy(p).mean(0)
    else:
        raise ValueError(f"unknown task {task!r}; valid: binary, multiclass, multilabel")
    return h.clamp_(0.0, 1.0)


def member_variance(members: torch.Tensor) -> torch.Tensor:
    """(H, W) float32 from member probabilities (M, C, H, W): population variance over M, mean over C."""
    return members.float().var(dim=0, unbiased=False).mean(0)
