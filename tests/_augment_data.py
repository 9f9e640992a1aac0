"""Samples for the augmentation tests whose pixels say where the mask must be.

Channel 0 (or the grey value) encodes the class id as ``id * step``, so after
any geometric transform the mask must equal ``round(value / step)`` wherever
the mask is locally constant; the other channels carry texture that is never
0, so a pixel that is 0 everywhere was filled by a border or a dropout hole.
Multilabel channels are functions of the ids (``multilabel_of``), overlapping,
so after a transform they must equal ``multilabel_of(mask)`` exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

STEP = 60


def id_mask(h: int = 64, w: int = 80) -> np.ndarray:
    """ids 0..3: an off-centre rectangle, a disc, a bar: nothing symmetric under a flip."""
    yy, xx = np.mgrid[:h, :w]
    m = np.zeros((h, w), np.int64)
    m[h // 8 : h // 2, w // 10 : w // 2] = 1
    m[(yy - 0.65 * h) ** 2 + (xx - 0.7 * w) ** 2 < (0.2 * h) ** 2] = 2
    m[int(0.75 * h) : int(0.9 * h), w // 8 : int(0.45 * w)] = 3
    return m


def multilabel_of(mask: np.ndarray) -> np.ndarray:
    """(H, W, 3) bool, overlapping: 'any organ', 'ids 2..3', 'ids 1 or 3'."""
    return np.stack([mask >= 1, mask >= 2, (mask == 1) | (mask == 3)], axis=-1)


def texture(shape: tuple[int, int], lo: int, hi: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(lo, hi, shape)


def rgb_sample(h: int = 64, w: int = 80) -> tuple[np.ndarray, np.ndarray]:
    m = id_mask(h, w)
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = m * STEP + texture((h, w), 0, 20)  # texture < STEP/2 keeps the rounding exact
    img[..., 1] = texture((h, w), 1, 256, seed=1)
    img[..., 2] = np.linspace(1, 255, w, dtype=np.uint8)[None, :]
    return img, m


def encode_real(image: np.ndarray, mask: np.ndarray, step: int = 200) -> np.ndarray:
    """A real RGB frame with channel 0 replaced by the mask code (texture kept in 1 and 2)."""
    out = image.copy()
    out[..., 0] = mask.astype(np.uint8) * step + 10
    return out


def misaligned_fraction(image: np.ndarray, mask: np.ndarray, step: int = STEP) -> float:
    """Share of locally constant mask pixels whose encoded id disagrees with the mask."""
    code = image[..., 0] if image.ndim == 3 else image
    decoded = np.rint(code.astype(np.float64) / step)
    flat = image if image.ndim == 2 else image[..., :3]
    filled = (flat == 0) if flat.ndim == 2 else (flat == 0).all(axis=-1)
    interior = ndimage.maximum_filter(mask, size=3) == ndimage.minimum_filter(mask, size=3)
    valid = interior & ~filled
    assert valid.sum() > 0.3 * mask.size, "too few pixels left to compare"
    return float(np.mean(decoded[valid] != mask[valid]))


def cvc_sample(cvc_dir: Path, stem: str = "1") -> tuple[np.ndarray, np.ndarray]:
    from medseg.io import load
    from medseg.io.masks import binarise

    image = load(cvc_dir / "images" / f"{stem}.png").array
    mask, _ = binarise(cvc_dir / "masks" / f"{stem}.png")
    return image, mask.astype(np.int64)
