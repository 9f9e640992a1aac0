"""A workspace create whose per-file work runs in worker processes stores exactly what a serial one does.

Real CVC-ClinicDB frames (two stretches of video, so the frame grouping has a cut to find) with a grey-noise
mask, a damaged mask, an image without a mask and a mask of another size are created serially and in two
worker processes, in chunks of 5 so that order across chunks matters: every table and every blob is the same.
A damaged file met in a worker is named as it is here; a failure in a worker fails the create with the file's
name, and a cancelled pooled create leaves nothing behind.
"""

from __future__ import annotations

import multiprocessing
import shutil
import sqlite3

import numpy as np
import pytest
from PIL import Image

from medseg import process_pool
from medseg.datasets import open_dataset
from medseg.errors import Cancelled, ReadError
from medseg.jobs import CancelToken, Progress
from medseg.workspace import Workspace
from medseg.workspace.blobs import BlobStore
from medseg.workspace.create_import import iter_imported

FRAMES = [*range(1, 13), *range(253, 265)]
TIMES = {"schema_version": "applied", "revisions": "created", "status_log": "time"}


@pytest.fixture(scope="module")
def data(cvc_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("cvc-create") / "data"
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
        for i in FRAMES:
            shutil.copyfile(cvc_dir / sub / f"{i}.png", root / sub / f"{i}.png")
    grey = np.asarray(Image.open(root / "masks" / "5.png")).copy()
    grey[:6, :40] = 30  # faint grey levels: binarised, and said in the revision's note
    Image.fromarray(grey).save(root / "masks" / "5.png")
    (root / "masks" / "7.png").write_bytes((root / "masks" / "7.png").read_bytes()[:300])  # damaged
    (root / "masks" / "9.png").unlink()  # an image without its mask
    Image.new("L", (20, 10)).save(root / "masks" / "11.png")  # another size than its image
    return root


def _tables(ws_root) -> dict:
    conn = sqlite3.connect(ws_root / "workspace.sqlite")
    try:
        out = {}
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
            cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[1] != TIMES.get(table)]
            rows = conn.execute(f"SELECT {', '.join(f'{chr(34)}{c}{chr(34)}' for c in cols)} FROM {table}").fetchall()
            if table == "meta":
                rows = [r for r in rows if r[0] not in ("created", "create_owner")]
            out[table] = sorted(rows, key=repr)
        return out
    finally:
        conn.close()


def _blobs(ws_root) -> dict:
    """{name: its bytes}, each read back through the store (which checks it holds what its name says)."""
    store = BlobStore(ws_root / "masks")
    return {p.name: (p.read_bytes(), store.get(p.stem).shape) for p in store.iter_files()}


def _create(data, path, workers):
    with Workspace.create(path, data, workers=workers) as ws:
        return ws.findings(source="index"), ws.group_sizes()


def test_pooled_create_equals_serial_create(data, tmp_path, monkeypatch):
    monkeypatch.setattr(process_pool, "CHUNK", 5)
    serial = _create(data, tmp_path / "serial", 0)
    pooled = _create(data, tmp_path / "pooled", 2)
    assert serial == pooled
    findings, groups = pooled
    assert len(groups) >= 2  # the two stretches of video are apart
    damaged = [f for f in findings if f.sample_id == "7"]
    assert len(damaged) == 1 and damaged[0].path == str(data / "masks" / "7.png")
    assert "mask cannot be imported" in damaged[0].message
    assert {f.sample_id for f in findings} >= {"7", "9", "11"}
    tables = _tables(tmp_path / "serial")
    assert tables == _tables(tmp_path / "pooled")
    assert len(tables["samples"]) == len(FRAMES) - 3  # 7: finding, 9 and 11: index problems
    notes = {r[0]: r for r in tables["revisions"]}  # revisions by id, sample, ..., note
    assert any(r[1] == "5" and "binarised" in str(r) for r in notes.values())
    assert _blobs(tmp_path / "serial") == _blobs(tmp_path / "pooled") != {}


def test_spawned_workers_create_the_same_workspace(data, tmp_path, monkeypatch):
    """The app runs a create beside other threads, where workers are spawned (nothing inherited)."""
    monkeypatch.setattr(process_pool, "CHUNK", 7)
    monkeypatch.setattr(process_pool, "_start_method", lambda: "spawn")
    _create(data, tmp_path / "serial", 0)
    _create(data, tmp_path / "spawned", 2)
    assert _tables(tmp_path / "serial") == _tables(tmp_path / "spawned")
    assert _blobs(tmp_path / "serial") == _blobs(tmp_path / "spawned")


def test_a_file_gone_under_a_worker_fails_with_its_name(data, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    ds = open_dataset(copy)
    gone = ds.samples[-1].image_path
    gone.unlink()  # after indexing, before its import
    blobs = BlobStore(tmp_path / "masks")
    with process_pool.worker_pool(len(ds.samples), workers=2) as pool:
        assert pool is not None
        with pytest.raises(FileNotFoundError) as err:
            list(iter_imported(ds.samples, ds.classmap, copy, blobs, pool, None))
    assert str(gone) in str(err.value)


def test_errors_come_back_from_a_worker_naming_their_file(tmp_path):
    e = process_pool.portable(ReadError(tmp_path / "x.png", "not a PNG"))
    assert str(tmp_path / "x.png") in str(e) and "not a PNG" in str(e)
    missing = process_pool.portable(FileNotFoundError(2, "No such file or directory", str(tmp_path / "y.png")))
    assert isinstance(missing, FileNotFoundError) and missing.filename == str(tmp_path / "y.png")


def test_cancelled_pooled_create_leaves_nothing(data, tmp_path, monkeypatch):
    monkeypatch.setattr(process_pool, "CHUNK", 3)
    token, path = CancelToken(), tmp_path / "ws"
    job = Workspace.iter_create(path, data, cancel=token, workers=2)
    with pytest.raises(Cancelled):
        for event in job:
            if isinstance(event, Progress) and event.stage == "import" and event.done >= 4:
                token.set()
    assert not path.exists()
    assert multiprocessing.active_children() == []
