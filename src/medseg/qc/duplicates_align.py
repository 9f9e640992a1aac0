"""Aligning two near-identical pictures before comparing their masks.

A copy of a frame re-exported with a few pixels cropped or padded on one side
shows the same picture shifted; its mask, drawn on it, is shifted too.
Compared in place, two such masks of one polyp overlap at IoU 0.8 even when
they were copied, so the shift is measured on the pictures (phase correlation
of 64x64 grey thumbnails, refined below a pixel) and the second mask's area
thumbnails are moved by it before their IoU is taken. Only the part both
thumbnails still cover counts: what moved in from outside the frame is
unknown.

All thumbnails are the whole image squashed to 64x64 (the mask's per-class
area thumbnails of :mod:`medseg.qc.duplicates` share that grid), so pictures
of different resolutions compare pixel for pixel and a shift in thumbnail
pixels moves the mask thumbnails by the same amount.
"""

from __future__ import annotations

import math

import numpy as np

from medseg.datasets.groups import phase_shift

GREY_THUMB = 64
# a copy is cropped by a few per cent at most; a larger "shift" is phase correlation locking onto texture
MAX_SHIFT = 0.15


def grey_thumb(g: np.ndarray) -> np.ndarray:
    """The whole grey image box-resized to 64x64 (float16: 8 KB per sample)."""
    from PIL import Image

    t = Image.fromarray(g.astype(np.float32), mode="F").resize((GREY_THUMB, GREY_THUMB), Image.Resampling.BOX)
    return np.asarray(t).astype(np.float16)


def _moved(a: np.ndarray, dy: float, dx: float) -> np.ndarray:
    from scipy import ndimage

    if not dy and not dx:
        return a
    return ndimage.shift(a, (dy, dx), order=1, mode="constant", cval=0.0, prefilter=False)


def _overlap(dy: float, dx: float, n: int) -> tuple[slice, slice]:
    """The rows and columns a thumbnail moved by (dy, dx) still covers with its own pixels."""

    def axis(d: float) -> slice:
        return slice(math.ceil(d), n) if d > 0 else slice(0, n + math.floor(d))

    return axis(dy), axis(dx)


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    d = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / d if d > 0 else 0.0


def _soft_iou(ta: dict, tb: dict, dy: float, dx: float) -> float:
    """Mean per-class IoU of area thumbnails (uint8, 255 = covered), ``b`` moved by (dy, dx) onto ``a``.

    Each side moves half the way: both then carry the same interpolation blur,
    which a one-sided move would add to ``b`` alone (a shifted copy of a mask
    would lose about 0.01 of IoU to it).
    """
    ious = []
    size = next(iter({**ta, **tb}.values())).shape[0] if ta or tb else 0
    window = _overlap(dy, dx, size)
    empty = np.zeros((size, size), np.float32)
    for cid in set(ta) | set(tb):
        a = _moved(ta[cid].astype(np.float32) if cid in ta else empty, -dy / 2, -dx / 2)[window]
        b = _moved(tb[cid].astype(np.float32) if cid in tb else empty, dy / 2, dx / 2)[window]
        union = float(np.maximum(a, b).sum())
        ious.append(float(np.minimum(a, b).sum()) / union if union else 1.0)
    return float(np.mean(ious)) if ious else 1.0


def aligned(
    grey_a: np.ndarray, grey_b: np.ndarray, thumbs_a: dict, thumbs_b: dict
) -> tuple[float, float, tuple[float, float]]:
    """(mask IoU, picture correlation, (dy, dx) in grey-thumbnail pixels) with ``b`` moved onto ``a``.

    The shift is the one the pictures show (phase correlation of the grey
    thumbnails), scaled to the mask thumbnails' size. The IoU is the mean over
    classes of the soft IoU of the area thumbnails over the part both cover
    (1.0 for two empty masks); the correlation is that of the grey thumbnails
    there. A shift beyond ``MAX_SHIFT`` of the side, or one that correlates
    worse than none, is not applied.
    """
    a = grey_a.astype(np.float32)
    b = grey_b.astype(np.float32)
    still = (_soft_iou(thumbs_a, thumbs_b, 0.0, 0.0), _ncc(a, b), (0.0, 0.0))
    dy, dx = phase_shift(a, b, subpixel=True)
    n = a.shape[0]
    if abs(dy) < 0.05 and abs(dx) < 0.05 or max(abs(dy), abs(dx)) > n * MAX_SHIFT:
        return still
    window = _overlap(dy, dx, n)
    corr = _ncc(a[window], _moved(b, dy, dx)[window])
    if corr <= still[1]:
        return still
    sizes = [t.shape[0] for t in (*thumbs_a.values(), *thumbs_b.values())]
    scale = sizes[0] / n if sizes else 1.0
    return _best_iou(thumbs_a, thumbs_b, dy * scale, dx * scale, scale), corr, (dy, dx)


def _best_iou(ta: dict, tb: dict, dy: float, dx: float, scale: float) -> float:
    """The best IoU within half a grey-thumbnail pixel of the shift (in mask-thumbnail pixels).

    Phase correlation of a cropped copy misses the shift by up to 0.2 px (its
    parabola is pulled towards whole pixels); on 1-4 % masks of CVC-ClinicDB
    that alone cost up to 0.05 of IoU. Half a pixel of 64 is under 1 % of the
    side: no eroded, dilated or redrawn outline gets in under it.
    """
    steps = np.arange(-0.5, 0.51, 0.25) * scale
    return max(_soft_iou(ta, tb, dy + oy, dx + ox) for oy in steps for ox in steps)
