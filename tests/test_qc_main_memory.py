"""What QC's main process holds per sample until its scores are stored (issue 19, item 4: 1 GB at 100,000).

The outline and signal scores' details are made when read (from the packed measures), not held as a dict a
sample; the duplicate checks hold the samples' hashes as arrays; the reliability calibration reads no record
of every sample, and the source keeps a small row a sample instead of its record. Each test compares with
what the eager code gave, value for value, and bounds the bytes a sample keeps (tracemalloc).
"""

from __future__ import annotations

import math
import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest

from medseg.qc import duplicates_pairs
from medseg.qc.checks_base import DatasetContext
from medseg.qc.duplicates_fingerprint import Fingerprint
from medseg.qc.outline_fit import dataset_scores
from medseg.qc.reliability import calibrate_qc
from medseg.qc.signals import SIGNALS, Signal, percentiles, signal_scores
from medseg.qc.sources import WorkspaceSource
from medseg.qc.spill import PackedTable
from medseg.workspace import Workspace
from tests.test_reliability import AREA, make_set

N = 4000


def _kept(make) -> tuple[object, float]:
    """(``make()``, the bytes a sample of it holds once made)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        out = make()
        return out, (tracemalloc.get_traced_memory()[0] - before) / N
    finally:
        tracemalloc.stop()


def _summary(k: int) -> dict | None:
    if k % 7 == 3:
        return None  # not judged
    q = float("nan") if k % 11 == 5 else (k * 7919 % 1000) / 250  # ties and unjudged NaNs among them
    return {
        "quality": q,
        "fit": 1 / (k + 3),
        "contrast": 2.5 + k % 5,
        "distinct": 1.25,
        "class_id": 1,
        "centre": [k % 48, k % 64],
        "pixels": 300 + k,
        "better": "moved 2 px up",
        "best_ratio": 0.5 + (k % 10) / 10,
        "correction": ["move", -2, 0],
        "objects": 1,
        "revision": k + 1,
    }


def test_outline_details_equal_the_eager_ones_and_are_made_when_read():
    from medseg.qc.ranks import average_ranks

    table = PackedTable()
    for k in range(N):
        table[f"s{k}"] = _summary(k)
    (scores, details), per_sample = _kept(lambda: dataset_scores(table))
    # the eager form: every judged summary with its percentile, rank and the number judged
    judged = {s: table[s] for s in table if table[s] is not None and math.isfinite(table[s]["quality"])}
    ranks = average_ranks(np.array([v["quality"] for v in judged.values()]))
    want = {
        s: {**v, "percentile": float(r / (len(judged) - 1)), "rank": int(np.floor(r)) + 1, "judged": len(judged)}
        for (s, v), r in zip(judged.items(), ranks)
    }
    assert list(scores) == list(details) == list(want) and len(details) == len(want)
    assert all(list(details[s].items()) == list(want[s].items()) for s in want)
    assert details.get("s3") is None and "s3" not in details  # not judged: no details
    # a dict of 15 entries a judged sample held 1.6 KB; the scores' dict of floats stays (< 200 bytes)
    assert per_sample < 250, per_sample


def test_signal_details_equal_the_eager_ones_and_are_made_when_read(monkeypatch):
    def raw(table, ctx, sid, own):
        v = table["foreground"].get(sid)
        return None if v is None else v["n"] / 10

    signal = Signal("t-count", "pixels", "few pixels", ("foreground",), raw)
    monkeypatch.setitem(SIGNALS, signal.method, signal)
    ids = [f"s{k}" for k in range(N)]
    table = {"foreground": PackedTable(), "revision": PackedTable()}
    for k, sid in enumerate(ids):
        table["foreground"][sid] = None if k % 9 == 0 else {"n": k * 31 % 500, "classes": [1]}
        table["revision"][sid] = None if k % 5 == 0 else k + 1
    ctx = SimpleNamespace(sample_ids=ids, cache={})
    signal_scores(signal, table, ctx)  # the raw values are kept for the calibration anyway: not the details'
    (scores, details), per_sample = _kept(lambda: signal_scores(signal, table, ctx))
    values = {s: raw(table, ctx, s, None) for s in ids if table["foreground"][s] is not None}
    want = {
        s: {"raw": v, **({"revision": table["revision"][s]} if table["revision"][s] else {})} for s, v in values.items()
    }
    assert scores == percentiles(values) and list(scores) == list(details) == list(want)
    assert all(list(details[s].items()) == list(want[s].items()) for s in want)
    # {"raw": v, "revision": r} a sample took 220 bytes; what stays is the percentiles' dict
    assert per_sample < 150, per_sample


def test_duplicate_hashes_are_held_as_arrays_and_give_the_same_exact_pairs():
    ids = [f"s{k}" for k in range(N)]
    shas = [f"{k % 1500 if k % 3 == 0 else k}" for k in range(N)]  # every third sample repeats an earlier one
    fps = {
        sid: Fingerprint(sha, int(k * 2654435761 % 2**64), None, "m", {}, {})
        for k, (sid, sha) in enumerate(zip(ids, shas))
    }
    ctx = DatasetContext(ids, {}, {})
    held, per_sample = _kept(lambda: duplicates_pairs._hashes(fps, ctx))
    got_ids, hashes, same, groups, masks = held
    assert got_ids == ids and hashes.dtype == np.uint64 and hashes.tolist() == [f.phash for f in fps.values()]
    assert all((same[a] == same[b]) == (shas[a] == shas[b]) for a, b in zip(range(N), range(1, N)))
    # the exact pairs as they were grouped before: by SHA-256 in the order each first came, samples in order
    by_sha: dict[str, list[str]] = {}
    for sid, sha in zip(ids, shas):
        by_sha.setdefault(sha, []).append(sid)
    _, exact = duplicates_pairs.candidates({"fingerprint": fps}, ctx, 0)
    assert exact == [g for g in by_sha.values() if len(g) > 1]
    assert masks.dtype == np.int64 and not masks.any()  # one mask code: every mask is "m"
    # a Python int and a SHA-256 string a sample took 170 bytes; the mask code adds 8
    assert per_sample < 70, per_sample


def _measured(ws):
    """The workspace's source, its ids, the foreground measures and a dataset context over them."""
    from medseg.qc.checks_registry import FEATURES

    src = WorkspaceSource(ws)
    ids = src.sample_ids()
    table = {"foreground": {sid: FEATURES["foreground"](src.load(sid, False)) for sid in ids}}
    return src, ids, table, DatasetContext(ids, {s: s for s in ids}, {s: src.path(s) for s in ids})


