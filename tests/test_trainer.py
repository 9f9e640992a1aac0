"""The Trainer's event stream, learning, checkpoints, cancel, failure and OOM recovery (CPU, tiny runs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _train_data import config, kinds, make_disks, one_thread  # noqa: F401 - one_thread is an autouse fixture

from medseg.inference import Predictor
from medseg.jobs import CancelToken
from medseg.models import load_checkpoint
from medseg.training.config import ConfigError, TrainConfig
from medseg.training.events import (
    Cancelled,
    CheckpointSaved,
    EpochEnd,
    OOMRecovered,
    Result,
    Started,
    Step,
    TrainSummary,
    read_event,
)
from medseg.training.trainer import Trainer

TERMINAL = ("result", "cancelled", "error")


@pytest.fixture(scope="module")
def disks(tmp_path_factory):
    return make_disks(tmp_path_factory.mktemp("disks"), n=12)


def test_events_checkpoints_and_config_round_trip(disks, tmp_path):
    cfg = TrainConfig.from_dict(config(disks, tmp_path / "run", epochs=2, val_overlays=2, max_steps_per_epoch=2))
    events = list(Trainer(cfg).run())
    k = kinds(events)
    assert isinstance(events[0], Started) and events[0].detail["n_train"] + events[0].detail["n_val"] == 12
    assert events[0].total == 4  # 2 epochs of 2 steps
    assert sum(x in TERMINAL for x in k) == 1 and isinstance(events[-1], Result), k
    assert k.count("step") == 4 and k.count("epoch") == 2
    steps = [e for e in events if isinstance(e, Step)]
    assert [(s.epoch, s.step, s.global_step) for s in steps] == [(0, 0, 1), (0, 1, 2), (1, 0, 3), (1, 1, 4)]
    assert {(s.total, s.stage) for s in steps} == {(4, "train")}
    assert all(np.isfinite(s.loss) and set(s.terms) == {"bce", "dice"} and s.images_per_s > 0 for s in steps)
    ends = [e for e in events if isinstance(e, EpochEnd)]
    assert {"dice", "iou", "loss", "dice/foreground"} <= set(ends[0].val)
    assert len(ends[0].overlays) == 2 and all(p.endswith(".png") for p in ends[0].overlays)
    from PIL import Image

    assert Image.open(ends[0].overlays[0]).size == (32, 32)
    saved = [e for e in events if isinstance(e, CheckpointSaved)]
    assert {e.tag for e in saved} == {"best", "last"}
    fin = events[-1].value
    assert isinstance(fin, TrainSummary) and fin.epochs_run == 2 and not fin.stopped_early

    # the log holds the same stream; events come back from JSON
    lines = (tmp_path / "run" / "events.jsonl").read_text().splitlines()
    assert [json.loads(x)["event"] for x in lines] == k
    assert read_event(json.loads(lines[1])) == steps[0] and read_event(json.loads(lines[-1])) == events[-1]

    for path in (fin.best_checkpoint, fin.last_checkpoint):
        ck = load_checkpoint(path)
        assert TrainConfig.from_dict(ck.provenance["config"]) == cfg
        data = ck.provenance["data"]
        assert not {i.split("_")[0] for i in data["ids"]} & {i.split("_")[0] for i in data["val_ids"]}
        pred = Predictor(ck, device="cpu").predict(np.zeros((32, 32), np.uint8))
        assert pred.labels.shape == (32, 32)
    assert (tmp_path / "run" / "config.yaml").is_file()
    assert (tmp_path / "run" / "last.medseg" / "train_state.json").is_file()
    assert not (tmp_path / "run" / "best.medseg" / "train_state.json").exists()


def test_validation_split_keeps_groups_apart(disks, tmp_path):
    tr = Trainer(config(disks, tmp_path, data={"val_fraction": 0.5, "split_seed": 3}))
    train = {s.group for s in tr.train_samples}
    val = {s.group for s in tr.val_samples}
    assert train and val and not train & val
    assert len(tr.train_samples) + len(tr.val_samples) == 12
    with pytest.raises(ConfigError, match="at least 2 groups"):
        Trainer(config(disks, tmp_path, data={"group_pattern": r"^(p)"}))  # one group for everything


def test_a_short_run_learns_the_bright_disk(tmp_path):
    root = make_disks(tmp_path / "d", n=12, seed=1)
    cfg = config(root, tmp_path / "run", epochs=15, batch_size=4, loss={"terms": [{"name": "bce"}]}, optim={"lr": 1e-2})
    ends = [e for e in Trainer(cfg).run() if isinstance(e, EpochEnd)]
    first, last = ends[0], ends[-1]
    # measured: train loss 0.57 -> 0.10, validation loss 0.64 -> 0.11, Dice 0 -> 0.94
    assert last.train_loss < 0.4 * first.train_loss, [e.train_loss for e in ends]
    assert last.val["loss"] < 0.5 * first.val["loss"], [e.val["loss"] for e in ends]
    assert first.val["dice"] < 0.5, [e.val["dice"] for e in ends]
    assert last.val["dice"] > 0.8, [e.val["dice"] for e in ends]


def test_invalid_settings_raise_from_the_constructor(disks, tmp_path):
    with pytest.raises(ConfigError, match="multiples of 8"):
        Trainer(config(disks, tmp_path, data={"image_size": [36, 36]}))
    with pytest.raises(ConfigError, match="aux"):
        Trainer(config(disks, tmp_path, loss="seed001_dice_boundary"))
    with pytest.raises(ConfigError, match="sample_ids"):
        Trainer(config(disks, tmp_path, data={"sample_ids": ["p0_s0", "nope"]}))


def test_cancel_stops_after_the_step_and_writes_a_usable_checkpoint(disks, tmp_path):
    cancel = CancelToken()
    events = []
    for e in Trainer(config(disks, tmp_path / "run", epochs=3), cancel=cancel).run():
        events.append(e)
        if isinstance(e, Step) and e.global_step == 2:
            cancel.set()
    k = kinds(events)
    assert k[-2:] == ["checkpoint", "cancelled"] and k.count("step") == 2 and "result" not in k
    c = events[-1]
    assert isinstance(c, Cancelled) and c.done == 2 and c.partial["global_step"] == 2 and c.partial["epoch"] == 0
    assert "cancelled in epoch 1 after step 2" in str(c)
    ck = load_checkpoint(c.partial["checkpoint"])
    assert ck.provenance["training"]["resumable"]
    out = ck.model(torch.zeros(1, 3, 32, 32))
    assert out.shape == (1, 1, 32, 32) and torch.isfinite(out).all()


def test_a_failing_step_raises_logs_failed_and_keeps_the_last_checkpoint(disks, tmp_path, monkeypatch):
    tr = Trainer(config(disks, tmp_path / "run", epochs=3))
    events = []
    run = tr.run()
    for e in run:
        events.append(e)
        if isinstance(e, CheckpointSaved) and e.tag == "last":
            break
    last = tmp_path / "run" / "last.medseg"
    before = {p.name: p.read_bytes() for p in last.iterdir()}

    def broken(*a, **k):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(tr.model, "forward", broken)
    with pytest.raises(RuntimeError, match="injected failure"):
        events.extend(run)
    assert sum(x in TERMINAL for x in kinds(events)) == 0
    logged = read_event(json.loads((tmp_path / "run" / "events.jsonl").read_text().splitlines()[-1]))
    assert logged.kind == "error" and logged.error_type == "RuntimeError" and logged.exit_code == 1
    assert "injected failure" in logged.message and "Traceback" in logged.traceback
    assert {p.name: p.read_bytes() for p in last.iterdir()} == before
    load_checkpoint(last)


def test_a_crash_inside_the_save_leaves_the_previous_checkpoint(disks, tmp_path, monkeypatch):
    import medseg.training.train_state as ts

    tr = Trainer(config(disks, tmp_path / "run", epochs=2))
    run = tr.run()
    for e in run:
        if isinstance(e, CheckpointSaved) and e.tag == "last":
            break
    last = tmp_path / "run" / "last.medseg"
    before = {p.name: p.read_bytes() for p in last.iterdir()}

    def broken_writers(*a, **k):
        writers = real(*a, **k)

        def fail(path):
            raise OSError("disk full (injected)")

        return {**writers, ts.STATE_JSON: fail}

    real = ts.state_writers
    monkeypatch.setattr("medseg.training.trainer_files.state_writers", broken_writers)
    with pytest.raises(OSError, match="disk full"):
        list(run)
    assert {p.name: p.read_bytes() for p in last.iterdir()} == before
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")] == []


def test_oom_halves_the_micro_batch_and_redoes_the_step(disks, tmp_path, monkeypatch):
    tr = Trainer(config(disks, tmp_path / "run", batch_size=4, max_steps_per_epoch=2))
    real = tr.model.forward
    calls = []

    def flaky(x):
        calls.append(x.shape[0])
        if len(calls) == 1 and x.shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        return real(x)

    monkeypatch.setattr(tr.model, "forward", flaky)
    events = list(tr.run())
    k = kinds(events)
    assert k[-1] == "result" and k.index("oom") < k.index("step")
    oom = next(e for e in events if isinstance(e, OOMRecovered))
    assert (oom.micro_batch, oom.accumulate) == (2, 2) and "out of memory" in oom.message
    # the failed forward of 4, then the step redone as 2 + 2, then the next step as 2 + 2
    assert calls[:5] == [4, 2, 2, 2, 2]
    assert len([e for e in events if isinstance(e, Step)]) == 2
    assert load_checkpoint(tmp_path / "run" / "last.medseg").provenance["training"]["global_step"] == 2


def test_an_error_that_is_not_oom_is_not_retried(disks, tmp_path, monkeypatch):
    tr = Trainer(config(disks, tmp_path / "run", batch_size=4, max_steps_per_epoch=1))
    calls = []

    def bad(x):
        calls.append(x.shape[0])
        raise RuntimeError("shape mismatch (injected)")

    monkeypatch.setattr(tr.model, "forward", bad)
    events = []
    with pytest.raises(RuntimeError, match="shape mismatch"):
        events.extend(tr.run())
    assert kinds(events) == ["started"] and calls == [4]
    assert not (tmp_path / "run" / "last.medseg").exists()


def test_early_stopping_and_best_by_the_monitor(disks, tmp_path, monkeypatch):
    dice = iter([0.5, 0.6, 0.55, 0.58, 0.9])

    def fake_validate(*a, **k):
        return {"dice": next(dice), "loss": 1.0}, []

    monkeypatch.setattr("medseg.training.trainer_epochs.validate", fake_validate)
    events = list(Trainer(config(disks, tmp_path, epochs=5, max_steps_per_epoch=1, early_stopping_patience=2)).run())
    fin = events[-1].value
    assert isinstance(fin, TrainSummary) and fin.stopped_early and fin.epochs_run == 4
    assert fin.best_metric == 0.6
    assert [e.epoch for e in events if isinstance(e, CheckpointSaved) and e.tag == "best"] == [0, 1]
    assert load_checkpoint(fin.best_checkpoint).provenance["metrics"]["dice"] == 0.6
