"""Rule-based QC of the 612 CVC-ClinicDB frames: total seconds, per-step seconds, samples per second.

    python benchmarks/bench_qc.py [--data ../shared/data/cvc-clinicdb] [--workers 1,2] [--repeats 1]

Indexing (``open_dataset``, which reads every frame's thumbnail to cut the
video into groups) is timed apart from QC. For each worker count QC runs every
check; the per-step seconds are summed over the decoding threads, so with two
workers they add up to about twice the wall time. Then the findings per check
and severity, and the near-duplicate pairs that cross a group boundary.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = Path(os.environ.get("MEDSEG_DATA_DIR", REPO.parent / "shared" / "data")) / "cvc-clinicdb"
    ap.add_argument("--data", type=Path, default=default)
    ap.add_argument("--workers", default="1,2", help="worker counts to compare, comma-separated")
    ap.add_argument("--repeats", type=int, default=1, help="runs per worker count (median reported)")
    args = ap.parse_args(argv)
    if not (args.data / "images").is_dir():
        print(f"no CVC-ClinicDB at {args.data} (set MEDSEG_DATA_DIR or --data)", file=sys.stderr)
        return 1

    from medseg.datasets import open_dataset
    from medseg.qc import qc

    t = time.perf_counter()
    ds = open_dataset(args.data)
    print(
        f"index: {len(ds)} samples, {len(ds.groups)} groups in {time.perf_counter() - t:.2f} s "
        f"(machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})"
    )
    report = None
    for workers in [int(w) for w in args.workers.split(",")]:
        runs = []
        for _ in range(args.repeats):
            report = qc(ds, workers=workers)
            runs.append(report)
        wall = statistics.median(r.seconds for r in runs)
        print(
            f"\nqc, {workers} worker(s): {wall:.2f} s for {report.n_samples} samples = "
            f"{report.n_samples / wall:.1f} samples/s"
        )
        steps = sorted(report.timings.items(), key=lambda kv: -kv[1])
        for name, sec in steps:
            if sec >= 0.005:
                print(f"  {name:<28} {sec:7.2f} s  ({1000 * sec / report.n_samples:5.2f} ms/sample)")
    print()
    print(report.table(worst=0))
    cross = [f for f in report.findings if f.check == "near_duplicate" and f.details.get("cross_group")]
    for f in cross:
        print(
            f"cross-group near-duplicate: {f.sample_id} (group {ds.by_id(f.sample_id).group}) ~ "
            f"{', '.join(f.details['cross_group'])}"
        )
    near = [f for f in report.findings if f.check == "near_duplicate"]
    pairs = {tuple(sorted((f.sample_id, o["id"]))) for f in near for o in f.details["others"]}
    gaps = sorted(abs(int(a) - int(b)) for a, b in pairs)
    if gaps:
        print(f"near-duplicate pairs: {len(pairs)}; frame-number gap median {statistics.median(gaps)}, max {gaps[-1]}")
    blurred = sorted((f for f in report.findings if f.check == "blurred"), key=lambda f: f.value)
    print(f"blurred: {len(blurred)} frames, sharpest flagged {blurred[-1].value:.2f}x median" if blurred else "")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