def test_calibration_reads_no_record_of_every_sample(tmp_path, monkeypatch):
    root, _ = make_set(tmp_path / "data", n=30)
    monkeypatch.setitem(SIGNALS, AREA.method, AREA)
    with Workspace.create(tmp_path / "ws", root, group_by="stem") as ws:
        src, ids, table, ctx = _measured(ws)
        heads = {r.id: r.head_revision for r in ws.samples()}
        want = calibrate_qc(src, table, ctx, [AREA.method])

        def every_record(*a, **k):
            raise AssertionError("a record of every sample read")

        monkeypatch.setattr(ws, "samples", every_record)
        got = calibrate_qc(src, table, ctx, [AREA.method])
    assert got["pairs"] == want["pairs"] and len(got["pairs"]) >= 12
    assert all(p["revision"] == heads[p["sample_id"]] is not None for p in got["pairs"])
    for c in (got, want):
        c["calibrations"][""].pop("when")
    assert got == want


@pytest.mark.parametrize("gone", [True, False])
def test_calibration_plants_no_sample_the_workspace_no_longer_holds(tmp_path, monkeypatch, gone):
    from medseg.errors import WorkspaceError

    root, _ = make_set(tmp_path / "data", n=30)
    monkeypatch.setitem(SIGNALS, AREA.method, AREA)
    with Workspace.create(tmp_path / "ws", root, group_by="stem") as ws:
        src, ids, table, ctx = _measured(ws)
        is_volume = ws.is_volume

        def volume(sid):
            if gone and sid == "f00":
                raise WorkspaceError("no sample f00")
            return is_volume(sid)

        monkeypatch.setattr(ws, "is_volume", volume)
        got = calibrate_qc(src, table, ctx, [AREA.method])
    planted = {p["sample_id"] for p in got["pairs"]}
    assert ("f00" in planted) is not gone and len(planted) >= 12


def test_the_source_keeps_a_small_row_a_sample_and_loads_what_the_records_say(tmp_path):
    # QC's source keeps what it reads of every sample for the whole run: a SampleRecord (Paths, hashes,
    # status) held 1.1-1.6 KB a sample; the row keeps the paths as strings and the shared strings once
    root, _ = make_set(tmp_path / "data", n=N // 20)
    with Workspace.create(tmp_path / "ws", root) as ws:
        records = {r.id: r for r in ws.samples()}
        n = len(records)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            src = WorkspaceSource(ws)
            per_sample = (tracemalloc.get_traced_memory()[0] - before) / n
        finally:
            tracemalloc.stop()
        assert per_sample < 800, per_sample
        for sid, r in records.items():
            view = src.load(sid, True)
            assert view.image_path == src.path(sid) == str(r.image_path)
            assert view.mask_path == str(next(iter(r.mask_paths.values())))
            assert (view.group, view.revision) == (r.group, r.head_revision)
            assert np.array_equal(view.mask, ws.current_mask(sid))


def test_the_duplicate_checks_pairs_and_hashes_are_let_go_before_the_calibration(tmp_path, monkeypatch):
    from medseg.qc import qc
    from medseg.qc import run as qc_run

    root, _ = make_set(tmp_path / "data", n=30)
    seen = {}
    real = qc_run._calibrate

    def calibrate(src, table, ctx, scores):
        seen["keys"] = list(ctx.cache)
        return real(src, table, ctx, scores)

    monkeypatch.setattr(qc_run, "_calibrate", calibrate)
    with Workspace.create(tmp_path / "ws", root) as ws:
        report = qc(ws)
    assert {"near_duplicate", "exact_duplicate", "duplicate_mask_disagreement"} <= set(report.checks)
    assert seen["keys"] and not [k for k in seen["keys"] if "duplicates" in str(k) or "pairs" in str(k)]
