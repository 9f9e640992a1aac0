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
    event that is not one of its paints), which widgets it painted, and which parts of the window (the
    docks by title, the canvas, the status bar) each one painted."""

    def __init__(self, window) -> None:
        super().__init__()
        self.window = window
        self.updates: list[tuple[float, float]] = []
        self.parts: list[frozenset[str]] = []  # per update, the parts of the window it painted
        self.painted: Counter = Counter()
        self.counted: list[tuple[float, float]] = []  # the spans asked about (per move)
        self._open: float | None = None
        self._parts: set[str] = set()
        QApplication.instance().installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        kind = event.type()
        now = time.perf_counter()
        if kind == QEvent.Type.Paint:
            if self._open is not None:
                self.painted[type(obj).__name__] += 1
                self._parts.add(self._part(obj))
            return False
        if self._open is not None:  # the first event after its paints: the composition is done
            self.updates.append((self._open, now - self._open))
            self.parts.append(frozenset(self._parts - {"main window"}) or frozenset({"main window"}))
            self._open = None
        if kind == QEvent.Type.UpdateRequest and obj is self.window:
            self._open, self._parts = now, set()
        return False

    def _part(self, widget) -> str:
        """The window's child that holds ``widget``: a dock's title, the canvas (napari's central widget),
        else its class."""
        while widget is not None and widget.parent() is not None and widget.parent() is not self.window:
            widget = widget.parent()
        if widget is None or widget is self.window or widget.parent() is None:
            return "main window"
        if widget is self.window.centralWidget():
            return "canvas"  # or the dims slider below it
        title = getattr(widget, "windowTitle", lambda: "")()
        return title.replace(" (napari-medseg)", "") if title else type(widget).__name__

    def between(self, t0: float, t1: float) -> tuple[int, float]:
        """(how many, seconds in all) of the window's repaints that began from ``t0`` to ``t1``; the span is
        kept for :meth:`parts_counted`."""
        self.counted.append((t0, t1))
        inside = [d for s, d in self.updates if t0 <= s <= t1]
        return len(inside), sum(inside)

    def parts_counted(self, t0: float, t1: float) -> Counter:
        """How many of the repaints counted by :meth:`between` from ``t0`` to ``t1`` painted each set of parts."""
        spans = [(a, b) for a, b in self.counted if t0 <= a and b <= t1]
        return Counter(
            p for (s, _), p in zip(self.updates, self.parts, strict=True) if any(a <= s <= b for a, b in spans)
        )

    def stop(self) -> None:
        QApplication.instance().removeEventFilter(self)


def restore_old_updates(predict):
    """The Predict dock as it updated before: its status line in a layout (each new text asked the main
    window for a new layout, which repainted it again), selectable (each new text painted twice: its text
    document is laid out after the first paint) and a full refresh of the model layers heard by the layer
    list (thumbnail and row: a layer-list repaint of its own). Returns a function that puts today's back."""
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

    refresh_pixels = _predict_layers.refresh_pixels
    status.say, line.set_full = relayout_say, selectable_set_full
    _predict_layers.refresh_pixels = lambda layer, layers: layer.refresh()

    def undo() -> None:
        status.say, line.set_full = say, set_full
        line.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        _predict_layers.refresh_pixels = refresh_pixels

    return undo
