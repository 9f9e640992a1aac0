"""The Fine-tune dock on the demo workspace, no training run: the runs folder follows the workspace opened after
the dock (finding 7), "Train on" offers reviewed / corrected / all current labels with the samples and groups
each holds, follows the review, and a choice too small to train or validate is refused in one line naming its
count (finding 8)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _review_data import capture_errors, open_dataset_widget

from medseg.datasets.demo import make_demo_dataset
from medseg.training.workspace_source import open_workspace_dataset
from napari_medseg._finetune_config import WORKSPACE, config_from_form
from napari_medseg._finetune_widget import FinetuneWidget
from napari_medseg._review_actions import accept

pytestmark = pytest.mark.gui


def _dock(viewer) -> FinetuneWidget:
    _, widget = viewer.window.add_plugin_dock_widget("napari-medseg", "Fine-tune")
    assert isinstance(widget, FinetuneWidget)
    return widget


def _demo(folder: Path) -> Path:
    return make_demo_dataset(folder, sequences=3, frames=3, shape=(48, 64), planted=1).root


def _texts(widget) -> dict[str, str]:
    """The "Train on" choices as the combo box shows them: {value: text}."""
    box = widget.form.statuses.native
    return {box.itemData(i): box.itemText(i) for i in range(box.count())}


def test_the_runs_folder_follows_the_workspace_opened_after_the_dock(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    widget = _dock(viewer)  # docked before any dataset is open
    assert Path(str(widget.form.out.value)) == Path.home() / "medseg-runs"
    _, session = open_dataset_widget(viewer, qtbot, _demo(tmp_path / "demo"))
    root = session.workspace.root
    assert root == (tmp_path / "demo.medseg").absolute()
    assert Path(str(widget.form.out.value)) == root.parent / "demo.medseg-runs"  # beside it, not in ~

    # another workspace: the folder follows it; one the user picked stays
    _, session = open_dataset_widget(viewer, qtbot, _demo(tmp_path / "other"))
    assert Path(str(widget.form.out.value)) == tmp_path.absolute() / "other.medseg-runs"
    widget.form.out.value = tmp_path / "my runs"
    open_dataset_widget(viewer, qtbot, tmp_path / "demo")
    assert Path(str(widget.form.out.value)) == tmp_path / "my runs"


def test_train_on_offers_each_choice_with_its_counts_and_refuses_too_few(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    errors = capture_errors(monkeypatch)
    viewer = make_napari_viewer()
    widget = _dock(viewer)
    _, session = open_dataset_widget(viewer, qtbot, _demo(tmp_path / "demo"))
    ws = session.workspace
    assert widget.form.data.value == WORKSPACE == "workspace (current labels)"
    qtbot.waitUntil(lambda: widget.labels.counts is not None, timeout=10000)
    groups = {r.id: r.group for r in ws.samples()}
    n_groups = len(set(groups.values()))
    assert n_groups == 3 and widget.form.statuses.value == "all"  # every current label, as the data choice says
    assert _texts(widget) == {
        "reviewed": "reviewed only (accepted + corrected): 0 samples, 0 groups",
        "corrected": "corrected only: 0 samples, 0 groups",
        "all": "all current labels (not excluded): 9 samples, 3 groups",
    }

    # the review moves the counts: the sample on screen accepted, two of another group corrected, one excluded
    ids = ws.sample_ids()
    first = session.sample_id
    assert accept(viewer) == "accepted"
    other = [sid for sid in ids if groups[sid] != groups[first]]
    for sid in other[:2]:
        ws.set_status(sid, "corrected")
        session.status_changed.emit(sid, "corrected")
    excluded = next(sid for sid in ids if groups[sid] == groups[first] and sid != first)
    ws.set_status(excluded, "excluded", reason="blurred")
    session.status_changed.emit(excluded, "excluded")
    assert _texts(widget) == {
        "reviewed": "reviewed only (accepted + corrected): 3 samples, 2 groups",
        "corrected": "corrected only: 2 samples, 1 group",
        "all": "all current labels (not excluded): 8 samples, 3 groups",
    }

    # the chosen labels are exactly what the run's workspace opener takes
    widget.form.out.value = tmp_path / "runs"
    for name, expected in (("reviewed", {first, *other[:2]}), ("all", set(ids) - {excluded})):
        widget.form.statuses.value = name
        config = config_from_form(widget.form.asdict(), workspace=ws, checkpoints=[], out_dir=tmp_path / "run")
        assert {s.id for s in open_workspace_dataset(ws.root, config.data.statuses).samples} == expected

    # too few to validate: one group; said in one line with the count, and the fraction set to 0
    widget.form.statuses.value = "corrected"
    assert not widget.start()
    said = widget.status.text()
    assert said.startswith("Fine-tuning not started: Train on 'corrected only' holds 2 samples, all one group")
    assert "\n" not in said and errors[-1] == said and widget.form.val_fraction.value == 0.0
    assert not (tmp_path / "runs").exists() and not widget.running
