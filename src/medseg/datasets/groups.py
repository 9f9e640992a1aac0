"""Group ids: samples that must stay on one side of a split (a patient, a video).

* UW-Madison: the case (``case123_day20_slice_0001`` -> ``case123``).
* Montgomery: the patient (``MCUCXR_0001_0`` -> ``MCUCXR_0001``; the last digit
  is the normal/abnormal label, not a patient).
* Generic: the whole stem, or what a regex picks out of it.
* Video-derived frames (CVC-ClinicDB): contiguous blocks of frame numbers,
  cut where neighbouring frames stop looking alike or the numbering jumps.
"""

from __future__ import annotations

import functools
import re
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from functools import partial
from itertools import pairwise
from pathlib import Path

import numpy as np
from PIL import Image

from medseg.datasets.files import numeric_key
from medseg.errors import ReadError
from medseg.io.limits import open_image
from medseg.process_pool import chunked, ordered_map

_UW_CASE = re.compile(r"^(case\d+)", re.IGNORECASE)
_MONTGOMERY = re.compile(r"^(.+?)_[01]$")

# Thumbnail geometry: small enough to decode 600 frames in about a second,
# large enough that colour and layout survive.
_THUMB = (64, 48)
# Endoscopes draw a black octagonal vignette on every frame; it would make all
# frames look alike, so only the central part of the thumbnail is compared.
_CROP = 0.15
_HUE_BINS, _SAT_BINS, _GREY_BINS = 16, 8, 32


def uw_case(sample_id: str) -> str:
    m = _UW_CASE.match(sample_id)
    return m.group(1).lower() if m else sample_id


def montgomery_patient(stem: str) -> str:
    m = _MONTGOMERY.match(stem)
    return m.group(1) if m else stem


def stem_groups(stems: Sequence[str], pattern: str | re.Pattern | None = None) -> list[str]:
    """One group per stem, or what ``pattern`` finds in it.

    The group is the named group ``group`` if the pattern has one, else its
    first group, else the whole match; a stem the pattern does not match is its
    own group.
    """
    if pattern is None:
        return list(stems)
    rx = re.compile(pattern) if isinstance(pattern, str) else pattern
    out = []
    for stem in stems:
        m = rx.search(stem)
        if m is None:
            out.append(stem)
        elif "group" in rx.groupindex:
            out.append(m.group("group"))
        else:
            out.append(m.group(1) if rx.groups else m.group(0))
    return out


def fixed_blocks(stems: Sequence[str], size: int) -> list[str]:
    """Blocks of ``size`` consecutive stems in numeric order, named ``first-last``."""
    if size < 1:
        raise ValueError(f"block size must be >= 1, got {size}")
    order = sorted(range(len(stems)), key=lambda i: numeric_key(stems[i]))
    out = [""] * len(stems)
    for start in range(0, len(order), size):
        block = order[start : start + size]
        name = f"{stems[block[0]]}-{stems[block[-1]]}"
        for i in block:
            out[i] = name
    return out


MERGE_RUN_FACTOR = 5


