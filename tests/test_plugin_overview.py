"""The Overview dock: the open workspace's overview computed in a worker, its summary and plots shown, again
for the next workspace and on Refresh; short enough for a laptop screen."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medseg.workspace import Workspace
from napari_medseg._overview_widget import OverviewWidget
from napari_medseg._session import session_for

pytestmark = pytest.mark.gui

WAIT = 60000
TOOL_SMALL = 240  # px, as tests/test_plugin_fit.py holds every tool to


def _dataset(root, n: int, side: int) -> Workspace:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(1, n + 1):
        Image.fromarray(np.full((side, side, 3), 10 * i, np.uint8)).save(root / "images" / f"{i}.png")
        mask = np.zeros((side, side), np.uint8)
        mask[2:6, 2 : 2 + i] = 255  # 4 * i px
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    return Workspace.create(root.parent / f"{root.name}.medseg", root)


def _finished(widget, qtbot) -> None:
    qtbot.waitUntil(lambda: widget.job is None and widget.report is not None, timeout=WAIT)


def test_overview_follows_the_workspace_and_refresh(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    session = session_for(viewer)
    widget = OverviewWidget(viewer)
    qtbot.addWidget(widget)
    assert "Open a dataset" in widget.summary.text() and not widget.refresh_button.isEnabled()
    first = _dataset(tmp_path / "a", 3, 24)
    session.set_workspace(first)
    _finished(widget, qtbot)
    assert widget.report.numbers["labels"]["classes"]["foreground"]["pixels"] == 4 * (1 + 2 + 3)
    assert "3 samples" in widget.summary.text() and "24x24 (3)" in widget.summary.text()
    assert set(widget.plots) == {"images.png", "classes.png", "areas.png", "intensity.png", "review.png"}
    assert all(not label.pixmap().isNull() for label in widget.plots.values())

    first.set_status("2", "excluded", "blurred")  # Refresh shows it
    assert widget.refresh()
    qtbot.waitUntil(lambda: widget.job is None, timeout=WAIT)
    assert widget.report.numbers["review"]["by_status"]["excluded"] == 1
    assert widget.report.numbers["labels"]["classes"]["foreground"]["pixels"] == 4 * (1 + 3)

    second = _dataset(tmp_path / "b", 2, 16)
    widget.report = None
    session.set_workspace(second)  # a new workspace: computed again, old plots replaced
    _finished(widget, qtbot)
    assert widget.report.numbers["samples"] == 2 and "16x16 (2)" in widget.summary.text()
    assert len(widget.plots) == 5
    session.set_workspace(None)
    qtbot.waitUntil(lambda: not session.jobs.running(), timeout=WAIT)
    assert not widget.plots and "Open a dataset" in widget.summary.text()


def test_the_dock_is_short_and_scrolls(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    session_for(viewer).set_workspace(_dataset(tmp_path / "c", 4, 32))
    dock, widget = viewer.window.add_plugin_dock_widget("napari-medseg", "Overview")
    _finished(widget, qtbot)
    assert dock.minimumSizeHint().height() <= TOOL_SMALL, dock.minimumSizeHint()
    assert dock.minimumSizeHint().width() <= 600, dock.minimumSizeHint()
    assert widget.body_scroll.widget().minimumSizeHint().height() > dock.minimumSizeHint().height()
    session_for(viewer).set_workspace(None)
    qtbot.waitUntil(lambda: not session_for(viewer).jobs.running(), timeout=WAIT)
