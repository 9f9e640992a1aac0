"""Volume samples in the workspace: imported slice by slice, corrected slices saved alone (one blob each),
history and revert, bad input refused, gc and integrity aware of slice blobs, and a v1 workspace migrated."""

from __future__ import annotations

import json
import re
import sqlite3

import numpy as np
import pytest
from _volume_workspace_data import make_cases, paint, slice_files, volcases_registered
from _workspace_data import make_binary

from medseg.errors import WorkspaceError
from medseg.io.volume_labels import read_label_volume
from medseg.jobs import Cancelled, CancelToken, Progress, run
from medseg.workspace import Workspace, store
from medseg.workspace.volumes import volume_sha256


@pytest.fixture(autouse=True)
def _layout():
    with volcases_registered():
        yield


@pytest.fixture
def data(tmp_path):
    return make_cases(tmp_path / "data", n=2)


@pytest.fixture
def ws(data, tmp_path):
    with Workspace.create(tmp_path / "ws", data, author="importer") as w:
        yield w


def _labels(data, case):
    return read_label_volume(data / "labels" / f"{case}.nii.gz")[0]


def test_create_imports_each_volume_once_per_distinct_slice(ws, data):
    assert ws.sample_ids() == ["case0", "case1"]
    for case in ("case0", "case1"):
        rec = ws.sample(case)
        expected = _labels(data, case)
        assert rec.is_volume and ws.is_volume(case)
        assert rec.geometry == ws.source_sample(case).extra["geometry"]
        assert ws.geometry(case).shape == expected.shape == tuple(rec.geometry["shape"])
        mask = ws.current_mask(case)
        assert mask.dtype == np.uint8 and np.array_equal(mask, expected)
        head = ws.revisions(case)[0]
        assert head.origin == "imported" and head.note == f"imported from {case}.nii.gz"
        assert ws.changed_slices(head.id) == []
        assert np.array_equal(ws.current_slice(case, 4), expected[4])
        assert np.array_equal(ws.mask_slices(head.id, [7, 0, 7]), expected[[7, 0, 7]])
    # the empty slices of both cases (and any other equal slices) share one file
    distinct = {tuple(map(bytes, s)) for case in ("case0", "case1") for s in _labels(data, case)}
    assert len(slice_files(ws.root)) == len(distinct) < 2 * _labels(data, "case0").shape[0]
    s = ws.summary()
    assert s["n_volumes"] == 2 and s["n_slices"] == 2 * expected.shape[0] and s["schema_version"] == 2
    assert s["n_slice_files"] == len(distinct)
    assert ws.check_integrity() == []


def test_a_corrected_slice_is_saved_alone_and_reverted(ws, data):
    original = ws.current_mask("case0")
    z = int(np.argmax((original > 0).sum(axis=(1, 2))))  # the slice with most organ
    before = slice_files(ws.root)
    fixed = paint(original[z], 2)
    rev = ws.save_slices("case0", {z: fixed}, origin="manual", author="ann", note="spleen, not liver")
    assert slice_files(ws.root) - before == {f"{rev_blob(ws, rev.id, z)}.npz"}  # one new file: that slice
    assert len(slice_files(ws.root)) == len(before) + 1
    assert ws.changed_slices(rev.id) == [z] and rev.details["slices"] == [z]
    n = int((original[z] != fixed).sum())
    assert rev.n_changed == n > 0 and rev.details["pixels_by_slice"] == {str(z): n}
    assert rev.changed[2] == int((fixed[original[z] != fixed] == 2).sum())
    now = ws.current_mask("case0")
    assert np.array_equal(now[z], fixed) and np.array_equal(np.delete(now, z, 0), np.delete(original, z, 0))
    assert np.array_equal(ws.current_slice("case0", z), fixed)
    assert ws.sample("case0").status == "corrected"

    # the same slice again, or the head's own slices: no revision, no file
    assert ws.save_slices("case0", {z: fixed, 0: original[0]}, origin="manual") == ws.revision(rev.id)
    assert ws.save_revision("case0", now, origin="manual").id == rev.id
    assert len(ws.revisions("case0")) == 2 and len(slice_files(ws.root)) == len(before) + 1

    # a second correction on two other slices, given as a whole volume: only those two are written
    second = now.copy()
    second[1] = paint(now[1], 3)
    second[z - 1] = paint(now[z - 1], 1, 0, 3, 0, 4)
    rev2 = ws.save_revision("case0", second, origin="model", note="prediction copied")
    assert ws.changed_slices(rev2.id) == sorted({1, z - 1}) and len(slice_files(ws.root)) == len(before) + 3

    back = ws.revert("case0", 1, author="ann")
    assert back.origin == "revert" and back.details["reverted_to"] == 1 and back.parent_id == rev2.id
    assert ws.changed_slices(back.id) == sorted({1, z - 1, z})
    assert np.array_equal(ws.current_mask("case0"), original)
    assert len(slice_files(ws.root)) == len(before) + 3  # a revert writes no slice
    assert back.mask_sha256 == ws.revision(1).mask_sha256

    history = ws.revisions("case0")
    assert [r.origin for r in history] == ["imported", "manual", "model", "revert"]
    assert np.array_equal(ws.mask_at(rev.id), now) and np.array_equal(ws.mask_at(rev2.id), second)
    assert np.array_equal(ws.mask_at(1), original)
    assert np.array_equal(ws.current_mask("case1"), _labels(data, "case1"))  # the other case untouched
    assert ws.check_integrity() == []


