"""The auxiliary heads (``ModelSpec.aux``) and their targets.

``aux="segmentation"`` (smp architectures): PSPNet's auxiliary loss (Zhao et
al. 2017, section 3.3; the ADE20K "ppm_deepsup" models of CSAIL's
semantic-segmentation-pytorch): ``SegmentationAuxHead`` predicts the masks
from the encoder stage before the deepest one the decoder uses (3x3 conv,
BN, ReLU, dropout 0.1, 1x1 conv, upsampled to the input), only while the
model is in training mode: the PSPNet paper abandons the branch at test
time, so evaluation, the Predictor and ONNX export never run it and
``model.last_aux`` is None in eval mode. Its loss is the task's
cross-entropy (``segmentation_aux_loss``).

``aux=True`` / ``"presence"``: a model predicts, besides the masks, which
classes are present anywhere in the image: smp architectures use smp's own
``aux_params`` head (pooled bottleneck features, dropout, linear); the
project's own U-Nets use ``PooledClassifier`` on their bottleneck. It runs
in eval mode too (validation scores it).

The model's ``forward`` still returns only the segmentation logits (so every
caller, the Predictor and ONNX export keep working); the aux logits of the
last forward are left in ``model.last_aux`` (B, classes), ``None`` without
the head. The aux target is per-class presence in the image, which
``presence_targets`` derives from the segmentation target, e.g.::

    logits = model(x)
    loss = seg_loss(logits, y) + 0.3 * F.binary_cross_entropy_with_logits(
        model.last_aux, presence_targets(y, spec.task, spec.classes))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PooledClassifier(nn.Sequential):
    """Global average pooling, dropout, linear: logits (B, classes) from (B, C, h, w) features."""

    def __init__(self, in_channels: int, classes: int, dropout: float = 0.2):
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Dropout(dropout), nn.Linear(in_channels, classes))


class SegmentationAuxHead(nn.Sequential):
    """3x3 conv (to a quarter of the channels, at least 8), BN, ReLU, dropout 0.1, 1x1 conv: mask logits."""

    def __init__(self, in_channels: int, classes: int, dropout: float = 0.1):
        mid = max(8, in_channels // 4)
        super().__init__(
            nn.Conv2d(in_channels, mid, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
            nn.Conv2d(mid, classes, 1),
        )

    def logits(self, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(B, classes, *size) logits from one encoder stage's features."""
        return F.interpolate(self(features), size=size, mode="bilinear", align_corners=False)


def segmentation_aux_loss(aux_logits: torch.Tensor, target: torch.Tensor, task: str) -> torch.Tensor:
    """The task's cross-entropy of aux mask logits (B, classes, H, W) against the segmentation target.

    ``multiclass``: labels (B, H, W) (or class probabilities (B, classes, H, W)
    from mixing); ``binary`` / ``multilabel``: 0/1 (or mixed) channels (B, C, H, W).
    """
    if task == "multiclass":
        if target.ndim == 4 and target.shape[1] == 1:
            target = target[:, 0]
        return F.cross_entropy(aux_logits, target if target.is_floating_point() and target.ndim == 4 else target.long())
    if task in ("binary", "multilabel"):
        if target.ndim == 3:
            target = target[:, None]
        return F.binary_cross_entropy_with_logits(aux_logits, target.to(aux_logits))
    raise ValueError(f"unknown task {task!r}; valid: binary, multiclass, multilabel")


def presence_targets(target: torch.Tensor, task: str, classes: int) -> torch.Tensor:
    """Per-class presence (B, classes) float in {0, 1} from a segmentation target.

    ``binary``: target (B, H, W) or (B, 1, H, W), presence of any foreground.
    ``multiclass``: integer labels (B, H, W) in [0, classes) (background 0
    included, so channel 0 says whether any background is visible).
    ``multilabel``: (B, classes, H, W) of 0/1, one channel per class.
    """
    if task == "multiclass":
        if target.ndim == 4 and target.shape[1] == 1:
            target = target[:, 0]
        if target.ndim != 3:
            raise ValueError(f"a multiclass target is (B, H, W) of labels, got shape {tuple(target.shape)}")
        flat = target.long().flatten(1)  # labels outside [0, classes), e.g. an ignore index, count for nothing
        return torch.stack([(flat == c).any(dim=1) for c in range(classes)], dim=1).float()
    if task == "binary":
        flat = target.reshape(target.shape[0], -1)
        return (flat > 0).any(dim=1, keepdim=True).float()
    if task == "multilabel":
        if target.ndim != 4 or target.shape[1] != classes:
            raise ValueError(f"a multilabel target is (B, {classes}, H, W), got shape {tuple(target.shape)}")
        return (target.flatten(2) > 0).any(dim=2).float()
    raise ValueError(f"unknown task {task!r}; valid: binary, multiclass, multilabel")
