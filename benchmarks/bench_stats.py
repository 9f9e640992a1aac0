"""How long does the dataset overview take on 10,000 samples, and how much memory?

Writes a synthetic dataset of ``N`` RGB PNG frames (``SIDE`` px square, a few grey blobs and 1-3 elliptic
objects per mask, 0/255) into a temporary folder, then times ``medseg.stats.stats`` on the folder and on a
workspace over it (the workspace's creation is timed apart), and the plots. Peak memory is the process's
resident high-water mark after each step (``ru_maxrss``), and tracemalloc's peak of Python allocations
during the overview.

    python benchmarks/bench_stats.py [N] [SIDE]
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


def timed(what: str, fn):
    tracemalloc.start()
    t = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{what}: {seconds:.1f} s, Python allocations peak {peak / 2**20:.0f} MB, max RSS {rss_mb():.0f} MB")
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    side = int(sys.argv[2]) if len(sys.argv) > 2 else 128
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
            timed("stats on the workspace", lambda: stats(ws))


if __name__ == "__main__":
    main()