def rev_blob(ws, revision_id, z):
    with sqlite3.connect(ws.root / "workspace.sqlite") as c:
        return c.execute(
            "SELECT sha256 FROM volume_slices WHERE revision_id = ? AND z = ?", (revision_id, z)
        ).fetchone()[0]


def test_bad_slices_are_refused_and_change_nothing(ws):
    mask = ws.current_mask("case0")
    Z, Y, X = mask.shape
    cases = [
        ({Z: mask[0]}, f"outside the volume's slices 0..{Z - 1}"),
        ({-1: mask[0]}, "outside the volume's slices"),
        ({"3": mask[0]}, "not a whole number"),
        ({2: mask[0][:, :-1]}, f"slice 2 has shape ({Y}, {X - 1})"),
        ({2: paint(mask[2], 9)}, "slice 2: mask values 9 are not in the class map"),
        ({2: paint(mask[2], 1).astype(float) + 0.5}, "whole class ids"),
    ]
    files = slice_files(ws.root)
    for slices, message in cases:
        with pytest.raises(WorkspaceError, match=re.escape(message)):
            ws.save_slices("case0", slices, origin="manual")
    with pytest.raises(WorkspaceError, match="does not fit the stored volume"):
        ws.save_revision("case0", mask[:-1], origin="manual")
    for z, value, message in [(4, 9, "slice 4: mask values 9 are not"), (6, -1, "slice 6: mask holds negative")]:
        bad = mask.astype(np.int16)
        bad[z, 0, 0] = value
        with pytest.raises(WorkspaceError, match=message):
            ws.save_revision("case0", bad, origin="manual")
    with pytest.raises(WorkspaceError, match="slice 0: a float mask must hold whole class ids"):
        ws.save_revision("case0", mask + 0.5, origin="manual")
    with pytest.raises(WorkspaceError, match="unknown revision origin"):
        ws.save_slices("case0", {0: mask[0]}, origin="painted")
    with pytest.raises(WorkspaceError, match="belongs to sample 'case1'"):
        ws.revert("case0", ws.sample("case1").head_revision)
    assert len(ws.revisions("case0")) == 1 and slice_files(ws.root) == files
    assert ws.sample("case0").status == "unreviewed"


def test_slices_of_a_2d_sample_are_refused(tmp_path):
    with Workspace.create(tmp_path / "ws", make_binary(tmp_path / "data", n=2)) as ws:
        assert not ws.is_volume("1") and ws.geometry("1") is None and ws.sample("1").geometry is None
        with pytest.raises(WorkspaceError, match="2-D sample, it has no slices"):
            ws.save_slices("1", {0: np.zeros((4, 4), np.uint8)}, origin="manual")
        head = ws.sample("1").head_revision
        with pytest.raises(WorkspaceError, match="is a 2-D mask, not a volume"):
            ws.changed_slices(head)
        with pytest.raises(WorkspaceError, match="is a 2-D mask, not a volume"):
            ws.mask_slices(head, [0])
        assert ws.summary()["n_volumes"] == 0


def test_off_grid_and_unreadable_labels_become_findings_not_a_crash(tmp_path):
    data = make_cases(tmp_path / "data", n=3, off_grid=1, broken=2)
    with Workspace.create(tmp_path / "ws", data) as ws:
        assert ws.sample_ids() == ["case0"] and ws.current_mask("case0").shape == tuple(ws.geometry("case0").shape)
        (grid,) = ws.findings(sample_id="case1", source="index")
        assert grid.check == "grid_mismatch" and grid.severity == "error"
        assert "case1.nii.gz is not on the grid of its image case1.nii.gz" in grid.message
        assert "mm apart" in grid.message and grid.path.endswith("labels/case1.nii.gz")
        (bad,) = ws.findings(sample_id="case2", source="index")
        assert bad.check == "unreadable" and "label volume cannot be imported" in bad.message
        assert bad.path.endswith("labels/case2.nii.gz")


