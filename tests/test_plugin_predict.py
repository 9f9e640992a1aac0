"""The Predict dock widget: one-shot and live prediction, newest request wins, outputs in place, copy into labels."""

from __future__ import annotations

import numpy as np
import pytest
from _predict_data import bright_checkpoint, disk_image, disk_stack, tiny_unet
from _review_data import capture_errors
from _train_data import one_thread  # noqa: F401 - an autouse fixture

from napari_medseg._predict_widget import ARCHITECTURE, PredictWidget
from napari_medseg._session import (
    IMAGE_LAYER,
    LABELS_LAYER,
    PREDICTION_LAYER,
    PROBABILITY_LAYER,
    UNCERTAINTY_LAYER,
    session_for,
)

pytestmark = pytest.mark.gui
WAIT = 30000


def _widget(viewer, qtbot) -> PredictWidget:
    widget = PredictWidget(viewer)
    qtbot.addWidget(widget)
    return widget


def _idle(widget, qtbot):
    qtbot.waitUntil(lambda: not widget.queue.busy, timeout=WAIT)


def _iou(a, b) -> float:
    return float(np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1))


def test_one_shot_prediction_makes_layers_on_the_image_grid(make_napari_viewer, qtbot, bright):
    viewer = make_napari_viewer()
    img, mask = disk_image()
    viewer.add_image(img, name="frame", scale=(0.5, 0.25), translate=(3.0, 4.0))
    widget = _widget(viewer, qtbot)
    widget.set_checkpoints([bright])
    widget.settings.show_probability.value = True
    widget.settings.show_uncertainty.value = True
    assert widget.request(force=True)
    qtbot.waitUntil(lambda: PREDICTION_LAYER in viewer.layers, timeout=WAIT)
    _idle(widget, qtbot)
    pred, prob, unc = (viewer.layers[n] for n in (PREDICTION_LAYER, PROBABILITY_LAYER, UNCERTAINTY_LAYER))
    for layer in (pred, prob, unc):
        assert layer.data.shape == img.shape
        assert tuple(layer.scale) == (0.5, 0.25) and tuple(layer.translate) == (3.0, 4.0)
    assert _iou(pred.data == 1, mask) > 0.95
    assert prob.data[mask].mean() > 0.9 and prob.data[~mask].mean() < 0.1
    assert pred.metadata["medseg"]["class_names"] == {0: "background", 1: "polyp"}
    assert "bright.medseg" in widget.status.text()

    # a second run on changed pixels updates the same layer objects
    img2, mask2 = disk_image(cy=30, cx=15, seed=3)
    viewer.layers["frame"].data = img2
    widget.request(force=True)
    qtbot.waitUntil(lambda: _iou(viewer.layers[PREDICTION_LAYER].data == 1, mask2) > 0.95, timeout=WAIT)
    assert viewer.layers[PREDICTION_LAYER] is pred and viewer.layers[PROBABILITY_LAYER] is prob


def test_live_stack_predicts_the_slice_on_screen_in_place(make_napari_viewer, qtbot, bright):
    viewer = make_napari_viewer()
    stack, masks = disk_stack(4)
    viewer.add_image(stack, name="frames", scale=(1.0, 0.8, 0.8))
    # docked from the manifest, as a user opens it: napari hands the widget a proxy of the viewer
    _, widget = viewer.window.add_plugin_dock_widget("napari-medseg", "Predict")
    assert isinstance(widget, PredictWidget)
    widget.set_checkpoints([bright])
    viewer.dims.set_current_step(0, 1)
    widget.live.setChecked(True)  # switching live on predicts what is on screen
    qtbot.waitUntil(lambda: PREDICTION_LAYER in viewer.layers, timeout=WAIT)
    layer = viewer.layers[PREDICTION_LAYER]
    assert layer.data.shape == stack.shape and tuple(layer.scale) == (1.0, 0.8, 0.8)
    viewer.dims.set_current_step(0, 3)  # moving to another frame asks for it
    qtbot.waitUntil(lambda: widget.outputs.predicted[3], timeout=WAIT)
    _idle(widget, qtbot)
    assert viewer.layers[PREDICTION_LAYER] is layer
    assert widget.outputs.predicted.tolist() == [False, True, False, True]
    for k in (1, 3):
        assert _iou(layer.data[k] == 1, masks[k]) > 0.9
    assert not layer.data[[0, 2]].any()  # frames never shown were never predicted


