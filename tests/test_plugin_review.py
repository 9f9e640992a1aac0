"""The Review dock widget: queue order and keys, autosave on moving on, revert, verdicts, helpers, drafts."""

from __future__ import annotations

import numpy as np
import pytest
from _review_data import (
    HOLE,
    SPECK,
    capture_errors,
    make_review_set,
    object_mask,
    open_dataset_widget,
    show_and_wait,
    wait_for_queue,
    wait_for_sample,
)

from medseg.workspace import Workspace
from medseg.workspace.drafts import draft_path, read_draft
from napari_medseg._review_widget import ReviewWidget
from napari_medseg._session import LABELS_LAYER, session_for

pytestmark = pytest.mark.gui
SCORES = {"1": 0.9, "2": 0.2, "3": 0.7, "4": 0.05, "5": 0.5, "6": 0.95}


@pytest.fixture
def review(make_napari_viewer, qtbot, tmp_path):
    """A viewer with the Dataset and Review widgets on a 6-sample set whose scores are planted."""
    data = make_review_set(tmp_path / "set")
    viewer = make_napari_viewer()
    _, session = open_dataset_widget(viewer, qtbot, data)
    session.workspace.set_scores("oof-k5", SCORES)
    _, widget = viewer.window.add_plugin_dock_widget("napari-medseg", "Review")
    assert isinstance(widget, ReviewWidget)
    session.scores_changed.emit("oof-k5")
    wait_for_queue(qtbot, widget)
    return viewer, widget, session


def _press(viewer, qtbot, key) -> None:
    """A key press on the canvas, as the user types it."""
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, key)


def test_queue_worst_first_and_keys_move_along_it(review, qtbot):
    from qtpy.QtCore import Qt

    viewer, widget, session = review
    assert widget.queue_ids() == ["4", "2", "5", "3", "1", "6"]  # label quality, lowest first
    assert "label quality 0.05" in widget.queue.item(0).toolTip()
    assert widget.method.currentText() == "auto"
    first = widget.queue.visualItemRect(widget.queue.item(0)).center()
    qtbot.mouseClick(widget.queue.viewport(), Qt.MouseButton.LeftButton, pos=first)
    wait_for_sample(qtbot, session, "4")
    wait_for_queue(qtbot, widget)
    assert "Label quality: 0.05" in widget.details.text() and widget.position.text() == "1 of 6"
    _press(viewer, qtbot, Qt.Key.Key_Period)
    wait_for_sample(qtbot, session, "2")
    _press(viewer, qtbot, Qt.Key.Key_Period)
    wait_for_sample(qtbot, session, "5")
    _press(viewer, qtbot, Qt.Key.Key_Comma)
    wait_for_sample(qtbot, session, "2")
    assert "'.' next sample" in widget.toolTip() and "',' previous sample" in widget.toolTip()

    widget.status_filter.setCurrentText("corrected")
    wait_for_queue(qtbot, widget)
    assert widget.queue_ids() == []
    widget.status_filter.setCurrentText("all statuses")
    session.workspace.set_scores("oof-k5", {**SCORES, "6": 0.01})  # e.g. re-scored with a new model
    session.scores_changed.emit("oof-k5")
    wait_for_queue(qtbot, widget)
    assert widget.queue_ids()[0] == "6"


