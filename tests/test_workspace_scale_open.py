"""Reopening a workspace without waiting for its source check: the check runs after, as a job of its own."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from medseg.jobs import Cancelled, CancelToken, Progress, run
from medseg.workspace import Workspace, open_job
from medseg.workspace.open_job import iter_check_sources, iter_open_or_create


def _data(root, n: int = 12):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        mask = np.zeros((12, 12), np.uint8)
        mask[2 : 4 + i % 6, 3:8] = 255
        Image.fromarray((mask // 2 + 40).astype(np.uint8)).save(root / "images" / f"{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    return root


@pytest.fixture
def changed(tmp_path, monkeypatch):
    """A workspace whose image 3 changed, mask 5 vanished and image 7 was touched (same bytes) since import."""
    data = _data(tmp_path / "data")
    Workspace.create(tmp_path / "ws", data).close()
    Image.fromarray(np.full((12, 12), 200, np.uint8)).save(data / "images" / "3.png")
    (data / "masks" / "5.png").unlink()
    st = os.stat(data / "images" / "7.png")
    os.utime(data / "images" / "7.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    monkeypatch.setattr(open_job, "CHECK_CHUNK", 4)  # several chunks over 12 samples
    return tmp_path / "ws", data


def _kinds(changes):
    return sorted((c.sample_id, c.kind) for c in changes)


def test_a_reopen_without_the_check_then_the_check_as_its_own_job(changed):
    ws_path, data = changed
    expected = [("3", "changed"), ("5", "missing")]
    ws = run(iter_open_or_create(data, ws_path, verify="none"))
    try:
        assert ws.source_changes == []  # nothing checked yet
        before = {r["id"]: r["source_stat"] for r in ws.source_rows()}
        changes = run(iter_check_sources(ws))
        assert _kinds(changes) == expected and _kinds(ws.source_changes) == expected
        after = {r["id"]: r["source_stat"] for r in ws.source_rows()}
        assert [k for k in before if before[k] != after[k]] == ["7"]  # touched, same bytes: new stat kept
    finally:
        ws.close()
    with Workspace.open(ws_path, verify="none") as ws:  # stored: the next check finds the same
        assert {r["id"]: r["source_stat"] for r in ws.source_rows()} == after
        assert _kinds(run(iter_check_sources(ws))) == expected
    with Workspace.open(ws_path) as ws:  # the check the open does finds what the job found
        assert _kinds(ws.source_changes) == expected


def test_the_check_reports_progress_per_chunk_and_a_cancel_sets_nothing(changed):
    ws_path, _ = changed
    with Workspace.open(ws_path, verify="none") as ws:
        events = list(iter_check_sources(ws))
        done = [e.done for e in events if isinstance(e, Progress)]
        assert done == [4, 8, 12]
        ws.source_changes = []
        token = CancelToken()
        job = iter_check_sources(ws, cancel=token)
        next(job)  # Started
        next(job)  # the first chunk's progress
        token.cancel()
        with pytest.raises(Cancelled):
            list(job)
        assert ws.source_changes == []
