"""An export killed (SIGKILL) at every step in turn leaves the old export or the new one, never a mix or litter.

A workspace over three real CVC-ClinicDB frames is exported once ("old"),
then changed (a corrected mask, an excluded frame) and exported again over
the old one by a child process that kills itself before its k-th file-system
step, for k = 1, 2, ... until an export finishes (tests/_killpoints.py). After
every kill the destination must hold a whole export, every file as its
manifest hashes it, or, killed between the two renames of the swap, nothing
with the old export whole in the hidden ``.old`` folder; the next check of the
target puts it back, and the next export leaves no staging or old folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _killpoints import run_killed_at

from medseg.export import export_dataset
from medseg.export.staging import NAMES, Staging, recover_export
from medseg.export.target import check_target
from medseg.folder_swap import owner_alive, owner_tag
from medseg.workspace import Workspace

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

FRAMES = ("1", "2", "3")

EXPORT = """
import sys
from medseg.export import export_dataset
from medseg.workspace import Workspace
ws = Workspace.open(sys.argv[1], verify="none")
arm()
export_dataset(ws, sys.argv[2], "folders", overwrite=True)
finished()
"""


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".medseg-export-" in p.name)


def whole_export(folder: Path) -> dict:
    """The manifest of ``folder`` when every file it lists is there with its hash and nothing else is."""
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    for s in manifest["samples"]:
        for f in (s["exported"] or {}).get("images", []) + (s["exported"] or {}).get("masks", []):
            listed[f["path"]] = f["sha256"]
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert on_disk == set(listed) | {"manifest.json", "CHANGES.md"}, f"{folder}: files differ from its manifest"
    for rel, sha in listed.items():
        assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == sha, f"{folder / rel} is torn"
    return manifest


def which(manifest: dict) -> str:
    return "new" if manifest["counts"]["exported"] == len(FRAMES) - 1 else "old"


@pytest.fixture
def two_exports(cvc_dir, tmp_path):
    ds = tmp_path / "cvc"
    for sub in ("images", "masks"):  # symlinks: the shared data is never touched
        (ds / sub).mkdir(parents=True)
        for n in FRAMES:
            (ds / sub / f"{n}.png").symlink_to(cvc_dir / sub / f"{n}.png")
    out, pristine = tmp_path / "export" / "clean", tmp_path / "pristine"
    out.parent.mkdir()
    with Workspace.create(tmp_path / "ws", ds, author="test") as ws:
        export_dataset(ws, out, "folders")
        mask = ws.current_mask("1")
        mask[:16, :16] = 1 - mask[:16, :16]
        ws.save_revision("1", mask, origin="manual")
        ws.set_status("3", "excluded", "blurred")
    assert which(whole_export(out)) == "old"
    shutil.copytree(out, pristine)
    return tmp_path / "ws", ds, out, pristine


def test_an_export_killed_at_every_step_leaves_a_whole_export_and_no_litter(two_exports):
    ws_path, ds, out, pristine = two_exports
    seen: dict[str, list[int]] = {"old": [], "new": [], "hidden": []}
    step = 0
    while True:
        step += 1
        code, steps = run_killed_at(step, EXPORT, ws_path, out)
        if code == 0:
            assert which(whole_export(out)) == "new" and leftovers(out.parent) == []
            break
        if not out.exists():  # killed between the two renames: the old export is whole, hidden
            hidden = [p for p in out.parent.iterdir() if p.name.endswith(".old")]
            assert len(hidden) == 1 and which(whole_export(hidden[0])) == "old", f"step {step}: {hidden}"
            seen["hidden"].append(step)
        else:
            seen[which(whole_export(out))].append(step)
        # the next check of the target puts a hidden export back and sweeps the dead run's folders
        check_target(out, dataset_root=ds, workspace_root=ws_path, overwrite=True)
        assert leftovers(out.parent) == [], f"step {step}"
        assert which(whole_export(out)) in ("old", "new")
        shutil.rmtree(out)
        shutil.copytree(pristine, out)
    assert steps == step - 1 and steps > 20, f"{steps} steps: the export was not instrumented"
    # every phase was hit: killed while staging, during the swap, and after it while deleting the old one
    assert seen["old"] and seen["hidden"] and seen["new"], seen
    assert max(seen["old"]) < min(seen["hidden"]) <= max(seen["hidden"]) < min(seen["new"]), seen


def test_the_next_export_restores_a_hidden_export_and_sweeps_killed_runs(two_exports):
    ws_path, ds, out, pristine = two_exports
    # kill the child just before the second rename of its swap
    step = 0
    while out.exists():
        step += 1
        code, _ = run_killed_at(step, EXPORT, ws_path, out)
        assert code != 0, "the export finished before its swap was interrupted"
    partial = [p for p in out.parent.iterdir() if p.name.endswith(".partial")]
    assert len(partial) == 1 and len(leftovers(out.parent)) == 2
    with Workspace.open(ws_path) as ws:  # overwrite=False: the restored old export is refused, not replaced
        with pytest.raises(Exception, match="not empty"):
            export_dataset(ws, out, "folders")
        assert which(whole_export(out)) == "old" and leftovers(out.parent) == []
        export_dataset(ws, out, "folders", overwrite=True)
    assert which(whole_export(out)) == "new" and leftovers(out.parent) == []


def _dead_tag() -> str:
    proc = subprocess.run(
        [sys.executable, "-c", "from medseg.folder_swap import owner_tag; print(owner_tag())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip()


def test_an_export_running_in_another_process_is_left_alone(two_exports):
    ws_path, ds, out, _ = two_exports
    dead = NAMES.new_path(out, _dead_tag())
    dead.mkdir()
    (dead / "image.png").write_bytes(b"\x89PNG half")
    assert owner_alive(dead.name.split("medseg-export-")[1][: -len(".partial")]) is False
    live = Staging(out, overwrite=True)  # this process's export, still writing
    (live.path / "image.png").write_bytes(b"\x89PNG being written")
    try:
        assert owner_alive(live.path.name.split("medseg-export-")[1][: -len(".partial")]) is True
        with Workspace.open(ws_path) as ws:
            export_dataset(ws, out, "folders", overwrite=True)
        assert not dead.exists() and live.path.is_dir() and leftovers(out.parent) == [live.path.name]
        assert which(whole_export(out)) == "new"
    finally:
        live.abort()
    assert leftovers(out.parent) == []


def test_untagged_leftovers_of_older_versions_go_once_stale(two_exports, monkeypatch):
    import time

    _, _, out, _ = two_exports
    old_style = out.parent / f".{out.name}.medseg-export-0123456789.partial"  # uuid tag, no owner
    old_style.mkdir()
    recover_export(out)
    assert old_style.is_dir()  # it may be an export of an older version running now
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)
    recover_export(out)
    assert not old_style.exists()


def test_owner_tags_tell_this_process_from_a_dead_one():
    tag = owner_tag()
    assert tag.split("-")[0] == str(os.getpid()) and owner_alive(tag) is True
    assert owner_alive(_dead_tag()) is False
    assert owner_alive("0123456789") is None  # no owner recorded: the caller judges by age
    pid, started, rnd = tag.split("-")
    if started != "0":  # where /proc tells start times, a reused pid is not mistaken for the owner
        assert owner_alive(f"{pid}-{int(started) + 1}-{rnd}") is False
    assert np.unique([owner_tag() for _ in range(5)]).size == 5
