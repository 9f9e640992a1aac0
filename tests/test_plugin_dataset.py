"""The Dataset dock widget: open/create/reopen a workspace, counts, problems, sample list -> layers."""

from __future__ import annotations

import numpy as np
import pytest
from _review_data import (
    H,
    W,
    capture_errors,
    copy_cvc,
    make_review_set,
    open_dataset_widget,
    wait_for_sample,
)
from _workspace_data import make_uw

from medseg.errors import WorkspaceError
from napari_medseg._dataset_widget import DatasetWidget, default_workspace
from napari_medseg._session import IMAGE_LAYER, LABELS_LAYER, session_for

pytestmark = pytest.mark.gui


def test_open_creates_workspace_beside_dataset_and_shows_samples(make_napari_viewer, qtbot, tmp_path):
    data = make_review_set(tmp_path / "polyps")
    viewer = make_napari_viewer()
    widget, session = open_dataset_widget(viewer, qtbot, data)

    ws = session.workspace
    assert ws.root == tmp_path / "polyps.medseg" and (ws.root / "workspace.sqlite").is_file()
    assert not any(p.name.endswith(".sqlite") for p in data.rglob("*"))  # nothing written into the dataset
    assert widget.sample_ids() == ["1", "2", "3", "4", "5", "6"]
    assert [widget.samples.text(r, 1) for r in range(6)] == ["unreviewed"] * 6
    assert "6 samples" in widget.summary.text() and "6 unreviewed" in widget.summary.text()
    assert widget.problems.count() == 0

    # the first sample is on screen: RGB image, its labels with the class map's names and colours
    assert session.sample_id == "1"
    image, labels = viewer.layers[IMAGE_LAYER], viewer.layers[LABELS_LAYER]
    assert image.rgb and image.data.shape == (H, W, 3) and tuple(labels.data.shape) == (H, W)
    assert tuple(image.scale) == (1.0, 1.0) and tuple(labels.scale) == (1.0, 1.0)
    names = labels.metadata["medseg"]["class_names"]
    assert names == {0: "background", 1: "foreground"}
    assert list(labels.features["class"]) == ["background", "foreground"]
    assert labels.editable and labels.metadata["medseg"]["sample_id"] == "1"
    np.testing.assert_array_equal(labels.data, ws.current_mask("1"))

    # selecting another row moves the same two layers to that sample
    widget.samples.selectRow(3)
    wait_for_sample(qtbot, session, "4")
    assert viewer.layers[IMAGE_LAYER] is image and viewer.layers[LABELS_LAYER] is labels
    np.testing.assert_array_equal(labels.data, ws.current_mask("4"))
    np.testing.assert_array_equal(image.data, ws.image("4").array)
    assert image.metadata["medseg"]["sample_id"] == "4"


def test_reopen_lists_vanished_sources_and_index_problems(make_napari_viewer, qtbot, tmp_path):
    data = make_review_set(tmp_path / "polyps")
    (data / "images" / "7.png").write_bytes((data / "images" / "6.png").read_bytes())  # an image without a mask
    viewer = make_napari_viewer()
    widget, session = open_dataset_widget(viewer, qtbot, data)
    assert any("image without mask" in widget.problems.item(i).text() for i in range(widget.problems.count()))
    first = session.workspace

    (data / "masks" / "5.png").unlink()  # the dataset changes while the workspace is closed
    widget.set_folder(first.root)  # choosing the workspace folder itself reopens it
    assert widget.form.workspace.value == first.root
    widget.open_button.click()
    qtbot.waitUntil(lambda: session.workspace is not first, timeout=15000)
    with pytest.raises(WorkspaceError, match="closed"):
        first.sample_ids()  # the previous workspace object was closed on the switch
    qtbot.waitUntil(lambda: widget.source_check is None, timeout=15000)  # the source check runs after the open
    lines = [widget.problems.item(i).text() for i in range(widget.problems.count())]
    assert any("source missing" in t and "5.png" in t for t in lines)
    assert "missing" in widget.summary.text() and widget.sample_ids()[:2] == ["1", "2"]


def test_default_workspace_is_beside_the_dataset(tmp_path):
    data = make_review_set(tmp_path / "set")
    assert default_workspace(data) == tmp_path / "set.medseg"
    assert default_workspace(tmp_path / "set.medseg") == tmp_path / "set.medseg.medseg"  # not a workspace yet


