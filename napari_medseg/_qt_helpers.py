"""Small Qt pieces every dock uses: signal connections that end with the widget, buttons, combo boxes, rows.

A dock connects to the session (which outlives it) through
:func:`connect_until_destroyed`, so a closed dock is never called again.
The factories keep the docks' construction code to one line per control;
labelled value fields are not built here but in :mod:`napari_medseg._forms`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from qtpy.QtWidgets import QComboBox, QHBoxLayout, QPushButton, QWidget


def connect_until_destroyed(widget: QWidget, pairs: Iterable[tuple[Any, Callable]]) -> None:
    """Connect (signal, slot) pairs of the session and drop them when the widget is destroyed, so a closed dock
    is never called again."""
    pairs = list(pairs)
    for signal, slot in pairs:
        signal.connect(slot)

    def drop(*_: Any) -> None:
        for signal, slot in pairs:
            signal.disconnect(slot)

    widget.destroyed.connect(drop)


def button(text: str, slot: Callable[[], Any], tip: str = "") -> QPushButton:
    """A push button that calls ``slot()`` (without Qt's ``checked`` argument)."""
    b = QPushButton(text)
    b.clicked.connect(lambda *_: slot())
    if tip:
        b.setToolTip(tip)
    return b


def combo(items: Iterable[str]) -> QComboBox:
    c = QComboBox()
    c.addItems(list(items))
    return c


def refill(c: QComboBox, items: list[str]) -> None:
    """Replace a combo box's items without emitting its signals, keeping the current text when it is still there."""
    current = c.currentText()
    c.blockSignals(True)
    c.clear()
    c.addItems(items)
    c.setCurrentIndex(items.index(current) if current in items else 0)
    c.blockSignals(False)


def row(*widgets: QWidget) -> QHBoxLayout:
    """The widgets side by side (a row of buttons under a form)."""
    line = QHBoxLayout()
    for w in widgets:
        line.addWidget(w)
    return line
