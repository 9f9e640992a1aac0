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


def rerun_under_xvfb() -> int | None:
    """Without a display, run this same command again under ``xvfb-run`` and return its exit status;
    None when there is a display (or no xvfb-run), meaning: go on here."""
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or not shutil.which("xvfb-run"):
        return None
    return subprocess.call(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, *sys.argv])


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
