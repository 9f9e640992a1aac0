"""Counting the main window's repaints: how often a move makes Qt compose the whole window, and for how long.

With the canvas's GL widget in the window, Qt composes the whole window's backing store through GL at
each of the top-level window's ``UpdateRequest`` events, however small the widget that asked for it (a
status label); under Xvfb that is software GL, 50-360 ms each on this machine. So the cost of a move is
roughly the number of those events times their length; their paint events say which widgets were dirty.
``restore_old_updates`` puts back, for a side-by-side comparison in one run, the updates the Predict
dock made per prediction before they were avoided.
"""

from __future__ import annotations

import time
from collections import Counter

from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QApplication


class Repaints(QObject):
    """An application event filter: each ``UpdateRequest`` of ``window`` (start, seconds until the next
    event that is not one of its paints) and which widgets it painted."""

    def __init__(self, window) -> None:
        super().__init__()
        self.window = window
        self.updates: list[tuple[float, float]] = []
        self.painted: Counter = Counter()
        self._open: float | None = None
        QApplication.instance().installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        kind = event.type()
        now = time.perf_counter()
        if kind == QEvent.Type.Paint:
            if self._open is not None:
                self.painted[type(obj).__name__] += 1
            return False
        if self._open is not None:  # the first event after its paints: the composition is done
            self.updates.append((self._open, now - self._open))
            self._open = None
        if kind == QEvent.Type.UpdateRequest and obj is self.window:
            self._open = now
        return False

    def between(self, t0: float, t1: float) -> tuple[int, float]:
        """(how many, seconds in all) of the window's repaints that began from ``t0`` to ``t1``."""
        inside = [d for s, d in self.updates if t0 <= s <= t1]
        return len(inside), sum(inside)

    def stop(self) -> None:
        QApplication.instance().removeEventFilter(self)


def restore_old_updates(predict) -> None:
    """The Predict dock as it updated before: its status line in a layout (each new text asked the main
    window for a new layout, which repainted it again), selectable (each new text painted twice: its text
    document is laid out after the first paint) and a full refresh of the model layers heard by the layer
    list (thumbnail and row: a layer-list repaint of its own)."""
    from qtpy.QtCore import Qt

    from napari_medseg import _predict_layers

    status = predict.status
    say, line = status.say, status.line
    set_full = line.set_full

    def relayout_say(text, detail=None):
        say(text, detail)
        status.holder.updateGeometry()  # what QLabel.setText did in the old layout

    def selectable_set_full(text):
        set_full(text)
        line.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

    status.say, line.set_full = relayout_say, selectable_set_full
    _predict_layers.refresh_pixels = lambda layer, layers: layer.refresh()
