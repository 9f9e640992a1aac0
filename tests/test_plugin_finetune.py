"""The Fine-tune dock widget: real out-of-process runs of a tiny model, live progress, cancel/resume, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from _review_data import capture_errors
from _train_run import make_dataset, set_up_finetune, watch_training_children

from medseg.models import load_checkpoint
from napari_medseg._finetune_config import FOLDER, FROM_CHECKPOINT, WORKSPACE
from napari_medseg._finetune_widget import FinetuneWidget
from napari_medseg._predict_widget import PredictWidget
from napari_medseg._session import session_for

pytestmark = pytest.mark.gui
RUN = 90000  # ms: a child python importing torch takes seconds on a busy 2-core machine
TINY = """
model: {kwargs: {depth: 2, base_channels: 4, dropout: 0.0}}
data: {group_by: stem}
optim: {name: adam, scheduler: constant}
precision: fp32
val_overlays: 0
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"), n=8, size=32)


def _widget(viewer, qtbot, out: Path, **form) -> FinetuneWidget:
    widget = FinetuneWidget(viewer)
    qtbot.addWidget(widget)
    set_up_finetune(widget, qtbot, RUN, **{"batch_size": 2, "val_fraction": 0.25, "out": out, "extra": TINY, **form})
    return widget


def test_workspace_run_progress_plot_use_and_rescore(make_napari_viewer, qtbot, data, tmp_path):
    from medseg.workspace import Workspace

    ws = Workspace.create(tmp_path / "data.medseg", data)
    viewer = make_napari_viewer()
    session = session_for(viewer)
    session.set_workspace(ws)
    predict = PredictWidget(viewer)
    qtbot.addWidget(predict)
    widget = _widget(viewer, qtbot, tmp_path / "runs", data=WORKSPACE)
    assert widget.start()
    assert not widget.start_button.isEnabled() and widget.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: widget.outcome is not None and not widget.running, timeout=RUN)
    assert widget.outcome.kind == "result", widget.status.text()
    kinds = [e.kind for e in widget.events]
    assert kinds[0] == "started" and kinds[-1] == "result" and "epoch" in kinds
    steps = [e for e in widget.events if e.kind == "step"]
    assert [x for x, _ in widget.plot.losses] == [float(e.global_step) for e in steps]
    assert list(widget.plot.dice) == ["foreground"] and len(widget.plot.dice["foreground"]) == 1
    assert widget.last_progress == (len(steps), widget.events[0].total)
    assert widget.checkpoint.endswith("best.medseg") and "finished" in widget.status.text()
    assert load_checkpoint(widget.checkpoint).spec.arch == "PlainUNet"
    assert [r.kind for r in ws.model_runs()] == ["train"]  # the run is recorded in the workspace

    assert widget.use_button.isEnabled()
    widget.use_button.click()
    assert session.checkpoints == [widget.checkpoint]
    assert predict.choice().checkpoints == (widget.checkpoint,)  # Predict follows the session

    methods = []
    session.scores_changed.connect(methods.append)
    assert widget.rescore()
    qtbot.waitUntil(lambda: widget.score_worker is None, timeout=RUN)
    assert methods == ["checkpoint"], widget.status.text()
    scores = ws.scores("checkpoint")
    assert set(scores) == set(ws.sample_ids()) and all(0.0 <= v <= 1.0 for v in scores.values())
    session.set_workspace(None)


def test_cancel_keeps_a_checkpoint_and_resume_continues(make_napari_viewer, qtbot, data, tmp_path):
    viewer = make_napari_viewer()
    widget = _widget(viewer, qtbot, tmp_path / "runs", data=FOLDER, dataset=data, epochs=500)
    assert widget.start()
    qtbot.waitUntil(lambda: len(widget.plot.losses) >= 2, timeout=RUN)
    widget.cancel_button.click()
    qtbot.waitUntil(lambda: not widget.running, timeout=RUN)
    assert widget.outcome.kind == "cancelled", widget.status.text()
    first_steps = widget.outcome.done
    assert load_checkpoint(widget.checkpoint).spec.arch == "PlainUNet"
    assert "checkpoint kept" in widget.status.text() and widget.resume_button.isEnabled()
    run_dir = widget.run_dir

    assert widget.resume()
    qtbot.waitUntil(lambda: any(e.kind == "step" for e in widget.events), timeout=RUN)
    widget.cancel()
    qtbot.waitUntil(lambda: not widget.running, timeout=RUN)
    started = widget.events[0]
    assert started.kind == "started" and started.detail["resumed_from"] and widget.run_dir == run_dir
    assert widget.outcome.kind == "cancelled" and widget.outcome.done > first_steps
    assert len(widget.plot.losses) > first_steps  # the plot continues the same run


def test_start_from_the_current_checkpoint_needs_one(make_napari_viewer, qtbot, data, tmp_path, monkeypatch):
    errors = capture_errors(monkeypatch)
    viewer = make_napari_viewer()
    widget = _widget(viewer, qtbot, tmp_path / "runs", data=FOLDER, dataset=data, start=FROM_CHECKPOINT)
    assert not widget.start()
    assert "no current checkpoint" in errors[0] and "Fine-tuning not started" in errors[0]
    widget.form.data.value = WORKSPACE
    widget.form.extra.value = "epochs: [oops"
    assert not widget.start()
    assert "no workspace is open" in errors[1] and "not valid YAML" in errors[1]
    assert not widget.running and not (tmp_path / "runs").exists()


