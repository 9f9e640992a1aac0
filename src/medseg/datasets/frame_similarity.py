"""What frame grouping compares (:mod:`medseg.datasets.groups`): each frame's colour histogram and grey
thumbnail, and the correlation of two thumbnails aligned by phase correlation.

Thumbnails are read in worker processes when a pool is given (:mod:`medseg.process_pool`), and only integers
are kept of each (``_describe``), so 100,000 frames hold about 3.5 KB each.
"""

from __future__ import annotations

import functools
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from medseg.errors import ReadError
from medseg.io.limits import open_image
from medseg.process_pool import chunked, ordered_map

# Thumbnail geometry: small enough to decode 600 frames in about a second,
# large enough that colour and layout survive.
_THUMB = (64, 48)
# Endoscopes draw a black octagonal vignette on every frame; it would make all
# frames look alike, so only the central part of the thumbnail is compared.
_CROP = 0.15
_HUE_BINS, _SAT_BINS, _GREY_BINS = 16, 8, 32
# Frames are compared by hue and saturation when one of them is colourful, its saturation's 90th
# percentile at least this (else by grey levels: a grey video's hue is noise).
_SATURATED = 16


class _Descriptors:
    """Per-frame colour histograms and grey thumbnails, and the similarities the grouping rules compare."""

    def __init__(self, paths: Sequence[Path], pool=None):
        described = ordered_map(pool, _describe_paths, chunked(paths))
        self.hist, self.grey = _descriptors(d for chunk in described for d in chunk)
        self._cache: dict[tuple[int, int], float] = {}
        self._spectra: dict[int, np.ndarray] = {}  # a frame is compared with up to 6 others: 1 FFT, not 6

    def colour(self, i: int, j: int) -> float | None:
        if self.hist[i] is None or self.hist[j] is None:
            return None
        return float(np.dot(self.hist[i], self.hist[j]))

    def structure(self, i: int, j: int) -> float | None:
        if self.hist[i] is None or self.hist[j] is None:
            return None
        key = (min(i, j), max(i, j))
        if key not in self._cache:
            spectra = self._spectrum(i), self._spectrum(j)
            self._cache[key] = aligned_correlation(self.grey[i], self.grey[j], spectra=spectra)
        return self._cache[key]

    def _spectrum(self, i: int) -> np.ndarray:
        if i not in self._spectra:
            self._spectra[i] = spectrum(self.grey[i])
            if len(self._spectra) > _Lazy._KEEP:
                del self._spectra[next(iter(self._spectra))]
        return self._spectra[i]

    def reaches(self, a, b, kind: str, level: float) -> bool:
        """Whether a pair of frames, one of ``a`` and one of ``b``, is alike at ``level`` or more (the best
        pair's value >= ``level``). Nearest pairs first, stopping at the first that reaches it: within a video
        that is the first pair, where comparing all 9 of two windows of 3 was most of grouping's time."""
        fn = self.colour if kind == "colour" else self.structure
        pairs = sorted(((i, j) for i in a for j in b), key=lambda p: abs(p[1] - p[0]))
        return any((v := fn(i, j)) is not None and v >= level for i, j in pairs)

    def link(self, a, b) -> float | None:
        """How much two neighbouring blocks look like one video: the better of colour and structure (0..1)."""
        values = [(self.colour(i, j), self.structure(i, j)) for i in a for j in b]
        values = [max(c, s) for c, s in values if c is not None]
        return max(values) if values else None


@functools.lru_cache(maxsize=8)
def _window(h: int, w: int) -> np.ndarray:
    return np.outer(np.hanning(h), np.hanning(w))


def spectrum(a: np.ndarray) -> np.ndarray:
    """The transform of one grey image that :func:`phase_shift` compares (pass it as ``spectra`` to reuse it)."""
    return np.fft.rfft2((a - a.mean()) * _window(*a.shape))