def test_edit_then_move_on_saves_a_manual_revision_and_revert(review, qtbot):
    viewer, widget, session = review
    ws = session.workspace
    show_and_wait(widget, qtbot, session, "1")
    labels = viewer.layers[LABELS_LAYER]
    saved = []
    session.revision_saved.connect(lambda sid, rev: saved.append((sid, rev)))
    labels.brush_size = 1
    labels.paint((HOLE[0].start, HOLE[1].start), 1)
    widget.next_sample()  # '1' is 5th in the queue: next is '6'
    wait_for_sample(qtbot, session, "6")
    revs = ws.revisions("1")
    assert [r.origin for r in revs] == ["imported", "manual"] and revs[-1].n_changed == 1
    assert ws.sample("1").status == "corrected" and saved == [("1", revs[-1].id)]
    assert ws.current_mask("1")[HOLE[0].start, HOLE[1].start] == 1
    assert not draft_path(ws, "1").exists()

    show_and_wait(widget, qtbot, session, "1")
    widget.save_button.click()
    assert widget.message.text() == "1: no changes to save." and len(ws.revisions("1")) == 2
    wait_for_queue(qtbot, widget)
    assert widget.history.count() == 2 and "manual" in widget.history.item(0).text()
    assert "1 px changed" in widget.history.item(0).text()
    widget.history.setCurrentRow(1)  # the imported revision
    widget.revert_button.click()
    assert [r.origin for r in ws.revisions("1")] == ["imported", "manual", "revert"]
    np.testing.assert_array_equal(labels.data, ws.mask_at(ws.revisions("1")[0].id))
    qtbot.waitUntil(lambda: widget.history.count() == 3, timeout=10000)


def test_accept_and_exclude_need_reason(review, qtbot, monkeypatch):
    _, widget, session = review
    ws = session.workspace
    errors = capture_errors(monkeypatch)
    show_and_wait(widget, qtbot, session, "4")
    widget.accept_button.click()
    assert ws.sample("4").status == "accepted"
    wait_for_sample(qtbot, session, "2")  # advanced to the next in the queue

    widget.verdict_form.reason.value = ""
    widget.exclude_button.click()
    assert len(errors) == 1 and "needs a reason" in errors[0] and ws.sample("2").status == "unreviewed"
    widget.verdict_form.reason.value = "image unusable: motion blur"
    widget.exclude_button.click()
    rec = ws.sample("2")
    assert (rec.status, rec.reason) == ("excluded", "image unusable: motion blur")
    wait_for_sample(qtbot, session, "5")

    # a queue filtered to unreviewed samples drops judged ones; Next continues from where they were
    widget.status_filter.setCurrentText("unreviewed")
    wait_for_queue(qtbot, widget)
    assert widget.queue_ids() == ["5", "3", "1", "6"]
    widget.accept_button.click()
    wait_for_sample(qtbot, session, "3")


def test_helpers_change_the_labels_as_their_engine_functions_say(review, qtbot):
    from medseg.qc.edits import smooth

    viewer, widget, session = review
    ws = session.workspace
    show_and_wait(widget, qtbot, session, "1")
    labels = viewer.layers[LABELS_LAYER]
    assert labels.data[HOLE].sum() == 0
    widget.fill_button.click()
    np.testing.assert_array_equal(labels.data, object_mask(1))
    labels.undo()  # a helper is one undoable edit
    assert labels.data[HOLE].sum() == 0
    labels.redo()

    before = np.asarray(labels.data).copy()
    widget.dilate_button.click()
    grown = np.asarray(labels.data).copy()
    assert grown.sum() == before.sum() + 2 * (16 + 20)  # one ring of face neighbours around a 16x20 box
    widget.erode_button.click()
    np.testing.assert_array_equal(labels.data, before)

    labels.brush_size = 1
    labels.paint((6, 15), 1)  # a one-pixel spur on the object's top edge
    spur = np.asarray(labels.data).copy()
    widget.smooth_button.click()
    assert labels.data[6, 15] == 0 and labels.data[7:23, 10:28].all()
    np.testing.assert_array_equal(labels.data, smooth(spur, ws.classmap))
    assert "pixels changed" in widget.message.text()
    edited = np.asarray(labels.data).copy()

    show_and_wait(widget, qtbot, session, "2")
    assert labels.data[SPECK].all()
    widget.helper_form.speck_size.value = 5
    widget.specks_button.click()
    assert labels.data[SPECK].sum() == 0 and labels.data.sum() == object_mask(2).sum()
    widget.save_button.click()
    assert ws.revisions("2")[-1].origin == "manual" and ws.revisions("2")[-1].n_changed == 4
    assert widget.message.text().startswith("2: saved revision") and ws.sample("2").status == "corrected"
    # moving on saved sample 1's helper edits as one manual revision
    assert ws.revisions("1")[-1].origin == "manual"
    np.testing.assert_array_equal(ws.current_mask("1"), edited)


