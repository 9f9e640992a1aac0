"""Workspace across real processes: a reader beside a writer, and a writer killed (SIGKILL) at random points.

Revision k of the test sample is a mask whose first k pixels (C order) are 1,
so any mask read back tells which save it came from and whether it is whole.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from _killpoints import read_beside_write, reader_script, run_killed_at, spawn
from _workspace_data import H, W, make_binary

from medseg.workspace import Workspace

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

_COMMON = f"""
import sys, numpy as np
from medseg.workspace import Workspace
H, W = {H}, {W}
def pattern(k):
    m = np.zeros(H * W, np.uint8); m[:k] = 1
    return m.reshape(H, W)
def level(mask):
    k = int(mask.sum())
    assert mask.dtype == np.uint8 and mask.ravel()[:k].all(), "torn or foreign mask"
    return k
ws = Workspace.open(sys.argv[1], verify="none")
"""

# argv: workspace, sample, confirm file, number of saves (0: until killed)
WRITER = (
    _COMMON
    + """
sample, confirm, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
k = level(ws.current_mask(sample))
print("ready", flush=True)
with open(confirm, "a") as log:
    while n == 0 or k < n:
        k += 1
        rev = ws.save_revision(sample, pattern(k), origin="manual", author="writer")
        log.write(f"{k} {rev.id}\\n")   # only after the save returned: this save is promised
        log.flush()
print("done", flush=True)
"""
)

# argv: workspace, sample, seconds
READER = reader_script(_COMMON, "    assert level(ws.mask_at(ws.sample(sample).head_revision)) >= last\n")


def _level(mask: np.ndarray) -> int:
    k = int(mask.sum())
    assert mask.ravel()[:k].all(), "a stored mask is not one the writer saved"
    return k


@pytest.fixture
def ws_path(tmp_path) -> Path:
    with Workspace.create(tmp_path / "ws", make_binary(tmp_path / "data", n=2)) as ws:
        ws.save_revision("1", np.zeros((H, W), np.uint8), origin="manual")  # start from level 0
    return tmp_path / "ws"


def test_a_reader_process_always_sees_whole_masks_while_a_writer_saves(ws_path, tmp_path):
    reads, last = read_beside_write((WRITER, ws_path, "1", tmp_path / "confirm.txt", 120), (READER, ws_path, "1", 3.0))
    assert reads > 50 and 0 <= last <= 120
    with Workspace.open(ws_path) as ws:
        assert _level(ws.current_mask("1")) == 120
        assert len(ws.revisions("1")) == 1 + 1 + 120 and ws.check_integrity() == []


def test_killing_a_writer_at_random_points_loses_nothing_it_saved(ws_path, tmp_path):
    confirm = tmp_path / "confirm.txt"
    rng = random.Random()
    delays = []
    for _ in range(8):
        writer = spawn(WRITER, ws_path, "1", confirm, 0)
        assert writer.stdout.readline().strip() == "ready", writer.stderr.read()
        delays.append(rng.uniform(0.005, 0.2))
        time.sleep(delays[-1])
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
        writer.stdout.close(), writer.stderr.close()
        assert writer.returncode == -signal.SIGKILL
    lines = confirm.read_text().splitlines(keepends=True)
    promised = [tuple(map(int, line.split())) for line in lines if line.endswith("\n")]
    context = f"kill delays {[round(d, 3) for d in delays]}, {len(promised)} confirmed saves"
    with Workspace.open(ws_path, verify="hash") as ws:
        assert ws.check_integrity() == [], context  # SQLite integrity, heads, every blob's hash
        revisions = ws.revisions("1")[2:]  # after the import and the level-0 start
        by_id = {r.id: r for r in revisions}
        for k, rev_id in promised:
            assert rev_id in by_id, f"confirmed save {k} (revision {rev_id}) is lost; {context}"
            assert _level(ws.mask_at(rev_id)) == k
        # A kill between the commit and the confirmation line leaves one saved-but-unconfirmed revision.
        levels = [_level(ws.mask_at(r.id)) for r in revisions]
        assert levels == sorted(set(levels)), context
        assert len(promised) <= len(revisions) <= len(promised) + 8, context
        unconfirmed = set(by_id) - {rev_id for _, rev_id in promised}
        assert len(unconfirmed) <= 8, context
        head = ws.sample("1").head_revision
        assert head == revisions[-1].id == max(by_id), context
        assert _level(ws.current_mask("1")) == levels[-1] >= (promised[-1][0] if promised else 0)
        assert all(r.parent_id == p.id for p, r in zip(ws.revisions("1")[1:], revisions)), context
        assert len(promised) > 0, f"the writer never got to save ({context}); the test proved nothing"
        ws.gc(min_age_s=0)  # temp files and blobs of interrupted saves go; every saved one stays
        assert ws.check_integrity() == [], context


# argv: workspace, sample
ONE_SAVE = (
    _COMMON
    + """
sample = sys.argv[2]
k = level(ws.current_mask(sample))
arm()
ws.save_revision(sample, pattern(k + 1), origin="manual", author="writer")
finished()
"""
)


def test_a_writer_killed_at_each_step_of_a_save_leaves_the_old_head_or_the_new_one(ws_path, tmp_path):
    """SIGKILL before each file-system step of one save in turn (tests/_killpoints.py): never a torn store.

    Every run starts from the same copy of the workspace, so each takes the same steps (a blob a killed
    run left would otherwise be reused by the next, which then writes nothing).
    """
    pristine = tmp_path / "pristine"
    shutil.copytree(ws_path, pristine)
    outcomes = []
    step = 0
    while True:
        step += 1
        shutil.rmtree(ws_path)
        shutil.copytree(pristine, ws_path)
        code, steps = run_killed_at(step, ONE_SAVE, ws_path, "1")
        with Workspace.open(ws_path, verify="hash") as ws:
            assert ws.check_integrity() == [], f"step {step}"
            level = _level(ws.current_mask("1"))
            assert level in (0, 1), f"step {step}: head at {level}"
            assert _level(ws.mask_at(ws.sample("1").head_revision)) == level
            assert len(ws.revisions("1")) == 2 + level
            # the same save again, as the user would after the crash: it must not reuse what the kill left
            one = np.zeros(H * W, np.uint8)
            one[0] = 1
            ws.save_revision("1", one.reshape(H, W), origin="manual")
        with Workspace.open(ws_path, verify="hash") as ws:
            assert ws.check_integrity() == [] and _level(ws.current_mask("1")) == 1, f"step {step}"
            ws.gc(min_age_s=0)  # what a killed save left goes; the saved revisions stay
            # an unchanged save adds no revision: the import, level 0 and level 1
            assert ws.check_integrity() == [] and len(ws.revisions("1")) == 3, f"step {step}"
        outcomes.append(level)
        if code == 0:
            break
    assert steps == step - 1 >= 4 and outcomes[-1] == 1, (steps, outcomes)