def test_empty_folder_fields_mean_no_folder(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """An empty dataset field is refused (never the current directory); an empty workspace field is the
    default one beside the dataset; the workspace field follows a folder typed and entered."""
    data = make_review_set(tmp_path / "set")
    errors = capture_errors(monkeypatch)
    viewer = make_napari_viewer()
    widget = DatasetWidget(viewer)
    qtbot.addWidget(widget)
    monkeypatch.chdir(data)
    widget.open_button.click()
    assert len(errors) == 1 and "choose a dataset or workspace folder first" in errors[0] and widget.worker is None

    widget.form.folder.line_edit.native.setText(str(data))
    widget.form.folder.line_edit.native.editingFinished.emit()  # Enter, or the field loses focus
    assert widget.form.workspace.value == tmp_path / "set.medseg"
    widget.form.workspace.value = ""
    assert widget.form.workspace.value is None
    widget.open_button.click()
    qtbot.waitUntil(lambda: session_for(viewer).workspace is not None, timeout=15000)
    assert session_for(viewer).workspace.root == tmp_path / "set.medseg"


def test_workspace_inside_dataset_is_refused_with_a_notification(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    data = make_review_set(tmp_path / "set")
    errors = capture_errors(monkeypatch)
    viewer = make_napari_viewer()
    widget = DatasetWidget(viewer)
    qtbot.addWidget(widget)
    widget.set_folder(data)
    widget.form.workspace.value = data / "ws"
    widget.open_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=15000)
    assert session_for(viewer).workspace is None
    # the wording is the destination guard's; the message names both folders and says why
    assert len(errors) == 1 and "inside" in errors[0] and str(data / "ws") in errors[0] and str(data) in errors[0]
    assert not (data / "ws").exists()


def test_run_qc_stores_findings_and_counts(make_napari_viewer, qtbot, tmp_path):
    data = make_review_set(tmp_path / "set")
    viewer = make_napari_viewer()
    widget, session = open_dataset_widget(viewer, qtbot, data)
    changed = []
    session.findings_changed.connect(changed.append)
    widget.qc_button.click()
    qtbot.waitUntil(lambda: changed == ["qc"], timeout=30000)
    ws = session.workspace
    checks = {f.check for f in ws.findings(source="qc")}
    assert {"holes", "specks"} <= checks  # sample 1's hole and sample 2's speck
    assert "holes" in widget.summary.text() and "specks" in widget.summary.text()
    assert widget.status.text().startswith("QC:")


def test_real_cvc_frames(make_napari_viewer, qtbot, tmp_path, cvc_dir):
    data = copy_cvc(cvc_dir, tmp_path / "cvc")
    viewer = make_napari_viewer()
    widget, session = open_dataset_widget(viewer, qtbot, data)
    ws = session.workspace
    assert widget.sample_ids() == ["1", "2", "3", "120", "121", "300"]
    assert [widget.samples.text(r, 2) for r in range(6)][:3] == [ws.sample("1").group] * 3
    image, labels = viewer.layers[IMAGE_LAYER], viewer.layers[LABELS_LAYER]
    assert image.data.shape == (288, 384, 3) and labels.data.shape == (288, 384)
    assert set(np.unique(labels.data)) == {0, 1}  # the 0/255 masks arrive as class ids
    widget.samples.selectRow(5)
    wait_for_sample(qtbot, session, "300")
    assert labels.data.sum() == (np.asarray(ws.current_mask("300")) == 1).sum() > 0


def test_multilabel_workspace_shows_one_plane_per_class(make_napari_viewer, qtbot, tmp_path):
    data = make_uw(tmp_path / "uw")
    viewer = make_napari_viewer()
    _, session = open_dataset_widget(viewer, qtbot, data)
    ws = session.workspace
    labels = viewer.layers[LABELS_LAYER]
    mask = ws.current_mask(session.sample_id)  # (H, W, 3) booleans
    assert labels.data.shape == (3, *mask.shape[:2])
    # UW-Madison slice names carry the pixel spacing (1.50 mm): both layers are in mm, the class axis is not
    assert tuple(viewer.layers[IMAGE_LAYER].scale) == (1.5, 1.5) and tuple(labels.scale) == (1.0, 1.5, 1.5)
    for k, cid in enumerate(ws.classmap.ids):
        np.testing.assert_array_equal(labels.data[k], mask[..., k] * cid)
    assert labels.metadata["medseg"]["mask_task"] == "multilabel"
    # painting class 2 on its plane adds it where class 1 already is: the classes overlap in the saved mask
    from napari_medseg._review_autosave import autosave_for

    sid, cid = session.sample_id, ws.classmap.ids[1]
    labels.brush_size = 1
    labels.paint((1, 5, 10), cid)
    assert mask[5, 10, 0] and not mask[5, 10, 1]
    rev = autosave_for(viewer).save()
    saved = ws.current_mask(sid)
    assert rev.origin == "manual" and rev.n_changed == 1 and saved[5, 10, 0] and saved[5, 10, 1]


def test_viewer_close_saves_edits_then_closes_workspace(make_napari_viewer, qtbot, tmp_path):
    from qtpy.QtGui import QCloseEvent

    from napari_medseg._viewer_access import _WATCHERS

    data = make_review_set(tmp_path / "set")
    viewer = make_napari_viewer()
    _, session = open_dataset_widget(viewer, qtbot, data)
    ws = session.workspace
    labels = viewer.layers[LABELS_LAYER]
    labels.paint((30, 5), 1)  # background far from the object
    # what Qt delivers to the window when the user closes napari
    _WATCHERS[viewer].eventFilter(viewer.window._qt_window, QCloseEvent())
    assert session.workspace is None
    from medseg.workspace import Workspace

    with Workspace.open(ws.root) as again:
        revs = again.revisions("1")
        assert revs[-1].origin == "manual" and again.sample("1").status == "corrected"
        assert again.current_mask("1")[30, 5] == 1
