"""Strokes land on the reviewed labels: the model's layers are locked and never left selected after Predict; the
prediction is drawn unlike the label, and a key shows / hides it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _predict_data import bright_25d_checkpoint, bright_checkpoint, register_bright, unregister_bright
from _review_data import open_dataset_widget, wait_for_queue
from _train_data import one_thread  # noqa: F401 - an autouse fixture
from _volume_data import make_nnunet3d

from medseg.datasets.demo import make_demo_dataset
from napari_medseg._layer_roles import (
    PREDICTION_CONTOUR,
    PREDICTION_OPACITY,
    TOGGLE_PREDICTION_KEY,
    is_locked,
    toggle_prediction,
)
from napari_medseg._predict_widget import PredictWidget
from napari_medseg._session import (
    LABELS_LAYER,
    PREDICTION_LAYER,
    PROBABILITY_LAYER,
    UNCERTAINTY_LAYER,
    VOLUME_PREDICTION_LAYER,
)

pytestmark = pytest.mark.gui
WAIT = 30000


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    register_bright()
    folder = tmp_path_factory.mktemp("ckpt")
    yield bright_checkpoint(folder), bright_25d_checkpoint(folder, "bright25d", "bright", (55.5, 40.0))
    unregister_bright()


def _predict_dock(viewer, checkpoint) -> PredictWidget:
    _, widget = viewer.window.add_plugin_dock_widget("napari-medseg", "Predict")  # as the Plugins menu does
    assert isinstance(widget, PredictWidget)
    widget.set_checkpoints([checkpoint])
    return widget


def _predicted(widget, qtbot, viewer, names=(PREDICTION_LAYER,)) -> None:
    assert widget.request(force=True)
    qtbot.waitUntil(lambda: all(n in viewer.layers for n in names), timeout=WAIT)
    qtbot.waitUntil(lambda: not widget.queue.busy, timeout=WAIT)


def _stroke(layer, MouseEvent, row: int, cols: tuple[int, int], lead: tuple[int, ...] = ()) -> None:
    """A press-drag-release along ``row`` as napari's canvas delivers it to the active layer's mode callbacks."""
    from napari.utils._proxies import ReadOnlyWrapper
    from napari.utils.interactions import mouse_move_callbacks, mouse_press_callbacks, mouse_release_callbacks

    n = layer.ndim
    displayed = (n - 2, n - 1)
    points = [tuple(layer.data_to_world((*lead, row, c))) for c in cols]

    def event(kind: str, position, dragging: bool):
        return ReadOnlyWrapper(
            MouseEvent(
                type=kind,
                is_dragging=dragging,
                position=position,
                view_direction=None,
                dims_displayed=displayed,
                dims_point=points[0],
            )
        )

    mouse_press_callbacks(layer, event("mouse_press", points[0], False))
    mouse_move_callbacks(layer, event("mouse_move", points[1], True))
    mouse_release_callbacks(layer, event("mouse_release", points[1], False))


def _empty_row(labels: np.ndarray, width: int = 30) -> tuple[int, tuple[int, int]]:
    """A row whose first ``width`` + 10 pixels hold no label: where the test's stroke adds one."""
    for r in range(4, labels.shape[-2] - 4):
        if not labels[..., r - 3 : r + 4, : width + 10].any():
            return r, (5, 5 + width)
    raise AssertionError("no empty band to paint in")


def test_a_stroke_after_predict_lands_in_the_saved_revision(
    make_napari_viewer, qtbot, tmp_path, checkpoints, MouseEvent
):
    make_demo_dataset(tmp_path / "demo")
    viewer = make_napari_viewer()
    _, session = open_dataset_widget(viewer, qtbot, tmp_path / "demo")
    ws, sid = session.workspace, session.sample_id
    _, review = viewer.window.add_plugin_dock_widget("napari-medseg", "Review")
    wait_for_queue(qtbot, review)
    labels = viewer.layers[LABELS_LAYER]
    labels.mode = "paint"  # the user picks the brush, then asks for a prediction
    widget = _predict_dock(viewer, checkpoints[0])
    _predicted(widget, qtbot, viewer)

    # the user paints where the brush is: on the layer napari has selected
    active = viewer.layers.selection.active
    row, cols = _empty_row(np.asarray(labels.data))
    active.mode = "paint"
    active.brush_size = 3
    active.selected_label = 1
    predicted = np.array(viewer.layers[PREDICTION_LAYER].data)
    _stroke(active, MouseEvent, row, cols)
    before = len(ws.revisions(sid))
    review.save_correction()  # written before it returns
    assert len(ws.revisions(sid)) == before + 1, review.message.text()
    saved = ws.mask_at(ws.sample(sid).head_revision)
    assert saved[row, cols[0] : cols[1] + 1].all()  # the whole stroke is in the revision
    np.testing.assert_array_equal(viewer.layers[PREDICTION_LAYER].data, predicted)
    assert active is labels and labels.mode == "paint"  # napari selected the new layer: ours gave it back

    # live prediction of the next sample replaces the layers' data: still locked, the labels still selected
    widget.settings.show_probability.value = True
    widget.settings.show_uncertainty.value = True
    widget.live.setChecked(True)
    review.next_sample()
    qtbot.waitUntil(lambda: session.sample_id != sid, timeout=WAIT)
    qtbot.waitUntil(lambda: not widget.queue.busy and widget.outputs.source is not None, timeout=WAIT)
    assert viewer.layers.selection.active is viewer.layers[LABELS_LAYER]
    assert viewer.layers[LABELS_LAYER].editable
    for name in (PREDICTION_LAYER, PROBABILITY_LAYER, UNCERTAINTY_LAYER):
        assert not viewer.layers[name].editable and is_locked(viewer.layers[name])


