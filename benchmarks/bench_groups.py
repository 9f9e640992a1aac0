"""How well do inferred groups match CVC-ClinicDB's real videos?

CVC-ClinicDB's 612 frames come from 29 videos; the frame ranges below are the
published frame/sequence correspondence (as listed by Dataset Ninja's CVC-612
page). Prints, for ``groups.frame_blocks`` (ordered frame numbers) and
``groups.similar_groups`` (names carry nothing): the number of groups, the
adjusted Rand index against the videos, how many videos are split (a split
video leaks across a group split) and how many groups hold frames of several
videos (harmless for leakage, coarser folds). Also on a copy as another
endoscope shows it (574x500, warmer and darker).

    python benchmarks/bench_groups.py
"""

from __future__ import annotations

import bisect
import os
import tempfile
import time
from collections import defaultdict
from math import comb
from pathlib import Path

import numpy as np
from PIL import Image

from medseg.datasets.groups import frame_blocks, similar_groups

VIDEO_ENDS = [25, 50, 67, 78, 103, 126, 151, 177, 199, 205, 227, 252, 277, 297, 317, 342, 363, 383, 408, 428, 447,
              466, 478, 503, 528, 546, 571, 591, 612]  # fmt: skip


def adjusted_rand(a, b) -> float:
    pairs = defaultdict(int)
    for x, y in zip(a, b):
        pairs[x, y] += 1
    ca, cb = defaultdict(int), defaultdict(int)
    for x in a:
        ca[x] += 1
    for y in b:
        cb[y] += 1
    s = sum(comb(v, 2) for v in pairs.values())
    sa, sb = sum(comb(v, 2) for v in ca.values()), sum(comb(v, 2) for v in cb.values())
    expected = sa * sb / comb(len(a), 2)
    return (s - expected) / ((sa + sb) / 2 - expected)


def report(name: str, truth, groups, seconds: float) -> None:
    split, mixed = defaultdict(set), defaultdict(set)
    for t, g in zip(truth, groups):
        split[t].add(g)
        mixed[g].add(t)
    print(
        f"{name}: {len(set(groups))} groups for {len(set(truth))} videos, ARI {adjusted_rand(truth, groups):.3f}, "
        f"{sum(len(v) > 1 for v in split.values())} videos split into {sum(len(v) for v in split.values())} parts, "
        f"{sum(len(v) > 1 for v in mixed.values())} groups mix videos, {seconds:.1f} s"
    )


def main() -> None:
    root = Path(os.environ.get("MEDSEG_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
    paths = sorted((root / "cvc-clinicdb" / "images").glob("*.png"), key=lambda p: int(p.stem))
    truth = [bisect.bisect_left(VIDEO_ENDS, int(p.stem)) for p in paths]
    with tempfile.TemporaryDirectory() as tmp:
        shifted = []
        for p in paths:
            rgb = np.asarray(Image.open(p).convert("RGB").resize((574, 500)), float)
            out = Path(tmp) / p.name
            Image.fromarray(np.clip(rgb * (1.1, 0.9, 0.8) * 0.85, 0, 255).astype(np.uint8)).save(out)
            shifted.append(out)
        for name, fn, files in (
            ("frame_blocks", frame_blocks, paths),
            ("frame_blocks, other endoscope", frame_blocks, shifted),
            ("similar_groups (names ignored)", similar_groups, paths),
            ("similar_groups, other endoscope", similar_groups, shifted),
        ):
            t = time.perf_counter()
            groups = fn(files)
            report(name, truth, groups, time.perf_counter() - t)


if __name__ == "__main__":
    main()
