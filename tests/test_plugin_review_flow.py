"""The review flow on the 24-frame demo dataset: Save correction moves to the next unreviewed sample, Next goes on
from the sample's place after its own correction moved its row, the end of the queue offers the unreviewed samples
left, the rows and the panel say the place and why, the autosave's message stays, and the verdict keys work while
the Labels layer is being painted on."""

from __future__ import annotations

from html import escape

import numpy as np
import pytest
from _review_data import open_dataset_widget, wait_for_queue, wait_for_sample

from medseg.datasets.demo import make_demo_dataset
from napari_medseg._review_widget import ReviewWidget
from napari_medseg._session import LABELS_LAYER

pytestmark = pytest.mark.gui


@pytest.fixture
def review(make_napari_viewer, qtbot, tmp_path):
    """The Review widget on the demo dataset (24 frames), every frame scored as ``medseg rank`` stores it (a
    planted, shuffled score with the revision it judged)."""
    demo = make_demo_dataset(tmp_path / "demo", shape=(72, 96))
    assert demo.n_frames == 24
    viewer = make_napari_viewer()
    _, session = open_dataset_widget(viewer, qtbot, demo.root)
    ws = session.workspace
    ids = ws.sample_ids()
    scores = np.random.default_rng(3).permutation(len(ids)) / len(ids)
    details = {
        sid: {"revision": ws.sample(sid).head_revision, "dice": float(s), "out_of_fold": True}
        for sid, s in zip(ids, scores, strict=True)
    }
    ws.set_scores("oof-k5", {sid: float(s) for sid, s in zip(ids, scores, strict=True)}, details)
    _, widget = viewer.window.add_plugin_dock_widget("napari-medseg", "Review")
    assert isinstance(widget, ReviewWidget)
    session.scores_changed.emit("oof-k5")
    wait_for_queue(qtbot, widget)
    assert len(widget.queue_ids()) == 24
    return viewer, widget, session


def _show(widget, qtbot, session, sample_id: str) -> None:
    widget.show(sample_id)
    wait_for_sample(qtbot, session, sample_id)
    wait_for_queue(qtbot, widget)


def _stroke(viewer) -> None:
    """A brush stroke on the Labels layer, as the user paints: a few pixels set to the other class."""
    labels = viewer.layers[LABELS_LAYER]
    labels.brush_size = 5
    value = 0 if labels.data[10, 10] else 1
    labels.paint((10, 10), value)


def _settled(qtbot, widget) -> None:
    """Let the queue's rebuild after a status change, and any other queued event, run."""
    qtbot.wait(300)
    wait_for_queue(qtbot, widget)


def test_save_correction_goes_to_the_next_unreviewed_sample(review, qtbot):
    viewer, widget, session = review
    ws = session.workspace
    q = widget.queue_ids()
    assert widget.advance.isChecked()

    _show(widget, qtbot, session, q[2])
    widget.accept_button.click()  # q[2] accepted
    wait_for_sample(qtbot, session, q[3])

    _show(widget, qtbot, session, q[1])
    _stroke(viewer)
    widget.save_button.click()  # corrected: the next unreviewed after its place is q[3] (q[2] is accepted)
    assert ws.sample(q[1]).status == "corrected" and ws.revisions(q[1])[-1].origin == "manual"
    wait_for_sample(qtbot, session, q[3])
    _settled(qtbot, widget)
    assert widget.message.text().startswith(f"{q[1]}: saved revision ")
    # its score is about the label before the correction: the queue puts it with the unscored, near the end
    assert widget.queue_ids().index(q[1]) > 12


def test_after_a_correction_next_goes_on_from_its_place_and_the_end_offers_the_unreviewed(review, qtbot):
    viewer, widget, session = review
    ws = session.workspace
    q = widget.queue_ids()
    _show(widget, qtbot, session, q[2])
    widget.accept_button.click()  # q[2] accepted: it keeps its place (its label and score are unchanged)
    wait_for_sample(qtbot, session, q[3])
    widget.save_button.click()  # nothing edited: nothing saved, no move (although "then go to the next" is on)
    assert widget.message.text() == f"{q[3]}: no changes to save." and session.sample_id == q[3]

    # without moving on: Next goes to the sample that came after it, not to the end of the queue
    widget.advance.setChecked(False)
    _stroke(viewer)
    widget.save_button.click()
    assert ws.sample(q[3]).status == "corrected"
    _settled(qtbot, widget)
    assert session.sample_id == q[3] and widget.queue_ids().index(q[3]) > widget.queue_ids().index(q[4])
    widget.next_sample()
    wait_for_sample(qtbot, session, q[4])
    wait_for_queue(qtbot, widget)
    widget.previous_sample()  # the accepted q[2] kept its place; the corrected q[3] went to the end
    wait_for_sample(qtbot, session, q[2])
    wait_for_queue(qtbot, widget)
    widget.previous_sample()
    wait_for_sample(qtbot, session, q[1])

    # the end of the queue says how many unreviewed samples remain and offers the first of them
    last = widget.queue_ids()[-1]
    _show(widget, qtbot, session, last)
    assert widget.panel.first_button.isHidden()
    widget.next_sample()
    assert session.sample_id == last
    left = [s for s in widget.queue_ids() if s != last and ws.sample(s).status == "unreviewed"]
    assert len(left) >= 20 and left[0] == q[0]
    text = widget.message.text()
    assert text.startswith(f"End of the queue: {len(left)} unreviewed samples remain before it"), text
    assert not widget.panel.first_button.isHidden() and f"goes to {q[0]}" in text
    widget.panel.first_button.click()
    wait_for_sample(qtbot, session, q[0])


