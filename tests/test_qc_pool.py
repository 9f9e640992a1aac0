"""QC's decoding pass in worker processes (medseg.qc.pool) decides exactly as the serial pass.

Real CVC-ClinicDB frames (two stretches of video, so neighbour fit and the duplicate checks have pairs to
judge) are checked serially and in two processes, from a workspace (findings and scores stored) and from a
bare dataset; a damaged file is named the same way in either; a cancel in the pooled pass stores nothing and
leaves no worker behind.
"""

from __future__ import annotations

import multiprocessing
import shutil

import pytest

from medseg import process_pool
from medseg.datasets import open_dataset
from medseg.errors import Cancelled
from medseg.jobs import CancelToken, Progress
from medseg.qc import qc, run_qc
from medseg.workspace import Workspace

FRAMES = [*range(1, 19), *range(253, 271)]


def _copy(cvc_dir, root, frames=FRAMES):
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
        for i in frames:
            shutil.copyfile(cvc_dir / sub / f"{i}.png", root / sub / f"{i}.png")
    return root


def _keys(findings):
    return [(f.sample_id, f.check, f.severity, f.message, repr(f.value), f.path, repr(f.details)) for f in findings]


def _stored(ws):
    return _keys(ws.findings(source="qc")), {m: ws.scores(m) for m in ws.score_methods()}


@pytest.fixture(scope="module")
def frames(cvc_dir, tmp_path_factory):
    return _copy(cvc_dir, tmp_path_factory.mktemp("cvc-pool") / "data")


def test_pooled_qc_equals_serial_qc_on_real_frames(frames, tmp_path):
    runs = {}
    for procs in (1, 2):
        path = tmp_path / f"ws-{procs}"
        with Workspace.create(path, frames) as ws:
            seen = []
            report = qc(ws, processes=procs, progress=seen.append)
            runs[procs] = (_keys(report.findings), report.by_check, report.scores, _stored(ws))
        samples = [e.item for e in seen if isinstance(e, Progress) and e.stage == "samples" and e.done]
        assert samples == sorted(samples, key=lambda s: FRAMES.index(int(s)))  # in order, one step a sample
        assert len(samples) == len(FRAMES)
    assert runs[1] == runs[2]
    scores = runs[2][2]
    assert runs[2][1].get("near_duplicate")  # it judged pairs ...
    assert len([v for v in scores["neighbour-fit"].values() if v is not None]) > len(FRAMES) // 2  # ... and videos


def test_pooled_qc_of_a_dataset_equals_serial_and_names_a_damaged_file(frames, tmp_path):
    root = shutil.copytree(frames, tmp_path / "data")
    (root / "images" / "260.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    ds = open_dataset(root)
    serial, pooled = qc(ds, processes=1), qc(ds, processes=2)
    assert _keys(serial.findings) == _keys(pooled.findings)
    broken = [f for f in pooled.findings if f.sample_id == "260" and f.severity == "error"]
    assert broken and all("260.png" in (f.path or "") for f in broken)


def test_pooled_qc_in_spawned_workers_equals_serial(frames, monkeypatch, tmp_path):
    """The app runs QC in a thread, so its workers are spawned and open the workspace from its recipe."""
    monkeypatch.setattr(process_pool, "_start_method", lambda: "spawn")
    with Workspace.create(tmp_path / "ws", frames) as ws:
        serial = _keys(qc(ws, "empty_mask,near_duplicate,outline_fit", processes=1).findings)
        assert _keys(qc(ws, "empty_mask,near_duplicate,outline_fit", processes=2).findings) == serial


def test_cancelled_pooled_qc_stores_nothing_and_stops_its_workers(frames, tmp_path):
    with Workspace.create(tmp_path / "ws", frames) as ws:
        qc(ws, "empty_mask", processes=1)
        before = _stored(ws)
        token = CancelToken()
        with pytest.raises(Cancelled, match="no findings were written"):
            for event in run_qc(ws, processes=2, cancel=token):
                if isinstance(event, Progress) and event.stage == "samples" and event.done == 5:
                    token.set()
        assert _stored(ws) == before
        assert multiprocessing.active_children() == []


class _InOrder:
    """Worker processes' stand-in: the same tasks, run here."""

    def map(self, fn, tasks):
        return (fn(t) for t in tasks)


@pytest.mark.parametrize("workers", [None, _InOrder()])
def test_hash_pairs_computed_once_give_each_distance_the_pairs_hash_pairs_gives(monkeypatch, workers):
    from types import SimpleNamespace

    import numpy as np

    from medseg.qc import duplicates_pairs as duplicates

    monkeypatch.setattr(duplicates, "_HASH_ROWS", 700)  # several row ranges, one ending mid-block
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2**63, 150, dtype=np.uint64)
    flips = [np.uint64(1) << rng.integers(0, 64, 150).astype(np.uint64) for _ in range(20)]
    hashes = np.concatenate([base ^ f for f in flips] + [base])  # 3,150 hashes, many within 2 bits
    ctx = SimpleNamespace(cache={}, workers=workers)
    for distance in (8, 0, 2, 11):
        got = duplicates._close_hashes(ctx, hashes.tolist(), distance)
        want = duplicates.hash_pairs(hashes, distance, duplicates.MOST_CANDIDATES)
        assert len(want[0]) > 0 and all(np.array_equal(a, b) for a, b in zip(got, want)), distance


