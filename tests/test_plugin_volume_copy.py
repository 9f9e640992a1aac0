"""'Copy prediction into labels' on a CT volume of a workspace: from the slice prediction or the whole-volume
prediction, one undoable edit, and a saved revision that changes exactly the slices the copy changed."""

from __future__ import annotations

import numpy as np
import pytest
from _predict_data import bright_25d_checkpoint, register_bright, unregister_bright
from _review_data import capture_errors, open_dataset_widget, wait_for_sample
from _train_data import one_thread  # noqa: F401 - an autouse fixture
from _volume_data import make_nnunet3d

from napari_medseg._predict_copy_volume import SLICE_SOURCE, VOLUME_SOURCE
from napari_medseg._predict_widget import PredictWidget
from napari_medseg._review_autosave import autosave_for
from napari_medseg._sample_layers import show_sample
from napari_medseg._session import LABELS_LAYER, PREDICTION_LAYER, VOLUME_PREDICTION_LAYER
from napari_medseg._volume_layers import go_to_slice

pytestmark = pytest.mark.gui
WAIT = 30000


@pytest.fixture(scope="module")
def bright_liver(tmp_path_factory):
    """A 2.5-D BrightNet calling 'liver' (id 1, as in the workspace) every voxel whose 3-slice mean is above
    55.5 HU: liver (60 HU) and kidney (140) mostly, spleen (50) and the body (40) mostly not."""
    register_bright()
    yield bright_25d_checkpoint(tmp_path_factory.mktemp("ckpt"), "bright", "liver", (55.5, 40.0))
    unregister_bright()


@pytest.fixture
def opened(make_napari_viewer, qtbot, tmp_path, bright_liver):
    root = make_nnunet3d(tmp_path / "ds", n_cases=2)
    viewer = make_napari_viewer()
    _, session = open_dataset_widget(viewer, qtbot, root)
    _, widget = viewer.window.add_plugin_dock_widget("napari-medseg", "Predict")
    assert isinstance(widget, PredictWidget)
    widget.set_checkpoints([bright_liver])
    return viewer, session, session.workspace, widget


def _copy(widget, qtbot, mode: str, source: str) -> bool:
    widget.copy_form.source.value = source
    widget.copy_form.copy_mode.value = mode
    done = widget.copy_into_labels()
    qtbot.waitUntil(lambda: widget.save_worker is None, timeout=WAIT)
    return done


def _changed(a: np.ndarray, b: np.ndarray) -> list[int]:
    return np.flatnonzero((a != b).any(axis=(1, 2))).tolist()


def test_copy_a_slice_prediction_saves_that_slice_and_undo_takes_it_back(opened, qtbot):
    viewer, session, ws, widget = opened
    sid = session.sample_id
    labels = viewer.layers[LABELS_LAYER]
    first = ws.current_mask(sid)
    assert not widget.copy_form.source.native.isHidden()  # a volume: the copy asks where from
    go_to_slice(viewer, 4)
    assert widget.request(force=True)
    qtbot.waitUntil(lambda: widget.outputs.predicted is not None and widget.outputs.predicted[4], timeout=WAIT)
    predicted = np.asarray(viewer.layers[PREDICTION_LAYER].data[4]).copy()
    assert (predicted == 1).any() and _changed(first[4:5], predicted[None]) == [0]

    assert _copy(widget, qtbot, "current slice", SLICE_SOURCE)
    assert _changed(np.asarray(labels.data), first) == [4]
    np.testing.assert_array_equal(labels.data[4], predicted)
    assert autosave_for(viewer).slices.dirty == {4}  # the autosave read the copy's slice from its edit
    rev = ws.revisions(sid)[-1]
    assert rev.origin == "model" and rev.details["slices"] == [4] and ws.changed_slices(rev.id) == [4]
    assert rev.details["source"] == SLICE_SOURCE and rev.details["mode"] == "slice"
    stored = ws.mask_at(rev.id)
    np.testing.assert_array_equal(stored, np.asarray(labels.data))
    assert "on 1 slice (4)" in widget.status.text() and f"saved as revision {rev.id}" in widget.status.text()

    # one Ctrl+Z takes the copy back; saving stores slice 4 as it was imported, and nothing else
    labels.undo()
    np.testing.assert_array_equal(labels.data, first)
    assert autosave_for(viewer).save() is not None
    back = ws.revisions(sid)[-1]
    assert back.origin == "manual" and ws.changed_slices(back.id) == [4]
    np.testing.assert_array_equal(ws.current_mask(sid), first)

    # a slice never predicted is refused, naming it
    widget.copy_form.copy_mode.value = "current slice"
    go_to_slice(viewer, 8)
    assert not widget.copy_into_labels()
    assert "no prediction of slice 8" in widget.status.text()
    assert ws.revisions(sid)[-1].id == back.id


