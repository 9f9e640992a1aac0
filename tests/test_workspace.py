"""Workspace: import, revisions, revert, status, changed pixels, source changes, refusals, corruption."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3

import numpy as np
import pytest
from _workspace_data import (
    UW_MASKS,
    H,
    W,
    box,
    make_binary,
    make_palette,
    make_uw,
    snapshot,
)
from PIL import Image

from medseg.errors import DestinationError, ReadError, WorkspaceError
from medseg.io.masks import read_mask_values
from medseg.jobs import Progress, Result, Started, drive
from medseg.workspace import SourceChange, Workspace
from medseg.workspace.blobs import BlobStore, mask_sha256


@pytest.fixture
def binary_ds(tmp_path):
    return make_binary(tmp_path / "data", n=4, grey_noise_in=2)


@pytest.fixture
def ws(binary_ds, tmp_path):
    with Workspace.create(tmp_path / "ws", binary_ds, author="importer") as w:
        yield w


def test_create_imports_each_mask_as_the_layout_reads_it(binary_ds, tmp_path):
    events = list(drive(Workspace.iter_create(tmp_path / "ws", binary_ds, author="importer")))
    assert isinstance(events[0], Started) and isinstance(events[-1], Result)
    ws = events[-1].value
    progress = [e for e in events if isinstance(e, Progress)]
    assert isinstance(ws, Workspace) and [e.stage for e in progress] == ["index"] + ["import"] * 4 + ["commit"]
    assert [e.done for e in progress if e.stage == "import"] == [1, 2, 3, 4]
    assert ws.sample_ids() == ["1", "2", "3", "4"] and ws.sample_ids("unreviewed") == ws.sample_ids()
    for sid in ws.sample_ids():
        rec = ws.sample(sid)
        (rev,) = ws.revisions(sid)
        assert (rev.origin, rev.parent_id, rev.author, rev.changed, rev.n_changed) == (
            "imported",
            None,
            "importer",
            {},
            0,
        )
        assert rec.head_revision == rev.id and rec.status == "unreviewed" and rec.reason is None
        assert rec.image_sha256 == hashlib.sha256(rec.image_path.read_bytes()).hexdigest()
        assert rec.mask_source_sha256 == {"1": hashlib.sha256(rec.mask_paths[1].read_bytes()).hexdigest()}
        i = int(sid)
        np.testing.assert_array_equal(ws.current_mask(sid), box(4 + i, 14 + i, 5, 20))
        assert [s.status for s in ws.status_history(sid)] == ["unreviewed"]
    # Grey noise was binarised to background; the revision says so and the raw values stay readable.
    noisy = ws.revisions("2")[0]
    assert "grey level" in noisy.note and "set to background" in noisy.note
    assert noisy.details["binarise"]["mask"]["n_to_background"] == 6 * 13
    assert "binarise" not in ws.revisions("1")[0].details and ws.revisions("1")[0].note == "imported from 1.png"
    raw = read_mask_values(ws.source_sample("2").mask_paths[1])
    assert len(set(np.unique(raw).tolist()) - {0, 255}) > 5
    np.testing.assert_array_equal(ws.source_sample("2").load_mask(), ws.current_mask("2"))
    assert ws.image("3").array.shape == (H, W, 3)
    assert ws.summary()["by_status"] == {"unreviewed": 4, "accepted": 0, "corrected": 0, "excluded": 0}
    ws.close()


def test_every_operation_leaves_the_source_tree_untouched(binary_ds, tmp_path):
    before = snapshot(binary_ds)
    steps = []
    ws = Workspace.create(tmp_path / "ws", binary_ds)
    steps.append(("create", snapshot(binary_ds)))
    first = ws.revisions("1")[0]
    ws.save_revision("1", box(0, 5, 0, 5), origin="manual")
    steps.append(("save", snapshot(binary_ds)))
    ws.revert("1", first.id)
    steps.append(("revert", snapshot(binary_ds)))
    ws.set_status("2", "excluded", "blurred")
    steps.append(("status", snapshot(binary_ds)))
    ws.image("3"), ws.source_sample("2").load_mask(), ws.summary(), ws.check_integrity(), ws.gc(min_age_s=0)
    steps.append(("reads and gc", snapshot(binary_ds)))
    ws.close()
    Workspace.open(tmp_path / "ws", verify="hash").close()
    steps.append(("open", snapshot(binary_ds)))
    for name, after in steps:
        assert after == before, f"{name} changed the source dataset"


def test_changed_pixels_per_class_hand_checked(tmp_path):
    ws = Workspace.create(tmp_path / "ws", make_palette(tmp_path / "data"))
    assert ws.classmap.task == "multiclass"
    head = ws.current_mask("t0")
    assert head.dtype == np.uint8 and set(np.unique(head).tolist()) == {0, 1, 2, 3}
    new = head.copy()
    new[2:4, 2:5] = 2  # 6 pixels leave class 1 and join class 2
    new[0, 30:34] = 3  # 4 background pixels join class 3
    rev = ws.save_revision("t0", new.astype(np.int64), origin="manual", author="ann", note="fix")
    assert (rev.n_changed, rev.changed) == (10, {1: 6, 2: 6, 3: 4})
    assert rev.parent_id == ws.revisions("t0")[0].id and rev.author == "ann" and rev.note == "fix"
    assert ws.revisions("t0")[-1] == rev and ws.sample("t0").head_revision == rev.id
    assert ws.sample("t0").status == "corrected"
    assert [s.status for s in ws.status_history("t0")] == ["unreviewed", "corrected"]
    # The same content (as bool-free int32 this time) is not a new revision.
    again = ws.save_revision("t0", new.astype(np.int32), origin="manual")
    assert again == rev and len(ws.revisions("t0")) == 2
    np.testing.assert_array_equal(ws.current_mask("t0"), new)
    ws.close()


def test_revert_makes_a_new_head_with_the_old_content(ws):
    imported = ws.revisions("1")[0]
    a = ws.save_revision("1", box(0, 10, 0, 10), origin="auto-fix", note="fill holes")
    b = ws.save_revision("1", box(0, 10, 0, 12), origin="model")
    assert (b.parent_id, b.changed, b.n_changed) == (a.id, {1: 20}, 20)
    assert ws.sample("1").status == "unreviewed"  # only a manual save marks a sample corrected
    r = ws.revert("1", imported.id)
    assert (r.origin, r.parent_id, r.details) == ("revert", b.id, {"reverted_to": imported.id})
    assert r.mask_sha256 == imported.mask_sha256 and "revert to revision" in r.note
    np.testing.assert_array_equal(ws.current_mask("1"), ws.mask_at(imported.id))
    np.testing.assert_array_equal(ws.mask_at(a.id), box(0, 10, 0, 10))
    assert [x.id for x in ws.revisions("1")] == [imported.id, a.id, b.id, r.id]
    assert ws.revert("1", imported.id) == r  # already the head's content: nothing new
    with pytest.raises(WorkspaceError, match="belongs to sample '1'"):
        ws.revert("2", a.id)
    with pytest.raises(WorkspaceError, match="no revision 99999"):
        ws.mask_at(99999)


def test_status_changes_are_checked_and_logged(ws):
    with pytest.raises(WorkspaceError, match="needs a reason"):
        ws.set_status("1", "excluded")
    with pytest.raises(WorkspaceError, match="valid: unreviewed, accepted, corrected, excluded"):
        ws.set_status("1", "done")
    ws.set_status("1", "excluded", "motion blur", author="rev")
    ws.set_status("1", "excluded", "motion blur", author="rev")  # no change, no log entry
    ws.set_status("1", "accepted")
    ws.set_status("3", "accepted", author="rev")
    log = ws.status_history("1")
    assert [(s.status, s.reason) for s in log] == [
        ("unreviewed", None),
        ("excluded", "motion blur"),
        ("accepted", None),
    ]
    assert log[1].author == "rev" and log[0].time < log[1].time < log[2].time
    assert ws.sample_ids("accepted") == ["1", "3"] and [s.id for s in ws.samples("unreviewed")] == ["2", "4"]
    assert ws.summary()["by_status"]["accepted"] == 2


def test_bad_masks_and_names_are_refused_with_clear_errors(ws):
    with pytest.raises(WorkspaceError, match=r"values 255 are not in the class map.*binarised"):
        ws.save_revision("1", box(0, 5, 0, 5, 255), origin="manual")
    with pytest.raises(WorkspaceError, match=r"shape \(10, 10\) differs"):
        ws.save_revision("1", np.zeros((10, 10), np.uint8), origin="manual")
    with pytest.raises(WorkspaceError, match="whole class ids"):
        ws.save_revision("1", np.full((H, W), 0.5), origin="manual")
    with pytest.raises(WorkspaceError, match="unknown revision origin 'brush'"):
        ws.save_revision("1", box(0, 5, 0, 5), origin="brush")
    with pytest.raises(WorkspaceError, match="no sample 'nope' among its 4 samples"):
        ws.current_mask("nope")
    assert len(ws.revisions("1")) == 1 and ws.check_integrity() == []


def test_multilabel_masks_round_trip_with_per_class_changes(tmp_path):
    ws = Workspace.create(tmp_path / "ws", make_uw(tmp_path / "data"))
    assert ws.classmap.task == "multilabel" and ws.classmap.names == ["large_bowel", "small_bowel", "stomach"]
    sid = "case1_day1_slice_0001"
    head = ws.current_mask(sid)
    expected = np.stack([UW_MASKS[sid].get(c, np.zeros((H, W), np.uint8)) for c in ws.classmap.names], -1)
    assert head.dtype == bool and head.shape == (H, W, 3)
    np.testing.assert_array_equal(head, expected.astype(bool))
    new = head.copy()
    new[0, 0:5, 0] = True  # large_bowel gains 5 pixels
    new[8, 10:13, 2] = False  # stomach loses 3, one of them also large_bowel's
    new[8, 10, 0] = False  # large_bowel loses that one too: 1 pixel, 2 channels
    rev = ws.save_revision(sid, new, origin="manual")
    assert rev.changed == {1: 6, 3: 3} and rev.n_changed == 5 + 3
    back = ws.mask_at(rev.id)
    assert back.dtype == bool and np.array_equal(back, new)
    with pytest.raises(WorkspaceError, match="C = 3 classes"):
        ws.save_revision(sid, new[..., :2], origin="manual")
    ws.close()


def test_a_corrupt_or_missing_blob_is_named(ws):
    sha = ws.revisions("1")[0].mask_sha256
    path = BlobStore(ws.root / "masks").path(sha)
    assert path.is_file() and sha == mask_sha256(box(5, 15, 5, 20))
    other = ws.root / "masks" / "other.npz"
    np.savez(other, mask=box(0, 3, 0, 3))
    os.replace(other, path)  # a valid file with the wrong content
    with pytest.raises(ReadError, match="is corrupt") as e:
        ws.current_mask("1")
    assert e.value.path == path
    path.write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(ReadError, match="damaged"):
        ws.current_mask("1")
    problems = ws.check_integrity()
    assert len(problems) == 1 and str(path) in problems[0]
    path.unlink()
    with pytest.raises(ReadError, match="missing"):
        ws.mask_at(ws.revisions("1")[0].id)
    np.testing.assert_array_equal(ws.current_mask("3"), box(7, 17, 5, 20))  # the rest still reads


def test_source_changes_are_reported_and_the_rest_works(binary_ds, tmp_path):
    Workspace.create(tmp_path / "ws", binary_ds).close()
    Image.fromarray(box(0, 8, 0, 8, 255)).save(binary_ds / "masks" / "2.png")
    (binary_ds / "images" / "3.png").unlink()
    os.utime(binary_ds / "images" / "4.png")  # touched, same content: not a change
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.source_changes == [
            SourceChange("2", binary_ds / "masks" / "2.png", "changed"),
            SourceChange("3", binary_ds / "images" / "3.png", "missing"),
        ]
        assert ws.summary()["source_changes"] == {"changed": 1, "missing": 1}
        np.testing.assert_array_equal(ws.current_mask("3"), box(7, 17, 5, 20))
        with pytest.raises(ReadError) as e:
            ws.image("3")
        assert "3.png" in str(e.value)
        assert ws.image("4").array.shape == (H, W, 3)
        ws.save_revision("3", box(1, 2, 1, 2), origin="manual")
    with sqlite3.connect(tmp_path / "ws" / "workspace.sqlite") as c:  # the touched file's new stat was kept
        stat = c.execute("SELECT source_stat FROM samples WHERE id = '4'").fetchone()[0]
    st = (binary_ds / "images" / "4.png").stat()
    assert f"[{st.st_size}, {st.st_mtime_ns}]" in stat


def test_workspace_inside_the_dataset_is_refused(binary_ds, tmp_path):
    before = snapshot(binary_ds)
    for target in (binary_ds / "ws", binary_ds / "masks" / "ws", binary_ds):
        with pytest.raises(DestinationError, match="the dataset it reviews"):
            Workspace.create(target, binary_ds)
    assert snapshot(binary_ds) == before
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(WorkspaceError, match="not an empty folder"):
        Workspace.create(tmp_path / "busy", binary_ds)
    Workspace.create(tmp_path / "ws", binary_ds).close()
    with pytest.raises(WorkspaceError, match="already a workspace"):
        Workspace.create(tmp_path / "ws", binary_ds)
    with pytest.raises(WorkspaceError, match="not a workspace"):
        Workspace.open(tmp_path / "busy")


def test_two_workspace_objects_in_one_process_share_the_store(ws):
    other = Workspace.open(ws.root)
    a = ws.save_revision("1", box(0, 4, 0, 4), origin="manual")
    np.testing.assert_array_equal(other.current_mask("1"), box(0, 4, 0, 4))
    b = other.save_revision("1", box(0, 4, 0, 6), origin="manual")  # parent is the other object's save
    assert b.parent_id == a.id and b.changed == {1: 8}
    other.set_status("2", "excluded", "duplicate frame")
    assert ws.sample("2").status == "excluded" and ws.sample("1").head_revision == b.id
    other.close()
    with pytest.raises(WorkspaceError, match="closed"):
        other.current_mask("1")


def test_interrupted_create_leaves_nothing_behind(binary_ds, tmp_path):
    gen = Workspace.iter_create(tmp_path / "ws", binary_ds)
    for event in gen:
        if isinstance(event, Progress) and event.stage == "import" and event.done == 2:
            break
    gen.close()
    assert not (tmp_path / "ws").exists()
    Workspace.create(tmp_path / "ws", binary_ds).close()
    with sqlite3.connect(tmp_path / "ws" / "workspace.sqlite") as c:
        c.execute("UPDATE meta SET value = 'creating' WHERE key = 'state'")
    with pytest.raises(WorkspaceError, match="interrupted"):
        Workspace.open(tmp_path / "ws")


def test_a_newer_schema_is_refused(ws):
    with sqlite3.connect(ws.root / "workspace.sqlite") as c:
        c.execute("INSERT INTO schema_version VALUES (99, 'future')")
    with pytest.raises(WorkspaceError, match="schema version 99 is newer"):
        Workspace.open(ws.root)


def test_gc_removes_only_unreferenced_files(ws):
    blobs = BlobStore(ws.root / "masks")
    orphan = blobs.put(box(1, 2, 3, 4))
    tmp = blobs.path(orphan).parent / ".tmp-left-by-a-crash"
    tmp.write_bytes(b"partial")
    assert ws.gc() == (0, 0)  # both are younger than the grace period
    n, size = ws.gc(min_age_s=0)
    assert n == 2 and size > 0 and not blobs.exists(orphan) and not tmp.exists()
    assert ws.check_integrity() == [] and ws.current_mask("1").sum() == 150


def test_index_problems_are_findings(binary_ds, tmp_path):
    data = tmp_path / "copy"
    shutil.copytree(binary_ds, data)
    (data / "masks" / "4.png").unlink()
    torn = data / "masks" / "3.png"
    torn.write_bytes(torn.read_bytes()[:60])  # the header indexes, the pixels do not decode
    with Workspace.create(tmp_path / "ws", data) as ws:
        assert ws.sample_ids() == ["1", "2"]
        missing, broken = ws.findings(source="index")
        assert (missing.sample_id, missing.check, missing.severity) == ("4", "image_without_mask", "warning")
        assert (broken.sample_id, broken.check, broken.severity) == ("3", "unreadable", "error")
        assert "3.png" in broken.message and broken.path == str(torn)
        assert ws.summary()["by_check"] == {"image_without_mask": 1, "unreadable": 1}


def test_findings_scores_and_model_runs(ws):
    from medseg.qc.findings import Finding

    qc = [
        Finding("1", "specks", "warning", "3 specks", value=3, fix="remove_specks", details={"sizes": [1, 2, 4]}),
        Finding("2", "grey_noise", "error", "grey levels", value=42.0, path="masks/2.png"),
    ]
    assert ws.add_findings(qc, "qc") == 2
    assert ws.findings(source="qc") == qc and ws.findings("2") == [qc[1]]
    ws.add_findings([Finding("3", "empty_mask", "info", "empty")], "qc", replace=False)
    assert [f.sample_id for f in ws.findings(source="qc")] == ["1", "2", "3"]
    ws.add_findings([Finding("4", "dark", "warning", "dark")], "qc")  # a new run replaces the old one
    assert [f.check for f in ws.findings()] == ["dark"] and ws.findings(check="specks") == []
    assert ws.summary()["by_check"] == {"dark": 1}
    with pytest.raises(WorkspaceError, match="Finding objects"):
        ws.add_findings([{"sample_id": "1"}], "qc")

    ws.set_scores("dice", {"1": 0.9, "2": float("nan"), "3": 0.2}, details={"3": {"hd95": 12.5}})
    assert ws.scores("dice") == {"1": 0.9, "2": None, "3": 0.2}
    assert ws.score_details("dice")["3"] == {"hd95": 12.5} and ws.score_methods() == ["dice"]
    ws.set_scores("dice", {"4": 0.5})
    assert ws.scores("dice") == {"4": 0.5}
    with pytest.raises(WorkspaceError, match="does not hold: 99"):
        ws.set_scores("dice", {"99": 1.0})

    heads = {sid: ws.sample(sid).head_revision for sid in ("1", "2")}
    run = ws.record_model_run("fold0", "/ckpt/fold0.medseg", "train", heads)
    new = ws.save_revision("1", box(0, 3, 0, 3), origin="model", note="prediction of fold0")
    assert ws.model_runs() == [run] and run.revisions == heads and ws.model_runs("3") == []
    assert ws.model_runs("1")[0].revisions["1"] != new.id  # the run keeps the revision it trained on
    with pytest.raises(WorkspaceError, match="already recorded"):
        ws.record_model_run("fold0", "x", "train", {})
    with pytest.raises(WorkspaceError, match="not a revision of sample '2'"):
        ws.record_model_run("fold1", "x", "train", {"2": heads["1"]})
    assert [r.run_id for r in ws.model_runs()] == ["fold0"]  # the failed record left nothing


def test_one_workspace_object_from_two_threads(ws):
    import threading

    errors = []

    def work(sid: str) -> None:
        try:
            for k in range(1, 16):
                ws.save_revision(sid, box(0, k, 0, 3), origin="manual")
                assert ws.current_mask(sid).sum() == 3 * k
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(sid,)) for sid in ("1", "2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(ws.revisions("1")) == len(ws.revisions("2")) == 16 and ws.check_integrity() == []


def test_a_moved_dataset_is_re_attached(binary_ds, tmp_path):
    Workspace.create(tmp_path / "ws", binary_ds).close()
    moved = tmp_path / "moved"
    shutil.move(binary_ds, moved)
    with Workspace.open(tmp_path / "ws") as ws:
        assert {c.kind for c in ws.source_changes} == {"missing"} and len(ws.source_changes) == 8
    with Workspace.open(tmp_path / "ws", dataset_root=moved, verify="hash") as ws:
        assert ws.source_changes == [] and ws.dataset_root == moved
        assert ws.sample("1").image_path == moved / "images" / "1.png" and ws.image("1").array.shape == (H, W, 3)
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.dataset_root == moved
    with pytest.raises(DestinationError, match="the dataset it reviews"):
        Workspace.open(tmp_path / "ws", dataset_root=tmp_path)
    with pytest.raises(WorkspaceError, match="valid: stat, hash, none"):
        Workspace.open(tmp_path / "ws", verify="fast")


def test_scores_details_are_written_row_by_row_and_a_bad_one_keeps_the_earlier_scores(ws, monkeypatch):
    # the details' JSON is made as each row is inserted (a list of every row's JSON was the peak of QC's main
    # process); a detail that cannot be written fails the whole replacement: the earlier scores stay
    from medseg.workspace import annotations

    ws.set_scores("dice", {"1": 0.9, "2": 0.5}, details={"1": {"hd95": 3.0}})
    made, inserted = [], []
    real_dumps = annotations.json.dumps

    def dumps(obj, *a, **k):
        made.append(len(inserted))
        return real_dumps(obj, *a, **k)

    def drawn(rows):
        for r in rows:
            inserted.append(r)
            yield r

    monkeypatch.setattr(annotations.json, "dumps", dumps)
    annotations.set_scores(_Spy(ws._conn, drawn), "dice", {"1": 0.1, "2": 0.2, "3": 0.3}, {"2": {"hd95": 1.0}})
    monkeypatch.undo()
    assert made == [0, 1, 2]  # each row's JSON made just before that row went to the database
    assert ws.scores("dice") == {"1": 0.1, "2": 0.2, "3": 0.3}

    class NotJson:
        pass

    with pytest.raises(TypeError):
        ws.set_scores("dice", {"1": 0.7, "2": 0.8}, details={"2": {"x": NotJson()}})
    assert ws.scores("dice") == {"1": 0.1, "2": 0.2, "3": 0.3}
    with pytest.raises(WorkspaceError, match="not a number"):
        ws.set_scores("dice", {"1": 0.7, "2": "high"})
    assert ws.scores("dice") == {"1": 0.1, "2": 0.2, "3": 0.3}


class _Spy:
    """A connection whose executemany hands its rows through ``wrap`` (to see when each is drawn)."""

    def __init__(self, conn, wrap):
        self.conn, self.wrap = conn, wrap

    def execute(self, *a):
        return self.conn.execute(*a)

    def executemany(self, sql, rows):
        return self.conn.executemany(sql, self.wrap(rows))
