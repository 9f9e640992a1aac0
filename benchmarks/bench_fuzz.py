"""The fuzz campaign: damaged and odd files through every stage; a table of ok, clean errors, crashes and hangs.

    python benchmarks/bench_fuzz.py [--rounds 1] [--seed 0] [--timeout 60] [--mem-mb 3072] [--keep DIR] [--show N]

The corpus (``tests/_fuzz_corpus.py``: truncated, bit-flipped, mislabelled, lying-header
and odd-shaped PNG / JPEG / TIFF / DICOM / NIfTI files from real bytes, arranged as
datasets) goes through the napari reader contract, ``medseg.io.load``, ``medseg index``,
``medseg qc``, ``medseg workspace create``, ``medseg predict`` (a tiny untrained U-Net),
the training input pipeline and tiny Trainer runs (``tests/_fuzz_campaign.py``). Each
file is bounded by ``--timeout`` seconds and the worker's address space by ``--mem-mb``
above what its imports take. ``--rounds`` repeats the seeded bit-flip families (a larger
corpus: about 150 files more per round). The target is 0 crashes and 0 hangs; every
crash and hang is listed under the table with its message (the first ``--show``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=1, help="seeded bit-flip rounds per real file (1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per file before it counts as a hang")
    ap.add_argument("--mem-mb", type=int, default=3072, help="worker address space above its imports (MiB)")
    ap.add_argument("--keep", type=Path, default=None, help="build the corpus here and keep it")
    ap.add_argument("--show", type=int, default=20, help="crashes and hangs listed after the table")
    args = ap.parse_args(argv)

    from _fuzz_campaign import problems, run_campaign, table
    from _fuzz_corpus import build_corpus

    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        t = time.perf_counter()
        corpus = build_corpus(base / "corpus", seed=args.seed, rounds=args.rounds)
        print(
            f"corpus: {len(corpus.files)} files in {len(corpus.datasets)} datasets "
            f"({time.perf_counter() - t:.1f} s); real inputs: {corpus.sources}",
            file=sys.stderr,
        )
        t = time.perf_counter()
        outcomes = run_campaign(
            corpus,
            base / "work",
            timeout=args.timeout,
            mem_mb=args.mem_mb,
            log=lambda m: print(f"  {m} ({time.perf_counter() - t:.0f} s)", file=sys.stderr),
        )
        print(f"campaign: {time.perf_counter() - t:.1f} s", file=sys.stderr)
    print(table(outcomes))
    bad = problems(outcomes)
    for o in bad[: args.show]:
        first = o.message.strip().splitlines()[0] if o.message.strip() else ""
        print(f"{o.result.upper()} {o.stage} {Path(o.file).name} [{o.case}]: {first[:300]}")
    if len(bad) > args.show:
        print(f"... and {len(bad) - args.show} more")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
