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


def _dataset(root, n: int, side: int, empty: tuple[int, ...] = ()) -> Workspace:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(1, n + 1):
        Image.fromarray(np.full((side, side, 3), 10 * i, np.uint8)).save(root / "images" / f"{i}.png")
        mask = np.zeros((side, side), np.uint8)
        if i not in empty:
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


def _recomputes(monkeypatch) -> list:
    """The overview jobs the dock starts, counted."""
    import napari_medseg._overview_widget as ow

    started = []
    real = ow.start_job

    def counting(*args, **kwargs):
        started.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(ow, "start_job", counting)
    monkeypatch.setattr(ow, "SETTLE_MS", 300)
    return started


def test_a_burst_of_reviews_costs_one_recompute_of_what_changed(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    started = _recomputes(monkeypatch)
    viewer = make_napari_viewer()
    session = session_for(viewer)
    widget = OverviewWidget(viewer)
    qtbot.addWidget(widget)
    ws = _dataset(tmp_path / "d", 4, 24)
    session.set_workspace(ws)
    _finished(widget, qtbot)
    assert len(started) == 1 and widget.cache.misses == 4 + 4  # every image and every label read once
    misses = widget.cache.misses

    # a burst as the Review dock saves: two corrections and an exclusion, each with its signal
    for sid, width in (("1", 9), ("3", 1)):
        mask = ws.current_mask(sid).copy()
        mask[10:12, :width] = 1  # 2 * width px more
        rev = ws.save_revision(sid, mask, origin="manual")
        session.revision_saved.emit(sid, rev.id)
        qtbot.wait(50)
    ws.set_status("2", "excluded", "blurred")
    session.status_changed.emit("2", "excluded")
    assert len(started) == 1  # nothing yet: the burst has not settled
    qtbot.waitUntil(lambda: len(started) == 2 and widget.job is None, timeout=WAIT)
    qtbot.wait(600)
    assert len(started) == 2  # one recompute for the whole burst

    numbers = widget.report.numbers
    assert numbers["labels"]["classes"]["foreground"]["pixels"] == (4 + 18) + (12 + 2) + 16
    assert numbers["labels_imported"]["classes"]["foreground"]["pixels"] == 4 * (1 + 2 + 3 + 4)
    assert numbers["review"]["by_status"]["excluded"] == 1 and numbers["cleaning"]["samples_changed"] == 2
    assert widget.cache.misses - misses == 2  # only the two new labels were decoded, no image read again
    assert "excluded" in widget.summary.text()


def test_the_overview_follows_a_qc_run_of_the_dataset_dock(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from napari_medseg._dataset_widget import DatasetWidget

    started = _recomputes(monkeypatch)
    viewer = make_napari_viewer()
    session = session_for(viewer)
    widget = OverviewWidget(viewer)
    dataset = DatasetWidget(viewer)
    qtbot.addWidget(widget)
    qtbot.addWidget(dataset)
    ws = _dataset(tmp_path / "q", 5, 24, empty=(4,))  # a lost annotation QC reports
    session.set_workspace(ws)
    _finished(widget, qtbot)
    assert widget.report.numbers["findings"]["by_check"] == {}
    dataset.run_qc()
    qtbot.waitUntil(lambda: dataset.job is None and len(started) == 2 and widget.job is None, timeout=WAIT)
    by_check = widget.report.numbers["findings"]["by_check"]
    assert by_check and by_check == ws.summary()["by_check"]
    session.set_workspace(None)
    qtbot.waitUntil(lambda: not session.jobs.running(), timeout=WAIT)


def test_without_a_workspace_and_when_the_overview_fails(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    import medseg.stats
    from medseg.errors import ReadError

    viewer = make_napari_viewer()
    session = session_for(viewer)
    widget = OverviewWidget(viewer)
    qtbot.addWidget(widget)
    text = widget.summary.text()
    assert "No workspace is open" in text and "Dataset tool" in text and "medseg stats" in text
    assert not widget.plots and not widget.refresh_button.isEnabled()

    def broken(*_, **__):
        raise ZeroDivisionError("a bug in the overview")
        yield

    monkeypatch.setattr(medseg.stats, "iter_stats", broken)
    session.set_workspace(_dataset(tmp_path / "e", 2, 16))
    qtbot.waitUntil(lambda: widget.job is None and "failed" in widget.status.text(), timeout=WAIT)
    line = widget.status.text()
    assert line == "The dataset overview failed: ZeroDivisionError: a bug in the overview"
    assert "Traceback" in widget.status.detail() and widget.status.toggle.isVisibleTo(widget)
    assert widget.refresh_button.isEnabled()

    def unreadable(*_, **__):
        raise ReadError(tmp_path / "e" / "masks" / "1.png", "truncated PNG")
        yield

    monkeypatch.setattr(medseg.stats, "iter_stats", unreadable)
    assert widget.refresh()
    qtbot.waitUntil(lambda: widget.job is None and "truncated" in widget.status.text(), timeout=WAIT)
    assert "1.png" in widget.status.text() and widget.status.detail() == ""  # a user's mistake: no traceback
    session.set_workspace(None)
    qtbot.waitUntil(lambda: not session.jobs.running(), timeout=WAIT)
