"""Edge and region maps that outline fit, region contrast and the image checks share: the Gaussian gradient
magnitude (separable passes with kernels made once), the field of view's rim, a region's one-pixel erosion.
Each equals the plain scipy expression it replaces, to the bit (tests/test_qc_outline_same.py)."""

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
    magnitude = np.sqrt(rows)
    total = np.zeros(a.shape[:2], np.float32)
    for c in range(a.shape[-1]):
        total += magnitude[..., c] ** 2
    total = np.sqrt(total)
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
    judged = edges[np.isfinite(edges)]
    live = judged[judged > 0.01 * float(judged.max())] if judged.size else judged
    return float(np.median(live)) if live.size else 0.0


def eroded(region: np.ndarray) -> np.ndarray:
    """``ndi.binary_erosion(region, border_value=0)`` of a 2-D bool array (the cross; a pixel on the array's rim
    has a neighbour outside), taken with slices: the same pixels without scipy's per-call setup, which was
    most of the time on small arrays."""
    inner = np.zeros_like(region)
    if region.shape[0] > 2 and region.shape[1] > 2:
        inner[1:-1, 1:-1] = region[1:-1, 1:-1] & region[:-2, 1:-1] & region[2:, 1:-1]
        inner[1:-1, 1:-1] &= region[1:-1, :-2] & region[1:-1, 2:]
    return inner
