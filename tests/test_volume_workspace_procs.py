"""Volume saves across real processes: a reader beside a writer of corrected slices, a writer killed
(SIGKILL) at each file-system step of a two-slice save, and a volume create killed half-way.

Save k writes slices 2 and 5 as the pattern whose first k pixels (C order) are class 1 (slice 2) or 2
(slice 5), so any volume read back tells which save it came from and whether both slices came from one.
"""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from _killpoints import read_beside_write, reader_script, run_killed_at, script_env
from _volume_workspace_data import make_cases, slice_files, volcases_registered

from medseg.workspace import Workspace

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

SLICES = (2, 5)

_COMMON = f"""
import sys, numpy as np
from _volume_workspace_data import volcases_registered
from medseg.workspace import Workspace
SLICES = {SLICES}
def pattern(k, shape, z):
    m = np.zeros(shape[0] * shape[1], np.uint8); m[:k] = 1 + SLICES.index(z)
    return m.reshape(shape)
def level(volume):
    ks = []
    for z in SLICES:
        k = int(np.count_nonzero(volume[z]))
        assert volume[z].dtype == np.uint8 and volume[z].ravel()[:k].all(), "torn or foreign slice"
        ks.append(k)
    assert len(set(ks)) == 1, f"slices {{SLICES}} come from different saves: {{ks}}"
    return ks[0]
ws = Workspace.open(sys.argv[1], verify="none")
"""

# argv: workspace, sample, number of saves
WRITER = (
    _COMMON
    + """
sample, n = sys.argv[2], int(sys.argv[3])
shape = ws.current_slice(sample, 0).shape
k = level(ws.current_mask(sample))
print("ready", flush=True)
while k < n:
    k += 1
    ws.save_slices(sample, {z: pattern(k, shape, z) for z in SLICES}, origin="manual", author="writer")
print("done", flush=True)
"""
)

# argv: workspace, sample, seconds
READER = reader_script(_COMMON)

# argv: workspace, sample
ONE_SAVE = (
    _COMMON
    + """
sample = sys.argv[2]
shape = ws.current_slice(sample, 0).shape
k = level(ws.current_mask(sample))
arm()
ws.save_slices(sample, {z: pattern(k + 1, shape, z) for z in SLICES}, origin="manual", author="writer")
finished()
"""
)


def _level(volume: np.ndarray) -> int:
    ks = {int(np.count_nonzero(volume[z])) for z in SLICES}
    assert len(ks) == 1, f"slices {SLICES} come from different saves: {ks}"
    (k,) = ks
    assert all(volume[z].ravel()[:k].all() for z in SLICES), "a stored slice is not one the writer saved"
    return k


@pytest.fixture
def ws_path(tmp_path):
    with volcases_registered():
        with Workspace.create(tmp_path / "ws", make_cases(tmp_path / "data", n=1)) as ws:
            shape = ws.current_slice("case0", 0).shape
            ws.save_slices("case0", {z: np.zeros(shape, np.uint8) for z in SLICES}, origin="manual")
    return tmp_path / "ws"


def test_a_reader_process_always_sees_whole_volumes_while_a_writer_saves_slices(ws_path):
    reads, last = read_beside_write((WRITER, ws_path, "case0", 40), (READER, ws_path, "case0", 2.0))
    assert reads > 10 and 0 <= last <= 40
    with Workspace.open(ws_path) as ws:
        assert _level(ws.current_mask("case0")) == 40
        revisions = ws.revisions("case0")
        assert len(revisions) == 2 + 40 and all(ws.changed_slices(r.id) == list(SLICES) for r in revisions[2:])
        assert ws.check_integrity() == []


def test_a_writer_killed_at_each_step_of_a_slice_save_leaves_the_old_head_or_the_new_one(ws_path, tmp_path):
    """SIGKILL before each file-system step of one two-slice save in turn (tests/_killpoints.py): the head is
    the old volume or the new one, both slices from one save, and the store is sound."""
    pristine = tmp_path / "pristine"
    shutil.copytree(ws_path, pristine)
    outcomes, step = [], 0
    while True:
        step += 1
        shutil.rmtree(ws_path)
        shutil.copytree(pristine, ws_path)
        code, steps = run_killed_at(step, ONE_SAVE, ws_path, "case0")
        with Workspace.open(ws_path, verify="hash") as ws:
            assert ws.check_integrity() == [], f"step {step}"
            level = _level(ws.current_mask("case0"))
            assert level in (0, 1), f"step {step}: head at {level}"
            assert len(ws.revisions("case0")) == 2 + level
            shape = ws.current_slice("case0", 0).shape
            ones = {z: np.zeros(shape, np.uint8) for z in SLICES}
            for i, z in enumerate(SLICES):
                ones[z][0, 0] = 1 + i
            ws.save_slices("case0", ones, origin="manual")
        with Workspace.open(ws_path, verify="hash") as ws:
            assert ws.check_integrity() == [] and _level(ws.current_mask("case0")) == 1, f"step {step}"
            ws.gc(min_age_s=0)  # what a killed save left goes; the saved revisions' slices stay
            assert ws.check_integrity() == [] and len(ws.revisions("case0")) == 3, f"step {step}"
            for rev in ws.revisions("case0"):
                ws.mask_at(rev.id)
        outcomes.append(level)
        if code == 0:
            break
    # two new slice blobs, each: open, opened, fsync, replace (and the folders' fsync)
    assert steps == step - 1 >= 8 and outcomes[-1] == 1, (steps, outcomes)


KILL_AFTER_FIRST_VOLUME = textwrap.dedent("""
    import os, sys
    from _volume_workspace_data import volcases_registered
    from medseg.workspace import Workspace
    with volcases_registered():
        for event in Workspace.iter_create(sys.argv[1], sys.argv[2]):
            if getattr(event, "stage", None) == "import" and event.done == 1:
                os._exit(9)  # as a kill: no cleanup runs
""")


def test_a_volume_create_killed_half_way_is_replaced_by_the_next_create(tmp_path):
    data = make_cases(tmp_path / "data", n=2)
    ws = tmp_path / "ws"
    run = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_FIRST_VOLUME, str(ws), str(data)],
        capture_output=True,
        text=True,
        timeout=120,
        env=script_env(),
    )
    assert run.returncode == 9, run.stderr
    with sqlite3.connect(ws / "workspace.sqlite") as c:
        assert c.execute("SELECT value FROM meta WHERE key = 'state'").fetchone()[0] == "creating"
    with volcases_registered(), Workspace.create(ws, data) as w:
        assert w.sample_ids() == ["case0", "case1"] and w.check_integrity() == []
        assert w.summary()["n_slice_files"] == len(slice_files(ws))
