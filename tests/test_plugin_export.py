"""The Export dock widget: a workspace's cleaned dataset written in a worker, read back; unsafe targets refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _export_data import make_frames
from _review_data import capture_errors

from napari_medseg._export_widget import NO_SPLIT, TRAIN_VAL, ExportWidget
from napari_medseg._session import session_for

pytestmark = pytest.mark.gui
WAIT = 30000


@pytest.fixture
def edited(tmp_path):
    """A workspace over 11 frames in 4 groups: one corrected (a 5x5 square added), one excluded."""
    from medseg.workspace import Workspace

    data = make_frames(tmp_path / "frames")
    ws = Workspace.create(tmp_path / "frames.medseg", data)
    ids = ws.sample_ids()
    mask = ws.current_mask(ids[0]).copy()
    mask[25:30, 30:35] = 1
    ws.save_revision(ids[0], mask, origin="manual")
    ws.set_status(ids[1], "excluded", reason="motion blur")
    ws.set_status(ids[2], "accepted")
    yield ws
    ws.close()


def _widget(viewer, qtbot, ws) -> ExportWidget:
    session_for(viewer).set_workspace(ws)
    widget = ExportWidget(viewer)
    qtbot.addWidget(widget)
    return widget


def _run(widget, qtbot) -> None:
    assert widget.start()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT)


def test_export_with_split_and_read_back(make_napari_viewer, qtbot, edited, tmp_path):
    viewer = make_napari_viewer()
    widget = _widget(viewer, qtbot, edited)
    ids = edited.sample_ids()
    assert "8 unreviewed, 1 accepted, 1 corrected, 1 excluded" in widget.workspace_label.text()
    assert widget.form.out.value == tmp_path / "frames.medseg-export"  # beside the workspace, never inside
    widget.form.out.value = tmp_path / "clean"
    widget.form.split.value = TRAIN_VAL
    widget.form.val_fraction.value = 0.25
    _run(widget, qtbot)

    manifest = json.loads((tmp_path / "clean" / "manifest.json").read_text())
    assert manifest["format"] == "folders" and manifest["counts"]["exported"] == 10
    by_id = {s["id"]: s for s in manifest["samples"]}
    assert by_id[ids[1]]["exported"] is None and "motion blur" in by_id[ids[1]]["left_out"]
    edit = by_id[ids[0]]
    assert edit["status"] == "corrected" and edit["revisions"]["origins"] == {"imported": 1, "manual": 1}
    assert edit["revisions"]["n_changed_vs_imported"] == 25
    assert manifest["split"] is not None and {s["split"] for s in manifest["samples"] if s["exported"]} == {
        "train",
        "val",
    }
    groups = {}
    for s in manifest["samples"]:
        if s["exported"]:
            groups.setdefault(s["group"], set()).add(s["split"])
    assert all(len(parts) == 1 for parts in groups.values())  # a group never straddles the split

    from PIL import Image

    exported_mask = np.asarray(Image.open(tmp_path / "clean" / edit["exported"]["masks"][0]["path"]))
    # the correction, not the source; 0/255 like the source masks (issue 16), which the message says
    np.testing.assert_array_equal(exported_mask, edited.current_mask(ids[0]) * 255)
    assert widget.result.out == tmp_path / "clean" and str(tmp_path / "clean") in widget.status.text()
    assert "Masks written as 0/255 like the source." in widget.status.text()
    text = widget.changes.toPlainText()
    assert text.startswith("# Changes in this export") and ids[0] in text and "motion blur" in text


def test_non_empty_target_and_source_folder_are_refused(make_napari_viewer, qtbot, edited, tmp_path, monkeypatch):
    errors = capture_errors(monkeypatch)
    viewer = make_napari_viewer()
    widget = _widget(viewer, qtbot, edited)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    widget.form.out.value = busy
    _run(widget, qtbot)
    assert len(errors) == 1 and f"Export to {busy} failed" in errors[0] and "not empty" in errors[0]
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
    widget.form.overwrite.value = True  # overwrite replaces only a previous medseg export, never this
    _run(widget, qtbot)
    assert "holds no medseg export" in errors[1] and (busy / "notes.txt").read_text() == "mine"

    widget.form.out.value = edited.dataset_root / "export"
    _run(widget, qtbot)
    assert "inside the source dataset" in errors[2] and str(edited.dataset_root) in errors[2]
    assert not (edited.dataset_root / "export").exists() and widget.result is None


def test_reexport_needs_the_explicit_overwrite(make_napari_viewer, qtbot, edited, tmp_path, monkeypatch):
    errors = capture_errors(monkeypatch)
    viewer = make_napari_viewer()
    widget = _widget(viewer, qtbot, edited)
    target = tmp_path / "nn"
    widget.form.fmt.value = "nnunet"
    widget.form.out.value = target
    widget.form.split.value = NO_SPLIT
    widget.form.statuses.value = ["corrected", "accepted"]
    _run(widget, qtbot)
    first = json.loads((target / "manifest.json").read_text())
    assert first["counts"]["exported"] == 2 and first["format"] == "nnunet"

    edited.set_status(edited.sample_ids()[3], "accepted")
    _run(widget, qtbot)
    assert "tick 'Replace a previous export'" in errors[0]
    widget.form.overwrite.value = True
    _run(widget, qtbot)
    assert json.loads((target / "manifest.json").read_text())["counts"]["exported"] == 3
    assert len(errors) == 1


def test_without_a_workspace_nothing_to_export(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = ExportWidget(viewer)
    qtbot.addWidget(widget)
    assert not widget.export_button.isEnabled() and not widget.start()
    assert "Open a dataset's workspace" in widget.workspace_label.text()


def test_cancel_leaves_the_target_untouched(make_napari_viewer, qtbot, edited, tmp_path):
    from medseg.errors import Cancelled
    from medseg.jobs import CancelToken, drive
    from napari_medseg._export_widget import export_job

    cancel = CancelToken()
    cancel.set()  # pressed before the first sample was written
    events = list(drive(export_job(edited, tmp_path / "never", "folders", {}, cancel=cancel)))
    assert isinstance(events[-1], Cancelled) and not (tmp_path / "never").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".never")]  # no staging folder left

    viewer = make_napari_viewer()
    widget = _widget(viewer, qtbot, edited)
    widget.form.out.value = tmp_path / "done"
    assert widget.start() and widget.cancel_button.isEnabled() and not widget.export_button.isEnabled()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT)
    assert widget.export_button.isEnabled() and not widget.cancel_button.isEnabled()
