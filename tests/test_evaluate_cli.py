"""``medseg evaluate`` end to end on a tiny model trained for two epochs: the run's splits, the files, an
ensemble and TTA, a workspace's current labels, and bad input (exit 2, nothing written)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from _train_data import one_thread  # noqa: F401 - module-scoped autouse fixture
from _train_run import make_dataset, tiny_config

from medseg.cli.main import main
from medseg.datasets.classmap import ClassMap
from medseg.evaluate import read_per_sample
from medseg.jobs import run
from medseg.models.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(dataset folder of 8 discs, the run's best checkpoint, the run's last checkpoint)."""
    from medseg.training.trainer import Trainer

    tmp = tmp_path_factory.mktemp("evaluate")
    data = make_dataset(tmp / "data", n=8)
    trainer = Trainer(tiny_config(data, tmp / "run"))
    run(trainer.run())
    return data, trainer.best_path, trainer.last_path


def _evaluate(capsys, *args) -> tuple[int, str, str]:
    rc = main(["evaluate", *map(str, args), "--quiet", "--device", "cpu"])
    out, err = capsys.readouterr()
    return rc, out, err


def test_val_split_scores_as_validation_did_and_writes_csv_and_summary(trained, tmp_path, capsys):
    data, best, _ = trained
    ck = load_checkpoint(best)
    val_ids = ck.provenance["data"]["val_ids"]
    out = tmp_path / "eval"
    rc, stdout, err = _evaluate(capsys, best, data, "--split", "val", "--out", out, "--json", tmp_path / "s.json")
    assert rc == 0, err
    assert f"{len(val_ids)} sample(s) of {data} (split val)" in stdout
    assert "Dice mean / median" in stdout and "worst samples by Dice" in stdout
    rows = read_per_sample(out / "per_sample.csv")
    assert sorted(r["sample_id"] for r in rows) == sorted(val_ids)
    assert {r["class"] for r in rows} == {"foreground"} and {r["unit"] for r in rows} == {"px"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary == json.loads((tmp_path / "s.json").read_text())
    dice = summary["classes"]["foreground"]["dice"]
    # the images are at the training size, so the Predictor's Dice is the one validation recorded
    assert dice["mean"] == pytest.approx(ck.provenance["metrics"]["dice/foreground"], abs=1e-6)
    assert dice["mean"] == pytest.approx(np.mean([float(r["dice"]) for r in rows]))
    assert summary["meta"]["split"] == "val" and summary["meta"]["labels"] == "the dataset's own masks"
    assert f"{dice['worst'][0][0]} {dice['worst'][0][1]:.3f}" in stdout
    # a second run is refused over the files, then allowed with --overwrite
    rc, _, err = _evaluate(capsys, best, data, "--split", "val", "--out", out)
    assert rc == 2 and "--overwrite" in err
    assert _evaluate(capsys, best, data, "--split", "val", "--out", out, "--overwrite")[0] == 0


def test_train_and_test_splits_come_from_the_checkpoint(trained, tmp_path, capsys):
    data, best, _ = trained
    trained_ids = load_checkpoint(best).provenance["data"]["ids"]
    more = make_dataset(tmp_path / "more", n=10)  # the same 8 discs and two new ones
    rc, stdout, err = _evaluate(capsys, best, more, "--split", "test", "--out", tmp_path / "test")
    assert rc == 0, err
    assert sorted({r["sample_id"] for r in read_per_sample(tmp_path / "test" / "per_sample.csv")}) == [
        "case8",
        "case9",
    ]
    rc, _, err = _evaluate(capsys, best, more, "--split", "train", "--out", tmp_path / "train")
    assert rc == 0, err
    assert sorted(r["sample_id"] for r in read_per_sample(tmp_path / "train" / "per_sample.csv")) == sorted(trained_ids)
    rc, _, err = _evaluate(capsys, best, data, "--split", "test")
    assert rc == 2 and "no sample to evaluate held out from the run" in err


def test_an_ensemble_of_one_model_twice_equals_it_and_tta_is_recorded(trained, tmp_path, capsys):
    data, best, last = trained
    assert _evaluate(capsys, best, data, "--out", tmp_path / "one")[0] == 0
    rc, stdout, err = _evaluate(capsys, best, best, data, "--out", tmp_path / "two")
    assert rc == 0, err
    assert "(ensemble of 2)" in stdout
    one = read_per_sample(tmp_path / "one" / "per_sample.csv")
    two = read_per_sample(tmp_path / "two" / "per_sample.csv")
    assert one == two and len(one) == 8
    rc, stdout, err = _evaluate(capsys, best, last, data, "--tta", "hflip,vflip", "--out", tmp_path / "tta")
    assert rc == 0, err
    meta = json.loads((tmp_path / "tta" / "summary.json").read_text())["meta"]
    assert meta["members"] == 2 and meta["tta"] == ["hflip", "vflip"]
    assert meta["checkpoints"] == [str(best), str(last)]
    assert "TTA hflip+vflip" in stdout


def test_a_workspace_is_scored_against_each_samples_current_revision(trained, tmp_path, capsys):
    from medseg.workspace import Workspace

    data, best, _ = trained
    copy = shutil.copytree(data, tmp_path / "data")
    with Workspace.open(Workspace.create(tmp_path / "data.medseg", copy).root) as ws:
        ids = ws.sample_ids()
        corrected = np.zeros((32, 32), np.uint8)
        corrected[4:12, 4:12] = 1
        rev = ws.save_revision(ids[0], corrected, origin="manual")
        ws.set_status(ids[1], "excluded", reason="motion blur")
    rc, stdout, err = _evaluate(capsys, best, tmp_path / "data.medseg", "--out", tmp_path / "eval")
    assert rc == 0, err
    rows = {r["sample_id"]: r for r in read_per_sample(tmp_path / "eval" / "per_sample.csv")}
    assert ids[1] not in rows and len(rows) == 7  # excluded samples are not scored
    assert rows[ids[0]]["revision"] == str(rev.id) and rows[ids[0]]["labelled_pixels"] == "64"
    meta = json.loads((tmp_path / "eval" / "summary.json").read_text())["meta"]
    assert meta["labels"].startswith("workspace: each sample's current revision")
    assert meta["revisions"][ids[0]] == rev.id
    rc, _, err = _evaluate(capsys, best, tmp_path / "data.medseg", "--labels", "corrected", "--out", tmp_path / "c")
    assert rc == 0, err
    assert [r["sample_id"] for r in read_per_sample(tmp_path / "c" / "per_sample.csv")] == [ids[0]]


def test_a_missing_mask_leaves_its_sample_out_with_a_note(trained, tmp_path, capsys):
    data, best, _ = trained
    copy = shutil.copytree(data, tmp_path / "data")
    (copy / "masks" / "case3.png").unlink()
    main(["evaluate", str(best), str(copy), "--device", "cpu", "--out", str(tmp_path / "eval")])
    _, err = capsys.readouterr()
    assert "1 sample(s) of" in err and "left out as unreadable or unpaired" in err
    ids = {r["sample_id"] for r in read_per_sample(tmp_path / "eval" / "per_sample.csv")}
    assert len(ids) == 7 and "case3" not in ids


def test_bad_input_exits_2_naming_it_and_writes_nothing(trained, tmp_path, capsys):
    data, best, _ = trained
    ck = load_checkpoint(best)
    other = save_checkpoint(
        tmp_path / "tumour.medseg", ck.model, ck.spec, ClassMap.from_names(["tumour"], task="binary"), ck.preprocessing
    )
    out = tmp_path / "out"
    rc, _, err = _evaluate(capsys, other, data, "--out", out)
    assert rc == 2 and str(other) in err and "predicts binary {1: 'tumour'}" in err
    rc, _, err = _evaluate(capsys, tmp_path / "nothing.medseg", data, "--out", out)
    assert rc == 2 and "nothing.medseg: no such checkpoint" in err
    rc, _, err = _evaluate(capsys, best, tmp_path / "no-data", "--out", out)
    assert rc == 2 and "no-data: no such dataset or workspace folder" in err
    rc, _, err = _evaluate(capsys, best, data, "--samples", "case1,case99", "--out", out)
    assert rc == 2 and "1 sample id(s) not in" in err and "case99" in err
    unrecorded = save_checkpoint(tmp_path / "plain.medseg", ck.model, ck.spec, ck.classmap, ck.preprocessing)
    rc, _, err = _evaluate(capsys, unrecorded, data, "--split", "val", "--out", out)
    assert rc == 2 and "records no val split" in err
    rc, _, err = _evaluate(capsys, best, data, "--out", data / "eval")
    assert rc == 2 and "inside the source folder" in err
    assert not out.exists() and not (data / "eval").exists()
