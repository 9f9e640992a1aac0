"""Ranking by one model fitted to every label (medseg rank --fit-all) on a synthetic set with planted errors."""

from __future__ import annotations

import json

import pytest
import yaml
from _rank_data import make_planted, tiny_rank_config
from _train_data import one_thread  # noqa: F401  (autouse: one torch thread)

from medseg.cli.rank import FIT_ALL_CONFIG
from medseg.errors import Cancelled
from medseg.jobs import CancelToken, Result
from medseg.qc import reliability, review_queue
from medseg.qc.fit_all import MAX_STEPS_PER_EPOCH, MODELS, fit_config, iter_rank_fit
from medseg.qc.ranking import FoldScored, FoldStarted, RankResult
from medseg.training.events import Step
from medseg.workspace import Workspace

CONFIG = tiny_rank_config(epochs=12)


def new_workspace(tmp_path):
    root, planted = make_planted(tmp_path / "data")
    return Workspace.create(tmp_path / "ws", root, group_by="stem"), planted


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fit")
    ws, planted = new_workspace(tmp)
    events = list(iter_rank_fit(ws, CONFIG))
    yield ws, planted, events
    ws.close()


def test_labels_the_model_cannot_fit_come_first(fitted):
    ws, planted, _ = fitted
    scores = ws.scores("fit-all")
    order = sorted(scores, key=scores.get)
    assert set(order[: len(planted)]) == set(planted), [(s, round(scores[s], 3)) for s in order[:6]]
    queue = review_queue(ws, method="fit-all")
    assert {i.sample_id for i in queue[: len(planted)]} == set(planted)
    assert all("model fitted to every label" in i.reason for i in queue[:4]), queue[0].reason


def test_one_model_trains_on_and_scores_every_sample_and_says_it_is_biased(fitted):
    ws, _, events = fitted
    started = [e for e in events if isinstance(e, FoldStarted)]
    assert len(started) == 1 and started[0].n_train == started[0].n_score == 24 and started[0].folds == 1
    assert any(isinstance(e, Step) for e in events)
    scored = [e for e in events if isinstance(e, FoldScored)]
    assert len(scored) == 1 and scored[0].val_dice is None and scored[0].n_scored == 24
    done = events[-1]
    assert isinstance(done, Result) and isinstance(done.value, RankResult)
    assert done.value.biased and done.value.folds_done == 1 and len(done.value.scores) == 24
    for sid, d in ws.score_details("fit-all").items():
        assert d["biased"] and not d["out_of_fold"] and d["folds"] == 1
        assert d["revision"] == ws.sample(sid).head_revision
    kinds = sorted(r.kind for r in ws.model_runs())
    assert kinds == ["rank"] * MODELS + ["train"] * MODELS  # each member's training and scoring recorded


def test_two_models_of_the_recipe_each_with_its_seed_score_by_their_mean_probabilities(fitted):
    """The default ranks with MODELS trainings of one recipe (seeds 0, 1): each sample's stored prediction is
    the mean of what each member predicts alone, and its details name both checkpoints."""
    import numpy as np

    from medseg.inference import Predictor
    from medseg.models.checkpoint import load_checkpoint
    from medseg.qc.prediction_store import load_prediction
    from medseg.training.workspace_source import open_workspace_dataset

    ws, _, events = fitted
    assert MODELS == 2
    details = ws.score_details("fit-all")
    models = next(iter(details.values()))["models"]
    assert len(models) == 2 and models[0] != models[1] and all(d["models"] == models for d in details.values())
    assert [load_checkpoint(m).provenance.get("config", {}).get("seed") for m in models] == [0, 1]
    stages = {e.stage for e in events if isinstance(e, Step)}
    assert {"fold 1/1 model 1/2 train", "fold 1/1 model 2/2 train"} <= stages
    alone = [Predictor(m, backend="torch") for m in models]
    assert not np.allclose(*(a.predict(np.zeros((32, 32, 3), np.uint8)).probs for a in alone))  # two trainings
    samples = {s.id: s for s in open_workspace_dataset(ws.root).samples}
    for sid in sorted(details)[:4]:
        image = samples[sid].load_image()
        mean = np.mean([a.predict(image).probs for a in alone], axis=0)
        stored, run = load_prediction(ws.root, "fit-all", sid)
        assert run == details[sid]["run"]
        np.testing.assert_allclose(stored, mean, atol=0.5 / 255 + 1e-6)  # stored as uint8


