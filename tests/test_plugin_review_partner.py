"""A duplicated frame whose masks disagree is reviewed side by side: the partner's picture and label beside the
sample, locked, the label being edited staying active, a line and a button / key that opens the partner, the
layers gone on the next sample (issue 17); the Dataset tab says how the groups were made."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from _review_data import H, W, make_review_set, object_mask, open_dataset_widget, wait_for_queue, wait_for_sample
from PIL import Image

from medseg.qc import review_queue
from medseg.qc.run import qc
from napari_medseg._layer_roles import PARTNER_IMAGE_LAYER, PARTNER_LABELS_LAYER, is_locked
from napari_medseg._review_keys import OPEN_PARTNER_KEY
from napari_medseg._review_widget import ReviewWidget
from napari_medseg._session import IMAGE_LAYER, LABELS_LAYER

pytestmark = pytest.mark.gui
DUP_CHECKS = "exact_duplicate,near_duplicate,duplicate_mask_disagreement"
SHIFT = 3  # columns the copy's object is drawn to the right of the original's: masks at IoU ~0.74


def _set_with_copy(root):
    """The 6-frame review set and 7.png: frame 1's image under a second name, its object drawn 3 px to the right."""
    make_review_set(root)
    shutil.copy2(root / "images" / "1.png", root / "images" / "7.png")
    mask = np.zeros((H, W), np.uint8)
    mask[:, SHIFT:] = object_mask(1)[:, :-SHIFT]
    Image.fromarray(mask * 255).save(root / "masks" / "7.png")
    return root


@pytest.fixture
def review(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    dataset, session = open_dataset_widget(viewer, qtbot, _set_with_copy(tmp_path / "set"))
    ws = session.workspace
    report = qc(ws, DUP_CHECKS, workers=1)
    bad = {f.sample_id: f for f in report.findings if f.check == "duplicate_mask_disagreement"}
    assert set(bad) == {"1", "7"} and all(f.severity == "error" for f in bad.values())
    session.findings_changed.emit("qc")
    _, widget = viewer.window.add_plugin_dock_widget("napari-medseg", "Review")
    assert isinstance(widget, ReviewWidget)
    wait_for_queue(qtbot, widget)
    return viewer, widget, session, dataset, bad


def _show(widget, qtbot, session, sample_id: str) -> None:
    widget.show(sample_id)
    wait_for_sample(qtbot, session, sample_id)
    wait_for_queue(qtbot, widget)


def _partner_of(qtbot, widget, viewer, sample_id: str) -> None:
    qtbot.waitUntil(
        lambda: (
            widget.partner.pending is None
            and PARTNER_LABELS_LAYER in viewer.layers
            and viewer.layers[PARTNER_LABELS_LAYER].metadata["medseg"]["sample_id"] == sample_id
        ),
        timeout=10000,
    )


def test_partner_beside_locked_label_stays_active_button_and_key_open_it_gone_on_next(review, qtbot):
    viewer, widget, session, _, bad = review
    ws = session.workspace
    _show(widget, qtbot, session, "1")
    labels = viewer.layers[LABELS_LAYER]
    viewer.layers.selection.active = labels
    labels.mode = "paint"
    _partner_of(qtbot, widget, viewer, "7")

    image, picture, label = (
        viewer.layers[IMAGE_LAYER],
        viewer.layers[PARTNER_IMAGE_LAYER],
        viewer.layers[PARTNER_LABELS_LAYER],
    )
    # the partner's own picture and current label, to the right of the sample, not over it
    np.testing.assert_array_equal(np.asarray(picture.data), np.asarray(image.data))
    np.testing.assert_array_equal(np.asarray(label.data), ws.mask_at(ws.sample("7").head_revision))
    assert not np.array_equal(np.asarray(label.data), np.asarray(labels.data))
    assert picture.extent.world[0][-1] > image.extent.world[1][-1]
    assert label.extent.world[0][-1] > labels.extent.world[1][-1]
    assert picture.extent.world[0][-1] - image.extent.world[1][-1] < W  # beside it, not far away
    assert tuple(picture.translate) == tuple(label.translate) and picture.translate[0] == 0
    # looked at, never painted: locked; the brush stays on the sample's label, in paint mode
    assert is_locked(picture) and is_locked(label) and not label.editable
    assert viewer.layers.selection.active is labels and labels.mode == "paint"
    iou = next(o["iou"] for o in bad["1"].details["others"] if o["id"] == "7")
    assert 0.6 < iou < 0.9
    assert widget.partner.note.text() == f"Same picture as 7: masks agree at IoU {iou:.2f}; one of them is wrong"
    assert not widget.partner.isHidden() and widget.partner.open_button.text() == "Open 7 (Shift+D)"
    assert "Shift+D open the duplicate beside" in widget.keys.text()

    # the button opens the partner as the sample under review; the first sample is then beside it
    widget.partner.open_button.click()
    wait_for_sample(qtbot, session, "7")
    wait_for_queue(qtbot, widget)
    _partner_of(qtbot, widget, viewer, "1")
    assert viewer.layers.selection.active is viewer.layers[LABELS_LAYER]
    assert widget.partner.note.text().startswith("Same picture as 1: masks agree at IoU ")

    # the key, as the user types it while painting, goes back
    from qtpy.QtCore import Qt

    assert OPEN_PARTNER_KEY == "Shift-D"
    viewer.layers[LABELS_LAYER].mode = "paint"
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, Qt.Key.Key_D, Qt.KeyboardModifier.ShiftModifier)
    wait_for_sample(qtbot, session, "1")
    wait_for_queue(qtbot, widget)
    _partner_of(qtbot, widget, viewer, "7")

    # another sample: the partner's layers are hidden (kept for the next pair: removing them crashed the
    # real window's canvas) and its line goes
    kept = [viewer.layers[PARTNER_IMAGE_LAYER], viewer.layers[PARTNER_LABELS_LAYER]]
    _show(widget, qtbot, session, "3")
    qtbot.waitUntil(lambda: widget.partner.pending is None, timeout=10000)
    assert not any(layer.visible for layer in kept)
    assert widget.partner.isHidden() and widget.partner.note.text() == ""
    assert viewer.layers.selection.active is viewer.layers[LABELS_LAYER]
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, Qt.Key.Key_D, Qt.KeyboardModifier.ShiftModifier)
    assert session.sample_id == "3" and widget.message.text() == "No duplicate of this sample disagrees with its label."
    # the next pair reuses the same two layers
    _show(widget, qtbot, session, "7")
    qtbot.waitUntil(lambda: widget.partner.pending is None and kept[0].visible, timeout=10000)
    assert [viewer.layers[PARTNER_IMAGE_LAYER], viewer.layers[PARTNER_LABELS_LAYER]] == kept
    assert all(layer.visible and not layer.editable for layer in kept)


