"""Inputs the inference benchmarks share: a photo-like test image, ImageNet statistics, a device sync."""

from __future__ import annotations

import numpy as np
import torch

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer measures it (nothing to wait for on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def photo_like(size: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB uint8 image with some noise: like a photo, so the network sees structure."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([np.sin(7 * yy + 3 * xx), np.cos(5 * xx - 2 * yy), np.sin(9 * xx * yy)], -1)
    return np.clip(127 + 90 * base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
