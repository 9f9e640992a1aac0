"""The Predict dock writes a 2-D image's prediction into the layer's own array (a refresh, not napari's data
setter), and never into an array it cannot write: a user's read-only layer under our name is replaced."""

from __future__ import annotations

import numpy as np
import pytest
from _predict_data import disk_image
from _train_data import one_thread  # noqa: F401 - an autouse fixture

from napari_medseg._layer_roles import is_locked
from napari_medseg._predict_widget import PredictWidget
from napari_medseg._session import PREDICTION_LAYER, PROBABILITY_LAYER

pytestmark = pytest.mark.gui
WAIT = 30000


def _predicted(widget, qtbot, viewer, mask) -> None:
    shown = widget.queue.counts.shown
    widget.request(force=True)
    qtbot.waitUntil(lambda: widget.queue.counts.shown > shown and not widget.queue.busy, timeout=WAIT)
    assert np.array_equal(viewer.layers[PREDICTION_LAYER].data == 1, mask)


def test_2d_prediction_is_written_into_the_layers_array(make_napari_viewer, qtbot, bright):
    viewer = make_napari_viewer()
    img, mask = disk_image()
    viewer.add_image(img, name="frame")
    widget = PredictWidget(viewer)
    qtbot.addWidget(widget)
    widget.set_checkpoints([bright])
    widget.settings.show_probability.value = True
    _predicted(widget, qtbot, viewer, mask)
    pred, prob = viewer.layers[PREDICTION_LAYER], viewer.layers[PROBABILITY_LAYER]
    arrays = pred.data, prob.data
    # another plane of the same image (a setting changed: the model runs again) lands in the same arrays,
    # redrawn without a thumbnail (each one repainted the layer list: with GL, the whole window)
    thumbnails = []
    pred.events.thumbnail.connect(thumbnails.append)
    pred.data[:] = 0
    widget.settings.threshold.value = 0.6
    _predicted(widget, qtbot, viewer, mask)
    assert pred.data is arrays[0] and prob.data is arrays[1]
    assert np.array_equal(pred._slice.image.raw == 1, mask)  # what napari draws holds the new prediction
    assert thumbnails == []
    # new pixels: the outputs are blanked through napari's data setter (blanking in place crashed Mesa's
    # software GL on a later draw), then the new prediction is written into that blank array
    img2, mask2 = disk_image(cy=30, cx=15, seed=3)
    viewer.layers["frame"].data = img2
    assert not pred.data.any() and not pred._slice.image.raw.any()
    blank = pred.data
    _predicted(widget, qtbot, viewer, mask2)
    assert pred.data is blank and np.array_equal(pred.data == 1, mask2)
    assert np.array_equal(pred._slice.image.raw == 1, mask2)
    assert not pred.editable and is_locked(pred)


def test_a_read_only_layer_under_our_name_is_replaced_not_written(make_napari_viewer, qtbot, bright):
    viewer = make_napari_viewer()
    img, mask = disk_image()
    viewer.add_image(img, name="frame")
    theirs = np.full(img.shape, 7, np.uint8)
    theirs.flags.writeable = False
    layer = viewer.add_labels(theirs, name=PREDICTION_LAYER)
    widget = PredictWidget(viewer)
    qtbot.addWidget(widget)
    widget.set_checkpoints([bright])
    _predicted(widget, qtbot, viewer, mask)
    assert viewer.layers[PREDICTION_LAYER] is layer and layer.data is not theirs
    assert (theirs == 7).all()  # their array is untouched; the layer shows the prediction
    assert not layer.editable
