"""Keep napari's main window on its screen.

napari restores the window size it saved at the last close, and a window once
pushed taller than the screen (by docks that would not shrink) is saved, and
restored, cut off. :func:`fit_to_screen` shrinks the window, frame included,
to the screen's available area and moves it back onto it; napari then saves
that size at close.
"""

from __future__ import annotations

from qtpy.QtCore import QRect
from qtpy.QtWidgets import QApplication, QWidget


def available_area(window: QWidget) -> QRect:
    """The part of the window's screen that windows may use (without task bars and docks)."""
    screen = window.screen() or QApplication.primaryScreen()
    return screen.availableGeometry()


def fit_to_screen(window: QWidget) -> bool:
    """Shrink and move ``window`` (frame included) into its screen's available area; whether it changed.
    A maximised or full-screen window is the screen's size already and is left alone."""
    if window.isMaximized() or window.isFullScreen():
        return False
    area = available_area(window)
    layout = window.layout()
    if layout is not None:  # docks just moved: let the window's minimum size follow before resizing
        layout.activate()
    frame = window.frameGeometry()
    extra_w, extra_h = frame.width() - window.width(), frame.height() - window.height()
    width = min(window.width(), area.width() - extra_w)
    height = min(window.height(), area.height() - extra_h)
    changed = (width, height) != (window.width(), window.height())
    if changed:
        window.resize(width, height)
    x = max(area.left(), min(frame.x(), area.left() + area.width() - window.width() - extra_w))
    y = max(area.top(), min(frame.y(), area.top() + area.height() - window.height() - extra_h))
    if (x, y) != (frame.x(), frame.y()):
        window.move(x, y)
        changed = True
    return changed
