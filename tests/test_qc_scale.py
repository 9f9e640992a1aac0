"""QC at 100,000 samples: the sub-pixel moves it makes by the thousand, and memory flat in the samples.

The moves (medseg.qc.subpixel) replace ``scipy.ndimage.shift`` one shift at a time; they must give its values
(float32 rounding) and the duplicate check's 25-shift IoU search must give the IoUs the one-at-a-time search
gave. Memory is Python's allocations traced by tracemalloc over a whole QC (every check, findings and scores
stored) of the scale benchmark's synthetic frames, compared between 500 and 2,000 samples: what each added
sample costs is the design's figure (1 GB for 100,000 samples leaves 10 KB a sample for everything), whatever
the machine's speed.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy import ndimage

from medseg.qc import duplicates_align, duplicates_pairs, qc
from medseg.qc.subpixel import shift, shifted
from medseg.workspace import Workspace
from tests.test_workspace_scale import _write

# bytes of traced peak a sample may add: 1 GB over 100,000 samples. Measured 8,400 (outline and signal measures,
# stored scores' details, the workspace's sample records); 14,000 while the duplicate hash blocks grew with N
PER_SAMPLE_QC = 10_000


def _ndimage(a, dy, dx):
    return ndimage.shift(a, (dy, dx), order=1, mode="constant", cval=0.0, prefilter=False)


@pytest.mark.parametrize("seed", range(6))
def test_shifted_equals_ndimage_shift_for_every_shift(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(3, 140, 2)
    a = (rng.random((h, w)) * 255).astype(np.float32)
    if seed % 2:
        a = np.round(a)  # uint8-like thumbnails
    dys = rng.uniform(-9, 9, 4).tolist() + [0.0, 2.0, -1e-17]
    dxs = rng.uniform(-9, 9, 3).tolist() + [0.0, -3.0, 0.25]
    got = shifted(a, dys, dxs)
    assert got.shape == (len(dys), len(dxs), h, w) and got.dtype == np.float32
    for i, dy in enumerate(dys):
        for j, dx in enumerate(dxs):
            np.testing.assert_allclose(got[i, j], _ndimage(a, dy, dx), rtol=0, atol=1e-5 * 255)
    np.testing.assert_array_equal(shift(a, 0.0, 0.0), a)
    assert not shift(a, h + 1.0, 0.0).any()  # moved out of the picture entirely


def _reference_soft_iou(ta, tb, dy, dx):
    """The one-shift-at-a-time soft IoU (as before medseg.qc.subpixel), over ndimage."""
    size = next(iter({**ta, **tb}.values())).shape[0]
    window = duplicates_align._overlap(dy, dx, size)
    empty = np.zeros((size, size), np.float32)
    ious = []
    for cid in set(ta) | set(tb):
        a = ta[cid].astype(np.float32) if cid in ta else empty
        b = tb[cid].astype(np.float32) if cid in tb else empty
        a = (_ndimage(a, -dy / 2, -dx / 2) if dy or dx else a)[window]
        b = (_ndimage(b, dy / 2, dx / 2) if dy or dx else b)[window]
        union = float(np.maximum(a, b).sum())
        ious.append(float(np.minimum(a, b).sum()) / union if union else 1.0)
    return float(np.mean(ious)) if ious else 1.0


def _blob(size, cy, cx, r):
    yy, xx = np.mgrid[0:size, 0:size]
    return np.where(((yy - cy) / r) ** 2 + ((xx - cx) / (1.2 * r)) ** 2 <= 1, 255, 0).astype(np.uint8)


@pytest.mark.parametrize(
    "ta, tb",
    [
        ({1: _blob(128, 60, 50, 14)}, {1: _blob(128, 63, 47, 13)}),  # a polyp moved a few pixels, redrawn
        ({1: _blob(128, 5, 120, 20)}, {1: _blob(128, 8, 118, 20)}),  # cut by the frame: windows clip the box
        ({1: _blob(128, 40, 40, 10), 2: _blob(128, 90, 90, 8)}, {1: _blob(128, 42, 41, 10)}),  # a class lost
        ({1: np.zeros((128, 128), np.uint8)}, {}),  # nothing covered on either side
    ],
)
def test_iou_search_equals_the_one_shift_at_a_time_search(ta, tb):
    dy, dx, scale = 3.37, -2.61, 2.0
    steps = np.arange(-0.5, 0.51, 0.25) * scale
    want = max(_reference_soft_iou(ta, tb, dy + oy, dx + ox) for oy in steps for ox in steps)
    assert duplicates_align._best_iou(ta, tb, dy, dx, scale) == pytest.approx(want, abs=1e-6)
    assert duplicates_align._soft_iou(ta, tb, 0.0, 0.0) == pytest.approx(_reference_soft_iou(ta, tb, 0, 0), abs=1e-6)


@pytest.mark.parametrize("cells", [1, 7, 300, 1 << 18])
def test_hash_pairs_in_blocks_of_any_size_find_every_pair_once_in_order(monkeypatch, cells):
    """Blocks of one row up to the whole matrix: the same pairs (each i < j once), distances and order."""
    rng = np.random.default_rng(2)
    base = rng.integers(0, 2**63, 40, dtype=np.uint64)
    hashes = base[rng.integers(0, 40, 300)] ^ (np.uint64(1) << rng.integers(0, 64, 300).astype(np.uint64))
    monkeypatch.setattr(duplicates_pairs, "_BLOCK_CELLS", cells)
    i, j, d = duplicates_pairs.hash_pairs(hashes, 4)
    want = [
        (a, b, (int(hashes[a]) ^ int(hashes[b])).bit_count())
        for a in range(300)
        for b in range(a + 1, 300)
        if (int(hashes[a]) ^ int(hashes[b])).bit_count() <= 4
    ]
    assert list(zip(i.tolist(), j.tolist(), d.tolist())) == want and len(want) > 300


def _qc_peak(ws_path) -> tuple[int, dict]:
    with Workspace.open(ws_path, verify="none") as ws:
        tracemalloc.start()
        try:
            report = qc(ws, workers=1)
            return tracemalloc.get_traced_memory()[1], report.by_check
        finally:
            tracemalloc.stop()


def test_qc_memory_stays_flat_in_samples(tmp_path):
    """Every check over 500 and 2,000 frames (findings and scores stored): the traced peak grows by less than
    PER_SAMPLE_QC a sample. A first QC of 20 frames pays the imports and the code's first-use caches."""
    spaces = {}
    for n in (20, 500, 2000):
        spaces[n] = tmp_path / f"ws-{n}"
        Workspace.create(spaces[n], _write(tmp_path / f"data-{n}", n)).close()
    _qc_peak(spaces[20])
    (small, _), (large, found) = _qc_peak(spaces[500]), _qc_peak(spaces[2000])
    assert found.get("near_duplicate") and found.get("too_dark") and found.get("full_mask")  # it really checked
    per_sample = (large - small) / 1500
    print(f"QC traced peak: {small / 1e6:.1f} MB at 500, {large / 1e6:.1f} MB at 2,000: {per_sample:.0f} B a sample")
    assert per_sample < PER_SAMPLE_QC, f"QC: {per_sample:.0f} bytes a sample ({small} at 500, {large} at 2,000)"


def test_the_queue_order_is_made_once_the_measures_are_let_go(tmp_path, monkeypatch):
    """QC stores the review queue's order from what it just stored: the per-sample measures (and the checks'
    caches, the worker processes) are let go first, so the order's rows do not add to them at the peak."""
    from medseg.qc import run

    events = []
    real_close, real_store = run.close_tables, run._store_queue
    monkeypatch.setattr(run, "close_tables", lambda table: (events.append("measures let go"), real_close(table)))
    monkeypatch.setattr(run, "_store_queue", lambda ws: (events.append("queue stored"), real_store(ws)))
    ws_path = tmp_path / "ws"
    Workspace.create(ws_path, _write(tmp_path / "data", 20)).close()
    with Workspace.open(ws_path, verify="none") as ws:
        qc(ws, workers=1)
    assert events[:2] == ["measures let go", "queue stored"]
