"""The Fine-tune dock's past runs: listed newest first with their Dice, curves shown, one picked for Predict;
a run of the dock itself (a real child process) joins the list with its curves and final evaluation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _train_data import one_thread  # noqa: F401 - an autouse fixture
from _train_run import make_dataset, set_up_finetune, tiny_config

from medseg.runs import read_run
from medseg.training import Trainer
from napari_medseg._finetune_config import FOLDER
from napari_medseg._finetune_widget import FinetuneWidget
from napari_medseg._predict_widget import PredictWidget
from napari_medseg._session import session_for

pytestmark = pytest.mark.gui
RUN = 90000  # ms: a child python importing torch takes seconds on a busy 2-core machine
OLD, NEW = "run-20260101-090000", "run-20260102-090000"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset, output folder) with two finished tiny runs and one whose metrics.csv is damaged."""
    root = tmp_path_factory.mktemp("finetune-runs")
    data = make_dataset(root / "data", n=8)
    out = root / "data-runs"
    for name, epochs in ((OLD, 1), (NEW, 2)):
        list(Trainer(tiny_config(data, out / name, epochs=epochs)).run())
    (out / "run-20260103-090000").mkdir()
    (out / "run-20260103-090000" / "metrics.csv").write_text("epoch,train_loss\nx,1\n")
    return data, out


def test_past_runs_are_listed_and_one_is_picked_for_predict(make_napari_viewer, qtbot, runs, tmp_path):
    _, out = runs
    viewer = make_napari_viewer()
    session = session_for(viewer)
    predict = PredictWidget(viewer)
    qtbot.addWidget(predict)
    widget = FinetuneWidget(viewer)
    qtbot.addWidget(widget)
    widget.form.out.value = out
    runs_list = widget.past_runs
    table = runs_list.table
    assert [table.item(i, 0).text() for i in range(table.rowCount())] == ["run-20260103-090000", NEW, OLD]
    assert table.item(0, 1).text() == "unreadable" and "line 2" in table.item(0, 1).toolTip()
    new = read_run(out / NEW)
    assert [table.item(1, j).text() for j in range(table.columnCount())] == [
        NEW,
        "PlainUNet",
        "2/2",
        f"{new.best_dice():.3f}",
        "-",  # trained in-process: no final evaluation (that is medseg train's)
        "finished",
    ]
    assert runs_list.selected() is None and not runs_list.use_button.isEnabled()

    assert table.viewport().height() >= 3 * table.rowHeight(0)  # every run in view, no blank block below
    three = table.height()
    table.selectRow(0)  # the damaged one: nothing to use, and the reason where the curves would be
    assert runs_list.selected() is None and not runs_list.use_button.isEnabled()
    assert "cannot be read" in runs_list.curves.text() and "line 2" in runs_list.curves.text()
    assert runs_list.select(OLD)
    pixmap = runs_list.curves.pixmap()
    assert pixmap is not None and not pixmap.isNull() and 0 < pixmap.width() <= 420
    assert runs_list.use_button.isEnabled()
    runs_list.use_button.click()
    best = str(out / OLD / "best.medseg")
    assert session.checkpoints == [best]
    assert predict.choice().checkpoints == (best,)  # Predict follows the session
    assert OLD in widget.status.text()

    runs_list.refresh()  # the selection stays on its run
    assert runs_list.selected().name == OLD
    widget.form.out.value = out / "nothing-here"
    assert table.rowCount() == 0 and runs_list.title.text().startswith("No runs yet in ")
    assert table.height() < three  # the table shrinks to its runs

    shutil.copytree(out / OLD, tmp_path / OLD)  # a run whose curves.png was cut short: said, still usable
    png = (tmp_path / OLD / "curves.png").read_bytes()
    (tmp_path / OLD / "curves.png").write_bytes(png[: len(png) // 3])
    widget.form.out.value = tmp_path
    assert runs_list.select(OLD) and runs_list.use_button.isEnabled()
    assert "cannot be read as a picture" in runs_list.curves.text() and runs_list.curves.pixmap().isNull()
    (tmp_path / OLD / "metrics.csv").write_text("epoch,train_loss\n1,0.5\n2,0.4e")
    runs_list.refresh()
    table.selectRow(0)  # a damaged record: the reason, and the checkpoint that is still whole
    assert runs_list.selected() is None and "line 3" in runs_list.curves.text()
    assert (
        f"can still be added in Predict (Add checkpoint...): {tmp_path / OLD / 'best.medseg'}"
        in runs_list.curves.text()
    )
    shutil.copy(out / OLD / "metrics.csv", tmp_path / OLD / "metrics.csv")
    (tmp_path / OLD / "best.medseg" / "config.json").write_text("{")
    runs_list.refresh()
    table.selectRow(0)  # a damaged checkpoint is not offered
    assert "config.json" in runs_list.curves.text() and "can still be added" not in runs_list.curves.text()


def test_a_run_of_the_dock_joins_the_list_with_its_curves_and_final_evaluation(
    make_napari_viewer, qtbot, runs, tmp_path
):
    data, _ = runs
    viewer = make_napari_viewer()
    widget = FinetuneWidget(viewer)
    qtbot.addWidget(widget)
    set_up_finetune(
        widget,
        qtbot,
        RUN,
        data=FOLDER,
        dataset=data,
        out=tmp_path / "runs",
        batch_size=2,
        val_fraction=0.25,
        extra="model: {kwargs: {depth: 2, base_channels: 4, dropout: 0.0}}\ndata: {group_by: stem}\n"
        "precision: fp32\nval_overlays: 0\n",
    )
    assert widget.past_runs.table.rowCount() == 0
    assert widget.start()
    qtbot.waitUntil(lambda: widget.outcome is not None and not widget.running, timeout=RUN)
    assert widget.outcome.kind == "result", widget.status.text()
    run_list = widget.past_runs
    assert run_list.table.rowCount() == 1 and run_list.table.item(0, 0).text() == widget.run_dir.name
    run = read_run(widget.run_dir)
    assert (widget.run_dir / "metrics.csv").is_file() and (widget.run_dir / "curves.png").is_file()
    assert run.evaluation is not None and run.evaluation["meta"]["checkpoints"] == [widget.checkpoint]
    evaluated = run.evaluation["classes"]["foreground"]["dice"]["mean"]
    assert run_list.table.item(0, 4).text() == f"{evaluated:.3f}"
    # the final evaluation's events came before the run's end, and moved nothing the dock shows
    kinds = [e.kind for e in widget.events]
    assert kinds[-1] == "result" and "progress" in kinds[kinds.index("epoch") :]
