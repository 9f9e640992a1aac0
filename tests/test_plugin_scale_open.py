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