def frame_blocks(
    paths: Sequence[str | Path],
    threshold: float = 0.94,
    near_identical: float = 0.8,
    window: int = 3,
    ids: Sequence[str] | None = None,
    min_frames: int = 4,
    pool=None,
) -> list[str]:
    """Group video frames (integer stems) into contiguous blocks; one id per path, in order.

    Frames are sorted by number and a block is cut before frame ``b`` when

    * the numbering jumps (``b`` is not the previous number + 1), or
    * both colour and structure change: the best Bhattacharyya coefficient
      between the hue-saturation histograms of the ``window`` frames before and
      the ``window`` frames from ``b`` on is below ``threshold`` (grey-level
      histograms for grey images), and so is the best aligned correlation of
      their grey thumbnails (``near_identical``; each pair is first aligned by
      phase correlation, so a camera that pans does not cut its video).

    Then a block of fewer than ``min_frames`` frames joins the neighbour of the
    same gap-free run it resembles most (colour and structure across the
    junction): a blurred frame, a flash or a few frames of a camera swinging
    round are not videos of their own, and an extra cut would let one video
    leak across a group split where a missed cut only makes a bigger group.
    Only in runs of at least ``MERGE_RUN_FACTOR * min_frames`` frames: a
    dataset of six frames from three clips keeps its three groups.

    Comparing windows instead of single pairs keeps one blurred or flashed
    frame from cutting a sequence. A frame whose thumbnail cannot be read gets
    a block of its own. Block ids are ``first-last`` frame stems (``ids`` when given, for file names that
    carry more than the frame number, as nnU-Net's ``12_0000.png``).
    On CVC-ClinicDB (29 videos) the blocks match the videos at adjusted Rand
    index 0.94 (31 blocks, 4 videos split, 3 blocks mixing videos), 0.84 on a
    574x500 warmer, darker copy; the previous rule (colour windows of 2 and an
    unaligned pair correlation): 0.80 (7 videos split) and 0.42.
    ``benchmarks/bench_groups.py`` measures it. ``pool``: worker processes that read the thumbnails
    (:mod:`medseg.process_pool`; the same blocks).
    """
    paths = [Path(p) for p in paths]
    stems = [p.stem for p in paths] if ids is None else [str(i) for i in ids]
    bad = [s for s in stems if not s.isdigit()]
    if bad:
        raise ValueError(f"frame blocks need integer file stems; not integers: {', '.join(bad[:5])}")
    if not paths:
        return []
    order = sorted(range(len(paths)), key=lambda i: int(stems[i]))
    d = _Descriptors([paths[i] for i in order], pool)

    numbers = [int(stems[i]) for i in order]
    gaps = [b for b in range(1, len(numbers)) if numbers[b] != numbers[b - 1] + 1]
    run_bounds = [0, *gaps, len(numbers)]
    cuts = list(gaps)
    for run_start, run_end in pairwise(run_bounds):
        inner = _content_cuts(d, run_start, run_end, threshold, near_identical, window)
        if run_end - run_start >= MERGE_RUN_FACTOR * min_frames:
            cuts += _merge_short(d, [run_start, *inner, run_end], min_frames, window)
        else:  # a handful of frames says nothing of how long its videos are: two-frame clips stay apart
            cuts += inner
    cuts.sort()

    out = [""] * len(paths)
    bounds = [0, *cuts, len(order)]
    for lo, hi in pairwise(bounds):
        name = f"{stems[order[lo]]}-{stems[order[hi - 1]]}"
        for k in range(lo, hi):
            out[order[k]] = name
    return out


def _content_cuts(d: _Descriptors, run_start, run_end, threshold, near_identical, window) -> list[int]:
    """Sorted positions inside one gap-free run before which the content changes."""
    cuts = []
    for b in range(run_start + 1, run_end):
        if d.hist[b] is None or d.hist[b - 1] is None:
            cuts.append(b)
            continue
        before = range(max(run_start, b - window), b)
        after = range(b, min(run_end, b + window))
        if d.best(before, after, "colour") < threshold and d.best(before, after, "structure") < near_identical:
            cuts.append(b)
    return cuts