def test_a_volume_sample_without_a_revision_takes_a_whole_volume_first(ws):
    with sqlite3.connect(ws.root / "workspace.sqlite") as c:  # as a sample whose import failed would be
        c.execute(
            'INSERT INTO samples (id, image_path, mask_paths, mask_kind, extra, "group", image_sha256, '
            "mask_source_sha256, position) SELECT 'bare', image_path, mask_paths, mask_kind, extra, 'bare', "
            "image_sha256, mask_source_sha256, 9 FROM samples WHERE id = 'case0'"
        )
    shape = ws.geometry("bare").shape
    with pytest.raises(WorkspaceError, match="first one needs every slice, 1 of"):
        ws.save_slices("bare", {z: np.zeros(shape[1:], np.uint8) for z in range(1, shape[0])}, origin="manual")
    with pytest.raises(WorkspaceError, match="does not fit the stored volume"):
        ws.save_revision("bare", np.zeros((shape[0] + 1, *shape[1:]), np.uint8), origin="manual")
    first = ws.save_revision("bare", ws.current_mask("case0"), origin="manual")
    assert first.parent_id is None and ws.changed_slices(first.id) == [] and first.n_changed == 0
    assert first.mask_sha256 == ws.revision(1).mask_sha256  # the same content hashes the same
    assert np.array_equal(ws.current_mask("bare"), ws.current_mask("case0")) and ws.check_integrity() == []


def test_a_cancelled_create_leaves_nothing(data, tmp_path):
    token = CancelToken()
    seen = []

    def on_event(event):
        seen.append(event)
        if isinstance(event, Progress) and event.stage == "import" and event.done == 1:
            token.cancel()

    with pytest.raises(Cancelled):
        run(Workspace.iter_create(tmp_path / "ws", data, cancel=token), token, on_event=on_event)
    assert [e.item for e in seen if isinstance(e, Progress) and e.stage == "import"] == ["case0"]
    assert not (tmp_path / "ws").exists()


def test_gc_and_integrity_know_slice_blobs(ws):
    mask = ws.current_mask("case0")
    ws.save_slices("case0", {3: paint(mask[3], 2)}, origin="manual")
    ws.save_slices("case0", {3: paint(mask[3], 3)}, origin="manual")  # the first correction is still history
    orphan = ws._blobs.put(np.full((5, 5), 1, np.uint8))  # as a killed save leaves one
    files = slice_files(ws.root)
    n, size = ws.gc(min_age_s=0)
    assert n == 1 and size > 0 and slice_files(ws.root) == files - {f"{orphan}.npz"}
    assert ws.check_integrity() == []
    for rev in ws.revisions("case0"):
        ws.mask_at(rev.id)  # every revision still reads back

    sha = rev_blob(ws, ws.sample("case0").head_revision, 3)
    path = ws._blobs.path(sha)
    path.write_bytes(path.read_bytes()[:-20])
    assert any(str(path) in p and "damaged" in p for p in ws.check_integrity())


def test_integrity_finds_a_missing_or_forged_slice_row(ws, tmp_path):
    head = ws.sample("case0").head_revision
    with sqlite3.connect(ws.root / "workspace.sqlite") as c:
        c.execute("DELETE FROM volume_slices WHERE revision_id = ? AND z = 2", (head,))
    problems = ws.check_integrity(blobs=False)
    assert problems == [f"sample case0 revision {head}: no stored slice for z = 2"]
    with pytest.raises(WorkspaceError, match="no stored slice for z = 2"):
        ws.current_mask("case0")
    other = rev_blob(ws, head, 0)
    with sqlite3.connect(ws.root / "workspace.sqlite") as c:
        c.execute("INSERT INTO volume_slices VALUES (?, 2, ?)", (head, other))
    assert ws.check_integrity(blobs=False) == [
        f"sample case0 revision {head}: its slices do not hash to the volume "
        f"{ws.revision(head).mask_sha256[:12]}... its row names"
    ]


def test_the_volume_hash_is_the_content(ws):
    rev = ws.revision(ws.sample("case0").head_revision)
    info = json.loads(
        sqlite3.connect(ws.root / "workspace.sqlite")
        .execute("SELECT volume FROM revisions WHERE id = ?", (rev.id,))
        .fetchone()[0]
    )
    assert info == {"shape": list(ws.current_mask("case0").shape), "dtype": "uint8"}
    from medseg.workspace.blobs import mask_sha256
    from medseg.workspace.volumes import VolumeInfo

    mask = ws.current_mask("case0")
    vi = VolumeInfo(mask.shape, "uint8")
    assert rev.mask_sha256 == volume_sha256(vi, [mask_sha256(s) for s in mask])


