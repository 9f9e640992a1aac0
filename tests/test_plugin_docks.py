"""Closing a dock: the widget's session and viewer connections go with it, so a later signal never reaches it."""

from __future__ import annotations

import numpy as np
import pytest

from napari_medseg._session import session_for

pytestmark = pytest.mark.gui


@pytest.mark.parametrize("name", ["Dataset", "Predict", "Review", "Fine-tune", "Export"])
def test_a_closed_dock_is_not_called_again(make_napari_viewer, qtbot, name):
    viewer = make_napari_viewer()
    session = session_for(viewer)
    _, widget = viewer.window.add_plugin_dock_widget("napari-medseg", name)
    destroyed = []
    widget.destroyed.connect(lambda *_: destroyed.append(True))
    viewer.window.remove_dock_widget(widget)
    widget.deleteLater()
    qtbot.waitUntil(lambda: bool(destroyed), timeout=5000)
    # every signal a widget listens to; a slot of the deleted widget would raise here
    session.workspace_changed.emit(None)
    session.sample_changed.emit(None)
    session.checkpoints_changed.emit([])
    session.revision_saved.emit("s", 1)
    session.status_changed.emit("s", "accepted")
    session.scores_changed.emit("oof-k5")
    session.findings_changed.emit("qc")
    layer = viewer.add_image(np.zeros((3, 8, 8), np.uint8), name="after close")
    viewer.dims.set_current_step(0, 2)
    viewer.layers.selection.active = layer
    viewer.layers.remove(layer)
    qtbot.wait(50)
