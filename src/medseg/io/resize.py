"""Whole-image resizing shared by training and inference, so both see an image at the same scale.

Images shrink with area averaging (no aliasing) and grow linearly; labels use
nearest neighbour so class ids stay class ids.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def resize_image(image: np.ndarray, size: Sequence[int] | None) -> np.ndarray:
    """(H, W, C) float32 resized to ``size`` = (h, w); area when shrinking (no aliasing), else linear."""
    if size is None or tuple(image.shape[:2]) == tuple(size):
        return image
    h, w = int(size[0]), int(size[1])
    shrink = h * w < image.shape[0] * image.shape[1]
    out = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out[..., None] if out.ndim == 2 else out


def resize_label(label: np.ndarray, size: Sequence[int] | None) -> np.ndarray:
    if size is None or tuple(label.shape[:2]) == tuple(size):
        return label
    h, w = int(size[0]), int(size[1])
    work = label.astype(np.uint8) if label.dtype == bool else label
    if work.dtype not in (np.uint8, np.uint16, np.int16, np.int32):
        work = work.astype(np.int32)
    out = cv2.resize(work, (w, h), interpolation=cv2.INTER_NEAREST)
    if label.ndim == 3 and out.ndim == 2:
        out = out[..., None]
    return out.astype(label.dtype, copy=False)