def test_burst_of_requests_shows_only_the_newest(make_napari_viewer, qtbot, bright):
    viewer = make_napari_viewer()
    stack, masks = disk_stack(6, shape=(96, 112))
    viewer.add_image(stack, name="frames")
    widget = _widget(viewer, qtbot)
    widget.set_checkpoints([bright])
    viewer.dims.set_current_step(0, 0)
    widget.live.setChecked(True)
    qtbot.waitUntil(lambda: widget.outputs.predicted is not None and widget.outputs.predicted[0], timeout=WAIT)
    _idle(widget, qtbot)
    before = widget.queue.counts.requested, widget.queue.counts.shown
    shown: list[tuple] = []
    widget.queue.on_result = lambda request, prediction: (
        shown.append(request.context[2]),
        widget._show(request, prediction),
    )
    for k in range(1, 6):  # five slice changes faster than one prediction
        viewer.dims.set_current_step(0, k)
    _idle(widget, qtbot)
    counts = widget.queue.counts
    assert counts.requested - before[0] == 5
    assert shown == [(5,)] and counts.shown - before[1] == 1
    assert counts.superseded == 3  # 2, 3 and 4 never ran
    assert counts.cancelled + counts.stale == 1  # 1 was stopped (or its late result dropped)
    assert widget.outputs.predicted.tolist() == [True, False, False, False, False, True]
    assert _iou(viewer.layers[PREDICTION_LAYER].data[5] == 1, masks[5]) > 0.9


def test_live_follows_the_session_sample(make_napari_viewer, qtbot, bright):
    viewer = make_napari_viewer()
    session = session_for(viewer)
    img, _ = disk_image()
    viewer.add_image(img, name=IMAGE_LAYER)
    widget = _widget(viewer, qtbot)
    widget.set_checkpoints([bright])
    widget.live.setChecked(True)
    _idle(widget, qtbot)
    requested = widget.queue.counts.requested
    img2, mask2 = disk_image(cy=12, cx=40, r=6, seed=7)
    viewer.layers[IMAGE_LAYER].data = img2  # what the Dataset widget does when it shows another sample
    session.set_sample("sample-2")
    _idle(widget, qtbot)
    assert widget.queue.counts.requested == requested + 1  # the data change and the signal: one request
    assert _iou(viewer.layers[PREDICTION_LAYER].data == 1, mask2) > 0.95


def test_copy_modes_into_labels(make_napari_viewer, qtbot, bright):
    viewer = make_napari_viewer()
    img, mask = disk_image(shape=(40, 60), cy=20, cx=40, r=8)
    viewer.add_image(img, name="frame")
    labels = viewer.add_labels(np.zeros(img.shape, np.uint8), name=LABELS_LAYER)
    labels.data[5:10, 5:15] = 2  # a class the model does not know
    widget = _widget(viewer, qtbot)
    widget.set_checkpoints([bright])
    assert widget.request(force=True)  # the Labels layer is selected: the image beneath is predicted
    qtbot.waitUntil(lambda: PREDICTION_LAYER in viewer.layers, timeout=WAIT)

    # inside a drawn rectangle only: the left half of the disk
    shapes = viewer.add_shapes(
        [np.array([[0, 25], [39, 25], [39, 40], [0, 40]])], shape_type="rectangle", name="region"
    )
    widget._follow_image()
    widget.copy_form.copy_mode.value = "inside drawn shapes"
    widget.copy_form.shapes.value = shapes.name
    assert widget.copy_into_labels()
    got = labels.data == 1
    assert got[:, 41:].sum() == 0 and got.sum() > 0 and _iou(got[:, :40], mask[:, :40]) > 0.9
    assert (labels.data[5:10, 5:15] == 2).all()

    # one class only: keeps class 2, takes the whole disk
    labels.selected_label = 1
    widget.copy_form.copy_mode.value = "selected label only"
    assert widget.copy_into_labels()
    assert _iou(labels.data == 1, mask) > 0.95 and (labels.data[5:10, 5:15] == 2).all()
    labels.undo()  # the copy went through napari's history
    assert labels.data[:, 41:].max() == 0

    widget.copy_form.copy_mode.value = "whole image"
    assert widget.copy_into_labels()
    np.testing.assert_array_equal(labels.data, viewer.layers[PREDICTION_LAYER].data)


