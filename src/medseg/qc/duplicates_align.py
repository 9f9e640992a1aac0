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

import functools
import math
from typing import NamedTuple

import numpy as np

from medseg.datasets.groups import phase_shift
from medseg.qc.subpixel import shift, shifted

GREY_THUMB = 64
# pairs aligned by one inverse transform: on 64x64 thumbnails 8 take 60 us a pair against 81 one at a time
# (the numpy calls' own cost), 64 take 165 (the arrays outgrow the CPU's caches)
_BATCH = 8
# a copy is cropped by a few per cent at most; a larger "shift" is phase correlation locking onto texture
MAX_SHIFT = 0.15


def grey_thumb(g: np.ndarray) -> np.ndarray:
    """The whole grey image box-resized to 64x64 (float16: 8 KB per sample)."""
    return box_resize(g, GREY_THUMB).astype(np.float16)


def box_resize(a: np.ndarray, size: int) -> np.ndarray:
    """A 2-D array as float32, box-resized by Pillow to ``size`` x ``size`` (read-only float32 result). The
    same resize as ``np.asarray(Image.fromarray(a, mode="F").resize(...))``, bit for bit, without what
    ``fromarray`` and ``__array_interface__`` add in Python around it (a third of a small thumbnail's cost)."""
    from PIL import Image

    a = np.ascontiguousarray(a, np.float32)
    h, w = a.shape
    im = Image.frombuffer("F", (w, h), a, "raw", "F", 0, 1).resize((size, size), Image.Resampling.BOX)
    return np.frombuffer(im.tobytes("raw", "F"), np.float32).reshape(size, size)


@functools.lru_cache(maxsize=8)
def _window(h: int, w: int) -> np.ndarray:
    return np.outer(np.hanning(h), np.hanning(w))


def spectrum(grey: np.ndarray) -> np.ndarray:
    """The transform :func:`medseg.datasets.groups.phase_shift` takes of a grey thumbnail, kept per sample by
    the duplicate checks: a sample is in a pair with each near-identical frame of its video (2 of the 3 FFTs
    of every pair were a recomputation)."""
    a = grey.astype(np.float32)
    return np.fft.rfft2((a - a.mean()) * _window(*a.shape))


def spectral_shift(fa: np.ndarray, fb: np.ndarray, shape: tuple[int, int], subpixel: bool = False):
    """:func:`medseg.datasets.groups.phase_shift` from the two :func:`spectrum` (the same shift)."""
    from medseg.datasets.frame_similarity import spectral_peak

    return spectral_peak(fa, fb, shape, subpixel)


