"""The Fine-tune dock on a CT volume workspace: 2-D or 2.5-D and the intensity window offered, the corrected
cases' slices trained on split by case, one case said before any process starts, and the checkpoint then
predicting the volume in the Predict dock (slice on screen and whole volume)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _review_data import capture_errors, open_dataset_widget
from _train_run import make_dataset, set_up_finetune
from _volume_data import make_nnunet3d

from medseg.models import load_checkpoint
from napari_medseg._finetune_config import AUTO, FROM_CHECKPOINT, PERCENTILE, config_from_form, started_text
from napari_medseg._finetune_widget import FinetuneWidget
from napari_medseg._predict_widget import PredictWidget
from napari_medseg._session import PREDICTION_LAYER, VOLUME_PREDICTION_LAYER, session_for
from napari_medseg._volume_layers import go_to_slice

pytestmark = pytest.mark.gui
RUN = 120000  # ms: a child python importing torch takes seconds on a busy 2-core machine
TINY = """
model: {kwargs: {depth: 2, base_channels: 4, dropout: 0.0}}
optim: {name: adam, scheduler: constant}
precision: fp32
val_overlays: 0
max_steps_per_epoch: 2
"""


def _widget(viewer, qtbot, out: Path, **form) -> FinetuneWidget:
    _, widget = viewer.window.add_plugin_dock_widget("napari-medseg", "Fine-tune")
    assert isinstance(widget, FinetuneWidget)
    set_up_finetune(widget, qtbot, RUN, **{"batch_size": 4, "out": out, "extra": TINY, **form})
    return widget


def _shown(widget, name: str) -> bool:
    return not getattr(widget.form, name).native.isHidden()


def _run(widget, qtbot):
    assert widget.start(), widget.status.text()
    qtbot.waitUntil(lambda: widget.outcome is not None and not widget.running, timeout=RUN)
    assert widget.outcome.kind == "result", widget.status.text()
    return widget.events[0].detail


def _predict(viewer, qtbot, widget, z: int) -> tuple[np.ndarray, np.ndarray]:
    """The Predict dock with the run's model ('Use this model'): slice z on screen, then the whole volume."""
    _, predict = viewer.window.add_plugin_dock_widget("napari-medseg", "Predict")
    assert isinstance(predict, PredictWidget)
    widget.use_button.click()
    assert predict.choice().checkpoints == (widget.checkpoint,)
    go_to_slice(viewer, z)
    assert predict.request(force=True)
    qtbot.waitUntil(lambda: predict.outputs.predicted is not None and predict.outputs.predicted[z], timeout=RUN)
    one = np.asarray(viewer.layers[PREDICTION_LAYER].data[z]).copy()
    assert predict.predict_volume()
    qtbot.waitUntil(lambda: VOLUME_PREDICTION_LAYER in viewer.layers and not predict.volume_run.busy, timeout=RUN)
    assert "on all 10 slices" in predict.status.text(), predict.status.text()
    return one, np.asarray(viewer.layers[VOLUME_PREDICTION_LAYER].data)


