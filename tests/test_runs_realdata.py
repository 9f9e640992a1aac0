"""Runs side by side on real data: two tiny runs on real CVC-ClinicDB frames compared by ``medseg runs``
(with their final evaluations), and runs on CT volumes (synthetic cases with a validation case: per-class
Dice and HD95 in mm per epoch, the final evaluation in 3-D; the real abdominal CT, one case without
validation). Real data skips cleanly when absent."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml
from _review_data import copy_cvc
from _train_data import one_thread  # noqa: F401 - an autouse fixture
from _train_run import tiny_config
from _volume_train_data import real_dataset, synthetic_dataset, volume_config

from medseg.cli.main import main
from medseg.cli.train_eval import final_evaluation
from medseg.jobs import Result
from medseg.runs import read_metrics, read_run, read_runs
from medseg.training import Trainer

FRAMES = (*range(1, 7), *range(120, 126))  # two videos' frame blocks: one trains, one validates


def test_two_runs_on_real_cvc_frames_side_by_side(cvc_dir, tmp_path, capsys):
    data = copy_cvc(cvc_dir, tmp_path / "cvc", FRAMES)
    runs = tmp_path / "runs"
    for name, loss in (("bce_dice", "seed004_bce_dice"), ("dice", {"terms": [{"name": "dice"}]})):
        cfg = tiny_config(data, runs / name, epochs=2, loss=loss, val_hd95=True, max_steps_per_epoch=3)
        cfg["data"] = {"root": str(data), "val_fraction": 0.5, "image_size": [64, 64]}
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
        assert main(["train", str(tmp_path / f"{name}.yaml")]) == 0
    capsys.readouterr()
    rows = read_metrics(runs / "dice")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(set(r) >= {"val_dice/foreground", "val_hd95/foreground", "val_assd/foreground"} for r in rows)
    out = tmp_path / "compare"
    assert main(["runs", str(runs), "--out", str(out)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert "val Dice foreground" in text[0] and "eval Dice foreground" in text[0]
    assert [line.split()[0] for line in text[2:]] == ["bce_dice", "dice"]
    with open(out / "runs.csv", newline="") as f:
        table = {r["run"]: r for r in csv.DictReader(f)}
    for name in ("bce_dice", "dice"):
        run = read_run(runs / name)
        summary = json.loads((runs / name / "evaluation" / "summary.json").read_text())
        # the frames of the validation block, each at its own 384x288
        with open(runs / name / "evaluation" / "per_sample.csv", newline="") as f:
            evaluated = list(csv.DictReader(f))
        assert len(evaluated) == run.n_val > 0 and summary["meta"]["distance_unit"] == "px"
        evaluated_dice = summary["classes"]["foreground"]["dice"]["mean"]
        assert float(table[name]["eval Dice foreground"]) == pytest.approx(evaluated_dice)
        assert float(table[name]["val Dice foreground"]) == pytest.approx(run.best_dice("foreground"))
        assert table[name]["data"].startswith("cvc (source labels, ")
    assert (out / "runs_curves.png").stat().st_size > 10_000


def test_a_volume_run_records_dice_and_hd95_per_organ_and_its_final_evaluation_in_3d(tmp_path):
    ds = synthetic_dataset(tmp_path / "vol", n_cases=3)
    cfg = volume_config(ds.root, tmp_path / "run", val_hd95=True, epochs=2)
    cfg["data"]["val_fraction"] = 0.34
    trainer = Trainer(cfg, dataset=ds)
    summary = next(e for e in trainer.run() if isinstance(e, Result)).value
    rows = read_metrics(tmp_path / "run")
    organs = list(ds.classmap.names)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(f"val_dice/{o}" in rows[0] and f"val_hd95/{o}" in rows[0] for o in organs)
    shown = []
    result = final_evaluation(trainer, summary, shown.append, None)
    assert result is not None and [m.text for m in shown if m.kind == "message"][0].startswith("final evaluation of ")
    saved = json.loads((tmp_path / "run" / "evaluation" / "summary.json").read_text())
    assert saved["meta"]["distance_unit"] == "mm" and saved["meta"]["samples"] == len(trainer.val_samples) == 1
    assert set(saved["classes"]) == set(organs)
    assert [e.done for e in shown if e.kind == "progress"] == [1]
    run = read_run(tmp_path / "run")
    assert run.classes() == organs and run.evaluation == saved


def test_a_run_on_the_real_ct_without_validation_has_train_loss_curves(ct_mr_dir, tmp_path):
    ds = real_dataset(ct_mr_dir, tmp_path / "ct", "ct")
    list(Trainer(volume_config(ds.root, tmp_path / "runs" / "ct", epochs=2), dataset=ds).run())
    rows = read_metrics(tmp_path / "runs" / "ct")
    assert [list(r) for r in rows] == [["epoch", "train_loss", "lr", "seconds"]] * 2
    assert all(np.isfinite(r["train_loss"]) for r in rows)
    (run,) = read_runs([tmp_path / "runs"])
    assert run.best == {} and run.state == "finished" and (run.n_train, run.n_val) == (1, 0)
    assert (tmp_path / "runs" / "ct" / "curves.png").stat().st_size > 5_000
