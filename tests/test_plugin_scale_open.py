"""The Dataset dock reopens a workspace without waiting for its source check: the first sample is on screen
while the check still runs in a worker, and the changed files join the Problems list when it ends."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from _review_data import open_dataset_widget
from PIL import Image

from medseg.workspace import Workspace, open_job
from napari_medseg._dataset_jobs import default_workspace

pytestmark = pytest.mark.gui


def test_reopen_shows_the_first_sample_before_the_source_check_ends(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    data = tmp_path / "frames"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    for i in range(6):
        mask = np.zeros((16, 16), np.uint8)
        mask[3 : 8 + i, 4:9] = 255
        Image.fromarray((mask // 2 + 30).astype(np.uint8)).save(data / "images" / f"{i}.png")
        Image.fromarray(mask).save(data / "masks" / f"{i}.png")
    Workspace.create(default_workspace(data), data).close()
    Image.fromarray(np.full((16, 16), 250, np.uint8)).save(data / "images" / "2.png")  # changed since import

    gate, checking = threading.Event(), threading.Event()
    real = open_job.find_changes

    def held(*args, **kwargs):
        checking.set()
        assert gate.wait(30), "the test never opened the gate"
        return real(*args, **kwargs)

    monkeypatch.setattr(open_job, "find_changes", held)
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

    data = tmp_path / "frames"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    for i in range(6):
        mask = np.zeros((16, 16), np.uint8)
        mask[3 : 8 + i, 4:9] = 255
        Image.fromarray((mask // 2 + 30).astype(np.uint8)).save(data / "images" / f"{i}.png")
        Image.fromarray(mask).save(data / "masks" / f"{i}.png")
    Workspace.create(default_workspace(data), data).close()

    pool = QThreadPool.globalInstance()
    monkeypatch.setattr(QThread, "idealThreadCount", staticmethod(lambda: 2))  # a 2-core machine, as napari sizes it
    was = pool.maxThreadCount()
    pool.setMaxThreadCount(2)
    gate, held = threading.Event(), {}
    real_changes, real_stats = open_job.find_changes, medseg.stats.iter_stats

    def checking(*args, **kwargs):
        held["check"] = True
        assert gate.wait(30), "the test never opened the gate"
        return real_changes(*args, **kwargs)

    def overview(workspace, **kwargs):
        held["overview"] = session.sample_id  # what was on screen when it started
        assert gate.wait(30), "the test never opened the gate"
        yield from real_stats(workspace, **kwargs)

    monkeypatch.setattr(open_job, "find_changes", checking)
    monkeypatch.setattr(medseg.stats, "iter_stats", overview)
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