def _as_v1(ws_root):
    """Rewrite a workspace's database as schema 1 made it (the same rows, no volume column or table)."""
    db, v1_path = ws_root / "workspace.sqlite", ws_root / "v1.sqlite"
    v1 = sqlite3.connect(v1_path)
    v1.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied TEXT NOT NULL)")
    v1.executescript(store.MIGRATIONS[1])
    v1.execute("INSERT INTO schema_version VALUES (1, '2024-01-01T00:00:00+00:00')")
    v1.execute("ATTACH DATABASE ? AS cur", (str(db),))
    for table in ("meta", "samples", "revisions", "status_log", "findings", "scores", "model_runs"):
        cols = ", ".join(f'"{r[1]}"' for r in v1.execute(f"PRAGMA main.table_info({table})"))
        v1.execute(f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM cur.{table}")
    v1.commit()
    v1.execute("DETACH DATABASE cur")
    v1.close()
    for suffix in ("", "-wal", "-shm"):
        (ws_root / f"workspace.sqlite{suffix}").unlink(missing_ok=True)
    v1_path.rename(db)


def test_a_v1_workspace_is_migrated_when_opened(tmp_path):
    data = make_binary(tmp_path / "data", n=2)
    with Workspace.create(tmp_path / "ws", data) as old:
        saved = old.save_revision("1", np.ones((32, 40), np.uint8), origin="manual")
        masks = {sid: old.current_mask(sid) for sid in old.sample_ids()}
    _as_v1(tmp_path / "ws")
    db = tmp_path / "ws" / "workspace.sqlite"
    with sqlite3.connect(db) as c:
        assert "volume" not in [r[1] for r in c.execute("PRAGMA table_info(revisions)")]
        assert c.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == 1
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.summary()["schema_version"] == 2 and ws.check_integrity() == []
        assert ws.sample_ids() == list(masks)
        assert all(np.array_equal(ws.current_mask(sid), m) for sid, m in masks.items())
        assert ws.revision(saved.id) == saved and ws.sample("1").status == "corrected"
        rev = ws.save_revision("1", np.zeros((32, 40), np.uint8), origin="manual")
        assert rev.parent_id == saved.id and ws.gc(min_age_s=0) == (0, 0) and ws.check_integrity() == []
        assert ws.revert("1", saved.id).mask_sha256 == saved.mask_sha256
    with sqlite3.connect(db) as c:
        assert [r[0] for r in c.execute("SELECT version FROM schema_version ORDER BY version")] == [1, 2]
        assert c.execute("SELECT COUNT(*) FROM revisions WHERE volume IS NOT NULL").fetchone()[0] == 0


def test_a_series_folder_is_hashed_file_by_file(tmp_path):
    from medseg.workspace.sources import file_sha256, file_stat

    series = tmp_path / "series"
    series.mkdir()
    for i in range(3):
        (series / f"IM{i}.dcm").write_bytes(bytes([i]) * 100)
    first, stat = file_sha256(series), file_stat(series)
    assert stat[0] == 300 and stat[2] == 3
    (series / "IM1.dcm").write_bytes(bytes([9]) * 100)  # same size, other content
    assert file_sha256(series) != first
    (series / "IM1.dcm").write_bytes(bytes([1]) * 100)
    assert file_sha256(series) == first
    (series / "IM1.dcm").rename(series / "IM7.dcm")  # the same bytes under another name
    assert file_sha256(series) != first
    (series / "IM3.dcm").write_bytes(b"")
    assert file_stat(series)[2] == 4


def test_a_head_moved_by_another_writer_during_a_save_is_the_parent(ws, monkeypatch):
    """Another process saves between this save's blob writes and its transaction: the delta is taken
    against the head as it is then, so no change is lost and none is undone silently."""
    from medseg.workspace import volume_saves

    mask = ws.current_mask("case0")
    other = Workspace.open(ws.root)
    theirs = {3: paint(mask[3], 3), 4: paint(mask[4], 1)}
    real = volume_saves.vol.put_slices

    def put_then_the_other_saves(*args, **kwargs):
        real(*args, **kwargs)
        monkeypatch.setattr(volume_saves.vol, "put_slices", real)  # once: the other writer's own save
        other.save_slices("case0", theirs, origin="manual", author="other")

    monkeypatch.setattr(volume_saves.vol, "put_slices", put_then_the_other_saves)
    # slice 3 as it was (no blob written: the head held it), slice 5 corrected
    mine = ws.save_slices("case0", {3: mask[3], 5: paint(mask[5], 2)}, origin="manual", author="me")
    other.close()
    _, first, second = [r.id for r in ws.revisions("case0")]
    assert ws.revision(first).author == "other" and mine.id == second and mine.parent_id == first
    assert ws.changed_slices(mine.id) == [3, 5]  # slice 3 back to what this writer had on screen
    now = ws.current_mask("case0")
    assert np.array_equal(now[3], mask[3]) and np.array_equal(now[4], theirs[4])
    assert np.array_equal(now[5], paint(mask[5], 2)) and ws.check_integrity() == []