def test_one_model_when_asked_and_none_refused(tmp_path, capsys):
    from medseg.cli import main
    from medseg.cli.rank import describe_fit
    from medseg.errors import RankingError

    ws, planted = new_workspace(tmp_path)
    with ws:
        list(iter_rank_fit(ws, tiny_rank_config(epochs=2), models=1))
        details = next(iter(ws.score_details("fit-all").values()))
        assert "models" not in details and sorted(r.kind for r in ws.model_runs()) == ["rank", "train"]
        assert describe_fit(ws.score_details("fit-all")).startswith("The model fitted to every label agrees")
        with pytest.raises(RankingError, match="at least one model"):
            list(iter_rank_fit(ws, CONFIG, models=0))
    assert main(["rank", str(tmp_path / "ws"), "--models", "0", "--quiet"]) == 2
    assert "at least one model" in capsys.readouterr().err
    assert main(["rank", str(tmp_path / "ws"), "--folds", "3", "--models", "2", "--quiet"]) == 2
    assert "--models is for the fitted ranking" in capsys.readouterr().err


def test_its_weight_in_the_queue_is_measured_on_planted_copies(fitted):
    ws, _, _ = fitted
    cal = reliability.calibration(ws.root, "fit-all")
    assert cal is not None and cal.model == "fit-all" and cal.n_pairs >= reliability.MIN_PAIRS
    assert "fit-all" in cal.auroc and 0.0 <= cal.auroc["fit-all"] <= 1.0


def test_fit_config_passes_over_the_data_without_validation():
    cfg = fit_config({"epochs": 3, "max_steps_per_epoch": 16, "data": {"val_fraction": 0.2, "image_size": [8, 8]}})
    assert cfg["data"] == {"val_fraction": 0.0, "image_size": [8, 8]}
    # medseg rank's default config and the ranking agree on the step bound (60 epochs within 2,400 steps)
    assert cfg["max_steps_per_epoch"] == MAX_STEPS_PER_EPOCH == FIT_ALL_CONFIG["max_steps_per_epoch"] == 40
    assert cfg["epochs"] == 3 and fit_config({})["epochs"] == 60


def test_cancel_stores_nothing(tmp_path):
    ws, _ = new_workspace(tmp_path)
    token = CancelToken()
    with ws, pytest.raises(Cancelled) as info:
        for event in iter_rank_fit(ws, CONFIG, cancel=token):
            if isinstance(event, Step):
                token.set()
        assert "fit-all" not in ws.score_methods()
    assert info.value.partial is not None and info.value.partial.scores == {}


