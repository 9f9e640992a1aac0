"""Group ids: samples that must stay on one side of a split (a patient, a video).

* UW-Madison: the case (``case123_day20_slice_0001`` -> ``case123``).
* Montgomery: the patient (``MCUCXR_0001_0`` -> ``MCUCXR_0001``; the last digit
  is the normal/abnormal label, not a patient).
* Generic: the whole stem, or what a regex picks out of it.
* Video-derived frames (CVC-ClinicDB): contiguous blocks of frame numbers,
  cut where neighbouring frames stop looking alike or the numbering jumps.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np
from PIL import Image

from medseg.datasets.files import numeric_key
from medseg.errors import ReadError
from medseg.io.limits import open_image

_UW_CASE = re.compile(r"^(case\d+)", re.IGNORECASE)
_MONTGOMERY = re.compile(r"^(.+?)_[01]$")

# Thumbnail geometry: small enough to decode 600 frames in about a second,
# large enough that colour and layout survive.
_THUMB = (48, 36)
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


def frame_blocks(
    paths: Sequence[str | Path],
    threshold: float = 0.85,
    near_identical: float = 0.9,
    window: int = 2,
    ids: Sequence[str] | None = None,
) -> list[str]:
    """Group video frames (integer stems) into contiguous blocks; one id per path, in order.

    Frames are sorted by number and a block is cut before frame ``b`` when

    * the numbering jumps (``b`` is not the previous number + 1), or
    * colour content changes: the best Bhattacharyya coefficient between the
      hue-saturation histograms of the ``window`` frames before and the
      ``window`` frames from ``b`` on is below ``threshold`` (grey-level
      histograms for grey images), and the two neighbours are not
      near-identical: the normalised correlation of their grey thumbnails is
      below ``near_identical``.

    Comparing windows instead of single pairs keeps one blurred or flashed
    frame from cutting a sequence. A frame whose thumbnail cannot be read gets
    a block of its own. Block ids are ``first-last`` frame stems (``ids`` when given, for file names that
    carry more than the frame number, as nnU-Net's ``12_0000.png``).
    """
    paths = [Path(p) for p in paths]
    stems = [p.stem for p in paths] if ids is None else [str(i) for i in ids]
    bad = [s for s in stems if not s.isdigit()]
    if bad:
        raise ValueError(f"frame blocks need integer file stems; not integers: {', '.join(bad[:5])}")
    if not paths:
        return []
    order = sorted(range(len(paths)), key=lambda i: int(stems[i]))
    thumbs = [_thumbnail(paths[i]) for i in order]
    hist, grey = _descriptors(thumbs)

    numbers = [int(stems[i]) for i in order]
    gaps = [b for b in range(1, len(numbers)) if numbers[b] != numbers[b - 1] + 1]
    run_bounds = [0, *gaps, len(numbers)]
    cuts = list(gaps)
    for run_start, run_end in pairwise(run_bounds):
        cuts += _content_cuts(hist, grey, run_start, run_end, threshold, near_identical, window)
    cuts.sort()

    out = [""] * len(paths)
    bounds = [0, *cuts, len(order)]
    for lo, hi in pairwise(bounds):
        name = f"{stems[order[lo]]}-{stems[order[hi - 1]]}"
        for k in range(lo, hi):
            out[order[k]] = name
    return out


def _content_cuts(hist, grey, run_start, run_end, threshold, near_identical, window) -> list[int]:
    """Sorted positions inside one gap-free run before which the content changes."""
    cuts = []
    for b in range(run_start + 1, run_end):
        if hist[b] is None or hist[b - 1] is None:
            cuts.append(b)
            continue
        before = [h for h in hist[max(run_start, b - window) : b] if h is not None]
        after = [h for h in hist[b : min(run_end, b + window)] if h is not None]
        colour = max(float(np.dot(x, y)) for x in before for y in after)
        structure = float(np.dot(grey[b - 1], grey[b]))
        if colour < threshold and structure < near_identical:
            cuts.append(b)
    return cuts


def _thumbnail(path: Path) -> np.ndarray | None:
    """Central crop of an RGB thumbnail (uint8), or None when the file cannot be decoded."""
    try:
        with open_image(path) as im:
            im.draft("RGB", (_THUMB[0] * 2, _THUMB[1] * 2))  # JPEG decodes at 1/2..1/8 scale
            small = im.convert("RGB").resize(_THUMB, Image.BILINEAR, reducing_gap=2.0)
    except (OSError, ValueError, SyntaxError, ReadError):
        return None
    a = np.asarray(small)
    dy, dx = int(a.shape[0] * _CROP), int(a.shape[1] * _CROP)
    return a[dy : a.shape[0] - dy, dx : a.shape[1] - dx]


def _descriptors(thumbs: list[np.ndarray | None]):
    """Square-rooted, unit-sum histograms (dot product = Bhattacharyya) and unit grey vectors."""
    ok = [t for t in thumbs if t is not None]
    hsv = {id(t): np.asarray(Image.fromarray(t).convert("HSV")) for t in ok}
    colourful = bool(ok) and max(int(np.percentile(h[..., 1], 90)) for h in hsv.values()) >= 16
    hist, grey = [], []
    for t in thumbs:
        if t is None:
            hist.append(None)
            grey.append(np.zeros(1))
            continue
        h = hsv[id(t)]
        if colourful:
            counts, _, _ = np.histogram2d(
                h[..., 0].ravel(), h[..., 1].ravel(), bins=(_HUE_BINS, _SAT_BINS), range=((0, 256), (0, 256))
            )
        else:
            counts, _ = np.histogram(h[..., 2], bins=_GREY_BINS, range=(0, 256))
        counts = counts.ravel()
        hist.append(np.sqrt(counts / counts.sum()))
        g = t.astype(np.float32).mean(axis=2).ravel()
        g -= g.mean()
        norm = np.linalg.norm(g)
        grey.append(g / norm if norm > 0 else g)
    return hist, grey
