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
    runs_list = widget.past_runs
    widget.form.out.value = out
    qtbot.waitUntil(lambda: not runs_list.busy, timeout=20000)
    table = runs_list.table
    assert [table.item(i, 0).text() for i in range(table.rowCount())] == ["run-20260103-090000 *", NEW, OLD]
    # a damaged metrics.csv: listed with what it holds, the damage named in its row
    assert (
        table.item(0, 2).text() == "0" and "line 2, column 'epoch': 'x' is not a number" in table.item(0, 1).toolTip()
    )
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
    table.selectRow(0)  # the damaged one: the reason above where the curves would be; nothing to use
    assert runs_list.selected().damaged and not runs_list.use_button.isEnabled()
    assert "line 2" in runs_list.damage.text() and "no whole row is left" in runs_list.damage.text()
    qtbot.waitUntil(lambda: not runs_list.busy, timeout=20000)
    assert "no learning curves yet" in runs_list.curves.text()
    assert runs_list.select(OLD)
    qtbot.waitUntil(lambda: not runs_list.busy, timeout=20000)
    assert not runs_list.damage.isVisibleTo(runs_list)
    pixmap = runs_list.curves.pixmap()
    assert pixmap is not None and not pixmap.isNull() and 0 < pixmap.width() <= 420
    assert runs_list.use_button.isEnabled()
    runs_list.use_button.click()
    best = str(out / OLD / "best.medseg")
    assert session.checkpoints == [best]
    assert predict.choice().checkpoints == (best,)  # Predict follows the session
    assert OLD in widget.status.text()

    runs_list.refresh()  # the selection stays on its run
    qtbot.waitUntil(lambda: not runs_list.busy, timeout=20000)
    assert runs_list.selected().name == OLD and not runs_list.curves.pixmap().isNull()
    widget.form.out.value = out / "nothing-here"
    qtbot.waitUntil(lambda: not runs_list.busy, timeout=20000)
    assert table.rowCount() == 0 and runs_list.title.text().startswith("No runs yet in ")
    assert table.height() < three  # the table shrinks to its runs

    shutil.copytree(out / OLD, tmp_path / OLD)  # a run whose curves.png was cut short: said, still usable
    png = (tmp_path / OLD / "curves.png").read_bytes()
    (tmp_path / OLD / "curves.png").write_bytes(png[: len(png) // 3])
    widget.form.out.value = tmp_path
    qtbot.waitUntil(lambda: not runs_list.busy, timeout=20000)
    assert runs_list.select(OLD) and runs_list.use_button.isEnabled()
    qtbot.waitUntil(lambda: not runs_list.busy, timeout=20000)
    assert "cannot be read as a picture" in runs_list.curves.text() and runs_list.curves.pixmap().isNull()
    (tmp_path / OLD / "metrics.csv").write_text("epoch,train_loss\n1,0.5\n2,0.4e")
    runs_list.refresh()
    qtbot.waitUntil(lambda: not runs_list.busy, timeout=20000)
    # a damaged record: the run is still listed and usable, the damage said in its row
    assert table.item(0, 0).text() == f"{OLD} *" and runs_list.selected().name == OLD
    assert runs_list.use_button.isEnabled() and "line 3 is cut off" in runs_list.damage.text()
    assert "its 1 whole row (epoch 1) is read" in runs_list.damage.text()
    shutil.copy(out / OLD / "metrics.csv", tmp_path / OLD / "metrics.csv")
    (tmp_path / OLD / "evaluation").mkdir()
    (tmp_path / OLD / "evaluation" / "summary.json").write_text('{"classes": {"foreground": {"di')
    runs_list.refresh()
    qtbot.waitUntil(lambda: not runs_list.busy, timeout=20000)
    # a truncated final evaluation: that part only, named; the checkpoint still goes to Predict
    assert table.item(0, 4).text() == "unreadable" and table.item(0, 2).text() == "1/1"
    assert f"{tmp_path / OLD / 'evaluation' / 'summary.json'}: not readable JSON" in runs_list.damage.text()
    assert runs_list.use_selected() == str(tmp_path / OLD / "best.medseg")
    (tmp_path / OLD / "best.medseg" / "config.json").write_text("{")
    runs_list.refresh()
    qtbot.waitUntil(lambda: not runs_list.busy, timeout=20000)
    table.selectRow(0)  # a damaged checkpoint is not offered
    assert table.item(0, 1).text() == "unreadable" and runs_list.selected() is None
    assert "config.json" in runs_list.curves.text() and "can still be added" not in runs_list.curves.text()


def test_the_runs_are_read_in_a_worker_and_the_newest_read_wins(make_napari_viewer, qtbot, runs, monkeypatch):
    _, out = runs
    import threading

    from napari_medseg import _finetune_runs

    threads, release = [], threading.Event()
    read_folder, read_picture = _finetune_runs.read_folder, _finetune_runs.read_picture

    def slow_read(folder):
        threads.append(threading.current_thread())
        if folder == out:
            release.wait(20)  # the read of the first folder ends after the second one's
        return read_folder(folder)

    def picture(path):
        threads.append(threading.current_thread())
        return read_picture(path)

    monkeypatch.setattr(_finetune_runs, "read_folder", slow_read)
    monkeypatch.setattr(_finetune_runs, "read_picture", picture)
    widget = FinetuneWidget(make_napari_viewer())
    qtbot.addWidget(widget)
    runs_list = widget.past_runs
    qtbot.waitUntil(lambda: not runs_list.busy, timeout=20000)
    widget.form.out.value = out
    widget.form.out.value = out / "nothing-here"
    qtbot.waitUntil(lambda: runs_list.title.text().startswith("No runs yet in "), timeout=20000)
    assert runs_list.busy  # the first read is still on its way
    release.set()
    qtbot.waitUntil(lambda: not runs_list.busy, timeout=20000)
    assert runs_list.table.rowCount() == 0 and runs_list.title.text() == f"No runs yet in {out / 'nothing-here'}"
    widget.form.out.value = out
    qtbot.waitUntil(lambda: not runs_list.busy, timeout=20000)
    assert runs_list.select(NEW)
    qtbot.waitUntil(lambda: not runs_list.busy, timeout=20000)
    assert not runs_list.curves.pixmap().isNull()
    assert len(threads) >= 4 and threading.main_thread() not in threads


def test_the_curves_fit_a_short_dock_below_the_list(make_napari_viewer, qtbot, runs):
    _, out = runs
    widget = FinetuneWidget(make_napari_viewer())
    qtbot.addWidget(widget)
    widget.resize(500, 520)  # a laptop screen's dock: the scroll area shows about 400 px
    widget.show()
    qtbot.waitExposed(widget)
    runs_list = widget.past_runs
    widget.form.out.value = out
    qtbot.waitUntil(lambda: not runs_list.busy, timeout=20000)
    assert runs_list.select(OLD)
    qtbot.waitUntil(lambda: not runs_list.busy, timeout=20000)
    shown = widget.body_scroll.viewport().height()
    pixmap = runs_list.curves.pixmap()
    # scrolled to the list's top, the whole picture is in view below its controls
    assert runs_list.curves.y() + pixmap.height() <= shown and pixmap.height() >= 200
    widget.resize(500, 900)  # a taller dock: the picture grows back to its full width
    qtbot.waitUntil(lambda: runs_list.curves.pixmap().width() == 420, timeout=5000)


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
    run_list = widget.past_runs
    qtbot.waitUntil(lambda: not run_list.busy, timeout=20000)
    assert run_list.table.rowCount() == 0
    assert widget.start()
    qtbot.waitUntil(lambda: widget.outcome is not None and not widget.running, timeout=RUN)
    assert widget.outcome.kind == "result", widget.status.text()
    qtbot.waitUntil(lambda: not run_list.busy and run_list.table.rowCount() == 1, timeout=20000)
    assert run_list.table.rowCount() == 1 and run_list.table.item(0, 0).text() == widget.run_dir.name
    run = read_run(widget.run_dir)
    assert (widget.run_dir / "metrics.csv").is_file() and (widget.run_dir / "curves.png").is_file()
    assert run.evaluation is not None and run.evaluation["meta"]["checkpoints"] == [widget.checkpoint]
    evaluated = run.evaluation["classes"]["foreground"]["dice"]["mean"]
    assert run_list.table.item(0, 4).text() == f"{evaluated:.3f}"
    # the final evaluation's events came before the run's end, and moved nothing the dock shows
    kinds = [e.kind for e in widget.events]
    assert kinds[-1] == "result" and "progress" in kinds[kinds.index("epoch") :]
