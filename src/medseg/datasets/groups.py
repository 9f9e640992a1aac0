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
from collections import Counter
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np

from medseg.datasets.files import numeric_key

# what frames are compared by: re-exported, the QC's duplicate checks align thumbnails the same way
from medseg.datasets.frame_similarity import (  # noqa: F401
    _Descriptors,
    _vertex,
    aligned_correlation,
    phase_shift,
    spectrum,
)

_UW_CASE = re.compile(r"^(case\d+)", re.IGNORECASE)
_MONTGOMERY = re.compile(r"^(.+?)_[01]$")


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
        alike = d.reaches(before, after, "colour", threshold) or d.reaches(before, after, "structure", near_identical)
        if not alike:
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