def test_offered_auto_fix_is_saved_as_auto_fix(review, qtbot):
    from medseg.qc import qc

    viewer, widget, session = review
    ws = session.workspace
    qc(ws)
    session.findings_changed.emit("qc")
    show_and_wait(widget, qtbot, session, "1")
    assert widget.autofix_button.isEnabled() and "fill_holes" in widget.autofix_button.text()
    assert "hole" in widget.details.text()
    widget.autofix_button.click()
    rev = ws.revisions("1")[-1]
    assert rev.origin == "auto-fix" and "filled 1 hole" in rev.note
    np.testing.assert_array_equal(viewer.layers[LABELS_LAYER].data, object_mask(1))
    # accepting a label that is no longer the imported one is a correction, not an acceptance
    widget.advance.setChecked(False)
    widget.accept_button.click()
    assert ws.sample("1").status == "corrected"
    from napari_medseg._review_actions import revert_to

    revert_to(viewer, ws.revisions("1")[0].id)  # back to the imported content: accepting is accepting
    widget.accept_button.click()
    assert ws.sample("1").status == "accepted"


def test_label_outside_class_map_keeps_sample_on_screen(review, qtbot, monkeypatch):
    viewer, widget, session = review
    ws = session.workspace
    errors = capture_errors(monkeypatch)
    show_and_wait(widget, qtbot, session, "3")
    labels = viewer.layers[LABELS_LAYER]
    labels.brush_size = 1
    labels.paint((2, 2), 7)  # id 7: not in the binary class map
    widget.next_sample()
    qtbot.waitUntil(lambda: bool(errors), timeout=10000)
    assert "not saved" in errors[0] and "7" in errors[0]
    assert session.sample_id == "3" and labels.data[2, 2] == 7  # nothing replaced, nothing lost
    draft = read_draft(ws, "3")
    assert draft is not None and draft.mask[2, 2] == 7
    labels.paint((2, 2), 0)
    widget.next_sample()
    wait_for_sample(qtbot, session, "1")
    assert len(ws.revisions("3")) == 1 and not draft_path(ws, "3").exists()  # back to the import: no revision


def _opened_set(make_napari_viewer, qtbot, tmp_path):
    """(viewer, session, workspace, labels layer) with the review set open on its first sample."""
    data = make_review_set(tmp_path / "set")
    viewer = make_napari_viewer()
    _, session = open_dataset_widget(viewer, qtbot, data)
    return viewer, session, session.workspace, viewer.layers[LABELS_LAYER]


def test_draft_survives_a_killed_napari_and_is_restored(make_napari_viewer, qtbot, tmp_path):
    """Edits reach a draft within a second; a napari that dies before saving loses nothing."""
    viewer, session, ws, labels = _opened_set(make_napari_viewer, qtbot, tmp_path)
    labels.brush_size = 3
    labels.paint((30, 10), 1)
    painted = np.asarray(labels.data).copy()
    qtbot.waitUntil(lambda: draft_path(ws, "1").exists(), timeout=3000)
    qtbot.waitUntil(lambda: (d := read_draft(ws, "1")) is not None and np.array_equal(d.mask, painted), timeout=3000)
    assert len(ws.revisions("1")) == 1  # not saved yet: only the draft holds the edit

    # "killed": nothing more of that viewer runs; a new napari opens the same workspace folder
    other = make_napari_viewer()
    again = Workspace.open(ws.root)
    session_for(other).set_workspace(again)
    from napari_medseg._sample_layers import show_sample

    show_sample(other, "1")
    wait_for_sample(qtbot, session_for(other), "1")
    np.testing.assert_array_equal(other.layers[LABELS_LAYER].data, painted)
    rev = again.revisions("1")[-1]
    assert rev.origin == "manual" and rev.note.startswith("recovered unsaved edits")
    assert again.sample("1").status == "corrected" and not draft_path(again, "1").exists()
    session_for(other).set_workspace(None)


