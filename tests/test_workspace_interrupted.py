"""After a killed ``workspace create`` every message gives the same one instruction (create it again), and
doing it works: the next create replaces the unfinished workspace (real CVC-ClinicDB frames)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

import pytest
from _guard_data import stem_mask_dataset, tree_hashes

from medseg.cli import main
from medseg.errors import WorkspaceError
from medseg.workspace import Workspace

KILL_AFTER_IMPORTS = textwrap.dedent("""
    import os, sys
    from medseg.workspace import Workspace
    for event in Workspace.iter_create(sys.argv[1], sys.argv[2]):
        if getattr(event, "stage", None) == "import" and event.done == 2:
            os._exit(9)  # as a kill: no cleanup runs
""")


@pytest.fixture
def killed(cvc_dir, tmp_path):
    ds = stem_mask_dataset(cvc_dir, tmp_path / "cvc")
    ws = tmp_path / "ws"
    run = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_IMPORTS, str(ws), str(ds)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 9, run.stderr
    with sqlite3.connect(ws / "workspace.sqlite") as c:
        assert c.execute("SELECT value FROM meta WHERE key = 'state'").fetchone()[0] == "creating"
    return ds, ws


def _advice(ds, ws) -> str:
    return f"create it again with `medseg workspace create {ds} {ws}`"


def test_every_message_gives_the_same_one_instruction(killed, capsys):
    ds, ws = killed
    messages = []
    with pytest.raises(WorkspaceError) as e:
        Workspace.open(ws)
    messages.append(str(e.value))
    for args in (
        ["workspace", "info", str(ws)],
        ["workspace", "history", str(ws), "1"],
        ["qc", str(ws), "--quiet"],
        ["export", str(ws), "--format", "folders", "--out", str(ws.parent / "e")],
    ):
        assert main(args) == 2
        messages.append(capsys.readouterr().err)
    for m in messages:
        assert "interrupted" in m and _advice(ds, ws) in m, m
        assert "delete" not in m and "open it" not in m and "Workspace.open" not in m, m


def test_creating_it_again_replaces_the_unfinished_workspace(killed, capsys):
    ds, ws = killed
    before = tree_hashes(ds)
    assert main(["workspace", "create", str(ds), str(ws), "--quiet"]) == 0
    assert "4 samples" in capsys.readouterr().out
    with Workspace.open(ws) as w:
        assert w.sample_ids() == ["1", "2", "3", "4"] and w.summary()["n_revisions"] == 4
    assert tree_hashes(ds) == before
    assert main(["workspace", "create", str(ds), str(ws), "--quiet"]) == 2  # a finished one is never replaced
    assert "already a workspace" in capsys.readouterr().err


def test_a_create_still_running_elsewhere_is_left_alone(killed):
    from medseg.folder_swap import owner_tag

    ds, ws = killed
    with sqlite3.connect(ws / "workspace.sqlite") as c:  # as if this (live) process were creating it
        c.execute("INSERT OR REPLACE INTO meta VALUES ('create_owner', ?)", (owner_tag(),))
    with pytest.raises(WorkspaceError, match="still being created by another medseg process"):
        Workspace.open(ws)
    with pytest.raises(WorkspaceError, match="another medseg process is creating this workspace right now"):
        Workspace.create(ws, ds)
    assert (ws / "workspace.sqlite").is_file()
