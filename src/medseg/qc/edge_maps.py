"""Edge and region maps that outline fit, region contrast and the image checks share: the Gaussian gradient
magnitude (separable passes with kernels made once), the field of view's rim, a region's one-pixel erosion.
Each equals the plain scipy expression it replaces, to the bit (tests/test_qc_outline_same.py,
tests/test_qc_edge_maps_fast.py)."""

from __future__ import annotations

import functools

import numpy as np


def edge_strength(image: np.ndarray, channels_last: bool, field: np.ndarray | None = None) -> np.ndarray:
    """(H, W) float32 Gaussian gradient magnitude, channels combined as the root of the sum of squares.

    ``field``: the field of view (bool); edges within ``3 sigma`` of its rim become NaN (not judged),
    so that an outline never seems better or worse for running along the rim of an endoscope's
    black surround.
    """
    a = np.asarray(image, dtype=np.float32)
    if not channels_last:
        a = a[..., None]
    a = a[..., : min(a.shape[-1], 3)]
    sigma = max(1.0, min(a.shape[:2]) / 150.0)
    # each channel's gaussian_gradient_magnitude, the channels filtered at once (the same passes and float32
    # roundings as one call per channel: equal to the bit, 0.5 -> 0.3 ms on a 64x48 RGB frame); the passes
    # are gaussian_filter's own (axis 0, then axis 1, into one float32 output) with the kernels made once
    rows = gaussian_passes(a, sigma, (1, 0))
    cols = gaussian_passes(a, sigma, (0, 1))
    np.multiply(rows, rows, out=rows)
    rows += np.multiply(cols, cols, out=cols)
    # the channels' magnitudes squared again and summed in channel order, as ``0 + m0**2 + m1**2 + m2**2``
    # was (0 + x is x: the squares are never -0), in place instead of a temporary per channel
    squares = np.square(np.sqrt(rows, out=rows), out=rows)
    total = squares[..., 0].copy()
    for c in range(1, a.shape[-1]):
        total += squares[..., c]
    np.sqrt(total, out=total)
    if field is not None and not field.all() and field.shape == total.shape:
        total[near_outside(field, 3 * sigma)] = np.nan
    return total


def near_outside(field: np.ndarray, radius: float) -> np.ndarray:
    """``ndi.distance_transform_edt(field) <= radius`` for a 2-D bool ``field``, the same pixels (tested).

    The pixels within ``radius`` of one outside the field are the outside dilated by the disk of offsets
    ``sqrt(dy**2 + dx**2) <= radius`` (the distance transform's own float64 square roots of whole numbers).
    Each row of that disk is a run of columns, so the dilation is a few horizontal runs, each shifted up and
    down: some 20 boolean slice operations where the distance transform took 6 ms on a 384 x 288 frame.
    """
    outside = ~field
    reach = int(radius)
    widths = []  # the disk's half-width in columns at each row offset 0..reach (non-increasing)
    for dy in range(reach + 1):
        dx = 0
        while np.sqrt(float(dy * dy + (dx + 1) ** 2)) <= radius:
            dx += 1
        widths.append(dx)
    runs, run, done = {}, outside.copy(), 0  # width -> the outside dilated along rows by that many columns
    for width in sorted(set(widths)):
        while done < width:
            done += 1
            run[:, done:] |= outside[:, :-done]
            run[:, :-done] |= outside[:, done:]
        runs[width] = run.copy()
    out = runs[widths[0]].copy()
    for dy in range(1, min(reach, field.shape[0] - 1) + 1):
        out[dy:] |= runs[widths[dy]][:-dy]
        out[:-dy] |= runs[widths[dy]][dy:]
    return out