def test_cli_fit_all(fitted, tmp_path, capsys):
    from medseg.cli import main

    ws, planted, _ = fitted
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    args = ["rank", str(ws.root), "--fit-all", "--config", str(cfg), "--method", "cli-fit", "--top", "4", "--quiet"]
    code = main([*args, "--json", str(tmp_path / "q.json")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert {line.split()[1] for line in out.splitlines()[1:5]} == set(planted)
    assert "The mean of the 2 models fitted to every label agrees with them at median Dice" in err
    rows = json.loads((tmp_path / "q.json").read_text())
    assert rows[0]["method"] == "cli-fit" and rows[0]["fold"] == 0
    assert main([*args[:3], "--checkpoint", str(tmp_path / "x.medseg")]) == 2
    assert "not both" in capsys.readouterr().err


def test_cli_ranks_with_fit_all_by_default_and_refuses_two_ways(fitted, tmp_path, capsys):
    from medseg.cli import main
    from medseg.qc.queue import default_method

    ws, planted, _ = fitted
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    before = set(ws.score_methods())
    code = main(["rank", str(ws.root), "--config", str(cfg), "--top", "4", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert set(ws.score_methods()) == before  # stored again under fit-all, nothing else
    assert "fitted to every label" in err and {line.split()[1] for line in out.splitlines()[1:5]} == set(planted)
    assert default_method(["oof-k5", "fit-all", "outline-fit"]) == "fit-all"
    assert default_method(["oof-k5", "outline-fit"]) == "oof-k5"
    assert main(["rank", str(ws.root), "--fit-all", "--folds", "3"]) == 2
    assert "--fit-all and --folds are different ways to rank" in capsys.readouterr().err


def test_channels_last_training_follows_the_same_path(tmp_path):
    """The fitted model trains in NHWC (``channels_last``, faster on the CPU): the same losses step by step as
    NCHW within float rounding, its weights NHWC while training, its checkpoint an ordinary one that predicts
    as the NCHW run's does."""
    import numpy as np
    import torch
    from PIL import Image

    from medseg.inference import Predictor
    from medseg.training import Trainer
    from medseg.training.config import TrainConfig

    root, _ = make_planted(tmp_path / "data", n=8)
    base = {**tiny_rank_config(epochs=2, batch_size=2), "data": {**CONFIG["data"], "root": str(root)}}
    assert TrainConfig.from_dict(base).channels_last is False  # other callers keep NCHW
    losses, probs = {}, {}
    for cl in (False, True):
        cfg = TrainConfig.from_dict({**base, "out_dir": str(tmp_path / f"cl{cl}"), "channels_last": cl})
        trainer = Trainer(cfg)
        conv = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last) is cl
        events = list(trainer.run())
        losses[cl] = [e.loss for e in events if isinstance(e, Step)]
        ckpt = next(e.value.checkpoint for e in events if isinstance(e, Result))
        image = np.asarray(Image.open(root / "images" / "s00.png"))
        probs[cl] = Predictor(ckpt, device="cpu").predict(image).probs
    assert len(losses[True]) == len(losses[False]) > 2
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(probs[True], probs[False], atol=1e-2)


def test_init_from_starts_the_fitted_model_from_a_related_checkpoint(fitted, tmp_path):
    """``medseg rank --init-from``: the fitted model starts from another model of the same recipe (README: a
    model fitted to related data) and is stored and calibrated like any; one of another width stores nothing."""
    from medseg.errors import RankingError
    from medseg.models.checkpoint import load_checkpoint

    ws, planted, events = fitted
    start = next(e for e in events if isinstance(e, FoldScored)).checkpoint
    out = list(iter_rank_fit(ws, tiny_rank_config(epochs=1), method="warm", init_from=start, runs_dir=tmp_path / "r"))
    (scored,) = [e for e in out if isinstance(e, FoldScored)]
    source = load_checkpoint(scored.checkpoint).provenance["training"]["model_source"]
    assert source.startswith("fine-tuned from") and str(start) in source
    scores = ws.scores("warm")
    assert len(scores) == 24 and reliability.calibration(ws.root, "warm") is not None
    # one epoch from the fitted model still ranks the planted errors first (one epoch from scratch cannot)
    assert set(sorted(scores, key=scores.get)[: len(planted)]) == set(planted)
    wider = tiny_rank_config(epochs=1, model__kwargs__base_channels=16)
    with pytest.raises(RankingError, match=r"PlainUNet .*base_channels': 16"):
        list(iter_rank_fit(ws, wider, method="wrong-arch", init_from=start, runs_dir=tmp_path / "w"))
    assert ws.scores("wrong-arch") == {}


def test_cli_init_from_names_the_checkpoint_the_model_started_from(fitted, tmp_path, capsys):
    from medseg.cli import main

    ws, _, events = fitted
    start = next(e for e in events if isinstance(e, FoldScored)).checkpoint
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump(tiny_rank_config(epochs=1)))
    args = ["rank", str(ws.root), "--config", str(cfg), "--method", "cli-warm", "--top", "2", "--quiet"]
    assert main([*args, "--init-from", str(start)]) == 0
    err = capsys.readouterr().err
    assert f"The mean of the 2 models fitted to every label (started from {start}) agrees with them at median" in err