def test_prediction_cannot_be_painted_and_looks_unlike_the_label(
    make_napari_viewer, qtbot, tmp_path, checkpoints, MouseEvent
):
    make_demo_dataset(tmp_path / "demo")
    viewer = make_napari_viewer()
    open_dataset_widget(viewer, qtbot, tmp_path / "demo")
    widget = _predict_dock(viewer, checkpoints[0])
    _predicted(widget, qtbot, viewer)
    pred, labels = viewer.layers[PREDICTION_LAYER], viewer.layers[LABELS_LAYER]

    # a user who selects the prediction and picks the brush gets pan / zoom: the stroke changes nothing
    viewer.layers.selection.active = pred
    pred.mode = "paint"
    assert pred.mode == "pan_zoom" and not pred.editable
    data = np.array(pred.data)
    _stroke(pred, MouseEvent, 10, (5, 40))
    np.testing.assert_array_equal(pred.data, data)
    viewer.dims.ndisplay = 3  # napari resets editable on some changes: ours stays locked
    viewer.dims.ndisplay = 2
    pred.data = np.zeros_like(pred.data)  # new data makes a Labels layer editable again in napari
    assert not pred.editable

    # the label filled in its class colours, the prediction an outline in another colour
    label_rgba = np.asarray(labels.colormap.map(np.array([1])))[0]
    pred_rgba = np.asarray(pred.colormap.map(np.array([1])))[0]
    assert np.abs(label_rgba[:3] - pred_rgba[:3]).sum() > 0.3
    assert labels.contour == 0 and pred.contour == PREDICTION_CONTOUR
    assert pred.opacity == pytest.approx(PREDICTION_OPACITY)


def test_toggle_key_shows_and_hides_the_model_layers(make_napari_viewer, qtbot, tmp_path, checkpoints):
    from qtpy.QtCore import Qt

    make_demo_dataset(tmp_path / "demo")
    viewer = make_napari_viewer()
    open_dataset_widget(viewer, qtbot, tmp_path / "demo")
    widget = _predict_dock(viewer, checkpoints[0])
    widget.settings.show_probability.value = True
    widget.settings.show_uncertainty.value = True
    _predicted(widget, qtbot, viewer, (PREDICTION_LAYER, PROBABILITY_LAYER, UNCERTAINTY_LAYER))
    pred, prob, unc = (viewer.layers[n] for n in (PREDICTION_LAYER, PROBABILITY_LAYER, UNCERTAINTY_LAYER))
    assert (pred.visible, prob.visible, unc.visible) == (True, True, False)  # uncertainty starts hidden

    assert TOGGLE_PREDICTION_KEY == "h" and TOGGLE_PREDICTION_KEY.upper() in {str(k) for k in viewer.keymap}
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, Qt.Key.Key_H)  # as the user types it
    assert not (pred.visible or prob.visible or unc.visible)
    assert viewer.layers[LABELS_LAYER].visible
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, Qt.Key.Key_H)
    assert (pred.visible, prob.visible, unc.visible) == (True, True, False)  # what was shown comes back
    assert toggle_prediction(viewer) is False and not pred.visible
    assert toggle_prediction(viewer) is True and pred.visible
    assert viewer.layers.selection.active is viewer.layers[LABELS_LAYER]


def test_volume_predictions_are_locked_and_the_labels_stay_active(
    make_napari_viewer, qtbot, tmp_path, checkpoints, MouseEvent
):
    from napari_medseg._volume_layers import current_slice

    root = make_nnunet3d(tmp_path / "ds", n_cases=1)
    viewer = make_napari_viewer()
    open_dataset_widget(viewer, qtbot, root)
    labels = viewer.layers[LABELS_LAYER]
    assert labels.ndim == 3
    labels.mode = "paint"
    widget = _predict_dock(viewer, checkpoints[1])
    _predicted(widget, qtbot, viewer)
    assert widget.predict_volume()
    qtbot.waitUntil(lambda: VOLUME_PREDICTION_LAYER in viewer.layers and not widget.volume_run.busy, timeout=WAIT)
    for name in (PREDICTION_LAYER, VOLUME_PREDICTION_LAYER):
        layer = viewer.layers[name]
        assert not layer.editable and layer.contour == PREDICTION_CONTOUR
        layer.mode = "fill"
        assert layer.mode == "pan_zoom"
    assert viewer.layers.selection.active is labels and labels.mode == "paint"

    z = current_slice(viewer, labels)
    row, cols = _empty_row(np.asarray(labels.data[z]))
    labels.brush_size = 3
    labels.selected_label = 1
    _stroke(viewer.layers.selection.active, MouseEvent, row, cols, lead=(z,))
    assert labels.data[z, row, cols[0] : cols[1] + 1].all()
    viewer.dims.ndisplay = 3  # napari draws no outline in 3-D: the prediction is filled there
    assert viewer.layers[VOLUME_PREDICTION_LAYER].contour == 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        viewer.dims.set_current_step(0, 1)  # napari warned at each 3-D refresh of an outlined layer
    assert not [w for w in caught if "Contours" in str(w.message)]
    viewer.dims.ndisplay = 2
    assert viewer.layers[VOLUME_PREDICTION_LAYER].contour == PREDICTION_CONTOUR
    assert not viewer.layers[VOLUME_PREDICTION_LAYER].editable and labels.editable
    assert toggle_prediction(viewer) is False
    assert not viewer.layers[PREDICTION_LAYER].visible and not viewer.layers[VOLUME_PREDICTION_LAYER].visible
