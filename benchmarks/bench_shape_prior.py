"""The shape prior's cost per sample in one large group (a video, or a dataset whose frames share one group)
against the same number of samples in groups of 50.

    python benchmarks/bench_shape_prior.py [--samples 2000 20000 100000]

Each sample's group reference leaves its own shape out (``medseg.qc.signal_shape``); done as a pass over the
group per sample, a single group of n frames costs O(n^2) (100,000 frames: minutes of QC). Timed side by side in
one run on synthetic shape measures: ``shape_prior`` over every sample with the dataset as one group and as
groups of 50, and, for a few hundred samples, the per-sample pass it replaced (np.delete + np.median, the
previous release's rule; its values checked equal). The ratios are the figures to read: one group / groups of
50 about 1 means a large group costs no more than small ones.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from medseg.qc.checks_base import DatasetContext
from medseg.qc.signal_shape import MIN_GROUP, _GroupRobust, _robust, shape_prior

PASS_SAMPLES = 300  # the per-sample pass is timed on this many samples (it is quadratic in the group)


def table_of(n: int, rng: np.random.Generator) -> dict:
    area = np.log(rng.uniform(0.005, 0.2, n))
    objects = rng.choice([1.0, 1.0, 1.0, 1.0, 2.0], n)
    rough = rng.normal(0.1, 0.05, n)
    return {
        "shape": {
            f"f{i:06d}": {"log_area": float(a), "objects": float(o), "log_roughness": float(r)}
            for i, (a, o, r) in enumerate(zip(area, objects, rough))
        }
    }


def per_sample_pass(table: dict, sid: str, rows: np.ndarray) -> tuple[float, float]:
    """The previous release's group reference: the sample's row taken out of its group's, then the medians."""
    stored = table["shape"][sid]
    same = np.flatnonzero((rows[:, 0] == stored["log_area"]) & (rows[:, 1] == stored["objects"]))
    other = np.delete(rows, same[:1], axis=0)
    assert len(other) >= MIN_GROUP
    return _robust(other[:, 0]), _robust(other[:, 1])


def run(n: int) -> None:
    rng = np.random.default_rng(0)
    table = table_of(n, rng)
    ids = list(table["shape"])
    timed = {}
    layouts = {"one group": {s: "all" for s in ids}, "groups of 50": {s: f"g{i // 50}" for i, s in enumerate(ids)}}
    for name, groups in layouts.items():
        ctx = DatasetContext(ids, groups, {})
        t = time.perf_counter()
        values = [shape_prior(table, ctx, s, None) for s in ids]
        timed[name] = (time.perf_counter() - t) / n
        assert all(v is not None and np.isfinite(v) for v in values)
    rows = np.array([(m["log_area"], m["objects"]) for m in table["shape"].values()])
    picked = ids[:: max(1, n // PASS_SAMPLES)][:PASS_SAMPLES]
    t = time.perf_counter()
    for s in picked:
        per_sample_pass(table, s, rows)
    timed["per-sample pass"] = (time.perf_counter() - t) / len(picked)
    # the same references: the group's reference is the one the per-sample pass gives
    area, count = _GroupRobust(rows[:, 0]), _GroupRobust(rows[:, 1])
    for s in picked:
        stored = table["shape"][s]
        assert (area.without(stored["log_area"]), count.without(stored["objects"])) == per_sample_pass(table, s, rows)
    one, small, old = timed["one group"], timed["groups of 50"], timed["per-sample pass"]
    print(
        f"{n:>7} samples: shape prior {one * 1e3:.3f} ms a sample in one group, {small * 1e3:.3f} in groups of 50 "
        f"(ratio {one / small:.2f}); the per-sample pass's group reference alone {old * 1e3:.3f} ms "
        f"(ratio to the whole prior in one group {old / one:.1f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, nargs="+", default=[2000, 20000, 100000])
    for n in ap.parse_args().samples:
        run(n)


if __name__ == "__main__":
    main()