def test_copy_current_slice_of_a_stack(make_napari_viewer, qtbot, bright):
    viewer = make_napari_viewer()
    stack, masks = disk_stack(3)
    viewer.add_image(stack, name="frames")
    labels = viewer.add_labels(np.zeros(stack.shape, np.uint8), name=LABELS_LAYER)
    widget = _widget(viewer, qtbot)
    widget.set_checkpoints([bright])
    widget.live.setChecked(True)
    for k in (0, 2):
        viewer.dims.set_current_step(0, k)
        qtbot.waitUntil(lambda k=k: widget.outputs.predicted is not None and widget.outputs.predicted[k], timeout=WAIT)
    widget.copy_form.copy_mode.value = "current slice"
    assert widget.copy_into_labels()
    assert labels.data[[0, 1]].max() == 0 and _iou(labels.data[2] == 1, masks[2]) > 0.9
    widget.copy_form.copy_mode.value = "whole image"  # every predicted slice, never the unseen one
    assert widget.copy_into_labels()
    assert _iou(labels.data[0] == 1, masks[0]) > 0.9 and labels.data[1].max() == 0


def test_copy_on_a_workspace_sample_is_a_model_revision(make_napari_viewer, qtbot, bright, tmp_path):
    from _train_run import make_dataset

    from medseg.workspace import Workspace

    data = make_dataset(tmp_path / "data", n=4, size=32)
    ws = Workspace.create(tmp_path / "data.medseg", data)
    viewer = make_napari_viewer()
    session = session_for(viewer)
    session.set_workspace(ws)
    sid = ws.sample_ids()[1]
    pixels = ws.image(sid).array.copy()
    pixels[:5, :5] = 255  # something bright the label lacks: the model's copy changes the label there
    viewer.add_image(pixels, name=IMAGE_LAYER, rgb=True)
    viewer.add_labels(ws.current_mask(sid).copy(), name=LABELS_LAYER)
    session.set_sample(sid)
    saved = []
    session.revision_saved.connect(lambda s, r: saved.append((s, r)))
    widget = _widget(viewer, qtbot)
    widget.set_checkpoints([bright])
    widget.request(force=True)
    qtbot.waitUntil(lambda: PREDICTION_LAYER in viewer.layers, timeout=WAIT)
    widget.copy_form.copy_mode.value = "whole image"
    assert widget.copy_into_labels()
    qtbot.waitUntil(lambda: bool(saved), timeout=WAIT)
    head = ws.revisions(sid)[-1]
    assert saved == [(sid, head.id)] and head.origin == "model" and head.details["mode"] == "whole"
    assert head.details["checkpoints"] == [str(bright)] and head.n_changed == 25
    assert "saved as revision" in widget.status.text()
    np.testing.assert_array_equal(ws.current_mask(sid), viewer.layers[LABELS_LAYER].data)
    assert ws.sample(sid).status == "unreviewed"  # a model copy is not a human correction
    session.set_workspace(None)


def test_overlapping_classes_predict_and_copy_as_class_planes(make_napari_viewer, qtbot, bright, tmp_path):
    """Multilabel (UW-Madison): prediction and labels are one plane per class; the copy is a model revision."""
    from _workspace_data import make_uw

    from medseg.workspace import Workspace
    from napari_medseg._layer_data import labels_to_mask, mask_to_labels

    ws = Workspace.create(tmp_path / "uw.medseg", make_uw(tmp_path / "uw"))
    ckpt = bright_checkpoint(tmp_path, "bright3", ws.classmap)
    viewer = make_napari_viewer()
    session = session_for(viewer)
    session.set_workspace(ws)
    sid = ws.sample_ids()[0]
    image = ws.image(sid)
    viewer.add_image(image.array, name=IMAGE_LAYER, scale=image.spacing)
    labels = viewer.add_labels(
        mask_to_labels(ws.current_mask(sid), ws.classmap), name=LABELS_LAYER, scale=(1.0, *image.spacing)
    )
    session.set_sample(sid)
    widget = _widget(viewer, qtbot)
    widget.set_checkpoints([ckpt])
    widget.request(force=True)
    qtbot.waitUntil(lambda: PREDICTION_LAYER in viewer.layers, timeout=WAIT)
    pred = viewer.layers[PREDICTION_LAYER]
    assert pred.data.shape == (3, *image.array.shape) and tuple(pred.scale) == (1.0, *image.spacing)
    assert set(np.unique(pred.data[2])) <= {0, ws.classmap.ids[2]}
    widget.copy_form.copy_mode.value = "current slice"  # every class of the (only) image plane
    assert widget.copy_into_labels()
    np.testing.assert_array_equal(labels.data, pred.data)
    qtbot.waitUntil(lambda: widget.last_revision is not None, timeout=WAIT)
    assert ws.revisions(sid)[-1].origin == "model"
    np.testing.assert_array_equal(ws.current_mask(sid), labels_to_mask(labels.data, ws.classmap))
    session.set_workspace(None)