def test_rows_show_place_status_priority_and_the_panel_says_where_and_why(review, qtbot):
    _, widget, session = review
    items = widget.panel.items
    rows = [widget.queue.item(k).text() for k in range(widget.queue.count())]
    assert len(rows) == len(items) == 24
    priorities = []
    for k, (row, item) in enumerate(zip(rows, items, strict=True), 1):
        assert row.startswith(f"{k}. {item.sample_id} · {item.status} · "), row
        priorities.append(float(row.rsplit("·", 1)[1]))
    assert priorities == sorted(priorities)  # the number shown orders the list
    assert priorities == pytest.approx([round(i.priority, 2) for i in items], abs=0.006)

    sid = widget.queue_ids()[4]
    _show(widget, qtbot, session, sid)
    details = widget.details.text()
    assert "5 of 24 in the queue" in details and widget.position.text() == "5 of 24"
    item = widget.panel.item_of(sid)
    reasons = tuple(getattr(item, "signals", ())) or (item.reason,)
    assert reasons and all(escape(r) in details for r in reasons)

    # a long message stays one line: the dock is no wider for it
    width = widget.minimumSizeHint().width()
    widget.message.setText("saved revision 7 of " + "a-very-long-sample-name/" * 30 + " and more words " * 20)
    line = widget.message.line
    assert widget.minimumSizeHint().width() <= width and widget.message.minimumSizeHint().width() < 200
    assert line.sizeHint().height() < 2 * line.fontMetrics().lineSpacing()  # one line, not a wrapped paragraph


def test_the_autosave_message_stays_after_next(review, qtbot):
    from qtpy.QtCore import Qt

    viewer, widget, session = review
    ws = session.workspace
    q = widget.queue_ids()
    _show(widget, qtbot, session, q[0])
    _stroke(viewer)
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, Qt.Key.Key_Period)  # Next, as the user types it
    wait_for_sample(qtbot, session, q[1])
    _settled(qtbot, widget)
    rev = ws.revisions(q[0])[-1]
    assert rev.origin == "manual"
    assert f"Saved the edits of {q[0]} as revision {rev.id}" in widget.message.text()


def test_verdict_keys_work_while_painting_and_are_listed(review, qtbot):
    from qtpy.QtCore import Qt

    viewer, widget, session = review
    ws = session.workspace
    q = widget.queue_ids()
    keys = widget.keys.text()
    for words in ("Shift+A accept", "Shift+S save correction", "Shift+X exclude", ". , next / previous sample"):
        assert words in keys, keys
    assert "H prediction on / off" in keys
    assert not widget.keys.isHidden()

    def painting():
        labels = viewer.layers[LABELS_LAYER]
        viewer.layers.selection.active = labels
        labels.mode = "paint"
        return labels

    handler = viewer.window._qt_viewer._key_map_handler
    _show(widget, qtbot, session, q[0])
    painting()
    assert handler.press_key("Shift-A")  # through the keymaps, the Labels layer's first
    handler.release_key("Shift-A")
    assert ws.sample(q[0]).status == "accepted"
    wait_for_sample(qtbot, session, q[1])

    labels = painting()
    _stroke(viewer)
    canvas = viewer.window._qt_viewer.canvas.native
    qtbot.keyClick(canvas, Qt.Key.Key_S, Qt.KeyboardModifier.ShiftModifier)  # the key, as the user types it
    assert ws.sample(q[1]).status == "corrected" and labels.mode == "paint"
    wait_for_sample(qtbot, session, q[2])

    painting()
    widget.verdict_form.reason.value = "image unusable"
    qtbot.keyClick(canvas, Qt.Key.Key_X, Qt.KeyboardModifier.ShiftModifier)
    assert ws.sample(q[2]).status == "excluded"
    wait_for_sample(qtbot, session, q[3])