def test_moving_on_without_edits_asks_the_workspace_nothing(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """Unchanged labels are not offered to the workspace on a move (a GUI-thread query waits for the
    interpreter lock while a prediction runs); changed ones still are."""
    from napari_medseg._sample_layers import show_sample

    viewer, session, ws, labels = _opened_set(make_napari_viewer, qtbot, tmp_path)
    saves = []
    original = Workspace.save_revision
    monkeypatch.setattr(Workspace, "save_revision", lambda self, *a, **k: saves.append(a[0]) or original(self, *a, **k))
    show_sample(viewer, "2")
    wait_for_sample(qtbot, session, "2")
    assert saves == []
    labels = viewer.layers[LABELS_LAYER]
    labels.brush_size = 1
    labels.paint((1, 1), 1)
    show_sample(viewer, "3")
    wait_for_sample(qtbot, session, "3")
    assert saves == ["2"] and ws.revisions("2")[-1].origin == "manual"


def test_an_undo_reaches_the_draft(make_napari_viewer, qtbot, tmp_path):
    _, _, ws, labels = _opened_set(make_napari_viewer, qtbot, tmp_path)
    before = np.asarray(labels.data).copy()
    labels.brush_size = 3
    labels.paint((30, 10), 1)
    painted = np.asarray(labels.data).copy()
    qtbot.waitUntil(lambda: (d := read_draft(ws, "1")) is not None and np.array_equal(d.mask, painted), timeout=3000)
    labels.undo()  # what Ctrl+Z does
    assert np.array_equal(labels.data, before)
    qtbot.waitUntil(lambda: (d := read_draft(ws, "1")) is None or np.array_equal(d.mask, before), timeout=3000)
    labels.redo()
    qtbot.waitUntil(lambda: (d := read_draft(ws, "1")) is not None and np.array_equal(d.mask, painted), timeout=3000)


def test_closed_review_dock_is_not_called_again(review, qtbot):
    viewer, widget, session = review
    destroyed = []
    widget.destroyed.connect(lambda *_: destroyed.append(True))
    viewer.window.remove_dock_widget(widget)
    widget.deleteLater()
    qtbot.waitUntil(lambda: bool(destroyed), timeout=5000)
    session.scores_changed.emit("oof-k5")  # would reach a deleted widget if it were still connected
    session.findings_changed.emit("qc")
    fresh = ReviewWidget(viewer)
    qtbot.addWidget(fresh)
    show_and_wait(fresh, qtbot, session, "3")  # a new Review widget takes over the keys and the queue


def test_outline_correction_is_offered_and_applied_on_request(make_napari_viewer, qtbot, tmp_path):
    from PIL import Image

    from medseg.qc import qc

    data = make_review_set(tmp_path / "set")
    shifted = np.roll(object_mask(3), 5, axis=1)  # sample 3's outline drawn 5 px right of its object
    Image.fromarray(shifted.astype(np.uint8) * 255).save(data / "masks" / "3.png")
    viewer = make_napari_viewer()
    _, session = open_dataset_widget(viewer, qtbot, data)
    _, widget = viewer.window.add_plugin_dock_widget("napari-medseg", "Review")
    ws = session.workspace
    qc(ws)
    session.findings_changed.emit("qc")
    wait_for_queue(qtbot, widget)
    # no model yet: the outline fit ranks, the rule findings (1's hole, 2's speck) lift by half the range
    order = widget.queue_ids()
    assert order.index("3") < 3 and all(order.index("3") < order.index(s) for s in ("4", "5", "6"))
    show_and_wait(widget, qtbot, session, "3")
    assert "outline_correction" in widget.autofix_button.text()
    assert "moved 5 px left it would follow" in widget.details.text()
    widget.autofix_button.click()
    rev = ws.revisions("3")[-1]
    assert rev.origin == "auto-fix" and "outline moved by +0 rows, -5 columns" in rev.note
    truth = object_mask(3).astype(bool)
    shown = viewer.layers[LABELS_LAYER].data > 0
    iou = lambda a, b: (a & b).sum() / (a | b).sum()  # noqa: E731
    assert iou(shown, truth) > 0.9 > iou(shifted.astype(bool), truth)


def test_suspicion_layer_shows_where_the_stored_prediction_disagrees(make_napari_viewer, qtbot, tmp_path):
    """Stored out-of-fold predictions that see every object where it is, except on sample 4 (8 px lower):
    the 'label suspicion' layer glows where label and model disagree, follows the sample on screen, hides
    where nothing is stored, and changes when a correction is saved."""
    from medseg.qc.prediction_store import prediction_path, save_prediction
    from napari_medseg._review_suspicion import SUSPICION_LAYER

    data = make_review_set(tmp_path / "set")
    viewer = make_napari_viewer()
    _, session = open_dataset_widget(viewer, qtbot, data)
    ws = session.workspace
    for i in range(1, 7):
        seen = np.roll(object_mask(i), 8 if i == 4 else 0, axis=0).astype(bool)
        save_prediction(ws.root, "oof-k5", str(i), np.where(seen, 0.95, 0.05)[None].astype(np.float32), "run-a")
    ws.set_scores("oof-k5", SCORES, {s: {"dice": v, "run": "run-a"} for s, v in SCORES.items()})
    prediction_path(ws.root, "oof-k5", "6").unlink()
    _, widget = viewer.window.add_plugin_dock_widget("napari-medseg", "Review")
    session.scores_changed.emit("oof-k5")

    def suspicion_of(sample_id: str) -> np.ndarray:
        qtbot.waitUntil(lambda: widget.suspicion.shown == (sample_id, "oof-k5"), timeout=10000)
        layer = viewer.layers[SUSPICION_LAYER]
        assert layer.visible
        return np.asarray(layer.data)

    show_and_wait(widget, qtbot, session, "4")
    s = suspicion_of("4")
    label = object_mask(4).astype(bool)
    seen = np.roll(label, 8, axis=0)
    assert s[label & ~seen].min() > 0.9 and s[seen & ~label].min() > 0.9  # the rim the model disagrees on
    assert s[label & seen].max() < 0.1 and s[~label & ~seen].max() < 0.1
    layers = [layer.name for layer in viewer.layers]
    assert layers.index(SUSPICION_LAYER) == layers.index(LABELS_LAYER) - 1  # above the image, under the labels
    assert tuple(viewer.layers[SUSPICION_LAYER].scale) == tuple(viewer.layers[LABELS_LAYER].scale)
    assert tuple(viewer.layers[SUSPICION_LAYER].contrast_limits) == (0.5, 1.0)  # dark where the model agrees
    assert "oof-k5 model disagrees" in widget.suspicion_note.text()

    show_and_wait(widget, qtbot, session, "1")
    s = suspicion_of("1")
    assert s[HOLE].min() > 0.9 and s[object_mask(1).astype(bool)].mean() < 0.2  # the hole the model fills
    widget.helper("fill_holes")
    widget.save_correction()
    qtbot.waitUntil(lambda: np.asarray(viewer.layers[SUSPICION_LAYER].data)[HOLE].max() < 0.1, timeout=10000)

    show_and_wait(widget, qtbot, session, "6")  # nothing stored for it
    qtbot.waitUntil(lambda: not viewer.layers[SUSPICION_LAYER].visible, timeout=10000)
    assert widget.suspicion_note.text().startswith("no stored oof-k5 prediction for 6")
    widget.show_suspicion.setChecked(False)
    show_and_wait(widget, qtbot, session, "4")
    qtbot.wait(200)
    assert not viewer.layers[SUSPICION_LAYER].visible and widget.suspicion.shown is None
    widget.show_suspicion.setChecked(True)
    suspicion_of("4")
