"""Training runs side by side: each run's metrics.csv and curves.png, ``medseg runs`` on two tiny runs,
the label revision a workspace run records, TensorBoard as an option."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _train_data import one_thread  # noqa: F401 - an autouse fixture
from _train_run import child_env, make_dataset, tiny_config
from PIL import Image

from medseg.cli.main import main
from medseg.errors import ConfigError, MetricsDamaged, RunFolderError
from medseg.jobs import Result
from medseg.runs import append_epoch, read_metrics, read_run, read_runs
from medseg.runs.files import epoch_row, write_metrics
from medseg.runs.table import find_runs
from medseg.training import Trainer
from medseg.training.events import EpochEnd, Step


def train(cfg: dict) -> list:
    return list(Trainer(cfg).run())


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two tiny runs of one dataset: a (2 epochs, lr 0.01) and b (3 epochs, lr 0.003, wider), with events."""
    root = tmp_path_factory.mktemp("runs")
    data = make_dataset(root / "data", n=8)
    events = {
        "a": train(tiny_config(data, root / "runs" / "a", epochs=2)),
        "b": train(tiny_config(data, root / "runs" / "b", epochs=3, optim__lr=0.003, model__kwargs__base_channels=6)),
    }
    return root, events


def test_metrics_csv_has_a_row_per_epoch_with_the_epoch_events_values(two_runs):
    root, events = two_runs
    for name, evs in events.items():
        rows = read_metrics(root / "runs" / name)
        epochs = [e for e in evs if isinstance(e, EpochEnd)]
        assert [r["epoch"] for r in rows] == [e.epoch + 1 for e in epochs]
        header = (root / "runs" / name / "metrics.csv").read_text().splitlines()[0].split(",")
        assert header == [
            "epoch",
            "train_loss",
            "val_loss",
            "val_dice",
            "val_dice/foreground",
            "val_iou",
            "val_iou/foreground",
            "lr",
            "seconds",
        ]
        for row, e in zip(rows, epochs):
            assert row["train_loss"] == pytest.approx(e.train_loss, rel=1e-12)
            assert row["val_loss"] == pytest.approx(e.val["loss"], rel=1e-12)
            assert row["val_dice/foreground"] == pytest.approx(e.val["dice/foreground"], rel=1e-12)
            assert row["val_iou"] == pytest.approx(e.val["iou"], rel=1e-12)
            assert row["seconds"] == pytest.approx(e.seconds, rel=1e-12)
            last_step = [s for s in evs if isinstance(s, Step) and s.epoch == e.epoch][-1]
            assert row["lr"] == pytest.approx(last_step.lr)
    assert read_metrics(root / "runs" / "b")[0]["lr"] == pytest.approx(0.003)


def test_curves_png_is_drawn_at_the_end_of_each_run(two_runs):
    root, _ = two_runs
    for name in ("a", "b"):
        with Image.open(root / "runs" / name / "curves.png") as im:
            assert im.format == "PNG" and im.width > 600 and im.height > 200
            assert np.asarray(im.convert("L")).std() > 10  # lines and text, not a blank picture


def test_the_loss_panel_turns_logarithmic_when_an_early_loss_dwarfs_the_rest(tmp_path, monkeypatch):
    from medseg.runs import curves

    drawn = []
    monkeypatch.setattr(curves, "_save", lambda fig, path: drawn.append(fig) or path)

    def rows(val_losses):
        return [
            {"epoch": i + 1, "train_loss": 0.8 - 0.1 * i, "val_loss": v, "val_dice/polyp": 0.2, "lr": 0.001}
            for i, v in enumerate(val_losses)
        ]

    curves.plot_run(rows([900.0, 30.0, 1.2, 0.6]), tmp_path / "a.png")  # the demo run's first epoch
    curves.plot_run(rows([1.1, 0.9, 0.7, 0.6]), tmp_path / "b.png")
    assert [fig.axes[0].get_yscale() for fig in drawn] == ["log", "linear"]
    assert drawn[0].axes[0].get_title() == "loss (log scale)"


def test_a_repeated_epoch_replaces_its_row_and_later_ones(tmp_path):
    """A run resumed from the checkpoint of epoch 2 repeats epoch 3: one row per epoch stays."""
    write_metrics(tmp_path, [epoch_row(k, 1.0 - k / 10, {"dice": 0.1 * k}, 0.01, 1.0) for k in range(4)])
    append_epoch(tmp_path, epoch_row(2, 0.5, {"dice": 0.9, "dice/polyp": 0.9}, 0.02, 2.0))
    rows = read_metrics(tmp_path)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[-1]["val_dice"] == 0.9 and rows[-1]["lr"] == 0.02 and rows[-1]["val_dice/polyp"] == 0.9
    assert rows[0]["val_dice/polyp"] is None  # a column an earlier row lacks is an empty cell
    append_epoch(tmp_path, epoch_row(3, 0.4, {"dice": float("nan")}, None, 1.0))
    assert read_metrics(tmp_path)[-1]["val_dice"] is None and read_metrics(tmp_path)[-1]["lr"] is None