def test_dataset_tab_says_the_groups_were_inferred_from_image_similarity(review):
    _, _, session, dataset, _ = review
    # numbered frames: the names carry no video id, so look-alike sequences made the groups
    groups = [r.group for r in session.workspace.samples()]
    text = dataset.groups.text()
    assert text.startswith(f"Groups: {len(set(groups))} inferred from image similarity"), text
    assert not dataset.groups.isHidden()


def test_the_odd_one_out_of_three_copies_is_named_beside_each_and_only_it_is_pulled_up(
    make_napari_viewer, qtbot, tmp_path
):
    """Frame 1 under two more names: 8.png with frame 1's own label, 7.png with the object moved. 7 is the odd
    one out (an error); 1 and 8 keep an info finding naming 7, and each shows 7 beside it."""
    root = _set_with_copy(tmp_path / "set")
    shutil.copy2(root / "images" / "1.png", root / "images" / "8.png")
    shutil.copy2(root / "masks" / "1.png", root / "masks" / "8.png")
    viewer = make_napari_viewer()
    _, session = open_dataset_widget(viewer, qtbot, root)
    report = qc(session.workspace, DUP_CHECKS, workers=1)
    bad = {f.sample_id: f for f in report.findings if f.check == "duplicate_mask_disagreement"}
    assert {s: f.severity for s, f in bad.items()} == {"1": "info", "8": "info", "7": "error"}
    session.findings_changed.emit("qc")
    _, widget = viewer.window.add_plugin_dock_widget("napari-medseg", "Review")
    wait_for_queue(qtbot, widget)
    queue = review_queue(session.workspace)
    at = {s: k for k, s in enumerate(queue.sample_ids)}
    assert at["7"] == 0  # 1 and 8 are not pulled up with 7: their priority is their own, a full error less
    assert queue.priorities[at["1"]] == queue.priorities[at["8"]] == queue.priorities[0] + 1.0

    _show(widget, qtbot, session, "1")
    _partner_of(qtbot, widget, viewer, "7")
    assert widget.partner.note.text().endswith("; 7 is the odd one out of its copies, likely wrong")
    _show(widget, qtbot, session, "7")
    qtbot.waitUntil(lambda: widget.partner.pending is None and widget.partner.partner is not None, timeout=10000)
    assert widget.partner.partner.partner in {"1", "8"}
    assert "this label is the odd one out of its copies, likely wrong (also the same picture as " in (
        widget.partner.note.text()
    )


def test_a_pair_the_other_signals_tell_apart_says_which_beside_each(make_napari_viewer, qtbot, tmp_path, cvc_dir):
    """Real CVC frames 100-115 (113 left out) and a copy of frame 112 whose mask was moved off the polyp: two
    copies, which the picture's edges and the neighbouring frames tell apart
    (medseg.qc.queue_state.told_pairs). Each one's line beside it says which label the signals trust, as the
    queue does."""
    root = tmp_path / "cvc"
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
        for k in (k for k in range(100, 116) if k != 113):
            shutil.copyfile(cvc_dir / sub / f"{k}.png", root / sub / f"{k}.png")
    shutil.copyfile(cvc_dir / "images" / "112.png", root / "images" / "900.png")
    mask = np.asarray(Image.open(cvc_dir / "masks" / "112.png").convert("L")) > 127
    Image.fromarray(np.roll(mask, (60, 90), axis=(0, 1)).astype(np.uint8) * 255).save(root / "masks" / "900.png")
    viewer = make_napari_viewer()
    _, session = open_dataset_widget(viewer, qtbot, root)
    qc(session.workspace, workers=1)
    session.findings_changed.emit("qc")
    _, widget = viewer.window.add_plugin_dock_widget("napari-medseg", "Review")
    wait_for_queue(qtbot, widget)
    queue = review_queue(session.workspace)
    told = [f for f in queue[queue.place("112")].findings if f.check == "duplicate_mask_disagreement"]
    assert [(f.severity, f.details.get("trusted_over")) for f in told] == [("info", ["900"])]

    _show(widget, qtbot, session, "112")
    _partner_of(qtbot, widget, viewer, "900")
    assert widget.partner.note.text().endswith("; the other signals trust this label more: 900 is likely wrong")
    _show(widget, qtbot, session, "900")
    _partner_of(qtbot, widget, viewer, "112")
    assert widget.partner.note.text().endswith("; the other signals trust 112 more: this label is likely wrong")
