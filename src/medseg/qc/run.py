"""``run_qc``: one decoding pass over a dataset or workspace, every check, one report.

Each sample's image and mask are decoded once (in worker processes from
``pool.MIN_SAMPLES`` samples, :mod:`medseg.qc.pool`; below, in a thread or a
few); every per-sample check runs on that decoded view, and
dataset-wide checks keep only small measures (hashes, thumbnails, numbers)
from it. Findings are collected in memory and, for a workspace, written in one
transaction at the very end, so an interrupted run (Ctrl-C, closing the
generator, setting its cancel token) leaves the workspace's findings as they
were. QC never changes a mask: fixes are only offered (see :mod:`medseg.qc.fixes`).

``run_qc`` is a job of :mod:`medseg.jobs`: ``Started`` (total: the samples;
``detail["stages"]``: each stage's step count), ``Progress`` in two stages
whose totals are what their ``done`` reaches: "samples" (one step per sample,
item the sample id), then "dataset-wide checks" (one step per check that
compares samples, item the check just run; absent when none runs), and last
``Result(QCReport)``; a set token raises ``Cancelled`` at the next sample or
check.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from medseg.errors import Cancelled
from medseg.jobs import CancelToken, Progress, Result, Started, check, ordered_map
from medseg.qc import pool
from medseg.qc.checks_base import DatasetContext
from medseg.qc.checks_registry import CHECKS, resolve_checks, resolve_params
from medseg.qc.examine import examiner
from medseg.qc.findings import severity_rank
from medseg.qc.report import QCReport
from medseg.qc.sources import as_source
from medseg.qc.spill import close_tables, measure_table

_ORDER = {name: n for n, name in enumerate(CHECKS)}
SAMPLES_STAGE = "samples"
DATASET_STAGE = "dataset-wide checks"  # one stage, its steps the checks that compare samples, not 7 of their own


def run_qc(
    source,
    checks: str | Iterable[str] | None = None,
    params: dict | None = None,
    *,
    workers: int | None = None,
    processes: int | None = None,
    cancel: CancelToken | None = None,
) -> Iterator[Any]:
    """Check ``source`` (a ``Dataset`` or a ``Workspace``): the job's events, last ``Result(QCReport)``.

    ``checks``: names (list or "a,b") from ``CHECKS``, default all;
    ``params``: {check: {parameter: value}} overriding the defaults;
    ``workers``: decoding threads (default :func:`default_workers`);
    ``processes``: worker processes for the decoding pass (:mod:`medseg.qc.pool`): 1 never, more always,
    None (default) every CPU once the source holds ``pool.MIN_SAMPLES`` samples;
    ``cancel``: looked at after each sample and each dataset-wide check.
    A workspace gets the findings stored with source "qc" (replacing the
    previous findings of the checks that ran), and the scores of checks that
    give them (``outline_fit``: method "outline-fit"), when the report is yielded;
    a cancelled run stores nothing.
    """
    at = ["before the first sample"]  # where a cancel found the run, for its message
    try:
        return (yield from _run_qc(source, checks, params, workers, processes, cancel, at))
    except Cancelled as c:  # raised here, or thrown in at a yield by medseg.jobs.drive
        raise Cancelled(f"QC cancelled {at[0]}: no findings were written", c.done, c.total) from None


def _run_qc(source, checks, params, workers: int | None, processes: int | None, cancel: CancelToken | None, at):
    selected = resolve_checks(checks)
    p = resolve_params(selected, params)
    src = as_source(source)
    names = {c.name for c in selected}
    started = time.perf_counter()
    timings: dict[str, float] = defaultdict(float)

    ids = src.sample_ids()
    per_sample = [c for c in selected if c.stage == "sample"]
    dataset_wide = [c for c in selected if c.stage == "dataset"]
    features = sorted({f for c in dataset_wide for f in c.needs})
    decode = bool(per_sample or dataset_wide or names & {"unreadable", "size_mismatch"})
    n = len(ids) if decode else 0
    stages = {SAMPLES_STAGE: n} if decode else {}
    if dataset_wide:
        stages[DATASET_STAGE] = len(dataset_wide)
    yield Started(
        "qc",
        n,
        {"source": str(src.root), "checks": [c.name for c in selected], "samples": len(ids), "stages": stages},
    )

    t = time.perf_counter()
    # findings the workspace already stores under "index" are reported, not stored again
    known = [f for f in src.index_findings() if f.check in names]
    stored = [f for f in src.change_findings() if f.check in names]
    timings["index"] = time.perf_counter() - t

    # the measures holding thumbnails go to a temporary file: memory stays flat in the samples (spill.py)
    table = measure_table(features)
    worker_pool = None  # worker processes (medseg.qc.pool), when the run is large enough for them
    try:
        examine = examiner(src, per_sample, features, p, names)
        if decode:
            yield Progress(0, n, SAMPLES_STAGE)
            procs = processes if processes is not None else pool.default_processes()
            if pool.use_pool(procs, n, 1 if processes is not None else pool.MIN_SAMPLES):
                worker_pool = pool.Workers(src, per_sample, features, p, names, procs)
                decoded = worker_pool.examine(ids)
            else:
                n_workers = workers if workers is not None else default_workers()
                decoded = ordered_map(examine, ids, n_workers, "medseg-qc")
            try:
                for done, (sid, (found, measured, spent)) in enumerate(decoded, 1):
                    stored += found
                    for key, value in measured.items():
                        table[key][sid] = value
                    for key, sec in spent.items():
                        timings[key] += sec
                    at[0] = f"after {done} of {n} samples"
                    check(cancel, done, n)
                    yield Progress(done, n, SAMPLES_STAGE, sid)
            finally:
                decoded.close()  # the samples still in flight are dropped here, not when the generator is collected

        groups, paths = {sid: src.group(sid) for sid in ids}, {sid: src.path(sid) for sid in ids}
        ctx = DatasetContext(ids, groups, paths, workers=worker_pool)
        scores: dict[str, tuple[dict, dict]] = {}
        if dataset_wide:
            yield Progress(0, len(dataset_wide), DATASET_STAGE)
        for k, c in enumerate(dataset_wide, 1):
            at[0] = f"before the {c.name} check"
            check(cancel, k - 1, len(dataset_wide))
            t = time.perf_counter()
            stored += c.decide(table, ctx, p[c.name])
            if c.scores is not None:
                method, make = c.scores
                scores[method] = make(table, ctx)
            timings[c.name] += time.perf_counter() - t
            yield Progress(k, len(dataset_wide), DATASET_STAGE, c.name)

        # the duplicate checks' candidate pairs, hashes and pictures are not what any signal's calibration reads
        # (at 100,000 samples the close pairs alone are ~25 MB): let go before it and the storing
        for key in [k for k in ctx.cache if isinstance(k, str) and k.startswith("duplicates:")]:
            del ctx.cache[key]
        position = {sid: n for n, sid in enumerate(ids)}
        findings = sorted(
            known + stored,
            key=lambda f: (
                -severity_rank(f.severity),
                _ORDER.get(f.check, 99),
                position.get(f.sample_id, len(position)),
                f.sample_id,
            ),
        )
        by_check = defaultdict(int)
        for f in findings:
            by_check[f.check] += 1
        t = time.perf_counter()
        calibrated = _calibrate(src, table, ctx, scores)
        timings["reliability"] = time.perf_counter() - t
        at[0] = "before storing its findings"
        check(cancel)
        t = time.perf_counter()
        src.save(stored, names, scores)
        if calibrated is not None:
            from medseg.qc.reliability import save

            save(src.root, calibrated)
        # the queue's order is made from what was just stored: the measures, the checks' caches, the scores'
        # details and the worker processes go first (at 100,000 samples the order's rows on top of them made
        # QC's peak memory, 1.3 GB)
        scores = {m: v[0] for m, v in scores.items()}
        del ctx, calibrated
        close_tables(table)
        table.clear()
        if worker_pool is not None:
            worker_pool.close()
            worker_pool = None
        if getattr(src, "in_workspace", False):
            _store_queue(src.ws)
        timings["store"] = time.perf_counter() - t
        report = QCReport(
            findings,
            dict(by_check),
            len(ids),
            time.perf_counter() - started,
            dict(timings),
            [c.name for c in selected],
            p,
            str(src.root),
            scores,
        )
        yield Result(report)
    finally:
        if worker_pool is not None:
            worker_pool.close()
        close_tables(table)


def _calibrate(src, table: dict, ctx, scores: dict) -> dict | None:
    """A workspace's signals measured on errors planted in its own labels (:mod:`medseg.qc.reliability`),
    when this run scored any signal; the model the queue ranks by, if one is stored, is measured too."""
    from medseg.qc.queue import default_method, signal_methods
    from medseg.qc.reliability import calibrate_qc

    free = set(signal_methods())
    methods = [m for m in scores if m in free]
    if not getattr(src, "in_workspace", False) or not methods:
        return None
    model = default_method(src.ws.score_methods())
    return calibrate_qc(src, table, ctx, methods, model if model not in free else None)


def _store_queue(ws) -> None:
    """Compute the review queue's order now and keep it in the workspace (:mod:`medseg.qc.queue_cache`), so
    that the app's first open and ``medseg review`` read it instead of every score and finding just stored
    (seconds at 100,000 samples). The order the app opens with: every score method, every check."""
    from medseg.qc.queue import review_queue

    review_queue(ws)


def default_workers() -> int:
    """CPUs minus one (the GUI or the caller keeps one), at least 1, at most 4: beyond that, reading
    files is the limit. On a busy 2-core machine the 612 CVC-ClinicDB frames took 7.0 s with one
    thread and 7.7-9.2 s with two."""
    return min(4, max(1, (os.cpu_count() or 2) - 1))


def qc(
    source,
    checks=None,
    params=None,
    *,
    workers: int | None = None,
    processes: int | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> QCReport:
    """``run_qc`` run to the end: the report (``progress`` is called with each ``Progress``)."""
    from medseg.jobs import run

    def relay(event: Any) -> None:
        if progress is not None and isinstance(event, Progress):
            progress(event)

    return run(run_qc(source, checks, params, workers=workers, processes=processes), on_event=relay)