def test_the_run_summary_comes_from_the_run_folder(two_runs):
    root, events = two_runs
    a, b = read_runs([root / "runs"])
    assert (a.name, b.name) == ("a", "b")
    assert a.model == "PlainUNet" and a.state == "finished"
    assert (a.epochs_done, a.epochs_planned, b.epochs_done, b.epochs_planned) == (2, 2, 3, 3)
    assert (a.n_train, a.n_val) == (6, 2)
    assert a.data.startswith("data (source labels, ")
    for run in (a, b):
        summary = next(e for e in events[run.name] if isinstance(e, Result)).value
        best = [e for e in events[run.name] if isinstance(e, EpochEnd) and e.val["dice"] == summary.best_metric]
        assert run.best_dice("foreground") == pytest.approx(summary.best_metric)
        assert run.best_epoch == best[0].epoch + 1
        assert run.checkpoint == root / "runs" / run.name / "best.medseg"
        assert run.seconds == pytest.approx(sum(e.seconds for e in events[run.name] if isinstance(e, EpochEnd)))


def test_medseg_runs_prints_the_table_and_writes_csv_and_overlaid_curves(two_runs, tmp_path, capsys):
    root, _ = two_runs
    out = tmp_path / "compare"
    assert main(["runs", str(root / "runs" / "a"), str(root / "runs" / "b"), "--out", str(out)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].split()[:3] == ["run", "model", "data"] and "val Dice foreground" in text[0]
    runs = {r.name: r for r in read_runs([root / "runs"])}
    for line, name in zip(text[2:], ("a", "b")):
        assert line.split()[0] == name and line.rstrip().endswith(f"{runs[name].best_dice('foreground'):.3f}")
        assert f"{runs[name].epochs_done}/{runs[name].epochs_planned}" in line.split()
    with open(out / "runs.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["run"] for r in table] == ["a", "b"]
    assert float(table[1]["val Dice foreground"]) == pytest.approx(runs["b"].best_dice("foreground"), rel=1e-12)
    assert table[0]["checkpoint"] == str(root / "runs" / "a" / "best.medseg")
    with Image.open(out / "runs_curves.png") as im:
        assert im.format == "PNG" and im.width > 600
    # a second time: the files are medseg's own, replaced only when asked
    assert main(["runs", str(root / "runs"), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["runs", str(root / "runs"), "--out", str(out), "--overwrite", "--json", str(tmp_path / "t.json")]) == 0
    records = json.loads((tmp_path / "t.json").read_text())["runs"]
    assert [r["run"] for r in records] == ["a", "b"] and records[0]["model"] == "PlainUNet"


def test_medseg_runs_reads_no_torch(two_runs):
    root, _ = two_runs
    code = (
        "import sys; from medseg.cli.main import main; rc = main(['runs', sys.argv[1]]); "
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', rc)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(root / "runs")], capture_output=True, text=True, env=child_env(), timeout=120
    )
    assert out.stdout.split()[-2:] == ["NO-TORCH", "0"], out.stderr


def test_medseg_runs_names_what_it_cannot_read(two_runs, tmp_path, capsys):
    root, _ = two_runs
    assert main(["runs", str(tmp_path / "nothing")]) == 2
    assert f"{tmp_path / 'nothing'}: no such folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["runs", str(tmp_path / "empty")]) == 2
    assert "holds no training run" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.csv").write_text("epoch,train_loss\n1,0.5\n2,oops\n")
    with pytest.raises(MetricsDamaged, match="line 3, column 'train_loss': 'oops' is not a number"):
        read_metrics(bad)
    assert main(["runs", str(bad)]) == 0  # listed with what it still holds, the damage said below the table
    text = capsys.readouterr().out
    assert text.splitlines()[2].split()[:2] == ["bad", "*"]
    assert f"* bad: {bad / 'metrics.csv'}: line 3, column 'train_loss': 'oops' is not a number; " in text
    assert "its 1 whole row (epoch 1) is read" in text
    with pytest.raises(RunFolderError, match="config.json: not readable JSON"):
        broken = tmp_path / "broken"
        (broken / "best.medseg").mkdir(parents=True)
        (broken / "best.medseg" / "config.json").write_text("{")
        read_run(broken)


def test_a_workspace_run_records_its_label_revision_before_and_after_a_correction(tmp_path):
    from medseg.workspace import Workspace

    data = make_dataset(tmp_path / "data", n=8)
    ws_root = tmp_path / "data.medseg"
    Workspace.create(ws_root, data, group_by="stem").close()
    runs = tmp_path / "data-runs"
    train(tiny_config(ws_root, runs / "before", epochs=1, data__group_by="auto"))
    with Workspace.open(ws_root) as ws:
        sample = ws.samples()[0].id
        mask = np.asarray(ws.current_mask(sample)).copy()
        mask[:4, :4] = 1 - mask[:4, :4]
        new = ws.save_revision(sample, mask, origin="manual", note="test correction")
    train(tiny_config(ws_root, runs / "after", epochs=1, data__group_by="auto"))
    after, before = read_runs([runs])  # sorted by name
    assert (after.name, before.name) == ("after", "before")
    assert before.data.startswith("data.medseg r") and after.data.startswith(f"data.medseg r{new.id} ")
    assert before.data != after.data
    labels = json.loads((runs / "after" / "best.medseg" / "config.json").read_text())["provenance"]["data"]["labels"]
    assert labels["kind"] == "workspace" and labels["max_revision"] == new.id


def test_tensorboard_asked_without_the_package_is_a_clear_error(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    data = make_dataset(tmp_path / "data", n=4)
    with pytest.raises(ConfigError, match=r"tensorboard: true needs the 'tensorboard' package.*pip install"):
        Trainer(tiny_config(data, tmp_path / "run", tensorboard=True))
    cfg = tmp_path / "c.yaml"
    import yaml

    cfg.write_text(yaml.safe_dump(tiny_config(data, tmp_path / "run2")))
    assert main(["train", str(cfg), "--tensorboard"]) == 2
    assert "needs the 'tensorboard' package" in capsys.readouterr().err


def test_tensorboard_event_files_hold_the_epoch_metrics(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = make_dataset(tmp_path / "data", n=4)
    evs = train(tiny_config(data, tmp_path / "run", epochs=2, tensorboard=True))
    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    acc.Reload()
    dice = [s.value for s in acc.Scalars("val/dice/foreground")]
    assert dice == pytest.approx([e.val["dice/foreground"] for e in evs if isinstance(e, EpochEnd)], rel=1e-6)
    assert len(acc.Scalars("train/loss_step")) == sum(isinstance(e, Step) for e in evs)


def test_medseg_train_ends_with_the_final_evaluation_of_its_best_checkpoint(tmp_path, capsys):
    import yaml

    data = make_dataset(tmp_path / "data", n=8)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(data, tmp_path / "runs" / "r1", epochs=2)))
    assert main(["train", str(cfg)]) == 0
    err = capsys.readouterr().err
    assert "final evaluation of " in err and "Dice mean / median" in err
    run = tmp_path / "runs" / "r1"
    ckpt = json.loads((run / "best.medseg" / "config.json").read_text())["provenance"]
    with open(run / "evaluation" / "per_sample.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["sample_id"] for r in rows) == sorted(ckpt["data"]["val_ids"])
    summary = json.loads((run / "evaluation" / "summary.json").read_text())
    assert summary["meta"]["checkpoints"] == [str(run / "best.medseg")]
    dice = summary["classes"]["foreground"]["dice"]["mean"]
    assert dice == pytest.approx(np.mean([float(r["dice"]) for r in rows]))
    # the images are at the training size: the Predictor's Dice is the epoch-end validation's
    assert dice == pytest.approx(ckpt["metrics"]["dice/foreground"], abs=1e-6)
    assert main(["runs", str(tmp_path / "runs")]) == 0
    header, _, line = capsys.readouterr().out.splitlines()[:3]
    assert header.rstrip().endswith("eval Dice foreground") and line.rstrip().endswith(f"{dice:.3f}")
    # without a validation split, or when asked, there is none
    assert main(["train", str(cfg), "--out", str(tmp_path / "runs" / "r2"), "--no-evaluation"]) == 0
    assert main(["train", str(cfg), "--out", str(tmp_path / "runs" / "r3"), "--set", "data.val_fraction=0"]) == 0
    assert "no validation split: the run has no final evaluation" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "r2" / "evaluation").exists()
    assert not (tmp_path / "runs" / "r3" / "evaluation").exists()


def test_a_folder_with_only_another_jobs_event_log_is_no_run(tmp_path, capsys):
    other = tmp_path / "qc-log"
    other.mkdir()
    (other / "events.jsonl").write_text('{"event": "started", "job": "qc", "total": 4}\n')
    assert main(["runs", str(tmp_path)]) == 2
    assert "holds no training run" in capsys.readouterr().err
    (other / "config.yaml").write_text("epochs: 4\n")  # what the trainer writes before its first event
    assert find_runs([tmp_path]) == [other]


def test_how_a_run_ended_comes_from_the_last_event_of_its_log(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.yaml").write_text("epochs: 4\n")
    log = run / "events.jsonl"
    log.write_text('{"event": "started", "job": "train", "total": 4}\n{"event": "step", "done": 1, "total": 4}\n')
    assert read_run(run).state == "unfinished"  # still running, or killed
    with open(log, "a") as f:
        f.write('{"event": "cancelled", "message": "stopped", "done": 1, "total": 4}\n')
    assert read_run(run).state == "cancelled"
    with open(log, "a") as f:
        f.write('{"event": "error", "message": "boom", "error_type": "RuntimeError", "exit_code": 1}\n{"trunc')
    assert read_run(run).state == "failed"  # a torn last line is skipped


def _copy_run(two_runs, name: str, to) -> Path:
    root, _ = two_runs
    return Path(shutil.copytree(root / "runs" / name, to / name))


def test_a_cut_off_metrics_csv_names_its_line_and_what_is_missing_and_keeps_its_whole_rows(two_runs, tmp_path, capsys):
    run = _copy_run(two_runs, "b", tmp_path)
    path = run / "metrics.csv"
    whole = path.read_text()
    last = whole.rindex("\n", 0, len(whole) - 1) + 1
    path.write_text(whole[: last + 9])  # cut in the middle of epoch 3's row
    with pytest.raises(MetricsDamaged) as e:
        read_metrics(run)
    message = str(e.value)
    assert message.startswith(f"{path}: line 4 is cut off (the file ends in it, without a line end; no cell for ")
    assert "'lr', 'seconds'" in message and message.endswith("its 2 whole rows (epochs 1-2) are read")
    assert [r["epoch"] for r in e.value.rows] == [1, 2]
    summary = read_run(run)
    assert [r["epoch"] for r in summary.rows] == [1, 2] and summary.damaged == {"metrics": message}
    assert (summary.epochs_done, summary.epochs_planned) == (3, 3)  # last.medseg says 3 were done
    assert summary.checkpoint == run / "best.medseg" and summary.state == "finished"

    # a row missing cells in the middle (hand-edited, or a bad copy): named, the rows around it kept
    lines = whole.splitlines(keepends=True)
    path.write_text("".join([lines[0], lines[1], "2,0.5\n", lines[3]]))
    with pytest.raises(MetricsDamaged, match=r"line 3 is cut short: no cell for 'val_loss', ") as e:
        read_metrics(run)
    assert [r["epoch"] for r in e.value.rows] == [1, 3]

    # the header itself cut short: nothing to read but still a run, its checkpoint usable
    path.write_text(whole[:20])
    summary = read_run(run)
    assert summary.rows == [] and summary.checkpoint == run / "best.medseg"
    assert (
        summary.damaged["metrics"]
        == f"{path}: line 1, its header, is cut off (the file ends in it, without a line end): no epoch rows"
    )
    assert main(["runs", str(run), "--out", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[2].split()[:2] == ["b", "*"] and f"* b: {path}: line 1, its header, is cut off" in out
    with open(tmp_path / "cmp" / "runs.csv", newline="") as f:
        (row,) = csv.DictReader(f)
    assert row["damaged"] == summary.damaged["metrics"] and row["checkpoint"] == str(run / "best.medseg")


def test_a_resumed_run_over_a_damaged_metrics_csv_keeps_the_damaged_file_aside(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,train_loss,lr,seconds\n1,0.5,0.1,2.0\n2,0.4")
    append_epoch(tmp_path, epoch_row(1, 0.45, {}, 0.1, 2.0))
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1, 2]
    assert (tmp_path / "metrics.csv.damaged").read_text().endswith("\n2,0.4")  # nothing lost


def test_a_truncated_evaluation_summary_is_noted_and_the_run_stays_usable(two_runs, tmp_path, capsys):
    run = _copy_run(two_runs, "a", tmp_path)
    summary_json = run / "evaluation" / "summary.json"
    summary_json.parent.mkdir()
    summary_json.write_text('{"classes": {"foreground": {"dice": {"mean": 0.8')
    summary = read_run(run)
    assert summary.evaluation is None and summary.checkpoint == run / "best.medseg"
    assert summary.damaged["evaluation"].startswith(f"{summary_json}: not readable JSON")
    assert "the final evaluation cannot be shown" in summary.damaged["evaluation"]
    assert summary.best_dice() is not None and len(summary.rows) == 2 and set(summary.damaged) == {"evaluation"}
    assert main(["runs", str(tmp_path), "--json", str(tmp_path / "t.json")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[2].split()[:2] == ["a", "*"] and f"* a: {summary_json}: not readable JSON" in out
    (record,) = json.loads((tmp_path / "t.json").read_text())["runs"]
    assert record["checkpoint"] == str(run / "best.medseg") and record["damaged"] == summary.damaged
