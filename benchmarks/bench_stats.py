"""How long does the dataset overview take on 10,000 samples, and how much memory?

Writes a synthetic dataset of ``N`` RGB PNG frames (``SIDE`` px square, a few grey blobs and 1-3 elliptic
objects per mask, 0/255) into a temporary folder, then times ``medseg.stats.stats`` on the folder and on a
workspace over it (the workspace's creation is timed apart), the plots, and the Overview dock's refresh
after 1 % of the labels were corrected (a second overview with the first one's ``FactsCache``). Peak
memory is the process's resident high-water mark after each step (``ru_maxrss``); ``--tracemalloc`` adds
the peak of Python allocations, which doubles the times it is measured with.

    python benchmarks/bench_stats.py [N] [SIDE] [--tracemalloc]
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from PIL import Image

from medseg.stats import stats
from medseg.stats.cache import FactsCache
from medseg.workspace import Workspace


def make(root: Path, n: int, side: int) -> None:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:side, :side]
    for i in range(n):
        image = np.clip(rng.normal(100 + i % 50, 30, (side, side, 3)), 0, 255).astype(np.uint8)
        mask = np.zeros((side, side), np.uint8)
        for _ in range(1 + i % 3):
            cy, cx, ry, rx = *rng.uniform(0.2, 0.8, 2) * side, *rng.uniform(0.03, 0.12, 2) * side
            mask[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = 255
        Image.fromarray(image).save(root / "images" / f"{i}.png", compress_level=1)
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


TRACE = "--tracemalloc" in sys.argv


def timed(what: str, fn):
    if TRACE:
        tracemalloc.start()
    t = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t
    traced = ""
    if TRACE:
        traced = f", Python allocations peak {tracemalloc.get_traced_memory()[1] / 2**20:.0f} MB"
        tracemalloc.stop()
    print(f"{what}: {seconds:.1f} s{traced}, max RSS {rss_mb():.0f} MB")
    return out


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 10_000
    side = int(args[1]) if len(args) > 1 else 128
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ds"
        t = time.perf_counter()
        make(root, n, side)
        print(f"{n} samples of {side}x{side} written in {time.perf_counter() - t:.1f} s")
        report = timed("stats on the folder", lambda: stats(root))
        print("\n".join(report.lines()))
        timed("the plots", report.plots)
        t = time.perf_counter()
        ws = Workspace.create(Path(tmp) / "ws", root)
        print(f"workspace created in {time.perf_counter() - t:.1f} s")
        with ws:
            cache = FactsCache()
            timed("stats on the workspace", lambda: stats(ws, cache=cache))
            ids = ws.sample_ids()[::100]
            for sid in ids:
                mask = ws.current_mask(sid).copy()
                mask[:4, :4] = 1
                ws.save_revision(sid, mask, origin="manual")
            timed(f"again after {len(ids)} corrections (the dock's refresh)", lambda: stats(ws, cache=cache))


if __name__ == "__main__":
    main()
