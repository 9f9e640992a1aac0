"""Resuming continues exactly: same losses, metrics and weights as an uninterrupted run (CPU, deterministic)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from _train_data import config, make_disks, one_thread  # noqa: F401 - one_thread is an autouse fixture

from medseg.jobs import CancelToken
from medseg.models import load_checkpoint
from medseg.training.events import CheckpointSaved, EpochEnd, Started, Step
from medseg.training.trainer import Trainer

MODELS = {
    "PlainUNet": {"arch": "PlainUNet", "kwargs": {"depth": 3, "base_channels": 8, "dropout": 0.2}},
    "Unet-resnet18": {"arch": "Unet", "encoder": "resnet18", "kwargs": {"encoder_depth": 3}},
}


def settings(root, out, model):
    # augmentation, dropout, mixup, warm-up + cosine and Adam state all have to come back exactly
    return config(
        root,
        out,
        model=MODELS[model],
        epochs=3,
        batch_size=2,
        max_steps_per_epoch=3,
        augment="light",
        mix={"mixup_alpha": 0.4, "p": 0.5},
        optim={"name": "adamw", "lr": 3e-3, "scheduler": "cosine", "warmup_epochs": 0.5},
        deterministic=True,
    )


def losses(events):
    return {e.global_step: e.loss for e in events if isinstance(e, Step)}


def epoch_ends(events):
    return {e.epoch: (e.train_loss, e.val) for e in events if isinstance(e, EpochEnd)}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_disks(tmp_path_factory.mktemp("resume"), n=12)


@pytest.mark.parametrize(
    ("model", "stop"), [("PlainUNet", "mid-epoch"), ("PlainUNet", "epoch-end"), ("Unet-resnet18", "mid-epoch")]
)
def test_resume_equals_an_uninterrupted_run(data, tmp_path, model, stop):
    a = list(Trainer(settings(data, tmp_path / "a", model)).run())
    assert a[-1].kind == "result" and len(losses(a)) == 9

    cancel = CancelToken()
    b = []
    for e in Trainer(settings(data, tmp_path / "b", model), cancel=cancel).run():
        b.append(e)
        if stop == "mid-epoch" and isinstance(e, Step) and (e.epoch, e.step) == (1, 1):
            cancel.set()  # epoch 1 (0-based), after its second step: mid-epoch
        if stop == "epoch-end" and isinstance(e, CheckpointSaved) and e.tag == "last" and e.epoch == 0:
            cancel.set()
    assert b[-1].kind == "cancelled"
    done = max(losses(b))
    assert done == (5 if stop == "mid-epoch" else 3)

    # a fresh process would start from other RNG states: make sure nothing depends on them
    torch.manual_seed(12345)
    np.random.seed(12345)
    random.seed(12345)
    c = list(Trainer(settings(data, tmp_path / "b", model), resume=tmp_path / "b" / "last.medseg").run())
    assert isinstance(c[0], Started) and c[0].detail["resumed_from"].endswith("last.medseg")
    assert c[-1].kind == "result"
    resumed = losses(c)
    assert min(resumed) == done + 1
    assert {s: losses(a)[s] for s in resumed} == resumed  # exact float equality, step by step
    assert losses(b) == {s: losses(a)[s] for s in losses(b)}
    for epoch, (train_loss, val) in epoch_ends(c).items():
        assert (train_loss, val) == epoch_ends(a)[epoch]
    wa = load_checkpoint(tmp_path / "a" / "last.medseg").model.state_dict()
    wc = load_checkpoint(tmp_path / "b" / "last.medseg").model.state_dict()
    assert all(torch.equal(wa[k], wc[k]) for k in wa)


def test_resume_from_a_checkpoint_without_state_is_refused(data, tmp_path):
    from medseg.errors import CheckpointError

    events = list(Trainer(settings(data, tmp_path / "a", "PlainUNet")).run())
    assert events[-1].kind == "result"
    with pytest.raises(CheckpointError, match="no resumable training state"):
        Trainer(settings(data, tmp_path / "b", "PlainUNet"), resume=tmp_path / "a" / "best.medseg")
    # a tampered state file is caught by its checksum
    state = tmp_path / "a" / "last.medseg" / "train_state.safetensors"
    raw = bytearray(state.read_bytes())
    raw[-1] ^= 0xFF
    state.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="sha256"):
        Trainer(settings(data, tmp_path / "b", "PlainUNet"), resume=tmp_path / "a" / "last.medseg")