def test_copy_the_whole_volume_prediction_saves_exactly_the_slices_it_changes(opened, qtbot, monkeypatch):
    from napari.layers import Shapes

    errors = capture_errors(monkeypatch)
    viewer, session, ws, widget = opened
    sid = session.sample_id
    labels = viewer.layers[LABELS_LAYER]
    first = ws.current_mask(sid)
    assert widget.copy_form.source.value == SLICE_SOURCE
    assert widget.predict_volume()
    qtbot.waitUntil(lambda: VOLUME_PREDICTION_LAYER in viewer.layers and not widget.volume_run.busy, timeout=WAIT)
    assert widget.copy_form.source.value == VOLUME_SOURCE  # the prediction just made is the one copied next
    volume = np.asarray(viewer.layers[VOLUME_PREDICTION_LAYER].data).copy()
    assert len(_changed(volume, first)) == first.shape[0]  # the model disagrees with every slice's labels

    # slice 7 from the whole-volume prediction; then only inside a rectangle drawn on slice 2
    go_to_slice(viewer, 7)
    assert _copy(widget, qtbot, "current slice", VOLUME_SOURCE)
    assert ws.changed_slices(ws.revisions(sid)[-1].id) == [7]
    go_to_slice(viewer, 2)
    box = np.array([[2, 8, 10], [2, 8, 30], [2, 26, 30], [2, 26, 10]], float)
    viewer.add_shapes([box], shape_type="rectangle", scale=labels.scale, translate=labels.translate, name="box")
    widget.copy_form.shapes.value = "box"
    assert _copy(widget, qtbot, "inside drawn shapes", VOLUME_SOURCE)
    rev = ws.revisions(sid)[-1]
    assert ws.changed_slices(rev.id) == [2] and rev.details["mode"] == "region"
    inside = np.zeros(first.shape[1:], bool)
    inside[8:27, 10:31] = True
    now = ws.current_mask(sid)
    np.testing.assert_array_equal(now[2][inside], volume[2][inside])
    np.testing.assert_array_equal(now[2][~inside], first[2][~inside])
    assert isinstance(viewer.layers["box"], Shapes)

    # the whole volume: a revision of the slices that still differ, not 2 or 7 (nor 2's inside, already copied)
    before = np.asarray(labels.data).copy()
    expected = _changed(volume, before)
    assert 7 not in expected and 2 in expected and len(expected) == first.shape[0] - 1
    assert _copy(widget, qtbot, "whole image", VOLUME_SOURCE)
    np.testing.assert_array_equal(labels.data, volume)
    rev = ws.revisions(sid)[-1]
    assert rev.origin == "model" and ws.changed_slices(rev.id) == expected
    np.testing.assert_array_equal(ws.mask_at(rev.id), volume)
    unchanged = [z for z in range(first.shape[0]) if z not in expected]
    np.testing.assert_array_equal(ws.mask_at(rev.id)[unchanged], before[unchanged])
    assert _copy(widget, qtbot, "whole image", VOLUME_SOURCE)  # again: nothing changes, no revision
    assert ws.revisions(sid)[-1].id == rev.id and "nothing changed" in widget.status.text()

    # another case on screen: the whole-volume prediction of case_000 is not copied into it
    show_sample(viewer, "case_001")
    wait_for_sample(qtbot, session, "case_001")
    other = ws.current_mask("case_001")
    n_revisions = len(ws.revisions("case_001"))
    assert not _copy(widget, qtbot, "whole image", VOLUME_SOURCE)
    assert "not of the volume on screen" in errors[-1] and "case_000" in errors[-1]
    assert not _copy(widget, qtbot, "current slice", SLICE_SOURCE)
    assert "no slice prediction of the volume on screen" in errors[-1]
    np.testing.assert_array_equal(viewer.layers[LABELS_LAYER].data, other)
    assert len(ws.revisions("case_001")) == n_revisions