def gaussian_passes(a: np.ndarray, sigma: float, orders: tuple[int, int]) -> np.ndarray:
    """``ndi.gaussian_filter(a, (sigma, sigma, 0), order=(*orders, 0))`` for float32 ``a`` (2-D: ``(sigma,
    sigma)``, ``order=orders``), the same to the bit: the first two axes filtered, any others left alone."""
    from scipy import ndimage as ndi

    out = np.empty_like(a)
    source = a
    for axis, order in enumerate(orders):
        ndi.correlate1d(source, _gaussian_weights(sigma, order), axis, out, "reflect", 0.0, 0)
        source = out
    return out


@functools.lru_cache(maxsize=64)
def _gaussian_weights(sigma: float, order: int) -> np.ndarray:
    """The weights ``ndi.gaussian_filter1d`` correlates with (truncate 4), read off its response to a unit
    impulse: each output is one weight times 1 plus zeros, so exact."""
    from scipy import ndimage as ndi

    radius = int(4.0 * float(sigma) + 0.5)
    impulse = np.zeros(2 * radius + 1)
    impulse[radius] = 1.0
    weights = ndi.gaussian_filter1d(impulse, sigma, order=order, mode="constant")[::-1].copy()
    weights.setflags(write=False)
    return weights


def gradient_magnitude(a: np.ndarray, sigma: float) -> np.ndarray:
    """``ndi.gaussian_gradient_magnitude(a, sigma)`` of a 2-D float32 array, the same to the bit."""
    rows, cols = gaussian_passes(a, sigma, (1, 0)), gaussian_passes(a, sigma, (0, 1))
    np.multiply(rows, rows, out=rows)
    rows += np.multiply(cols, cols, out=cols)
    return np.sqrt(rows, out=rows)


def typical_strength(edges: np.ndarray) -> float:
    """Median edge strength over the pixels that are not flat (> 1 % of the strongest edge)."""
    top, bottom = (edges.max(), edges.min()) if edges.size else (np.nan, np.nan)
    # finite ends: every pixel is judged, and the mask and its copy are not needed
    judged = edges.ravel() if np.isfinite(top) and np.isfinite(bottom) else edges[np.isfinite(edges)]
    live = judged[judged > 0.01 * float(judged.max())] if judged.size else judged
    return median(live) if live.size else 0.0


def median(values: np.ndarray) -> float:
    """``float(np.median(values))`` of a 1-D float array without NaN, the same to the bit (tested).

    np.median partitions at both middle positions and the last (to find NaNs), then takes np.mean of the two
    middle values: one partition at the lower middle and the minimum of what lies above it give the same two
    order statistics in a third of the time, and their mean is ``(lo + hi) / 2`` in the array's own float
    type, as np.mean sums and divides (halving is exact).
    """
    n = values.size
    k = (n - 1) // 2
    part = np.partition(values, k)
    lo = part[k]
    if n % 2:
        return float(lo)
    hi = part[k + 1 :].min()
    return float((lo + hi) / values.dtype.type(2))


def eroded(region: np.ndarray) -> np.ndarray:
    """``ndi.binary_erosion(region, border_value=0)`` of a 2-D bool array (the cross; a pixel on the array's rim
    has a neighbour outside), taken with slices of the flattened array: the same pixels without scipy's
    per-call setup, which was most of the time on small arrays (14.6 -> 5.7 us on a 30 x 40 window)."""
    h, w = region.shape
    if h <= 2 or w <= 2:
        return np.zeros_like(region)
    # on the flattened array the cross's neighbours are the pixels 1 and ``w`` away, so the four ANDs run
    # over one contiguous run each instead of 2-D slices; a row's first and last pixels wrongly see the
    # neighbouring row's pixel across the wrap, and are on the rim (cleared) anyway
    flat = np.ascontiguousarray(region).ravel()
    inner = np.zeros(h * w, bool)
    core = inner[w : h * w - w]
    np.logical_and(flat[w : h * w - w], flat[: h * w - 2 * w], out=core)
    core &= flat[2 * w :]
    core &= flat[w - 1 : h * w - w - 1]
    core &= flat[w + 1 : h * w - w + 1]
    inner = inner.reshape(h, w)
    inner[:, 0] = False
    inner[:, -1] = False
    return inner