def magnitudes(greys: list[np.ndarray]) -> np.ndarray:
    """(n, k) float32: each grey thumbnail's magnitude spectrum (of the zero-mean thumbnail; a column of the
    half plane that stands for its mirror too counted twice), unit norm, zeros for a flat thumbnail.

    The dot product of two bounds the correlation of the pictures under any circular shift (Parseval, then
    Cauchy-Schwarz frequency by frequency: a shift changes phases only). A copy moved by a crop is not a
    circular shift (what comes in at one edge is new), so for :func:`aligned_correlation` it is an estimate,
    not a bound (how far below it fell: :data:`medseg.qc.duplicates_disagree.GATE_MARGIN`)."""
    a = np.stack(greys).astype(np.float32)
    f = np.abs(np.fft.rfft2(a - a.mean(axis=(1, 2), keepdims=True), axes=(1, 2)))
    w = a.shape[2]
    f[:, :, 1 : (w + 1) // 2] *= np.sqrt(2.0)  # the columns whose mirror rfft leaves out (not 0, not w / 2)
    f = f.reshape(len(a), -1)
    norm = np.linalg.norm(f, axis=1, keepdims=True)
    return (f / np.where(norm > 0, norm, 1.0)).astype(np.float32)


class Picture(NamedTuple):
    """A grey thumbnail as :func:`aligned_correlation` compares it, made once per sample (a sample is in a pair
    with each near-identical frame of its video): float32, its :func:`spectrum`, its zero-mean copy and that
    copy's energy, which ``_ncc`` of two whole thumbnails recomputed for every pair."""

    grey: np.ndarray
    spectrum: np.ndarray
    centred: np.ndarray
    energy: np.float32


def picture(grey: np.ndarray) -> Picture:
    a = grey.astype(np.float32)
    centred = a - a.mean()
    return Picture(a, spectrum(a), centred, (centred * centred).sum())


def pictures_of(greys: list[np.ndarray]) -> list[Picture]:
    """:func:`picture` of each grey thumbnail (one shape), each step one numpy call for all of them: numpy
    reduces and transforms each thumbnail of the stack as it does one alone, bit for bit (a test holds it to
    that), and a batch of 16 thumbnails' transforms takes 30 us each against 42 one at a time."""
    a = np.stack(greys).astype(np.float32)
    centred = a - a.mean(axis=(1, 2), keepdims=True)
    spectra = np.fft.rfft2(centred * _window(*a.shape[1:]), axes=(1, 2))
    return [Picture(*parts) for parts in zip(a, spectra, centred, (centred * centred).sum(axis=(1, 2)))]


def aligned_correlation(pa: Picture, pb: Picture, max_shift: float = 0.25) -> float:
    """:func:`medseg.datasets.groups.aligned_correlation` of two thumbnails (the same float32 arithmetic as
    ``_ncc``, with each thumbnail's share of it made once)."""
    return aligned_correlations([(pa, pb)], max_shift)[0]


def aligned_correlations(pairs: list[tuple[Picture, Picture]], max_shift: float = 0.25) -> list[float]:
    """:func:`aligned_correlation` of each pair of thumbnails of one shape, their shifts found by one inverse
    transform of ``_BATCH`` pairs at a time. Each pair's correlation surface is the one
    :func:`spectral_shift` computes, element for element."""
    return [corr for k in range(0, len(pairs), _BATCH) for corr in _batch(pairs[k : k + _BATCH], max_shift)]


def _batch(pairs: list[tuple[Picture, Picture]], max_shift: float) -> list[float]:
    h, w = shape = pairs[0][0].grey.shape
    cross = np.stack([pa.spectrum for pa, _ in pairs]) * np.conj(np.stack([pb.spectrum for _, pb in pairs]))
    surface = np.fft.irfft2(cross / (np.abs(cross) + 1e-9), s=shape)
    out = []
    for (pa, pb), peak in zip(pairs, surface.reshape(len(pairs), -1).argmax(1).tolist()):
        py, px = divmod(peak, w)
        dy = py - h if py > h // 2 else py
        dx = px - w if px > w // 2 else px
        out.append(_correlation_at(pa, pb, dy, dx, max_shift))
    return out


def _correlation_at(pa: Picture, pb: Picture, dy: int, dx: int, max_shift: float) -> float:
    """The better of the pair's correlation in place and that of the parts that overlap once ``b`` is moved
    by the whole pixels (dy, dx) (none beyond ``max_shift`` of a side)."""
    a, b = pa.grey, pb.grey
    h, w = a.shape
    d = float(np.sqrt(pa.energy * pb.energy))
    best = float((pa.centred * pb.centred).sum()) / d if d > 0 else 0.0
    if (dy or dx) and abs(dy) <= h * max_shift and abs(dx) <= w * max_shift:
        pa = a[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)]
        pb = b[max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
        best = max(best, _ncc(pa, pb))
    return best


def _moved(a: np.ndarray, dy: float, dx: float) -> np.ndarray:
    if not dy and not dx:
        return a
    return shift(a, dy, dx)


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
    return float(_soft_ious(ta, tb, [dy], [dx])[0, 0])


def _soft_ious(ta: dict, tb: dict, dys, dxs) -> np.ndarray:
    """:func:`_soft_iou` for every (dy, dx) of ``dys`` x ``dxs`` at once: shape (len(dys), len(dxs)).

    Only the box around both masks' covered pixels, widened by the largest
    half move and a pixel of interpolation, is moved: outside it both sides
    are 0 wherever they are read from, so min and max there add nothing.
    """
    dys = [float(v) for v in dys]
    dxs = [float(v) for v in dxs]
    classes = set(ta) | set(tb)
    if not classes:
        return np.ones((len(dys), len(dxs)))
    size = next(iter({**ta, **tb}.values())).shape[0]
    reach = math.ceil(max(abs(v) for v in (*dys, *dxs)) / 2) + 2
    windows = [[_overlap(dy, dx, size) for dx in dxs] for dy in dys]
    ious = np.empty((len(classes), len(dys), len(dxs)))
    for k, cid in enumerate(classes):
        a, b = ta.get(cid), tb.get(cid)
        cover = np.zeros((size, size), bool)
        for t in (a, b):
            if t is not None:
                cover |= t > 0
        if not cover.any():
            ious[k] = 1.0
            continue
        rows, cols = np.flatnonzero(cover.any(1)), np.flatnonzero(cover.any(0))
        y0, y1 = max(0, rows[0] - reach), min(size, rows[-1] + 1 + reach)
        x0, x1 = max(0, cols[0] - reach), min(size, cols[-1] + 1 + reach)
        empty = np.zeros((y1 - y0, x1 - x0), np.float32)
        ca = a[y0:y1, x0:x1].astype(np.float32) if a is not None else empty
        cb = b[y0:y1, x0:x1].astype(np.float32) if b is not None else empty
        ma = shifted(ca, [-v / 2 for v in dys], [-v / 2 for v in dxs])
        mb = shifted(cb, [v / 2 for v in dys], [v / 2 for v in dxs])
        ious[k] = _window_ratio(np.minimum(ma, mb), np.maximum(ma, mb), windows, y0, y1, x0, x1)
    return ious.mean(0)


def _window_ratio(low, high, windows, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """sum(low) / sum(high) over each try's window (1.0 where ``high`` sums to 0): ``low``, ``high``:
    (ny, nx, h, w) over the box rows y0:y1, columns x0:x1 of the thumbnail. A window cuts rows or
    columns only at the thumbnail's edges, so it mostly holds the whole box: one sum serves those."""
    small = low.sum((2, 3), dtype=np.float64)
    union = high.sum((2, 3), dtype=np.float64)
    for i, row in enumerate(windows):
        for j, (wy, wx) in enumerate(row):
            if wy.start <= y0 and wy.stop >= y1 and wx.start <= x0 and wx.stop >= x1:
                continue
            ry = slice(min(max(wy.start, y0), y1) - y0, max(min(wy.stop, y1), y0) - y0)
            rx = slice(min(max(wx.start, x0), x1) - x0, max(min(wx.stop, x1), x0) - x0)
            small[i, j] = low[i, j][ry, rx].sum(dtype=np.float64)
            union[i, j] = high[i, j][ry, rx].sum(dtype=np.float64)
    empty = union == 0
    return np.where(empty, 1.0, small / np.where(empty, 1.0, union))


def aligned(
    grey_a: np.ndarray, grey_b: np.ndarray, thumbs_a: dict, thumbs_b: dict, spectra: tuple | None = None
) -> tuple[float, float, tuple[float, float]]:
    """(mask IoU, picture correlation, (dy, dx) in grey-thumbnail pixels) with ``b`` moved onto ``a``.

    The shift is the one the pictures show (phase correlation of the grey
    thumbnails), scaled to the mask thumbnails' size. The IoU is the mean over
    classes of the soft IoU of the area thumbnails over the part both cover
    (1.0 for two empty masks); the correlation is that of the grey thumbnails
    there. A shift beyond ``MAX_SHIFT`` of the side, or one that correlates
    worse than none, is not applied. ``spectra``: the two thumbnails' :func:`spectrum` when kept.
    """
    a = grey_a.astype(np.float32)
    b = grey_b.astype(np.float32)
    still = (_soft_iou(thumbs_a, thumbs_b, 0.0, 0.0), _ncc(a, b), (0.0, 0.0))
    if spectra is not None:
        dy, dx = spectral_shift(*spectra, a.shape, subpixel=True)
    else:
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
    return float(_soft_ious(ta, tb, dy + steps, dx + steps).max())
