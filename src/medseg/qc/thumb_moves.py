"""Moving a stack of small thumbnails, each by its own sub-pixel (dy, dx), with the arithmetic of the
one-at-a-time code it replaces, so the values are the same to the bit.

Neighbour fit (:mod:`medseg.qc.signal_neighbours`) moves each neighbour's grey thumbnail by the camera's
move to correlate it with the sample's (``scipy.ndimage.shift``, order 1, mode "nearest": only the centre
is compared, so only the centre is moved) and each neighbour's mask to compare outlines
(:func:`medseg.qc.subpixel.shift`: linear, zeros outside). One numpy call per step for all of a
sample's neighbours instead of a call per neighbour: on 64 px thumbnails the calls' own cost was most of
the time.
"""

from __future__ import annotations

import math

import numpy as np


def _taps(at: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(first, second, their weights) of linear interpolation at ``at`` along an axis of ``n`` pixels, as
    ``scipy.ndimage`` (order 1, mode "nearest") takes them: coordinates clamped to the axis, the second tap
    past the last pixel mirrored (its weight is 0 there), the second weight 1 minus the first."""
    at = np.minimum(np.maximum(at, 0.0), n - 1.0)
    start = np.floor(at)
    w0 = 1.0 - (at - start)
    first = start.astype(np.intp)
    second = first + 1
    second[second >= n] = max(n - 2, 0)
    return first, second, w0, 1.0 - w0


def moved_centres(movings: np.ndarray, moves: list[tuple[float, float]], cy: int, cx: int) -> np.ndarray:
    """``scipy.ndimage.shift(m.astype(np.float32), (dy, dx), order=1, mode="nearest")[cy:-cy, cx:-cx]`` of each
    ``m`` of ``movings`` (k, h, w) by its own (dy, dx), in one pass: (k, ...). Computed for those pixels only,
    with ndimage's arithmetic (double precision: each tap's value times its row weight times its column weight,
    summed in ndimage's order, cast to float32), so bit for bit the same; ndimage's per-call set-up was most of
    the time on a thumbnail."""
    k, h, w = movings.shape
    a = movings.astype(np.float32).astype(np.float64)
    dys, dxs = (np.array([m[i] for m in moves], dtype=np.float64)[:, None] for i in (0, 1))
    y0, y1, wy0, wy1 = (t[:, :, None] for t in _taps(np.arange(cy, h - cy, dtype=np.float64) - dys, h))
    x0, x1, wx0, wx1 = (t[:, None, :] for t in _taps(np.arange(cx, w - cx, dtype=np.float64) - dxs, w))
    flat, rows = a.reshape(-1), np.arange(k)[:, None, None] * (h * w)  # flat takes: faster than a[k, y, x]
    r0, r1 = rows + y0 * w, rows + y1 * w
    t = 0.0 + flat.take(r0 + x0) * wy0 * wx0
    t += flat.take(r0 + x1) * wy0 * wx1
    t += flat.take(r1 + x0) * wy1 * wx0
    t += flat.take(r1 + x1) * wy1 * wx1
    return t.astype(np.float32)


def shifted_each(stack: np.ndarray, moves: list[tuple[float, float]]) -> np.ndarray:
    """``subpixel.shift(stack[k], *moves[k])`` for every k, at once: (k, h, w) in ``stack``'s float type.

    subpixel's arithmetic per axis (x first, then y; float64): the value at ``i - s`` read between its two
    pixels, ``lo * (1 - f) + hi * f`` with pixels outside the picture 0, times whether ``i - s`` lies
    inside; here the pairs' pixels are taken from a zero-padded stack by flat index."""
    cols = _along_each(stack.astype(np.float64), 2, [m[1] for m in moves])
    return _along_each(cols, 1, [m[0] for m in moves]).astype(stack.dtype, copy=False)


def _along_each(a: np.ndarray, axis: int, shifts: list[float]) -> np.ndarray:
    """``a[k]`` (float64) moved by ``shifts[k]`` along ``axis`` (1: rows, 2: columns), as subpixel._along."""
    k, h, w = a.shape
    n = a.shape[axis]
    lo = [math.floor(-s) for s in shifts]
    f = np.array([-s - low for s, low in zip(shifts, lo)])
    pad = max(abs(v) for v in lo) + 2
    index = np.arange(n, dtype=np.float64)
    x = index[None, :] - np.array(shifts, dtype=np.float64)[:, None]
    inside = (x >= 0) & (x <= n - 1)
    src = np.arange(n)[None, :] + np.array(lo)[:, None] + pad  # (k, n): where each output reads, padded
    if axis == 2:
        padded = np.zeros((k, h, w + 2 * pad))
        padded[:, :, pad : pad + w] = a
        at = (np.arange(k) * (h * (w + 2 * pad)))[:, None, None] + (np.arange(h) * (w + 2 * pad))[None, :, None]
        first, fw, inside = at + src[:, None, :], f[:, None, None], inside[:, None, :]
        step = 1
    else:
        padded = np.zeros((k, h + 2 * pad, w))
        padded[:, pad : pad + h, :] = a
        at = (np.arange(k) * ((h + 2 * pad) * w))[:, None, None] + np.arange(w)[None, None, :]
        first, fw, inside = at + src[:, :, None] * w, f[:, None, None], inside[:, :, None]
        step = w
    flat = padded.reshape(-1)
    out = flat.take(first) * (1.0 - fw)
    out += flat.take(first + step) * fw
    out *= inside
    return out
