"""Reviewing a volume workspace in napari: open it, move the slider, correct a slice, save only that slice;
revert; a draft survives a killed napari; a revision history that names slices."""

from __future__ import annotations

import numpy as np
import pytest
from _review_data import open_dataset_widget, wait_for_queue, wait_for_sample
from _volume_data import make_nnunet3d

from medseg.workspace import Workspace
from medseg.workspace.drafts import draft_path, read_draft
from napari_medseg._review_widget import ReviewWidget
from napari_medseg._sample_layers import show_sample
from napari_medseg._session import IMAGE_LAYER, LABELS_LAYER, session_for
from napari_medseg._volume_layers import current_slice

pytestmark = pytest.mark.gui
Z = 6  # the slice corrected
STROKE = (Z, 18, 20)  # (slice, row, col) in data coordinates, inside the body


def _opened(make_napari_viewer, qtbot, tmp_path, n_cases: int = 2):
    root = make_nnunet3d(tmp_path / "ds", n_cases=n_cases)
    viewer = make_napari_viewer()
    _, session = open_dataset_widget(viewer, qtbot, root)
    return viewer, session, session.workspace


def _stroke(viewer, labels, label: int = 2) -> np.ndarray:
    """Move the slider to slice Z and paint a 3-pixel brush there, as a user does; the labels after it."""
    viewer.dims.set_current_step(0, Z)
    assert current_slice(viewer, labels) == Z
    labels.brush_size = 3
    labels.selected_label = label
    labels.paint(STROKE, label)
    return np.asarray(labels.data).copy()


def test_correct_one_slice_and_save_only_that_slice_then_revert(make_napari_viewer, qtbot, tmp_path):
    viewer, session, ws = _opened(make_napari_viewer, qtbot, tmp_path)
    sid = session.sample_id
    assert ws.is_volume(sid)
    image, labels = viewer.layers[IMAGE_LAYER], viewer.layers[LABELS_LAYER]
    first = ws.current_mask(sid)
    assert image.data.shape == labels.data.shape == first.shape == (10, 36, 40)
    assert tuple(image.scale) == tuple(labels.scale) == pytest.approx((2.5, 0.8, 0.8))
    assert viewer.dims.current_step[0] == 5  # opened at the middle slice
    assert image.metadata["modality"] == "CT" and tuple(image.contrast_limits) == pytest.approx((-160.0, 240.0))
    _, review = viewer.window.add_plugin_dock_widget("napari-medseg", "Review")
    assert isinstance(review, ReviewWidget)
    wait_for_queue(qtbot, review)

    painted = _stroke(viewer, labels)
    assert (painted != first).any(axis=(1, 2)).nonzero()[0].tolist() == [Z]
    review.save_correction()
    rev = ws.revisions(sid)[-1]
    assert rev.origin == "manual" and rev.details["slices"] == [Z] and ws.changed_slices(rev.id) == [Z]
    stored = ws.mask_at(rev.id)
    assert stored[STROKE] == 2 and np.array_equal(stored, painted)  # the stroke is in the stored revision
    others = [z for z in range(first.shape[0]) if z != Z]
    np.testing.assert_array_equal(stored[others], first[others])  # every other slice as it was
    assert f"(1 slice changed: {Z})" in review.message.text()
    assert ws.sample(sid).status == "corrected"
    wait_for_queue(qtbot, review)
    assert "1 slice changed (6)" in review.history.item(0).text()

    # saving again with nothing new stores nothing; a second slice is a revision of that slice only
    review.save_correction()
    assert ws.revisions(sid)[-1].id == rev.id
    viewer.dims.set_current_step(0, 2)
    labels.paint((2, 10, 10), 1)
    show_sample(viewer, "case_001")  # moving on saves the edits
    wait_for_sample(qtbot, session, "case_001")
    assert ws.revisions(sid)[-1].details["slices"] == [2]

    # revert to the import: a new revision equal to it, shown when the sample comes back
    show_sample(viewer, sid)
    wait_for_sample(qtbot, session, sid)
    wait_for_queue(qtbot, review)
    review.history.setCurrentRow(review.history.count() - 1)  # the oldest, the import
    review.revert()
    assert ws.revisions(sid)[-1].origin == "revert"
    np.testing.assert_array_equal(ws.current_mask(sid), first)
    np.testing.assert_array_equal(viewer.layers[LABELS_LAYER].data, first)


