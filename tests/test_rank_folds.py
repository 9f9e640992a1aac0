"""Fold models of the out-of-fold ranking: checkpoints chosen on an inner validation split, fold Dice
reported everywhere, --init-from / --encoder-weights, and the bad inputs that stop a ranking before its first fold."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from _rank_data import make_planted, tiny_rank_config
from _train_data import one_thread  # noqa: F401, E402  (autouse: one torch thread)
from PIL import Image

from medseg.errors import RankingError
from medseg.jobs import Result
from medseg.models.checkpoint import load_checkpoint
from medseg.qc.oof import iter_rank_oof
from medseg.qc.ranking import FoldScored, RankResult, describe_fold_dice, iter_score_checkpoint
from medseg.training.events import EpochEnd
from medseg.workspace import Workspace

CONFIG = tiny_rank_config(epochs=3)


def new_workspace(tmp_path, edit=None, n=24):
    root, _ = make_planted(tmp_path / "data", n=n)
    if edit is not None:
        for path in sorted((root / "masks").glob("*.png")):
            Image.fromarray(edit(path.stem, np.asarray(Image.open(path)))).save(path)
    return Workspace.create(tmp_path / "ws", root, group_by="stem")


@pytest.fixture(scope="module")
def ranked(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("folds")
    ws = new_workspace(tmp)
    events = list(iter_rank_oof(ws, CONFIG, folds=3))
    yield ws, events
    ws.close()


def test_fold_dice_from_the_inner_validation_split(ranked):
    ws, events = ranked
    done = events[-1].value
    folds = [e for e in events if isinstance(e, FoldScored)]
    assert [f.fold for f in folds] == [0, 1, 2]
    assert done.fold_dice == {f.fold: f.val_dice for f in folds}
    details = ws.score_details("oof-k3")
    # the validation Dice of each fold's best epoch, from the epochs' own validation
    ends = [e for e in events if isinstance(e, EpochEnd)]
    per_fold = [ends[k * 3 : (k + 1) * 3] for k in range(3)]
    for f in folds:
        dices = [e.val["dice"] for e in per_fold[f.fold]]
        assert f.val_dice == pytest.approx(max(dices))
        assert f.checkpoint.endswith("best.medseg")
        ck = load_checkpoint(f.checkpoint)
        data = ck.provenance["data"]
        held = {sid for sid, d in details.items() if d["fold"] == f.fold}
        # the inner validation split comes from the fold's training samples, never its held-out ones
        assert data["val_ids"] and not set(data["val_ids"]) & held and not set(data["ids"]) & held
        assert not set(data["val_ids"]) & set(data["ids"])
        assert ck.provenance["metrics"]["monitor"] == "dice"
    for d in details.values():
        assert d["fold_dice"] == done.fold_dice[d["fold"]]
    line = describe_fold_dice(done)
    assert "fold models' validation Dice" in line and f"{folds[0].val_dice:.2f}" in line


def test_checkpoint_chosen_by_validation_not_the_last_epoch(tmp_path, monkeypatch):
    """Validation Dice scripted to peak at epoch 1 of 4: the model scored is epoch 1's."""
    import medseg.training.trainer_epochs as loop

    script = [0.2, 0.8, 0.4, 0.1]
    real = loop.validate

    def scripted(*args, **kwargs):
        metrics, overlays = real(*args, **kwargs)
        return {**metrics, "dice": script[kwargs["epoch"]]}, overlays

    monkeypatch.setattr(loop, "validate", scripted)
    ws = new_workspace(tmp_path)
    with ws:
        events = list(iter_rank_oof(ws, tiny_rank_config(epochs=4), folds=2))
        folds = [e for e in events if isinstance(e, FoldScored)]
        assert [f.val_dice for f in folds] == [0.8, 0.8]
        for f in folds:
            assert load_checkpoint(f.checkpoint).provenance["training"]["epoch"] == 1
        assert {d["best_epoch"] for d in ws.score_details("oof-k2").values()} == {1}


def test_single_checkpoint_reports_its_validation_dice(ranked):
    ws, events = ranked
    fold = next(e for e in events if isinstance(e, FoldScored))
    end = list(iter_score_checkpoint(ws, fold.checkpoint, device="cpu", method="one"))[-1].value
    assert end.fold_dice == {0: pytest.approx(fold.val_dice)}
    assert describe_fold_dice(end).startswith("the model's validation Dice")
    weak = RankResult("m", {}, False, 2, {0: 0.0, 1: 0.1})
    assert "learnt little" in describe_fold_dice(weak) and describe_fold_dice(RankResult("m")) == ""


def test_init_from_starts_every_fold_from_the_checkpoint(ranked, tmp_path):
    ws, events = ranked
    start = next(e for e in events if isinstance(e, FoldScored)).checkpoint
    out = list(iter_rank_oof(ws, CONFIG, folds=3, method="warm", init_from=start, runs_dir=tmp_path / "runs"))
    assert isinstance(out[-1], Result) and len(out[-1].value.fold_dice) == 3
    for f in (e for e in out if isinstance(e, FoldScored)):
        assert load_checkpoint(f.checkpoint).provenance["training"]["model_source"].startswith("fine-tuned from")


