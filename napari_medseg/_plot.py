"""A small live plot of a training run, painted with QPainter (no plotting library needed).

Top: training loss per step. Bottom: validation Dice per class per epoch, on
a fixed 0..1 axis. New points only mark the plot dirty; a timer repaints at
most every ``REDRAW_MS``, so a fast stream of step events costs one paint
per interval, and long runs are thinned to at most ``MAX_POINTS`` per line.
"""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, QRectF, Qt, QTimer
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

REDRAW_MS = 250
MAX_POINTS = 600
CLASS_COLOURS = ("#4fc3f7", "#ffb74d", "#81c784", "#e57373", "#ba68c8", "#fff176", "#a1887f", "#90a4ae")
LOSS_COLOUR = "#e0e0e0"


def finite(lines: dict) -> dict:
    """The lines without their diverged points (inf / NaN loss): those have no place on an axis."""
    return {name: [(x, y) for x, y in pts if math.isfinite(x) and math.isfinite(y)] for name, pts in lines.items()}


def axis_range(lines: dict, y_range=None) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) that hold every point (``y_range`` fixes y); never a zero-width axis."""
    points = [pt for pts in lines.values() for pt in pts]
    xs, ys = [x for x, _ in points], [y for _, y in points]
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    y0, y1 = y_range or (min(ys), max(max(ys), min(ys) + 1e-6))
    return x0, x1, y0, y1


class TrainingPlot(QWidget):
    """Loss per step and validation Dice per class per epoch of one run."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumHeight(240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.losses: list[tuple[float, float]] = []
        self.dice: dict[str, list[tuple[float, float]]] = {}
        self.paints = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self.update)

    def clear(self) -> None:
        self.losses.clear()
        self.dice.clear()
        self._dirty()

    def add_step(self, global_step: int, loss: float) -> None:
        self.losses.append((float(global_step), float(loss)))
        self._dirty()

    def add_epoch(self, epoch: int, val: dict) -> None:
        """Takes the ``val`` dict of an epoch event: its ``dice/<class>`` entries, one line per class."""
        for key, value in val.items():
            if key.startswith("dice/") and value is not None and not math.isnan(value):  # NaN: class absent
                self.dice.setdefault(key[5:], []).append((float(epoch + 1), float(value)))
        self._dirty()

    def _dirty(self) -> None:
        if not self._timer.isActive():
            self._timer.start()

    # ------------------------------------------------------------ painting
    def paintEvent(self, event) -> None:
        self.paints += 1
        p = QPainter(self)
        try:
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            w, h = self.width(), self.height()
            top = QRectF(52, 16, w - 62, h / 2 - 34)
            bottom = QRectF(52, h / 2 + 16, w - 62, h / 2 - 34)
            last = self.losses[-1][1] if self.losses else None
            self._panel(
                p,
                top,
                "training loss" + (f" ({last:.4g})" if last is not None else ""),
                {"loss": self.losses},
                None,
                {"loss": LOSS_COLOUR},
            )
            colours = {name: CLASS_COLOURS[i % len(CLASS_COLOURS)] for i, name in enumerate(self.dice)}
            title = "validation Dice: " + (", ".join(f"{n} {v[-1][1]:.3f}" for n, v in self.dice.items()) or "none yet")
            self._panel(p, bottom, title, self.dice, (0.0, 1.0), colours)
        finally:
            # a painter left active (an exception above) makes Qt crash when the widget goes away
            p.end()

    def _panel(self, p: QPainter, rect: QRectF, title: str, lines: dict, y_range, colours: dict) -> None:
        p.setPen(QPen(QColor("#9e9e9e")))
        p.drawText(QPointF(rect.left(), rect.top() - 4), title)
        p.drawRect(rect)
        lines = finite(lines)
        if not any(lines.values()):
            return
        x0, x1, y0, y1 = axis_range(lines, y_range)
        p.drawText(QRectF(0, rect.top() - 6, 48, 14), Qt.AlignmentFlag.AlignRight, f"{y1:.3g}")
        p.drawText(QRectF(0, rect.bottom() - 8, 48, 14), Qt.AlignmentFlag.AlignRight, f"{y0:.3g}")

        def at(x: float, y: float) -> QPointF:
            return QPointF(
                rect.left() + (x - x0) / (x1 - x0) * rect.width(), rect.bottom() - (y - y0) / (y1 - y0) * rect.height()
            )

        for name, pts in lines.items():
            if not pts:
                continue
            step = max(1, len(pts) // MAX_POINTS)
            shown = pts[::step] + ([pts[-1]] if (len(pts) - 1) % step else [])
            p.setPen(QPen(QColor(colours.get(name, LOSS_COLOUR)), 1.5))
            p.drawPolyline(QPolygonF([at(x, y) for x, y in shown]))
            if len(shown) <= 50:  # few points (epochs): mark them
                for x, y in shown:
                    p.drawEllipse(at(x, y), 2.5, 2.5)
