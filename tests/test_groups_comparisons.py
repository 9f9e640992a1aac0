"""How much frame grouping compares: the same blocks as comparing every pair of two windows, with fewer pairs.

A cut before frame b needs every pair of the 3 frames before and the 3 from b on to differ in colour (and in
structure); within a video the nearest pair is alike already, so one comparison says "no cut" where the
exhaustive rule made 9 (and the structure comparisons, a phase correlation each, only where colour differs).
Whether frames are colourful is counted from their saturation, np.percentile asked only where the count
cannot tell.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_datasets_groups import write_video

from medseg.datasets import frame_similarity as fs
from medseg.datasets import groups as grp


def _exhaustive_cuts(d, run_start, run_end, threshold, near_identical, window) -> list[int]:
    """The rule as written before: the best of all the windows' pairs, for colour and for structure."""

    def best(a, b, fn):
        return max((v for i in a for j in b if (v := fn(i, j)) is not None), default=-1.0)

    cuts = []
    for b in range(run_start + 1, run_end):
        if d.hist[b] is None or d.hist[b - 1] is None:
            cuts.append(b)
            continue
        before, after = range(max(run_start, b - window), b), range(b, min(run_end, b + window))
        if best(before, after, d.colour) < threshold and best(before, after, d.structure) < near_identical:
            cuts.append(b)
    return cuts


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    write_video(folder, 1, 20, (200, 80, 60), seed=1, flash=12)
    write_video(folder, 21, 20, (60, 170, 90), seed=2)
    write_video(folder, 41, 20, (90, 90, 210), seed=3)
    return sorted(folder.glob("*.png"), key=lambda p: int(p.stem))


def test_cuts_equal_the_exhaustive_rule_with_a_comparison_a_frame(frames, monkeypatch):
    calls = {"colour": 0, "structure": 0}
    for kind in calls:
        real = getattr(fs._Descriptors, kind)

        def counted(self, i, j, real=real, kind=kind):
            calls[kind] += 1
            return real(self, i, j)

        monkeypatch.setattr(fs._Descriptors, kind, counted)
    d = fs._Descriptors(frames)
    for threshold, near in ((0.94, 0.8), (0.99, 0.95), (0.999, 0.999), (0.0, 0.0)):
        for k in calls:
            calls[k] = 0
        cuts = grp._content_cuts(d, 0, len(frames), threshold, near, 3)
        made = dict(calls)
        assert cuts == _exhaustive_cuts(d, 0, len(frames), threshold, near, 3)
        if threshold == 0.94:
            assert len(cuts) >= 2  # the three videos are apart
            # one colour comparison a frame where it is alike, 9 only around the cuts (it was 9 everywhere)
            assert made["colour"] <= len(frames) + 9 * 3 * len(cuts)
            assert made["structure"] <= 9 * 3 * len(cuts)
    assert grp.frame_blocks(frames)[0] == "1-20"


def test_colourful_is_the_percentile_rule_and_rarely_sorts(monkeypatch):
    rng = np.random.default_rng(0)
    sorts = []
    real = np.percentile
    monkeypatch.setattr(np, "percentile", lambda *a, **k: sorts.append(1) or real(*a, **k))
    for _ in range(3000):
        n = int(rng.integers(1, 2500))
        sat = np.clip(rng.normal(rng.integers(0, 40), rng.uniform(0, 20), n), 0, 255).astype(np.uint8)
        assert fs._colourful(sat.reshape(1, n)) == (int(real(sat, 90)) >= 16)
    assert len(sorts) < 300  # only frames whose 90th percentile lies at 16 itself
    sorts.clear()
    grey, vivid = np.full((34, 45), 3, np.uint8), np.full((34, 45), 120, np.uint8)
    assert not fs._colourful(grey) and fs._colourful(vivid) and sorts == []
