"""Driving a real napari window from a script: under Xvfb when there is no display, and waiting on it.

Used by the launcher's ``--screenshot``, ``scripts/screenshots.py`` and
``benchmarks/bench_gui_responsiveness.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable


def has_display() -> bool:
    """Whether Qt can open a window here: a desktop session, or a Qt platform chosen that needs none
    (``QT_QPA_PLATFORM=offscreen``); macOS and Windows always have one."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM"))


def rerun_under_xvfb(command: list[str] | None = None, screen: str = "1600x1000") -> int | None:
    """Without a display, run ``command`` (default: this same command) again under ``xvfb-run`` on a
    virtual screen of ``screen`` pixels and return its exit status; None when there is a display (or no
    xvfb-run), meaning: go on here."""
    if has_display() or not shutil.which("xvfb-run"):
        return None
    command = command or [sys.executable, *sys.argv]
    return subprocess.call(["xvfb-run", "-a", "-s", f"-screen 0 {screen}x24", *command])


def pump(seconds: float, until: Callable[[], bool] | None = None) -> bool:
    """Process Qt events for up to ``seconds``, or until ``until()`` is true; whether it became true."""
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        if until is not None and until():
            return True
        app.processEvents()
        time.sleep(0.005)
    return until is not None and until()