def test_outputs_are_blanked_when_the_image_changes(make_napari_viewer, qtbot, bright, monkeypatch):
    viewer = make_napari_viewer()
    img, _ = disk_image()
    layer = viewer.add_image(img, name="frame")
    widget = _widget(viewer, qtbot)
    widget.set_checkpoints([bright])
    widget.request(force=True)
    qtbot.waitUntil(lambda: PREDICTION_LAYER in viewer.layers, timeout=WAIT)
    layer.data = disk_image(cy=10, cx=10, seed=4)[0]  # not live: no new prediction, and no stale overlay
    assert not viewer.layers[PREDICTION_LAYER].data.any()
    errors = capture_errors(monkeypatch)
    assert not widget.copy_into_labels() and "no prediction of the image on screen" in errors[0]


def test_checkpoints_follow_the_session_and_ensemble(make_napari_viewer, qtbot, bright, tmp_path):
    viewer = make_napari_viewer()
    img, _ = disk_image()
    viewer.add_image(img, name="frame")
    widget = _widget(viewer, qtbot)
    unets = [tiny_unet(tmp_path, f"unet{k}", seed=k) for k in range(2)]
    session_for(viewer).set_checkpoints(unets)  # e.g. Fine-tune's "Use this model"
    assert [widget.checkpoint_list.item(i).text() for i in range(2)] == [str(p) for p in unets]
    assert widget.choice().checkpoints == tuple(str(p) for p in unets)
    widget.settings.show_uncertainty.value = True
    widget.request(force=True)
    qtbot.waitUntil(lambda: PREDICTION_LAYER in viewer.layers, timeout=WAIT)
    assert "ensemble of 2" in widget.status.text()
    assert viewer.layers[UNCERTAINTY_LAYER].data.shape == img.shape


def test_untrained_architecture_says_so(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    img, _ = disk_image()
    viewer.add_image(np.stack([img] * 3, -1), name="rgb", rgb=True)
    widget = _widget(viewer, qtbot)
    widget.source_form.source.value = ARCHITECTURE
    # the architectures are read in a worker after the dock is built (torch stays off the GUI thread)
    qtbot.waitUntil(lambda: "PlainUNet" in widget.arch_form.arch.choices, timeout=WAIT)
    widget.arch_form.arch.value = "PlainUNet"
    assert widget.untrained_note.isVisibleTo(widget) and "Untrained" in widget.untrained_note.text()
    widget.request(force=True)
    qtbot.waitUntil(lambda: PREDICTION_LAYER in viewer.layers, timeout=WAIT)
    assert viewer.layers[PREDICTION_LAYER].data.shape == img.shape
    assert "UNTRAINED PlainUNet" in widget.status.text()


def test_a_broken_checkpoint_is_reported_once(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    errors = capture_errors(monkeypatch)
    viewer = make_napari_viewer()
    img, _ = disk_image()
    viewer.add_image(img, name="frame")
    broken = tmp_path / "broken.medseg"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    widget = _widget(viewer, qtbot)
    widget.set_checkpoints([broken])
    widget.live.setChecked(True)
    qtbot.waitUntil(lambda: bool(errors), timeout=WAIT)
    _idle(widget, qtbot)
    assert "Loading the model (broken.medseg) failed" in errors[0] and "config.json" in errors[0]
    viewer.add_image(img, name="another")  # more live triggers do not repeat the error
    _idle(widget, qtbot)
    assert len(errors) == 1 and PREDICTION_LAYER not in viewer.layers


def test_copy_without_prediction_is_explained(make_napari_viewer, qtbot, monkeypatch):
    errors = capture_errors(monkeypatch)
    viewer = make_napari_viewer()
    viewer.add_image(disk_image()[0], name="frame")
    widget = _widget(viewer, qtbot)
    assert not widget.copy_into_labels()
    assert "no prediction of the image on screen" in errors[0]


def test_real_cvc_frame(make_napari_viewer, qtbot, cvc_dir, tmp_path):
    from medseg.io import load

    image = load(cvc_dir / "images" / "1.png")
    viewer = make_napari_viewer()
    viewer.add_image(image.array, name="cvc 1", rgb=True)
    widget = _widget(viewer, qtbot)
    widget.set_checkpoints([tiny_unet(tmp_path)])
    widget.settings.tile.value = 128
    widget.settings.show_probability.value = True
    widget.request(force=True)
    qtbot.waitUntil(lambda: PROBABILITY_LAYER in viewer.layers, timeout=WAIT)
    assert viewer.layers[PREDICTION_LAYER].data.shape == image.array.shape[:2] == (288, 384)
    assert "slice" not in widget.status.text()
