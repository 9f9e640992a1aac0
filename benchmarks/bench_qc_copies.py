"""QC of a dataset full of copies of one picture with two masks, against as many different pictures.

    python benchmarks/bench_qc_copies.py [--copies 1000] [--workers 1]

k copies of one picture whose masks take two values disagree in up to k^2/4 pairs; they were judged, listed
in every copy's finding and searched for the odd ones out pair by pair (1,000 copies: 19 s, 455 MB of QC,
37 MB of findings). Each case runs in a child process (its peak resident memory is its own): ``medseg
workspace create`` then ``medseg qc``, timed, then the workspace database's size. The ratios copies /
different pictures are the figures to read: about 1 or less means copies cost no more than pictures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

CHILD = """
import json, resource, sys, time
from medseg.cli import main
t = time.perf_counter()
main(["workspace", "create", sys.argv[1], sys.argv[2], "--quiet"])
created = time.perf_counter() - t
t = time.perf_counter()
main(["qc", sys.argv[2], "--workers", sys.argv[3]])
print(json.dumps({"create": created, "qc": time.perf_counter() - t,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write(root: Path, k: int, copies: bool) -> None:
    """``k`` frames: one picture with two masks by turns (``copies``), or ``k`` different pictures."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    picture = (rng.random((96, 128, 3)) * 255).astype(np.uint8)
    for i in range(k):
        image = picture if copies else (rng.random((96, 128, 3)) * 255).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"{i:05d}.png")
        mask = np.zeros((96, 128), np.uint8)
        top = 20 if i % 2 else 30
        mask[top : top + 40, top + 10 : top + 60] = 255
        Image.fromarray(mask).save(root / "masks" / f"{i:05d}.png")


def run(root: Path, workers: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), str(root.parent / f"{root.name}-ws"), str(workers)],
        capture_output=True,
        text=True,
        check=True,
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["db_mb"] = (root.parent / f"{root.name}-ws" / "workspace.sqlite").stat().st_size / 2**20
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--copies", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for name, copies in (("different pictures", False), ("copies, two masks", True)):
            root = Path(tmp) / name.split()[0].strip(",")
            write(root, args.copies, copies)
            t = time.perf_counter()
            results[name] = run(root, args.workers)
            print(f"{name}: {json.dumps({k: round(v, 2) for k, v in results[name].items()})}", flush=True)
            print(f"  ({time.perf_counter() - t:.1f} s with the child's start)")
    a, b = results["different pictures"], results["copies, two masks"]
    print(f"\n{args.copies} frames, {args.workers} QC worker(s); copies / different pictures:")
    for key, label in (("qc", "QC seconds"), ("peak_mb", "peak resident MB"), ("db_mb", "workspace database MB")):
        print(f"  {label:<24} {b[key]:8.2f} / {a[key]:8.2f} = {b[key] / a[key]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
