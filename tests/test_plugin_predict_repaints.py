"""Live prediction repaints the napari window as few times as it can (counts, never time).

With the canvas's GL widget in the window, every repaint of any widget is a composition of the whole window
(through Xvfb's software GL, 50-300 ms each): a live slice change costs one for the new slice and one for
its prediction. Two of ours used to add more: a selectable message line painted each new text twice (its
text document is laid out after the first paint), and the layer list repainted the prediction's row, in a
composition of its own, at each in-place refresh (it hears every event of a layer).
"""

from __future__ import annotations

import numpy as np
import pytest
from _predict_data import disk_image, disk_stack
from _train_data import one_thread  # noqa: F401 - an autouse fixture
from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import QApplication, QVBoxLayout, QWidget

from napari_medseg._message_line import MessageLine
from napari_medseg._predict_widget import PredictWidget
from napari_medseg._session import PREDICTION_LAYER

pytestmark = pytest.mark.gui
WAIT = 30000


class Repaints(QObject):
    """The top-level window's update requests (one composition each) and the paints of ``watched``."""

    def __init__(self, window, watched=()) -> None:
        super().__init__()
        self.window, self.watched = window, tuple(watched)
        self.updates = 0
        self.paints = 0
        QApplication.instance().installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.UpdateRequest and obj is self.window:
            self.updates += 1
        elif event.type() == QEvent.Type.Paint and obj in self.watched:
            self.paints += 1
        return False

    def stop(self) -> None:
        QApplication.instance().removeEventFilter(self)


def test_a_new_message_is_painted_once(qtbot):
    window = QWidget()
    qtbot.addWidget(window)
    line = MessageLine("Predicting...")
    QVBoxLayout(window).addWidget(line)
    window.resize(400, 80)
    window.show()
    qtbot.waitExposed(window)
    qtbot.wait(100)
    paints = Repaints(window, [line.line])
    texts = ("model on frame slice 3: 0.29 s on cpu", "Predicting...", "model on frame slice 4: 0.31 s on cpu")
    for text in texts:
        line.say(text)
        qtbot.wait(150)  # the second paint of a selectable label came 40-60 ms after the first
        assert line.line.text() == text
    paints.stop()
    assert paints.paints == len(texts)
    # the text can still be selected to copy: under the pointer
    assert line.line.textInteractionFlags() == Qt.TextInteractionFlag.NoTextInteraction
    QApplication.sendEvent(line.line, QEvent(QEvent.Type.Enter))
    assert line.line.textInteractionFlags() & Qt.TextInteractionFlag.TextSelectableByMouse
    QApplication.sendEvent(line.line, QEvent(QEvent.Type.Leave))
    assert line.line.textInteractionFlags() == Qt.TextInteractionFlag.NoTextInteraction


def test_an_in_place_prediction_is_unseen_by_the_layer_list(make_napari_viewer, qtbot, bright):
    """The layer list hears a layer's events through the list's own emitter: an in-place refresh sends none
    there (the row shows nothing that changed), while the canvas's slice holds the new prediction."""
    viewer = make_napari_viewer()
    img, mask = disk_image()
    viewer.add_image(img, name="frame")
    widget = PredictWidget(viewer)
    qtbot.addWidget(widget)
    widget.set_checkpoints([bright])
    widget.request(force=True)
    qtbot.waitUntil(lambda: widget.queue.counts.shown == 1 and not widget.queue.busy, timeout=WAIT)
    pred = viewer.layers[PREDICTION_LAYER]
    heard, own = [], []
    row = viewer.layers.index(pred)  # the list passes a layer's event on with the layer's index
    viewer.layers.events.connect(lambda e: heard.append(e.type) if getattr(e, "index", None) == row else None)
    pred.events.set_data.connect(own.append)
    pred.data[:] = 0
    pred.refresh()
    heard.clear(), own.clear()
    widget.settings.threshold.value = 0.6
    widget.request(force=True)  # the model runs again: the same arrays, written in place
    qtbot.waitUntil(lambda: widget.queue.counts.shown == 2 and not widget.queue.busy, timeout=WAIT)
    assert np.array_equal(pred._slice.image.raw == 1, mask)  # what napari draws holds the new prediction
    assert own and heard == []  # the layer's own listeners (the canvas) heard the refresh; the list did not
    # the list still hears the layer once the refresh is over
    pred.opacity = 0.3
    assert "opacity" in heard


def test_a_live_slice_change_repaints_the_window_twice(make_napari_viewer, qtbot, bright):
    """In the real window under Xvfb with the Predict dock on screen: the new slice and its prediction, two
    compositions a move (a third now and then: napari's own layer list or status bar, late); 2.75 before."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1200, 800)
    frames, masks = disk_stack(7, shape=(96, 112))
    viewer.add_image(frames, name="frames")
    widget = PredictWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Predict")
    widget.set_checkpoints([bright])
    widget.request(force=True)
    qtbot.waitUntil(lambda: widget.queue.counts.shown == 1 and not widget.queue.busy, timeout=WAIT)
    widget.live.setChecked(True)
    qtbot.wait(500)
    window = viewer.window._qt_window
    repaints = Repaints(window, [widget.status.line])
    moves = 6
    for k in range(1, moves + 1):
        shown = widget.queue.counts.shown
        viewer.dims.set_current_step(0, k)
        qtbot.waitUntil(lambda s=shown: widget.queue.counts.shown > s and not widget.queue.busy, timeout=WAIT)
        qtbot.wait(400)  # the late repaints came 40-150 ms after the prediction was drawn
        assert np.array_equal(viewer.layers[PREDICTION_LAYER].data[k] == 1, masks[k])
    repaints.stop()
    # "Predicting..." and the result: one paint each, each in a composition the slice or the prediction needs
    assert repaints.paints <= 2 * moves
    assert repaints.updates <= 2.5 * moves  # measured 2.0-2.25 a move; 2.75 before
