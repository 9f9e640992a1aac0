"""The Display dock widget: provenance text, window presets and the threaded CLAHE copy."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.io.dicom import CT_PRESETS
from medseg.io.normalise import percentile_window
from napari_medseg._display_widget import FULL_RANGE, PERCENTILE, PLACEHOLDER, DisplayWidget

pytestmark = pytest.mark.gui
PLUGIN = "napari-medseg"


@pytest.fixture
def ct_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "ct")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Display")
    assert isinstance(widget, DisplayWidget)
    return viewer, widget


def test_ct_presets_and_provenance(ct_viewer):
    viewer, widget = ct_viewer
    layer = viewer.layers["CT_small"]
    names = widget.preset_names()
    assert set(CT_PRESETS) <= set(names) and names[-2:] == [PERCENTILE, FULL_RANGE]
    text = widget.info.text()
    assert "CT_small.dcm" in text and "modality CT" in text and "0.6615 × 0.6615 mm" in text

    widget.form.window.value = "lung"
    assert tuple(layer.contrast_limits) == pytest.approx((-600 - 750, -600 + 750))

    widget.form.window.value = PERCENTILE
    c, w = percentile_window(layer.data, 1, 99)
    assert tuple(layer.contrast_limits) == pytest.approx((c - w / 2, c + w / 2))

    widget.form.window.value = FULL_RANGE
    assert tuple(layer.contrast_limits) == pytest.approx((layer.data.min(), layer.data.max()))

    layer.contrast_limits = (0, 100)  # a manual change: the menu stops naming a window
    assert widget.form.window.value == PLACEHOLDER


def test_clahe_copy_adds_layer_from_thread(ct_viewer, qtbot):
    from medseg.io.normalise import clahe

    viewer, widget = ct_viewer
    layer = viewer.layers["CT_small"]
    widget.clahe_button.click()
    qtbot.waitUntil(lambda: len(viewer.layers) == 2, timeout=20000)
    qtbot.waitUntil(lambda: widget.clahe_button.isEnabled(), timeout=5000)
    new = viewer.layers[-1]
    assert new.name == "CT_small CLAHE"
    np.testing.assert_allclose(new.data, clahe(layer.data, clip_limit=0.01), atol=1e-6)
    assert list(new.scale) == pytest.approx(list(layer.scale))
    assert new.metadata["medseg"]["operation"] == "clahe"
    viewer.layers.selection.active = new
    assert "CLAHE copy of layer 'CT_small'" in widget.info.text()


def test_clahe_error_reaches_notifications(make_napari_viewer, qtbot, monkeypatch):
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    viewer.add_image(np.full((16, 16), np.nan, dtype=np.float32), name="holes")  # clahe rejects NaN
    widget = DisplayWidget(viewer)
    qtbot.addWidget(widget)
    errors = []
    monkeypatch.setattr(notification_manager, "dispatch", errors.append)
    widget.clahe_button.click()
    qtbot.waitUntil(lambda: widget.clahe_button.isEnabled(), timeout=10000)
    assert len(viewer.layers) == 1
    # a ValueError is no MedsegError: napari's exception form, which offers the traceback
    assert len(errors) == 1 and "NaN" in errors[0].message and errors[0].message.startswith("CLAHE failed")
    assert errors[0].exception.__traceback__ is not None
    assert "CLAHE failed" in widget.status.text() and "Traceback" in widget.status.detail()


def test_plain_layer_gets_generic_presets_only(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "ct")
    data = np.arange(400, dtype=np.uint16).reshape(20, 20)
    viewer.add_image(data, name="plain")
    widget = DisplayWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.preset_names() == [PERCENTILE, FULL_RANGE]
    assert "No provenance" in widget.info.text()
    viewer.layers.selection.active = viewer.layers["CT_small"]
    assert "lung" in widget.preset_names() and widget.preset_names()[-2:] == [PERCENTILE, FULL_RANGE]
    viewer.layers.selection.active = viewer.layers["plain"]
    widget.form.window.value = FULL_RANGE
    assert tuple(viewer.layers["plain"].contrast_limits) == (0, 399)


def test_lazy_stack_window_uses_displayed_frame(make_napari_viewer, qtbot):
    """For a dask stack only the frame on screen is read (never the whole dataset)."""
    import dask.array as da

    viewer = make_napari_viewer()
    frames = np.stack([np.full((8, 8), 10 * i, np.uint16) for i in range(5)])
    frames[:, 0, 0] = 1000
    viewer.add_image(da.from_array(frames, chunks=(1, 8, 8)), name="stack")
    viewer.dims.set_current_step(0, 3)
    widget = DisplayWidget(viewer)
    qtbot.addWidget(widget)
    widget.form.window.value = FULL_RANGE
    assert tuple(viewer.layers["stack"].contrast_limits) == (30, 1000)
    widget.clahe_button.click()
    qtbot.waitUntil(lambda: len(viewer.layers) == 2, timeout=20000)
    assert viewer.layers[-1].data.shape == (8, 8) and "plane 3" in viewer.layers[-1].name
