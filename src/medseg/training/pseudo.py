"""Pseudo-labelling (seed 002): confident predictions on unlabelled images become training samples.

From ``pseudo.start_epoch`` on (0-based epochs), before each epoch the current
model predicts every loadable image of ``pseudo.unlabelled_dir`` (through the
Predictor's ``forward_tiles``, on the images exactly as the training pipeline
prepares them: same window, same resize). A pixel is confident when its
highest class probability is >= ``prob_threshold`` (binary: p >= t or
p <= 1 - t; multilabel: every channel so). An image whose confident fraction
is >= ``min_confident_fraction`` joins that epoch's training set with its
hard predicted labels (argmax / p >= 0.5) on *all* pixels: unconfident pixels
keep their hard label rather than being ignored, which keeps every loss usable
unchanged; the fraction threshold bounds how many such pixels there are. The
most confident images come first when ``max_samples`` caps the count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg.datasets.classmap import ClassMap
from medseg.datasets.files import is_junk
from medseg.errors import MedsegError
from medseg.models.spec import ModelSpec, Preprocessing
from medseg.training.config import PseudoLabelConfig
from medseg.training.data import Decoded, decode_image, standardise

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".nii", ".nii.gz", ".gif")


def unlabelled_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursively), by suffix; junk (hidden, thumbs) skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MedsegError(f"pseudo.unlabelled_dir {folder} is not a folder")
    files = [
        p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not is_junk(p) and any(p.name.lower().endswith(s) for s in IMAGE_SUFFIXES)
    ]
    return files


def confident_fraction(probs: torch.Tensor, task: str, threshold: float) -> torch.Tensor:
    """Per image (N,), the share of pixels predicted with confidence >= ``threshold``."""
    if task == "multiclass":
        ok = probs.max(dim=1).values >= threshold
    else:
        ok = ((probs >= threshold) | (probs <= 1.0 - threshold)).all(dim=1)
    return ok.flatten(1).float().mean(1)


def hard_labels(probs: torch.Tensor, task: str) -> np.ndarray:
    """(N, H, W) channel indices (binary / multiclass) or (N, H, W, C) bool (multilabel)."""
    if task == "multiclass":
        return probs.argmax(1).to(torch.uint8 if probs.shape[1] < 256 else torch.int32).cpu().numpy()
    if task == "binary":
        return (probs[:, 0] >= 0.5).to(torch.uint8).cpu().numpy()
    return (probs >= 0.5).permute(0, 2, 3, 1).cpu().numpy()


@dataclass
class PseudoLabeler:
    """Predicts the unlabelled images with the model being trained and keeps the confident ones."""

    config: PseudoLabelConfig
    spec: ModelSpec
    classmap: ClassMap
    preprocessing: Preprocessing
    image_size: Any
    device: torch.device
    precision: str = "fp32"
    batch_size: int = 4
    cache_mb: float = 512.0
    paths: list[Path] = field(default_factory=list)
    _cache: dict[int, Any] = field(default_factory=dict, repr=False)
    _cached_bytes: int = 0

    def __post_init__(self) -> None:
        self.paths = unlabelled_images(self.config.unlabelled_dir)

    def active(self, epoch: int) -> bool:
        return self.config.enabled and epoch >= self.config.start_epoch

    def _decoded(self, i: int) -> tuple[np.ndarray, tuple] | None:
        hit = self._cache.get(i)
        if hit is not None:
            return hit
        from medseg.io import load

        try:
            image = load(self.paths[i])
            if image.spatial_ndim != 2:
                return None
            out = decode_image(image, self.preprocessing, self.image_size)
        except (MedsegError, ValueError, OSError):
            return None  # "every loadable image": the rest is counted as skipped
        if self._cached_bytes + out[0].nbytes <= self.cache_mb * 2**20:
            self._cache[i] = out
            self._cached_bytes += out[0].nbytes
        return out

    def label(self, model: torch.nn.Module) -> tuple[list[Decoded], dict[str, int]]:
        """(pseudo-labelled samples, counts). Leaves ``model`` in eval mode: the caller trains it again."""
        from medseg.inference.predictor import Predictor

        predictor = Predictor.from_model(
            model,
            self.spec,
            self.classmap,
            self.preprocessing,
            device=self.device,
            precision=self.precision,
            fold_bn=False,
            channels_last=False,
            batch_size=self.batch_size,
        )
        scored: list[tuple[float, Decoded]] = []
        skipped = 0
        loaded = [(i, self._decoded(i)) for i in range(len(self.paths))]
        skipped = sum(d is None for _, d in loaded)
        loaded = [(i, d) for i, d in loaded if d is not None]
        for start in range(0, len(loaded), self.batch_size):
            chunk = loaded[start : start + self.batch_size]
            shapes = {d[0].shape for _, d in chunk}
            groups = [chunk] if len(shapes) == 1 else [[c] for c in chunk]  # native sizes may differ
            for group in groups:
                x = torch.from_numpy(np.stack([standardise(d[0], self.preprocessing) for _, d in group])).to(
                    self.device
                )
                probs = predictor.forward_tiles(x).float()
                fractions = confident_fraction(probs, self.classmap.task, self.config.prob_threshold).tolist()
                labels = hard_labels(probs, self.classmap.task)
                for (i, (image, spacing)), frac, lab in zip(group, fractions, labels):
                    if frac >= self.config.min_confident_fraction:
                        scored.append((frac, Decoded(f"pseudo:{self.paths[i].name}", image, lab, tuple(spacing))))
        scored.sort(key=lambda t: -t[0])
        if self.config.max_samples is not None:
            scored = scored[: self.config.max_samples]
        kept = [d for _, d in scored]
        return kept, {"pseudo_added": len(kept), "pseudo_candidates": len(loaded), "pseudo_skipped": skipped}
