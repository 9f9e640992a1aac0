"""Pseudo-labelling (seed 002): confident predictions on unlabelled images join the training set."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from _train_data import config, disk, make_disks, one_thread  # noqa: F401 - autouse fixture
from PIL import Image

from medseg.jobs import CancelToken
from medseg.training.config import PseudoLabelConfig
from medseg.training.events import EpochEnd, Step
from medseg.training.pseudo import PseudoLabeler, confident_fraction, hard_labels
from medseg.training.trainer import Trainer


def unlabelled(folder, n=4, seed=5):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    truth = {}
    for i in range(n):
        m = disk(rng)
        img = (rng.normal(60, 20, m.shape) + 120 * m).clip(0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"u{i}.png")
        truth[f"pseudo:u{i}.png"] = m
    (folder / "broken.png").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    return truth


def test_confidence_per_task():
    p = torch.tensor([0.95, 0.5, 0.02, 0.9]).view(1, 1, 2, 2)
    assert confident_fraction(p, "binary", 0.9).tolist() == [0.75]
    mc = torch.tensor([[0.9, 0.6], [0.05, 0.3], [0.05, 0.1]]).view(1, 3, 1, 2)
    assert confident_fraction(mc, "multiclass", 0.9).tolist() == [0.5]
    ml = torch.tensor([[0.99, 0.99], [0.01, 0.5]]).view(1, 2, 1, 2)
    assert confident_fraction(ml, "multilabel", 0.9).tolist() == [0.5]  # every channel must be sure
    assert hard_labels(mc, "multiclass").tolist() == [[[0, 0]]]
    assert hard_labels(p, "binary").tolist() == [[[1, 1], [0, 1]]]  # p >= 0.5, as the Predictor
    assert hard_labels(ml, "multilabel").shape == (1, 1, 2, 2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model that has learned the bright disks, and a folder of unlabelled disk images."""
    base = tmp_path_factory.mktemp("pseudo")
    root = make_disks(base / "d", n=12, seed=1)
    truth = unlabelled(base / "u")
    cfg = config(root, base / "run", epochs=15, batch_size=4, loss={"terms": [{"name": "bce"}]})
    tr = Trainer(cfg)
    assert list(tr.run())[-1].kind == "result"
    return tr, base / "u", truth, root


def test_confident_predictions_become_labels(trained):
    tr, folder, truth, _ = trained
    cfg = PseudoLabelConfig(enabled=True, unlabelled_dir=str(folder), prob_threshold=0.8, min_confident_fraction=0.8)
    labeler = PseudoLabeler(cfg, tr.spec, tr.classmap, tr.preprocessing, [32, 32], tr.device)
    assert len(labeler.paths) == 5  # 4 images + the broken one; the .txt is not an image
    items, stats = labeler.label(tr.model)
    assert stats == {"pseudo_added": len(items), "pseudo_candidates": 4, "pseudo_skipped": 1}
    assert len(items) >= 3
    for d in items:
        gt = truth[d.id]
        dice = 2 * (d.label.astype(bool) & gt).sum() / (d.label.astype(bool).sum() + gt.sum())
        assert dice > 0.8 and d.image.shape == (32, 32, 3)
    strict = PseudoLabeler(
        PseudoLabelConfig(enabled=True, unlabelled_dir=str(folder), prob_threshold=1.0, min_confident_fraction=1.0),
        tr.spec,
        tr.classmap,
        tr.preprocessing,
        [32, 32],
        tr.device,
    )
    assert strict.label(tr.model)[0] == []
    capped = PseudoLabeler(
        PseudoLabelConfig(
            enabled=True, unlabelled_dir=str(folder), prob_threshold=0.5, min_confident_fraction=0.0, max_samples=2
        ),
        tr.spec,
        tr.classmap,
        tr.preprocessing,
        [32, 32],
        tr.device,
    )
    assert len(capped.label(tr.model)[0]) == 2


def _pseudo_config(root, folder, out):
    return config(
        root,
        out,
        epochs=3,
        batch_size=2,
        augment="light",
        pseudo={
            "enabled": True,
            "unlabelled_dir": str(folder),
            "start_epoch": 1,
            "prob_threshold": 0.5,
            "min_confident_fraction": 0.0,
        },
    )


def test_the_trainer_adds_pseudo_labels_from_the_start_epoch(trained, tmp_path):
    _, folder, _, root = trained
    events = list(Trainer(_pseudo_config(root, folder, tmp_path / "run")).run())
    assert events[-1].kind == "result"
    ends = [e for e in events if isinstance(e, EpochEnd)]
    assert [e.val["pseudo_added"] for e in ends] == [0, 4, 4]
    assert ends[1].val["pseudo_skipped"] == 1
    steps = [sum(1 for s in events if isinstance(s, Step) and s.epoch == k) for k in range(3)]
    start = events[0]
    assert steps[0] == start.detail["steps_per_epoch"] and steps[1] == steps[2] == (start.detail["n_train"] + 4) // 2


def test_resume_mid_epoch_keeps_the_epochs_pseudo_labels(trained, tmp_path):
    _, folder, _, root = trained
    a = {
        e.global_step: e.loss
        for e in Trainer(_pseudo_config(root, folder, tmp_path / "a")).run()
        if isinstance(e, Step)
    }
    cancel = CancelToken()
    for e in Trainer(_pseudo_config(root, folder, tmp_path / "b"), cancel=cancel).run():
        if isinstance(e, Step) and (e.epoch, e.step) == (1, 2):
            cancel.set()
    torch.manual_seed(99)
    random.seed(99)
    c = list(Trainer(_pseudo_config(root, folder, tmp_path / "b"), resume=tmp_path / "b" / "last.medseg").run())
    resumed = {e.global_step: e.loss for e in c if isinstance(e, Step)}
    assert resumed and c[-1].kind == "result"
    assert resumed == {k: a[k] for k in resumed}
