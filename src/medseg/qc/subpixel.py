"""Moving small thumbnails by a fraction of a pixel, many shifts at once.

QC compares masks of near-identical frames and of neighbouring video frames
after moving one by the shift their pictures show, and the duplicate check
tries 25 shifts around it per pair. ``scipy.ndimage.shift`` (linear, zeros
outside) did that one shift and one picture per call, at about half a
millisecond for a 128x128 thumbnail: 46 of the 85 s of QC over 2,000 frames.
Linear interpolation by a constant shift is a weighted sum of two slices of
the picture per axis (padded with zeros), done for a row of shifts at once.
The arithmetic is ndimage's (double precision, cast back to the input's type;
a point whose source lies outside the picture on either axis is 0), so the
moved thumbnails equal ndimage's to float32 rounding (tested against it on
random shifts).
"""

from __future__ import annotations

import math

import numpy as np


def _along(a: np.ndarray, axis: int, shifts: list[float], out: np.ndarray) -> None:
    """``out[k]`` = ``a`` (float64) moved by ``shifts[k]`` along ``axis`` (of ``a``)."""
    n = a.shape[axis]
    pad = int(max(math.ceil(abs(s)) for s in shifts)) + 1
    shape = list(a.shape)
    shape[axis] += 2 * pad
    padded = np.zeros(shape)
    inner = [slice(None)] * a.ndim
    inner[axis] = slice(pad, pad + n)
    padded[tuple(inner)] = a
    index = np.arange(n, dtype=np.float64)
    bcast = [1] * a.ndim
    bcast[axis] = n
    lo_at, hi_at = [slice(None)] * a.ndim, [slice(None)] * a.ndim
    for k, s in enumerate(shifts):
        x = index - s  # where each output pixel reads from, as ndimage computes it
        lo = math.floor(-s)
        f = -s - lo
        inside = ((x >= 0) & (x <= n - 1)).reshape(bcast)
        lo_at[axis] = slice(pad + lo, pad + lo + n)
        hi_at[axis] = slice(pad + lo + 1, pad + lo + 1 + n)
        o = out[k]
        np.multiply(padded[tuple(lo_at)], 1.0 - f, out=o)
        o += padded[tuple(hi_at)] * f
        o *= inside


def shifted(a: np.ndarray, dys, dxs) -> np.ndarray:
    """``a`` (2-D) moved by every (dy, dx) of ``dys`` x ``dxs``: shape (len(dys), len(dxs), *a.shape), in
    ``a``'s float type; ``out[i, j][y, x] = a[y - dys[i], x - dxs[j]]``, linear between pixels, 0 outside
    (``scipy.ndimage.shift(a, (dy, dx), order=1, mode="constant", cval=0, prefilter=False)``)."""
    dys = [float(v) for v in np.atleast_1d(dys)]
    dxs = [float(v) for v in np.atleast_1d(dxs)]
    h, w = a.shape
    # along x first, once; then along y over that stack, where the slices are whole rows
    cols = np.empty((len(dxs), h, w))
    _along(a.astype(np.float64, copy=False), 1, dxs, cols)
    out = np.empty((len(dys), len(dxs), h, w))
    _along(cols, 1, dys, out)
    dtype = a.dtype if np.issubdtype(a.dtype, np.floating) else np.float64
    return out.astype(dtype, copy=False)


def shift(a: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """``a`` moved by one (dy, dx) (see :func:`shifted`)."""
    return shifted(a, [dy], [dx])[0, 0]