def test_a_failing_run_is_a_notification(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    errors = capture_errors(monkeypatch)
    viewer = make_napari_viewer()
    missing = tmp_path / "no-such-dataset"
    widget = _widget(viewer, qtbot, tmp_path / "runs", data=FOLDER, dataset=missing)
    assert widget.start()
    qtbot.waitUntil(lambda: not widget.running, timeout=RUN)
    assert widget.outcome.kind == "error"
    assert len(errors) == 1 and errors[0].startswith("Fine-tuning failed") and "no-such-dataset" in errors[0]
    assert not widget.use_button.isEnabled() and widget.start_button.isEnabled()


def _shown_plot(qtbot):
    from napari_medseg._plot import TrainingPlot

    plot = TrainingPlot()
    qtbot.addWidget(plot)
    plot.resize(300, 200)
    plot.show()
    qtbot.waitExposed(plot)
    qtbot.waitUntil(lambda: plot.paints >= 1, timeout=5000)
    return plot


def _loss_panel_drawn(plot) -> bool:
    """Something was drawn in the loss panel (not a blank widget)."""
    image = plot.grab().toImage()
    return len({image.pixelColor(x, y).name() for x in range(52, 300, 7) for y in range(16, 80, 3)}) > 2


def test_plot_redraws_are_throttled(qtbot):
    from napari_medseg._plot import REDRAW_MS

    plot = _shown_plot(qtbot)
    before = plot.paints
    for step in range(1, 2001):  # a burst of step events: one repaint per interval, not per event
        plot.add_step(step, 1.0 / step)
    plot.add_epoch(0, {"dice/polyp": 0.5, "dice/lumen": float("nan"), "dice": 0.5})
    qtbot.waitUntil(lambda: plot.paints > before, timeout=5000)
    qtbot.wait(2 * REDRAW_MS)
    assert plot.paints - before <= 3
    assert len(plot.losses) == 2000 and plot.dice == {"polyp": [(1.0, 0.5)]}
    assert _loss_panel_drawn(plot)


def test_closing_the_viewer_stops_the_training_child(make_napari_viewer, qtbot, data, tmp_path, monkeypatch):
    from qtpy.QtGui import QCloseEvent

    from napari_medseg._viewer_access import _WATCHERS

    started = watch_training_children(monkeypatch)
    viewer = make_napari_viewer()
    widget = _widget(viewer, qtbot, tmp_path / "runs", data=FOLDER, dataset=data, epochs=500)
    assert widget.start()
    qtbot.waitUntil(lambda: len(widget.plot.losses) >= 1, timeout=RUN)
    [proc] = started
    # what Qt delivers to the window when the user closes napari
    _WATCHERS[viewer].eventFilter(viewer.window._qt_window, QCloseEvent())
    qtbot.waitUntil(lambda: not proc.running(), timeout=RUN)
    qtbot.waitUntil(lambda: not widget.running, timeout=RUN)
    assert widget.outcome.kind == "cancelled" and load_checkpoint(widget.checkpoint) is not None


def test_plot_survives_a_diverged_loss(qtbot):
    from napari_medseg._plot import axis_range, finite

    plot = _shown_plot(qtbot)
    before = plot.paints
    for step, loss in enumerate([0.9, 0.7, float("inf"), float("nan"), 0.5], 1):
        plot.add_step(step, loss)
    qtbot.waitUntil(lambda: plot.paints > before, timeout=5000)
    # the diverged steps are kept in the record but left off the axis, which stays finite
    assert len(plot.losses) == 5
    lines = finite({"loss": plot.losses})
    assert lines == {"loss": [(1.0, 0.9), (2.0, 0.7), (5.0, 0.5)]}
    assert axis_range(lines) == (1.0, 5.0, 0.5, 0.9)
    assert _loss_panel_drawn(plot)


def test_switching_the_workspace_cancels_its_run_and_keeps_a_checkpoint(
    make_napari_viewer, qtbot, data, tmp_path, monkeypatch
):
    from napari.utils import notifications

    from medseg.workspace import Workspace

    errors, infos = capture_errors(monkeypatch), []
    monkeypatch.setattr(notifications, "show_info", infos.append)
    ws = Workspace.create(tmp_path / "data.medseg", data)
    viewer = make_napari_viewer()
    session = session_for(viewer)
    session.set_workspace(ws)
    widget = _widget(viewer, qtbot, tmp_path / "runs", data=WORKSPACE, epochs=500)
    started = watch_training_children(monkeypatch)
    at_close, real_close = [], ws.close
    monkeypatch.setattr(
        ws, "close", lambda: (at_close.append((started[0].running(), session.jobs.running(ws))), real_close())
    )
    assert widget.start()
    qtbot.waitUntil(lambda: len(widget.plot.losses) >= 1, timeout=RUN)
    [proc] = started
    session.set_workspace(None)
    assert len(infos) == 1 and f"Fine-tuning in {widget.run_dir}" in infos[0] and at_close == []
    qtbot.waitUntil(lambda: not widget.running, timeout=RUN)
    assert at_close == [(False, [])] and not proc.running()  # closed after the run ended, not under it
    assert widget.outcome.kind == "cancelled", widget.status.text()
    assert load_checkpoint(widget.checkpoint).spec.arch == "PlainUNet" and errors == []
