"""Predicting a CT volume in the Predict dock: the slice on screen live as the slider moves (a 2.5-D model sees
its neighbours; the newest slice wins), and every slice as a background job with progress and cancel."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from _predict_data import bright_25d_checkpoint, register_bright, unregister_bright
from _train_data import one_thread  # noqa: F401 - an autouse fixture
from _volume_data import make_nnunet3d

from medseg.io.normalise import apply_window
from napari_medseg._predict_widget import PredictWidget
from napari_medseg._session import IMAGE_LAYER, PREDICTION_LAYER, VOLUME_PREDICTION_LAYER
from napari_medseg._volume_layers import go_to_slice, open_volume_view, put_volume_image

pytestmark = pytest.mark.gui
WAIT = 30000
# HU 35.5..75.5: BrightNet marks voxels whose 3-slice mean is above 55.5 HU (integer HU never tie with it)
WINDOW = (55.5, 40.0)


@pytest.fixture(scope="module")
def bright_25d(tmp_path_factory):
    """A 2.5-D BrightNet checkpoint: 3 neighbouring slices as channels, one CT window for the scan."""
    register_bright()
    yield bright_25d_checkpoint(tmp_path_factory.mktemp("ckpt"), "bright25d", "bright", WINDOW)
    unregister_bright()


def windowed_mean(volume: np.ndarray, z: int) -> np.ndarray:
    """What the 2.5-D BrightNet sees on slice z: the windowed mean of z-1, z, z+1 (clamped at the ends)."""
    n = volume.shape[0]
    return apply_window(volume[[max(z - 1, 0), z, min(z + 1, n - 1)]].astype(np.float32), *WINDOW).mean(0)


def expected(volume: np.ndarray, z: int) -> np.ndarray:
    return windowed_mean(volume, z) > 0.5


def _agree(predicted: np.ndarray, volume: np.ndarray, z: int) -> bool:
    """The prediction of slice z is the model's rule wherever the rule is not a tie (a clipped slice and two
    integer HU can make the mean exactly 1/2)."""
    m = windowed_mean(volume, z)
    sure = np.abs(m - 0.5) > 1e-4
    return bool(np.array_equal((predicted == 1)[sure], (m > 0.5)[sure]) and sure.mean() > 0.99)


@pytest.fixture
def volume_on_screen(make_napari_viewer, qtbot, tmp_path, bright_25d):
    root = make_nnunet3d(tmp_path / "ds", n_cases=1)
    viewer = make_napari_viewer()
    image = put_volume_image(viewer, open_volume_view(root / "imagesTr" / "case_000_0000.nii.gz"), IMAGE_LAYER)
    _, widget = viewer.window.add_plugin_dock_widget("napari-medseg", "Predict")
    assert isinstance(widget, PredictWidget)
    widget.set_checkpoints([bright_25d])
    return viewer, widget, image, np.asarray(image.data)


def test_live_prediction_follows_the_slider_with_neighbours(volume_on_screen, qtbot):
    viewer, widget, image, volume = volume_on_screen
    go_to_slice(viewer, 3)
    widget.live.setChecked(True)
    qtbot.waitUntil(lambda: PREDICTION_LAYER in viewer.layers and widget.outputs.predicted[3], timeout=WAIT)
    pred = viewer.layers[PREDICTION_LAYER]
    assert pred.data.shape == volume.shape and tuple(pred.scale) == pytest.approx(tuple(image.scale))
    z = 7
    alone = apply_window(volume[z].astype(np.float32), *WINDOW) > 0.5
    assert (expected(volume, z) == alone).mean() < 0.95  # the neighbours matter on this noisy slice
    go_to_slice(viewer, z)
    qtbot.waitUntil(lambda: widget.outputs.predicted[z], timeout=WAIT)
    qtbot.waitUntil(lambda: not widget.queue.busy, timeout=WAIT)
    assert _agree(pred.data[z], volume, z)
    assert _agree(pred.data[3], volume, 3)

    # a burst of slider moves: only the newest slice's prediction is shown
    for k in range(10):
        go_to_slice(viewer, k)
    qtbot.waitUntil(lambda: not widget.queue.busy, timeout=WAIT)
    assert widget.queue.shown_key[2] == (9,) and widget.outputs.predicted[9]
    counts = widget.queue.counts
    assert counts.discarded >= 1 and counts.shown < counts.requested
    assert _agree(pred.data[9], volume, 9)


def test_whole_volume_prediction_is_a_job_with_progress_and_cancel(volume_on_screen, qtbot, monkeypatch):
    from napari_medseg import _progress

    viewer, widget, image, volume = volume_on_screen
    steps = []
    original = _progress.Bar.to
    monkeypatch.setattr(
        _progress.Bar,
        "to",
        lambda self, done, total, stage=None: steps.append((done, total)) or original(self, done, total, stage),
    )
    assert widget.predict_volume()
    qtbot.waitUntil(lambda: VOLUME_PREDICTION_LAYER in viewer.layers, timeout=WAIT)
    qtbot.waitUntil(lambda: not widget.volume_run.busy, timeout=WAIT)
    layer = viewer.layers[VOLUME_PREDICTION_LAYER]
    assert layer.data.shape == volume.shape and tuple(layer.scale) == pytest.approx(tuple(image.scale))
    for z in range(volume.shape[0]):
        assert _agree(layer.data[z], volume, z), z
    assert steps and steps[-1] == (10, 10)  # the bar counted the slices
    assert "on all 10 slices" in widget.status.text()
    assert layer.metadata["medseg"]["class_names"] == {0: "background", 1: "bright"}

    # cancelled before its first slice (the job waits at a gate until the cancel): nothing replaces the layer
    from napari_medseg._predict_volume import INPUTS

    gate, prepare = threading.Event(), INPUTS.get
    monkeypatch.setattr(INPUTS, "get", lambda predictor, data: gate.wait(WAIT / 1000) and prepare(predictor, data))
    layer.data = np.zeros_like(layer.data)
    assert widget.predict_volume()
    widget.cancel()
    gate.set()
    qtbot.waitUntil(lambda: not widget.volume_run.busy, timeout=WAIT)
    assert "cancelled" in widget.status.text() and not layer.data.any()
    assert not widget.session.jobs.running()