def phase_shift(
    a: np.ndarray, b: np.ndarray, subpixel: bool = False, spectra: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[float, float]:
    """The shift (dy, dx) that moves ``b`` onto ``a`` (``a[y, x] ~ b[y - dy, x - dx]``), by phase correlation.

    Both grey images have one shape; a Hanning window keeps their borders from
    pulling the peak to (0, 0). With ``subpixel`` the peak is refined by a
    parabola through it and its neighbours on each axis (about 0.1 px on
    natural images), enough to compare masks on 64 px thumbnails.
    """
    h, w = a.shape
    fa, fb = spectra if spectra is not None else (spectrum(a), spectrum(b))
    return spectral_peak(fa, fb, (h, w), subpixel)


def spectral_peak(fa: np.ndarray, fb: np.ndarray, shape: tuple[int, int], subpixel: bool = False):
    """The phase-correlation shift of two spectra of images of ``shape`` (see :func:`phase_shift`)."""
    h, w = shape
    cross = fa * np.conj(fb)
    surface = np.fft.irfft2(cross / (np.abs(cross) + 1e-9), s=shape)
    py, px = np.unravel_index(int(np.argmax(surface)), surface.shape)
    dy: float = py - h if py > h // 2 else py
    dx: float = px - w if px > w // 2 else px
    if subpixel:
        dy += _vertex(surface[(py - 1) % h, px], surface[py, px], surface[(py + 1) % h, px])
        dx += _vertex(surface[py, (px - 1) % w], surface[py, px], surface[py, (px + 1) % w])
    return dy, dx


def _vertex(left: float, centre: float, right: float) -> float:
    """Offset (-0.5..0.5) of the top of the parabola through three equally spaced values."""
    bend = left - 2 * centre + right
    return float(np.clip(0.5 * (left - right) / bend, -0.5, 0.5)) if bend < 0 else 0.0


def aligned_correlation(
    a: np.ndarray, b: np.ndarray, max_shift: float = 0.25, spectra: tuple[np.ndarray, np.ndarray] | None = None
) -> float:
    """Normalised correlation of two grey images of one shape after the shift phase correlation finds.

    The shift is kept only within ``max_shift`` of each side; the correlation is
    the better of the unshifted one and that of the overlapping parts.
    """
    h, w = a.shape
    dy, dx = (int(v) for v in phase_shift(a, b, spectra=spectra))
    best = _ncc(a, b)
    if (dy or dx) and abs(dy) <= h * max_shift and abs(dx) <= w * max_shift:
        pa = a[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)]
        pb = b[max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
        best = max(best, _ncc(pa, pb))
    return best


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    d = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / d if d > 0 else 0.0


def _thumbnail(path: Path) -> np.ndarray | None:
    """Central crop of an RGB thumbnail (uint8) at most ``_THUMB`` in size, or None when the file cannot be decoded."""
    try:
        with open_image(path) as im:
            im.draft("RGB", (_THUMB[0] * 2, _THUMB[1] * 2))  # JPEG decodes at 1/2..1/8 scale
            scale = min(_THUMB[0] / im.width, _THUMB[1] / im.height)
            size = (max(8, round(im.width * scale)), max(8, round(im.height * scale)))
            small = im.convert("RGB").resize(size, Image.BILINEAR, reducing_gap=2.0)
    except (OSError, ValueError, SyntaxError, ReadError):
        return None
    a = np.asarray(small)
    dy, dx = int(a.shape[0] * _CROP), int(a.shape[1] * _CROP)
    return a[dy : a.shape[0] - dy, dx : a.shape[1] - dx]


def _describe_paths(paths: Sequence[Path]) -> list[tuple | None]:
    """``_describe`` of each file's thumbnail (what a worker process does for a chunk of frames)."""
    return [_describe(_thumbnail(p)) for p in paths]


def _describe(t: np.ndarray | None) -> tuple | None:
    """What is kept of a thumbnail: integers only (whether it is colourful, hue-saturation and grey bin
    counts, the channel sums as uint16: 3.5 KB a frame instead of the 24 KB a list of thumbnails, HSV
    copies and float histograms held, 2.4 GB for 100,000 frames); None for a frame that cannot be read."""
    if t is None:
        return None
    h = np.asarray(Image.fromarray(t).convert("HSV"))
    # bin counts of uint8 values by integer division: np.histogram2d's counts over (0, 256), 10x cheaper
    hue, sat = h[..., 0].ravel() // (256 // _HUE_BINS), h[..., 1].ravel() // (256 // _SAT_BINS)
    colour = np.bincount(hue.astype(np.intp) * _SAT_BINS + sat, minlength=_HUE_BINS * _SAT_BINS).astype(np.uint32)
    levels = np.bincount(h[..., 2].ravel() // (256 // _GREY_BINS), minlength=_GREY_BINS).astype(np.uint32)
    return _colourful(h[..., 1]), colour, levels, t.sum(axis=2, dtype=np.uint16)


def _colourful(sat: np.ndarray) -> bool:
    """Whether a frame's saturation (uint8) has its 90th percentile (``np.percentile``) at ``_SATURATED`` or
    more, by counting the values below it: the percentile lies between the sorted values at the two
    positions next to 0.9 (n - 1), so when both positions are 2 or more away from that count, on one side,
    the answer is that side's; only a frame in between asks np.percentile (its sort was a seventh of
    describing a frame)."""
    at = 0.9 * (sat.size - 1)
    below = int(np.count_nonzero(sat < _SATURATED))
    if sat.size and below > at + 2:
        return False
    if sat.size and below <= at - 2:
        return True
    return int(np.percentile(sat, 90)) >= _SATURATED


def _descriptors(described: Iterable[tuple | None]):
    """Square-rooted, unit-sum histograms (dot product = Bhattacharyya) and grey thumbnails (float32).

    Thumbnails of another size than the most common one (a frame of another
    resolution) are resized to it, so that every pair can be compared.

    Of each frame only ``_describe``'s integers are kept; the float descriptors are computed from them when
    read, the same values to the bit (counts are exact in float64, a sum of three uint8 in float32).
    """
    vivid, colour, levels, sums = [], [], [], []
    for d in described:
        if d is None:
            for kept in (colour, levels, sums):
                kept.append(None)
            continue
        for kept, v in zip((vivid, colour, levels, sums), d):
            kept.append(v)
    colourful = any(vivid)
    shape = Counter(g.shape for g in sums if g is not None).most_common(1)[0][0] if vivid else None
    return _Lazy(colour if colourful else levels, _unit_hist), _Lazy(sums, partial(_grey, shape=shape))


def _unit_hist(counts: np.ndarray) -> np.ndarray:
    counts = counts.astype(np.float64)
    return np.sqrt(counts / counts.sum())


def _grey(sums: np.ndarray, shape) -> np.ndarray:
    g = sums.astype(np.float32) / np.float32(3)  # = the thumbnail's float32 mean over its channels
    if g.shape != shape:
        g = np.asarray(Image.fromarray(g, mode="F").resize((shape[1], shape[0]), Image.BILINEAR))
    return g


class _Lazy(Sequence):
    """``fn(stored[i])``, None where nothing is stored; the last values read are kept (the rules compare
    a few neighbouring frames many times)."""

    _KEEP = 64

    def __init__(self, stored: list, fn):
        self._stored, self._fn = stored, fn
        self._kept: OrderedDict = OrderedDict()

    def __len__(self) -> int:
        return len(self._stored)

    def __getitem__(self, i):
        if i in self._kept:
            return self._kept[i]
        v = self._stored[i]
        if v is None:
            return None
        self._kept[i] = v = self._fn(v)
        if len(self._kept) > self._KEEP:
            self._kept.popitem(last=False)
        return v