def test_a_measure_a_worker_wrote_to_its_file_reads_back_from_there(tmp_path):
    import pickle

    import numpy as np

    from medseg.qc import spill

    value = {"grey": np.arange(12, dtype=np.uint8).reshape(3, 4), "mask": np.zeros((3, 4), np.uint8)}
    blob = pickle.dumps(value)
    theirs = tmp_path / "123.bin"
    theirs.write_bytes(b"x" * 7 + blob)
    t = spill.SpillTable(cached=1, folder=tmp_path)
    try:
        t["a"] = spill.Written(str(theirs), 7, len(blob))
        t["b"] = value
        theirs.unlink()  # the pool removes the files when it closes; the table holds them open
        t["b"], t["a"]  # noqa: B018 - "a" read back from the file, not the cache
        for key in ("a", "b", "a"):
            got = t[key]
            assert got.keys() == value.keys() and all(np.array_equal(got[k], value[k]) for k in value)
        assert len(t) == 2 and t.nbytes > len(blob)
    finally:
        t.close()


def _grey_sums(ctx, chunk, fps, arg):
    return [(a, b, int(fps[a]["grey"].sum()) + arg * int(fps[b]["grey"].sum())) for a, b, _ in chunk]


class _InProcess:
    """Workers that run each task here, keeping what they were handed."""

    def __init__(self):
        self.handed = []

    def map(self, fn, tasks):
        for task in tasks:
            self.handed.append(task)
            yield fn(task)


def test_pair_work_hands_workers_where_their_fingerprints_lie_instead_of_the_fingerprints(tmp_path):
    import pickle
    from types import SimpleNamespace

    import numpy as np

    from medseg.qc import spill
    from medseg.qc.duplicates_pairs import pair_map

    values = {k: {"grey": np.full((4, 4), n, np.uint8)} for n, k in enumerate("abc")}
    theirs, blobs = tmp_path / "9.bin", [pickle.dumps(v) for v in values.values()]
    theirs.write_bytes(b"".join(blobs))
    table = spill.SpillTable(folder=tmp_path)
    try:
        at = 0
        for k, b in zip(values, blobs):
            table[k] = spill.Written(str(theirs), at, len(b))
            at += len(b)
        items = [("a", "b", 3), ("b", "c", 5), ("a", "c", 1)]
        serial = list(pair_map(SimpleNamespace(cache={}), values, items, _grey_sums, 10))
        workers = _InProcess()
        pooled = list(pair_map(SimpleNamespace(cache={}, workers=workers), table, items, _grey_sums, 10))
        assert pooled == serial == [[("a", "b", 160), ("b", "c", 336), ("a", "c", 320)]]
        handed = [x for task in workers.handed for x in task[2].values()]
        assert len(handed) == 3 and all(isinstance(x, spill.Written) for x in handed)
        assert not table._cache  # nothing was unpickled here
    finally:
        table.close()


def _closest_brute(hashes, max_distance: int, most: int) -> list[tuple[int, int, int]]:
    """Each sample's ``most`` closest (distance, then position gap, then position), merged into pairs i < j."""
    n = len(hashes)
    kept = {}
    for a in range(n):
        near = []
        for b in range(n):
            dist = (int(hashes[a]) ^ int(hashes[b])).bit_count()
            if b != a and dist <= max_distance:
                near.append((dist, abs(a - b), b))
        for dist, _, b in sorted(near)[:most]:
            kept[min(a, b), max(a, b)] = dist
    return [(a, b, dist) for (a, b), dist in sorted(kept.items())]


