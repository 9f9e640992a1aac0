"""The Dataset dock reopens a workspace without waiting for its source check: the first sample is on screen
while the check still runs in a worker, and the changed files join the Problems list when it ends; the
overview, the source check and the review queue's build hold up neither the first sample nor a move."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from _review_data import open_dataset_widget
from _scale_open_data import hold, reopenable_frames
from PIL import Image

from medseg.workspace import open_job

pytestmark = pytest.mark.gui


def test_reopen_shows_the_first_sample_before_the_source_check_ends(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    data = reopenable_frames(tmp_path)
    Image.fromarray(np.full((16, 16), 250, np.uint8)).save(data / "images" / "2.png")  # changed since import
    gate, checking = threading.Event(), threading.Event()
    hold(monkeypatch, open_job, "find_changes", gate, checking.set)
    viewer = make_napari_viewer()
    try:
        widget, session = open_dataset_widget(viewer, qtbot, data)  # waits for the workspace and its first sample
        assert session.sample_id == "0" and session.workspace.source_changes == []
        qtbot.waitUntil(checking.is_set, timeout=10000)
        assert widget.source_check is not None and widget.problems.count() == 0  # the check is still running
    finally:
        gate.set()
    qtbot.waitUntil(lambda: widget.source_check is None, timeout=20000)
    lines = [widget.problems.item(k).text() for k in range(widget.problems.count())]
    assert len(lines) == 1 and lines[0].startswith("source changed:") and "2.png" in lines[0]
    assert [c.sample_id for c in session.workspace.source_changes] == ["2"]
    assert not widget.problems.isHidden()


def test_the_overview_and_the_source_check_hold_up_neither_the_open_nor_a_move(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    """On 2 cores Qt's pool had 2 threads: the overview and the source check of a large workspace filled it and
    a sample's load waited for them (minutes at 100,000 samples). Both are held at a gate here: the first sample
    is on screen before the overview starts, and another sample is shown while both still run."""
    from qtpy.QtCore import QThread, QThreadPool

    import medseg.stats
    from napari_medseg._overview_widget import OverviewWidget
    from napari_medseg._sample_layers import show_sample

    data = reopenable_frames(tmp_path)
    pool = QThreadPool.globalInstance()
    monkeypatch.setattr(QThread, "idealThreadCount", staticmethod(lambda: 2))  # a 2-core machine, as napari sizes it
    was = pool.maxThreadCount()
    pool.setMaxThreadCount(2)
    gate, held = threading.Event(), {}
    hold(monkeypatch, open_job, "find_changes", gate, lambda: held.setdefault("check", True))
    # what was on screen when the overview started
    hold(monkeypatch, medseg.stats, "iter_stats", gate, lambda: held.setdefault("overview", session.sample_id))
    viewer = make_napari_viewer()
    session = None
    try:
        from napari_medseg._session import session_for

        session = session_for(viewer)
        dock = OverviewWidget(viewer)
        qtbot.addWidget(dock)
        widget, _ = open_dataset_widget(viewer, qtbot, data)
        qtbot.waitUntil(lambda: {"check", "overview"} <= set(held), timeout=10000)
        assert held["overview"] == "0"  # it started after the first sample was on screen
        assert dock.job is not None and widget.source_check is not None  # both still run
        show_sample(viewer, "4")
        qtbot.waitUntil(lambda: session.sample_id == "4", timeout=10000)  # not behind them
        assert dock.job is not None and widget.source_check is not None
    finally:
        gate.set()
    qtbot.waitUntil(lambda: dock.job is None and dock.report is not None and widget.source_check is None, timeout=30000)
    assert dock.report.numbers["samples"] == 6
    session.set_workspace(None)
    qtbot.waitUntil(lambda: not session.jobs.running(), timeout=30000)
    pool.setMaxThreadCount(was)


def test_a_long_job_pauses_while_a_job_the_user_waits_for_runs():
    """The overview and the source check step aside between two events while a sample is read (their threads
    and the read share Python's interpreter lock); other long jobs do not pause them; a cancel ends a pause."""
    from types import SimpleNamespace

    from medseg.jobs import CancelToken
    from napari_medseg._dataset_jobs import beside_the_user

    running: list = []
    jobs = SimpleNamespace(running=lambda: running)
    token = CancelToken()
    steps = beside_the_user(iter(range(4)), jobs, token)
    assert next(steps) == 0
    running.append(SimpleNamespace(name="QC"))  # another long job: no pause
    assert next(steps) == 1
    read = SimpleNamespace(name="Reading sample 7")
    running.append(read)
    resumed = threading.Event()
    got = []
    worker = threading.Thread(target=lambda: (got.append(next(steps)), resumed.set()))
    worker.start()
    assert not resumed.wait(0.3) and got == []  # paused while the sample is read
    running.remove(read)
    assert resumed.wait(5) and got == [2]
    running.append(read)
    worker = threading.Thread(target=lambda: got.append(next(steps)))
    worker.start()
    token.set()  # a cancel ends the pause: the job then stops at its own next check
    worker.join(5)
    assert got == [2, 3]


def test_the_review_queue_is_built_once_the_first_sample_is_on_screen(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """Building the queue (seconds at 100,000 samples without a stored order) held the workspace and Python's
    interpreter lock while the first sample was read and its layers made: it waits for that sample. The read
    is held at a gate: no build starts meanwhile; once the sample is on screen, the queue is built."""
    import medseg.qc.queue
    from napari_medseg import _sample_layers
    from napari_medseg._session import session_for

    data = reopenable_frames(tmp_path)
    gate, reading = threading.Event(), threading.Event()
    hold(monkeypatch, _sample_layers, "load_sample", gate, reading.set)
    viewer = make_napari_viewer()
    session = session_for(viewer)
    built: list = []  # what was on screen as each build started
    real = medseg.qc.queue.review_queue

    def review_queue(ws, **options):
        built.append(session.sample_id)
        return real(ws, **options)

    monkeypatch.setattr(medseg.qc.queue, "review_queue", review_queue)
    _, review = viewer.window.add_plugin_dock_widget("napari-medseg", "Review")
    _, dataset = viewer.window.add_plugin_dock_widget("napari-medseg", "Dataset")
    try:
        dataset.set_folder(data)
        dataset.open_button.click()
        qtbot.waitUntil(reading.is_set, timeout=30000)
        qtbot.wait(300)
        assert session.workspace is not None and session.sample_id is None
        assert built == [] and review.panel.refreshing  # asked for, waiting for the sample
    finally:
        gate.set()
    qtbot.waitUntil(lambda: session.sample_id == "0", timeout=10000)
    qtbot.waitUntil(lambda: not review.panel.refreshing, timeout=10000)
    assert built == ["0"] and review.panel.queue.count() == 6