def test_25d_on_the_corrected_cases_split_by_case_then_predicts_the_volume(make_napari_viewer, qtbot, tmp_path):
    root = make_nnunet3d(tmp_path / "ds", n_cases=3)
    viewer = make_napari_viewer()
    _, session = open_dataset_widget(viewer, qtbot, root)
    ws = session.workspace
    fixed = ws.current_slice("case_001", 5).copy()
    fixed[10:20, 12:30] = 2
    ws.save_slices("case_001", {5: fixed}, origin="manual")
    for sid in ("case_001", "case_002"):
        ws.set_status(sid, "corrected")
    widget = _widget(viewer, qtbot, tmp_path / "runs", statuses="corrected", slices=3, window=AUTO, val_fraction=0.5)
    assert _shown(widget, "slices") and _shown(widget, "window") and _shown(widget, "statuses")
    assert widget.volume_modality() == "CT"  # the case on screen: "auto" is CT's soft-tissue window

    d = _run(widget, qtbot)
    assert d["volumes"] and (d["n_train"], d["n_val"]) == (1, 1) and (d["n_train_items"], d["n_val_items"]) == (10, 10)
    assert "2.5-D (3 slices as channels), CT window 40/400 (soft tissue)" in started_text(d)
    ck = load_checkpoint(widget.checkpoint)
    assert ck.spec.in_channels == 3 and ck.preprocessing.slices == 3 and ck.preprocessing.scope == "volume"
    assert ck.preprocessing.window == [40.0, 400.0]
    train, val = ck.provenance["data"]["ids"], ck.provenance["data"]["val_ids"]
    assert sorted(train + val) == ["case_001", "case_002"] and len(train) == len(val) == 1  # split by case
    runs = ws.model_runs()
    assert len(runs) == 1 and runs[0].revisions == {s: ws.sample(s).head_revision for s in ("case_001", "case_002")}

    one, whole = _predict(viewer, qtbot, widget, z=4)
    assert whole.shape == (10, 36, 40) and set(np.unique(whole)) <= {0, 1, 2, 3}
    assert (one == whole[4]).mean() > 0.99  # the slice on screen as the whole-volume job predicts it


def test_one_case_is_said_before_a_run_and_trains_without_validation(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    errors = capture_errors(monkeypatch)
    root = make_nnunet3d(tmp_path / "ds", n_cases=1)
    viewer = make_napari_viewer()
    open_dataset_widget(viewer, qtbot, root)
    runs = tmp_path / "runs"
    widget = _widget(viewer, qtbot, runs, slices=1, window=PERCENTILE, val_fraction=0.25)
    assert not widget.start()
    assert "all one case (case_000)" in errors[-1] and "at least 2 cases" in errors[-1]
    assert widget.form.val_fraction.value == 0.0 and not widget.running and not runs.exists()

    widget.form.statuses.value = "corrected"  # none is corrected yet
    assert not widget.start() and "no sample of" in errors[-1] and "is corrected" in errors[-1]
    widget.form.statuses.value = "all"
    d = _run(widget, qtbot)  # Start again: the one case, no validation
    assert (d["n_train"], d["n_val"], d["n_train_items"]) == (1, 0, 10)
    assert "2-D, 1-99 percentiles of each volume" in started_text(d)
    ck = load_checkpoint(widget.checkpoint)
    assert ck.spec.in_channels == 1 and ck.preprocessing.slices == 1 and ck.preprocessing.window == "percentile"
    one, whole = _predict(viewer, qtbot, widget, z=2)
    assert (one == whole[2]).mean() > 0.99


def test_the_volume_fields_follow_the_data_and_the_start(make_napari_viewer, qtbot, tmp_path):
    """No run: on a 2-D workspace the volume fields are hidden and count for nothing; fine-tuning a checkpoint
    keeps its own slices and window."""
    from medseg.workspace import Workspace

    viewer = make_napari_viewer()
    session = session_for(viewer)
    session.set_workspace(Workspace.create(tmp_path / "flat.medseg", make_dataset(tmp_path / "flat", n=4)))
    widget = _widget(viewer, qtbot, tmp_path / "runs", slices=5, window="bone")
    assert not _shown(widget, "slices") and not _shown(widget, "window")
    config = config_from_form(
        widget.form.asdict(), workspace=session.workspace, checkpoints=[], out_dir=tmp_path / "r", volumes=False
    )
    assert config.data.slices == 1 and config.data.window is None and config.data.statuses is None
    widget.form.data.value = "dataset folder"  # a folder may hold volumes: the fields count
    assert _shown(widget, "slices") and not _shown(widget, "statuses")
    values = {**widget.form.asdict(), "dataset": str(tmp_path / "flat")}
    config = config_from_form(values, workspace=None, checkpoints=[], out_dir=tmp_path / "r")
    assert config.data.slices == 5 and config.data.window == [400.0, 1800.0]

    widget.form.start.value = FROM_CHECKPOINT
    assert not _shown(widget, "slices") and not _shown(widget, "window")
    session.set_workspace(None)