def test_init_from_of_another_architecture_stores_nothing(ranked, tmp_path):
    ws, events = ranked
    start = next(e for e in events if isinstance(e, FoldScored)).checkpoint
    wider = tiny_rank_config(epochs=1, model__kwargs__base_channels=16)
    with pytest.raises(RankingError, match=r"PlainUNet .*base_channels': 16") as e:
        list(iter_rank_oof(ws, wider, folds=3, method="wrong-arch", init_from=start))
    assert str(start) in str(e.value)
    smp = tiny_rank_config(epochs=1, model={"arch": "Unet", "encoder": "resnet18"})
    with pytest.raises(RankingError, match=r"checkpoint is a PlainUNet.*fold models are a Unet \(resnet18\)"):
        list(iter_rank_oof(ws, smp, folds=3, method="wrong-arch", init_from=start))
    assert ws.scores("wrong-arch") == {}
    with pytest.raises(RankingError, match="cannot load"):
        list(iter_rank_oof(ws, CONFIG, folds=3, method="wrong-arch", init_from=tmp_path / "none.medseg"))


def test_init_from_of_other_classes_exits_2(ranked, tmp_path, capsys):
    """The fold models' architecture with 3 classes (multiclass) instead of the workspace's one: exit 2."""
    import dataclasses

    from medseg.classmap import ClassMap
    from medseg.cli import main
    from medseg.models import create_model
    from medseg.models.checkpoint import save_checkpoint

    ws, events = ranked
    ck = load_checkpoint(next(e for e in events if isinstance(e, FoldScored)).checkpoint)
    classes = ClassMap.from_names(["polyp", "tool"], task="multiclass")
    spec = dataclasses.replace(ck.spec, classes=classes.num_classes, task="multiclass")
    other = save_checkpoint(tmp_path / "three.medseg", create_model(spec), spec, classes, ck.preprocessing)
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    args = ["rank", str(ws.root), "--folds", "3", "--config", str(cfg), "--method", "three", "--quiet"]
    assert main([*args, "--init-from", str(other)]) == 2
    err = capsys.readouterr().err
    assert "--init-from" in err and "3 output channel(s) for a multiclass task" in err and "'tool'" in err
    assert "1 output channel(s) for a binary task" in err
    assert ws.scores("three") == {} and not (ws.root / "runs" / "three").exists()


def test_encoder_weights_checked_before_training(ranked, tmp_path):
    ws, _ = ranked
    with pytest.raises(RankingError, match="no such file"):
        list(iter_rank_oof(ws, CONFIG, folds=3, method="ew", encoder_weights=tmp_path / "enc.safetensors"))
    (tmp_path / "enc.safetensors").write_bytes(b"x")
    with pytest.raises(RankingError, match="PlainUNet has no pretrained encoder"):
        list(iter_rank_oof(ws, CONFIG, folds=3, method="ew", encoder_weights=tmp_path / "enc.safetensors"))
    assert ws.scores("ew") == {}


@pytest.mark.parametrize(
    "edit, folds, message",
    [
        (lambda sid, m: np.zeros_like(m), 3, "all 24 trainable masks are empty"),
        (lambda sid, m: np.full_like(m, 255), 3, "single class present"),
        # one sample keeps its object: the other folds' held-out parts have none, its own fold's training part none
        (lambda sid, m: m if sid == "s05" else np.zeros_like(m), 3, "has foreground"),
    ],
)
def test_bad_masks_stop_before_the_first_fold(tmp_path, capsys, edit, folds, message):
    from medseg.cli import main

    ws = new_workspace(tmp_path, edit)
    ws.close()
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump(tiny_rank_config(epochs=1)))
    code = main(["rank", str(tmp_path / "ws"), "--folds", str(folds), "--config", str(cfg), "--quiet"])
    assert code == 2 and message in capsys.readouterr().err
    with Workspace.open(tmp_path / "ws") as w:
        assert w.scores(f"oof-k{folds}") == {} and not (w.root / "runs").exists()


def test_cli_prints_and_writes_fold_dice(ranked, tmp_path, capsys):
    from medseg.cli import main

    ws, _ = ranked
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    args = ["rank", str(ws.root), "--folds", "3", "--config", str(cfg), "--method", "cli"]
    assert main([*args, "--json", str(tmp_path / "q.json"), "--quiet"]) == 0
    err = capsys.readouterr().err
    done = ws.score_details("cli")
    dice = {d["fold"]: d["fold_dice"] for d in done.values()}
    for k in range(3):
        assert f"fold {k + 1}/3: validation Dice {dice[k]:.3f}" in err
    assert "Fold models' validation Dice" in err
    rows = json.loads((tmp_path / "q.json").read_text())
    assert all(r["fold_dice"] == dice[r["fold"]] for r in rows) and len(rows) == 24
