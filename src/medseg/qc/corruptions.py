"""Realistic label corruptions, to measure how well a ranking finds wrong labels (benchmarks, tests).

Each function takes a binary mask (H, W) and a numpy Generator and returns
the corrupted mask; ``corrupt(kind, ...)`` picks one by name. Sizes are
relative to the object (its equivalent radius), so a corruption means about
the same at any resolution:

* ``shift``: the outline moved by 40-70 % of the object's radius;
* ``dilate`` / ``erode``: a sloppy outline, grown or shrunk by 30-45 % of the radius;
* ``missing``: the largest object left out (an empty mask for one-object images);
* ``extra``: an ellipse of about the object's size drawn where the image has nothing;
* ``other_frame``: another sample's mask (``other`` must be given);
* ``grey_noise``: as the original CVC-ClinicDB release: the 0/255 mask stored
  with a faint block of grey levels (8..112) away from the object and a few
  grey levels along its edge. Returns uint8 0..255, not bool: the grey values
  are the error (binarising at 128 gives the original back), which only a
  rule check of the raw file can see.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

KINDS = ("shift", "dilate", "erode", "missing", "extra", "other_frame", "grey_noise")


def radius(mask: np.ndarray) -> float:
    """Equivalent radius (pixels) of the mask's foreground; a tenth of the short side when empty."""
    n = int(np.count_nonzero(mask))
    return float(np.sqrt(n / np.pi)) if n else min(mask.shape) / 10.0


def shift(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    r = radius(mask)
    angle = rng.uniform(0, 2 * np.pi)
    dist = max(3.0, rng.uniform(0.4, 0.7) * r)
    dy, dx = round(dist * np.sin(angle)), round(dist * np.cos(angle))
    return ndi.shift(mask.astype(np.uint8), (dy, dx), order=0, mode="constant", cval=0).astype(bool)


def _disk(r: int) -> np.ndarray:
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return yy * yy + xx * xx <= r * r


def dilate(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    k = max(2, round(rng.uniform(0.3, 0.45) * radius(mask)))
    return ndi.binary_dilation(mask, structure=_disk(k))


def erode(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    k = max(2, round(rng.uniform(0.3, 0.45) * radius(mask)))
    out = ndi.binary_erosion(mask, structure=_disk(k))
    if not out.any():  # a tiny object erodes away: keep its core so this stays an outline error
        out = ndi.binary_erosion(mask, structure=_disk(max(1, k // 3)))
    return out


def missing(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    labels, n = ndi.label(mask)
    if n <= 1:
        return np.zeros_like(mask, dtype=bool)
    sizes = np.bincount(labels.ravel())[1:]
    return mask & (labels != int(np.argmax(sizes)) + 1)


def extra(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = mask.shape
    # at most a quarter of the frame across, so an object that fills most of it still leaves a place
    r = min(max(4.0, radius(mask) * rng.uniform(0.6, 1.0)), min(h, w) / 4)
    ry, rx = min(r * rng.uniform(0.8, 1.2), h / 4), min(r * rng.uniform(0.8, 1.2), w / 4)
    far = ndi.distance_transform_edt(~mask) > 1.5 * r if mask.any() else np.ones_like(mask, dtype=bool)
    inner = np.zeros_like(far)
    inner[int(ry) + 1 : h - int(ry) - 1, int(rx) + 1 : w - int(rx) - 1] = True
    candidates = np.argwhere(far & inner)
    if len(candidates) == 0:
        candidates = np.argwhere(inner & ~mask)
    if len(candidates) == 0:
        candidates = np.argwhere(inner)
    cy, cx = candidates[rng.integers(len(candidates))]
    yy, xx = np.mgrid[:h, :w]
    return mask | (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0)


def grey_noise(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.where(mask, 255, 0).astype(np.uint8)
    h, w = mask.shape
    bh, bw = max(4, h // 6), max(4, w // 6)
    free = ndi.distance_transform_edt(~mask) > max(bh, bw) if mask.any() else np.ones_like(mask, dtype=bool)
    spots = np.argwhere(free[: h - bh, : w - bw]) if free[: h - bh, : w - bw].any() else np.array([[0, 0]])
    y, x = spots[rng.integers(len(spots))]
    block = out[y : y + bh, x : x + bw]
    block[block == 0] = rng.integers(8, 113, size=int(np.count_nonzero(block == 0)), dtype=np.uint8)
    edge = mask & ~ndi.binary_erosion(mask)
    out[edge] = rng.integers(130, 250, size=int(np.count_nonzero(edge)), dtype=np.uint8)
    return out


_FUNCS = {
    "shift": shift,
    "dilate": dilate,
    "erode": erode,
    "missing": missing,
    "extra": extra,
    "grey_noise": grey_noise,
}


def corrupt(kind: str, mask: np.ndarray, rng: np.random.Generator, other: np.ndarray | None = None) -> np.ndarray:
    """``mask`` corrupted the ``kind`` way (bool, or uint8 0..255 for grey_noise)."""
    mask = np.asarray(mask) > 0
    if kind == "other_frame":
        if other is None or np.shape(other) != mask.shape:
            raise ValueError("other_frame needs another sample's mask of the same size as other=")
        return np.asarray(other) > 0
    if kind not in _FUNCS:
        from medseg.errors import UnknownNameError

        raise UnknownNameError("corruption", kind, list(KINDS))
    return _FUNCS[kind](mask, rng)