@pytest.mark.parametrize("workers", [None, _InOrder()])
@pytest.mark.parametrize("cells", [1, 300, 1 << 18])
def test_each_sample_is_compared_with_its_closest_hashes_only(monkeypatch, workers, cells):
    """Many alike hashes (clusters of 60 within 3 bits): with the bound, a sample's candidates are its ``most``
    closest, the pairs merged over both samples, whatever the blocks of rows and the worker row ranges; a
    smaller distance asked after a larger one gives what the bound gives at that distance."""
    from types import SimpleNamespace

    import numpy as np

    from medseg.qc import duplicates_pairs as duplicates

    monkeypatch.setattr(duplicates, "_HASH_ROWS", 70)
    monkeypatch.setattr(duplicates, "_BLOCK_CELLS", cells)
    monkeypatch.setattr(duplicates, "MOST_CANDIDATES", 5)
    rng = np.random.default_rng(3)
    base = rng.integers(0, 2**63, 4, dtype=np.uint64)
    bits = [np.uint64(1) << rng.integers(0, 64, 240).astype(np.uint64) for _ in range(3)]
    hashes = base[np.arange(240) % 4] ^ bits[0] ^ bits[1] ^ bits[2]
    ctx = SimpleNamespace(cache={}, workers=workers)
    for distance in (6, 2):
        want = _closest_brute(hashes, distance, 5)
        got = duplicates._close_hashes(ctx, hashes.tolist(), distance)
        assert list(zip(*(a.tolist() for a in got))) == want, distance
        assert list(zip(*(a.tolist() for a in duplicates.hash_pairs(hashes, distance, 5)))) == want
        assert len(want) <= 240 * 5
    unbounded = duplicates.hash_pairs(hashes, 6)
    assert len(unbounded[0]) > 3 * len(_closest_brute(hashes, 6, 5))  # the bound bites at the larger distance


def test_near_duplicates_are_confirmed_where_the_fingerprints_lie(tmp_path, monkeypatch):
    """The near-duplicate check's candidates go to the workers with where their fingerprints lie: this
    process reads each fingerprint once (for its hash), none per candidate; the pairs equal a serial run's."""
    import pickle
    from types import SimpleNamespace

    import numpy as np
    from scipy import ndimage as ndi

    from medseg.qc import spill
    from medseg.qc.duplicates_fingerprint import Fingerprint, phash_and_thumb
    from medseg.qc.duplicates_pairs import pairs

    rng = np.random.default_rng(4)
    fps = {}
    for scene in range(3):
        base = ndi.gaussian_filter(rng.random((48, 64)), 6)
        for k in range(4):  # a scene's frames: the same picture, a little noise each
            g = base + rng.normal(0, 0.0003, base.shape)
            phash, thumb = phash_and_thumb(g)
            fps[f"s{scene}-{k}"] = Fingerprint(f"{scene}-{k}", phash, thumb, "m", {}, {}, None)
    ids = list(fps)
    blobs = [pickle.dumps(fps[s]) for s in ids]
    theirs = tmp_path / "7.bin"
    theirs.write_bytes(b"".join(blobs))
    table = spill.SpillTable(folder=tmp_path)
    reads = []
    real = spill.SpillTable.__getitem__
    monkeypatch.setattr(spill.SpillTable, "__getitem__", lambda self, key: (reads.append(key), real(self, key))[1])
    try:
        at = 0
        for sid, blob in zip(ids, blobs):
            table[sid] = spill.Written(str(theirs), at, len(blob))
            at += len(blob)
        serial = pairs({"fingerprint": fps}, SimpleNamespace(cache={}, sample_ids=ids), 8, 0.95)
        workers = _InProcess()
        pooled = pairs({"fingerprint": table}, SimpleNamespace(cache={}, sample_ids=ids, workers=workers), 8, 0.95)
        assert pooled == serial and len(serial) >= 3 * 6  # every pair of a scene's 4 frames
        assert sorted(reads) == sorted(ids) and workers.handed  # one read a sample, here; the rest there
    finally:
        table.close()
