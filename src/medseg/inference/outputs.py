"""The Prediction and how probabilities become labels.

Labels: binary -> uint8 (H, W) with the class id 1 where p >= threshold;
multiclass -> class ids of the argmax channel (uint8, uint16 beyond id 255);
multilabel -> (H, W, C) bool, channel k true where p_k >= threshold (channel
order = the class map's classes). Probabilities are (C, H, W) float32, C = 1 for
binary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from medseg.datasets.classmap import ClassMap


@dataclass
class Prediction:
    """``labels`` as above; ``probs`` (C, H, W) float32; ``uncertainty`` (H, W) float32 in [0, 1]
    (normalised predictive entropy); ``variance`` (H, W) float32 over TTA / ensemble members, None
    with one member; ``meta``: device, precision, tile, tiles, batches, tta, members, window, times."""

    labels: np.ndarray
    probs: np.ndarray
    uncertainty: np.ndarray
    variance: np.ndarray | None
    classmap: ClassMap
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return self.classmap.task

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.probs.shape[-2:])


def activation(logits: torch.Tensor, task: str) -> torch.Tensor:
    """Probabilities from logits (N, C, H, W): softmax over classes for multiclass, else sigmoid."""
    logits = logits.float()
    return torch.softmax(logits, dim=1) if task == "multiclass" else torch.sigmoid(logits)


def labels_from_probs(probs: torch.Tensor, classmap: ClassMap, threshold: float = 0.5) -> np.ndarray:
    """Label map from (C, H, W) probabilities, as the module docstring says."""
    task = classmap.task
    if task == "binary":
        return (probs[0] >= threshold).to(torch.uint8).cpu().numpy()
    if task == "multilabel":
        return (probs >= threshold).permute(1, 2, 0).cpu().numpy()
    ids = [0] + classmap.ids
    dtype = np.uint8 if max(ids) <= 255 else np.uint16
    # numpy's argmax over the class axis: torch's over a non-innermost axis of a CPU tensor took 37 ms for
    # (4, 512, 512) on one thread (numpy: 6 ms), 15 % of a small model's forward pass; same ties (first)
    cpu = probs.device.type == "cpu"
    index = np.argmax(probs.float().numpy(), axis=0) if cpu else probs.argmax(0).cpu().numpy()
    if ids == list(range(len(ids))):
        return index.astype(dtype)
    return np.asarray(ids, dtype=dtype)[index]