def test_volume_draft_survives_a_killed_napari(make_napari_viewer, qtbot, tmp_path):
    viewer, session, ws = _opened(make_napari_viewer, qtbot, tmp_path, n_cases=1)
    sid = session.sample_id
    labels = viewer.layers[LABELS_LAYER]
    painted = _stroke(viewer, labels, label=3)
    qtbot.waitUntil(lambda: (d := read_draft(ws, sid)) is not None and d.slices is not None, timeout=5000)
    draft = read_draft(ws, sid)
    assert draft.mask is None and list(draft.slices) == [Z] and draft.shape == painted.shape  # the stroke's slice
    np.testing.assert_array_equal(draft.slices[Z], painted[Z])
    assert draft.base_revision == ws.sample(sid).head_revision
    assert len(ws.revisions(sid)) == 1  # only the draft holds the stroke

    other = make_napari_viewer()  # "killed": nothing more of that viewer runs
    again = Workspace.open(ws.root)
    session_for(other).set_workspace(again)
    show_sample(other, sid)
    wait_for_sample(qtbot, session_for(other), sid)
    np.testing.assert_array_equal(other.layers[LABELS_LAYER].data, painted)
    rev = again.revisions(sid)[-1]
    assert rev.note.startswith("recovered unsaved edits") and again.changed_slices(rev.id) == [Z]
    assert not draft_path(again, sid).exists()
    session_for(other).set_workspace(None)


def test_undo_marks_its_slice_and_moving_without_edits_saves_nothing(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    viewer, session, ws = _opened(make_napari_viewer, qtbot, tmp_path)
    sid = session.sample_id
    calls = []
    original = Workspace.save_slices
    monkeypatch.setattr(
        Workspace,
        "save_slices",
        lambda self, s, slices, **k: calls.append(sorted(slices)) or original(self, s, slices, **k),
    )
    show_sample(viewer, "case_001")
    wait_for_sample(qtbot, session, "case_001")
    assert calls == []  # nothing touched: the workspace is not asked
    show_sample(viewer, sid)
    wait_for_sample(qtbot, session, sid)
    labels = viewer.layers[LABELS_LAYER]
    _stroke(viewer, labels)
    labels.undo()
    labels.redo()
    show_sample(viewer, "case_001")
    wait_for_sample(qtbot, session, "case_001")
    assert calls == [[Z]]  # the stroke's slice only, also through undo and redo
    assert ws.revisions(sid)[-1].details["slices"] == [Z]


def test_volume_draft_holds_the_slices_touched_since_the_last_save(make_napari_viewer, qtbot, tmp_path):
    from napari_medseg._review_autosave import autosave_for

    viewer, session, ws = _opened(make_napari_viewer, qtbot, tmp_path, n_cases=1)
    sid = session.sample_id
    labels = viewer.layers[LABELS_LAYER]
    _stroke(viewer, labels)
    viewer.dims.set_current_step(0, 2)
    labels.paint((2, 10, 10), 1)
    qtbot.waitUntil(lambda: (d := read_draft(ws, sid)) is not None and list(d.slices) == [2, Z], timeout=5000)
    autosave_for(viewer).save()
    assert read_draft(ws, sid) is None and ws.revisions(sid)[-1].details["slices"] == [2, Z]

    viewer.dims.set_current_step(0, 8)
    labels.paint((8, 12, 12), 3)
    qtbot.waitUntil(lambda: (d := read_draft(ws, sid)) is not None and list(d.slices) == [8], timeout=5000)
    draft = read_draft(ws, sid)  # the slice painted after the save, on the revision that save made
    np.testing.assert_array_equal(draft.slices[8], labels.data[8])
    assert draft.base_revision == ws.sample(sid).head_revision


def test_a_reviewed_label_volume_saved_from_napari_lies_on_its_image_grid(make_napari_viewer, qtbot, tmp_path):
    from medseg.io.volume_labels import read_label_volume
    from napari_medseg._writers import write_labels

    viewer, session, ws = _opened(make_napari_viewer, qtbot, tmp_path, n_cases=1)
    labels = viewer.layers[LABELS_LAYER]
    painted = _stroke(viewer, labels)
    data, meta, _ = labels.as_layer_data_tuple()
    (out,) = write_labels(str(tmp_path / "saved" / "labels.nii.gz"), data, meta)
    ids, grid = read_label_volume(out)
    assert np.array_equal(ids, painted)
    assert ws.geometry(session.sample_id).mismatch(grid) is None  # rotated, shifted: origin and direction kept