def _merge_short(d: _Descriptors, bounds: list[int], min_frames: int, window: int) -> list[int]:
    """The inner cuts of ``bounds`` (one run, first and last position included) left once short blocks merge."""
    bounds = list(bounds)
    while len(bounds) > 2:
        sizes = [hi - lo for lo, hi in pairwise(bounds)]
        # unreadable frames keep their own block: nothing says where they belong
        short = [k for k, n in enumerate(sizes) if n < min_frames and not (n == 1 and d.hist[bounds[k]] is None)]
        if not short:
            break
        k = min(short, key=lambda k: (sizes[k], k))
        lo, hi = bounds[k], bounds[k + 1]
        block = range(lo, hi)
        links = []
        if k > 0:
            links.append((d.link(range(max(bounds[k - 1], lo - window), lo), block), k))  # drop cut at lo
        if k + 1 < len(sizes):
            links.append((d.link(block, range(hi, min(bounds[k + 2], hi + window))), k + 1))  # drop cut at hi
        links = [x for x in links if x[0] is not None]
        if not links:
            break
        bounds.pop(max(links)[1])
    return bounds[1:-1]


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

    def best(self, a, b, kind: str) -> float:
        fn = self.colour if kind == "colour" else self.structure
        values = [v for i in a for j in b if (v := fn(i, j)) is not None]
        return max(values, default=-1.0)

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
    cross = fa * np.conj(fb)
    surface = np.fft.irfft2(cross / (np.abs(cross) + 1e-9), s=a.shape)
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
    """What is kept of a thumbnail: integers only (the saturation's 90th percentile, hue-saturation and grey
    bin counts, the channel sums as uint16: 3.5 KB a frame instead of the 24 KB a list of thumbnails, HSV
    copies and float histograms held, 2.4 GB for 100,000 frames); None for a frame that cannot be read."""
    if t is None:
        return None
    h = np.asarray(Image.fromarray(t).convert("HSV"))
    # bin counts of uint8 values by integer division: np.histogram2d's counts over (0, 256), 10x cheaper
    hue, sat = h[..., 0].ravel() // (256 // _HUE_BINS), h[..., 1].ravel() // (256 // _SAT_BINS)
    colour = np.bincount(hue.astype(np.intp) * _SAT_BINS + sat, minlength=_HUE_BINS * _SAT_BINS).astype(np.uint32)
    levels = np.bincount(h[..., 2].ravel() // (256 // _GREY_BINS), minlength=_GREY_BINS).astype(np.uint32)
    return int(np.percentile(h[..., 1], 90)), colour, levels, t.sum(axis=2, dtype=np.uint16)


def _descriptors(described: Iterable[tuple | None]):
    """Square-rooted, unit-sum histograms (dot product = Bhattacharyya) and grey thumbnails (float32).

    Thumbnails of another size than the most common one (a frame of another
    resolution) are resized to it, so that every pair can be compared.

    Of each frame only ``_describe``'s integers are kept; the float descriptors are computed from them when
    read, the same values to the bit (counts are exact in float64, a sum of three uint8 in float32).
    """
    sat90, colour, levels, sums = [], [], [], []
    for d in described:
        if d is None:
            for kept in (colour, levels, sums):
                kept.append(None)
            continue
        for kept, v in zip((sat90, colour, levels, sums), d):
            kept.append(v)
    colourful = bool(sat90) and max(sat90) >= 16
    shape = Counter(g.shape for g in sums if g is not None).most_common(1)[0][0] if sat90 else None
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


def similar_groups(
    paths: Sequence[str | Path],
    threshold: float = 0.97,
    near_identical: float = 0.8,
    ids: Sequence[str] | None = None,
    pool=None,
) -> list[str]:
    """Groups of look-alike images whatever their names or order; one id per path, in order.

    Two images are linked when their colour histograms agree (Bhattacharyya
    coefficient >= ``threshold``) and their aligned grey thumbnails correlate
    (>= ``near_identical``); a group is a chain of linked images (connected
    components), named ``first-last`` of its members' stems in sorted order
    (``ids`` when given). Without the frame order a video's frames that moved
    far apart are not linked, so this groups more finely than
    :func:`frame_blocks`; on CVC-ClinicDB with the names shuffled it finds 247
    groups for the 29 videos (adjusted Rand index 0.41; each frame its own
    group: 0). An unreadable image is a group of its own. ``pool``: as in :func:`frame_blocks`.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    paths = [Path(p) for p in paths]
    stems = [p.stem for p in paths] if ids is None else [str(i) for i in ids]
    if not paths:
        return []
    d = _Descriptors(paths, pool)
    ok = [i for i, h in enumerate(d.hist) if h is not None]
    edges = []
    if ok:
        hist = np.stack([d.hist[i] for i in ok])
        colour = hist @ hist.T
        a, b = np.nonzero(np.triu(colour >= threshold, 1))
        edges = [(ok[x], ok[y]) for x, y in zip(a.tolist(), b.tolist()) if d.structure(ok[x], ok[y]) >= near_identical]
    rows = np.array([e[0] for e in edges], int)
    cols = np.array([e[1] for e in edges], int)
    graph = coo_matrix((np.ones(len(edges)), (rows, cols)), shape=(len(paths), len(paths)))
    _, labels = connected_components(graph, directed=False)
    members: dict[int, list[str]] = {}
    for label, stem in zip(labels.tolist(), stems):
        members.setdefault(label, []).append(stem)
    names = {}
    for label, group in members.items():
        group.sort(key=numeric_key)
        names[label] = group[0] if len(group) == 1 else f"{group[0]}-{group[-1]}"
    return [names[label] for label in labels.tolist()]


def inferred(group_by: str, ids: Sequence[str], layout_groups: bool = False) -> bool:
    """Whether ``group_by`` on these sample ids groups by image content (not by what the names say)."""
    if group_by in ("frames", "similar"):
        return True
    return group_by == "auto" and not layout_groups and len(ids) > 1 and all(str(i).isdigit() for i in ids)


def group_line(groups: Sequence[str], is_inferred: bool) -> str:
    """One line for people: how many groups, their sizes, and whether image similarity made them."""
    sizes = sorted(Counter(groups).values())
    if not sizes:
        return "groups: none"
    how = "inferred from image similarity (sequences of look-alike frames)" if is_inferred else "from the file names"
    spread = f"sizes {sizes[0]}-{sizes[-1]}, median {sizes[len(sizes) // 2]}"
    single = sum(1 for n in sizes if n == 1)
    alone = f", {single} of a single sample" if single else ""
    return f"groups: {len(sizes)} {how}; {spread}{alone}"
