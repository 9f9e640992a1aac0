"""Every task and loss recipe runs end to end: multiclass, multilabel, mixup / cutmix, boundary and HD losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _train_data import config, make_disks, make_palette, make_uw, one_thread  # noqa: F401 - autouse fixture

from medseg.inference import Predictor
from medseg.models import load_checkpoint
from medseg.training import trainer_steps
from medseg.training.events import EpochEnd, Step
from medseg.training.trainer import Trainer


@pytest.fixture(scope="module")
def disks(tmp_path_factory):
    return make_disks(tmp_path_factory.mktemp("tasks"), n=12)


def _finished(events):
    assert events[-1].kind == "result", events[-1]
    return events


def test_multiclass_palette_run(tmp_path):
    root = make_palette(tmp_path / "pal", n=8)
    events = _finished(
        list(
            Trainer(
                config(
                    root, tmp_path / "run", loss={"terms": [{"name": "ce"}, {"name": "dice"}]}, epochs=2, val_overlays=1
                )
            ).run()
        )
    )
    end = [e for e in events if isinstance(e, EpochEnd)][-1]
    ck = load_checkpoint(events[-1].value.last_checkpoint)
    assert {f"dice/{n}" for n in ck.classmap.names} <= set(end.val) and "dice/background" not in end.val
    assert len(ck.classmap.names) == 2
    assert ck.spec.classes == 3 and ck.classmap.task == "multiclass"
    pred = Predictor(ck, device="cpu").predict(np.zeros((32, 32, 4), np.uint8))
    assert pred.probs.shape == (3, 32, 32)


def test_multilabel_uw_run_with_hd95(tmp_path):
    root = make_uw(tmp_path / "uw", n_cases=4, slices=2)
    cfg = config(
        root,
        tmp_path / "run",
        data={"group_pattern": None, "channels": 1},
        loss="seed004_bce_tversky",
        epochs=1,
        val_hd95=True,
        monitor="hd95",
    )
    events = _finished(list(Trainer(cfg).run()))
    start = events[0]
    assert start.detail["n_train"] + start.detail["n_val"] == 8
    end = next(e for e in events if isinstance(e, EpochEnd))
    assert {"dice/large_bowel", "dice/small_bowel", "dice/stomach", "hd95"} <= set(end.val)
    ck = load_checkpoint(events[-1].value.last_checkpoint)
    assert ck.spec.task == "multilabel" and ck.spec.classes == 3 and ck.preprocessing.channels == 1
    groups = {i.split("_")[0] for i in ck.provenance["data"]["ids"]}
    assert groups and not groups & {i.split("_")[0] for i in ck.provenance["data"]["val_ids"]}


@pytest.mark.parametrize(
    "mix",
    [
        {"mixup_alpha": 0.4, "p": 1.0},
        {"cutmix_alpha": 1.0, "p": 1.0},
        {"mixup_alpha": 0.4, "cutmix_alpha": 1.0, "p": 1.0},
    ],
)
def test_mixup_and_cutmix_run_and_change_the_loss(disks, tmp_path, monkeypatch, mix):
    used = []
    real_mix = trainer_steps.StepRunner._mix

    def spy(self, *a):
        out = real_mix(self, *a)
        used.append(out[-1])
        return out

    monkeypatch.setattr(trainer_steps.StepRunner, "_mix", spy)
    base = [e.loss for e in Trainer(config(disks, tmp_path / "a", max_steps_per_epoch=2)).run() if isinstance(e, Step)]
    mixed = [
        e for e in Trainer(config(disks, tmp_path / "b", max_steps_per_epoch=2, mix=mix)).run() if isinstance(e, Step)
    ]
    assert len(mixed) == 2 and all(math.isfinite(e.loss) for e in mixed)
    kinds_used = set(used[2:])
    expected = {k for k in ("mixup", "cutmix") if mix.get(f"{k}_alpha", 0) > 0}
    assert kinds_used <= expected and kinds_used and None not in kinds_used
    assert [e.loss for e in mixed] != base


def test_mixing_is_a_function_of_the_step():
    runner = trainer_steps.StepRunner.__new__(trainer_steps.StepRunner)
    from medseg.training.config import MixConfig

    runner.mix, runner.seed = MixConfig(mixup_alpha=0.4, p=1.0), 0
    x = torch.rand(4, 1, 8, 8)
    t = {"target": (torch.rand(4, 1, 8, 8) > 0.5).float()}
    a, b = runner._mix(x, t, 7), runner._mix(x, t, 7)
    assert torch.equal(a[0], b[0]) and a[3] == b[3]
    assert not torch.equal(runner._mix(x, t, 8)[0], a[0])


@pytest.mark.parametrize(
    "loss",
    [
        "seed001_dice_boundary",
        {"terms": [{"name": "dice"}, {"name": "hausdorff_dt", "weight": 0.1}]},
        {
            "terms": [{"name": "dice"}, {"name": "boundary"}],
            "schedule": {"region": "dice", "boundary": "boundary", "start": 1.0, "floor": 0.5, "step": 0.25},
        },
    ],
)
def test_distance_losses_get_maps_from_the_data_pipeline(disks, tmp_path, monkeypatch, loss):
    aux = isinstance(loss, str)
    tr = Trainer(
        config(
            disks,
            tmp_path,
            loss=loss,
            epochs=2,
            max_steps_per_epoch=2,
            model={"aux": aux},
            mix={"cutmix_alpha": 1.0, "p": 0.5},
        )
    )
    # the boundary loss takes its maps from the batch; the HD loss computes its fields in the step
    # (it needs the prediction's distance field there anyway), so it asks for none
    assert tr.train_data.dist_maps == tr.val_data.dist_maps == tr.loss.needs_dist_maps
    assert tr.loss.needs_dist_maps == ("boundary" in str(loss))
    seen = []
    real = tr.loss.forward

    def spy(logits, target, *, dist_maps=None, aux_logits=None):
        ok = dist_maps is None if not tr.loss.needs_dist_maps else dist_maps.shape == logits.shape
        seen.append((ok, aux_logits is not None))
        return real(logits, target, dist_maps=dist_maps, aux_logits=aux_logits)

    monkeypatch.setattr(tr.loss, "forward", spy)
    events = _finished(list(tr.run()))
    assert seen and all(ok for ok, _ in seen) and all(has_aux == aux for _, has_aux in seen)
    steps = [e for e in events if isinstance(e, Step)]
    assert all(math.isfinite(s.loss) for s in steps)
    if aux:
        assert "aux" in steps[0].terms
    if isinstance(loss, dict) and "schedule" in loss:
        assert tr.loss.current_weights() == {"dice": 0.75, "boundary": 0.25}  # set for epoch 1


def test_reduced_precision_runs_on_the_cpu(disks, tmp_path):
    for precision in ("bf16", "fp16"):  # CPU autocast; fp16 also goes through the GradScaler
        tr = Trainer(config(disks, tmp_path / precision, precision=precision, max_steps_per_epoch=1))
        assert tr.scaler.is_enabled() == (precision == "fp16")
        events = _finished(list(tr.run()))
        assert events[0].detail["precision"] == precision
        assert all(math.isfinite(e.loss) for e in events if isinstance(e, Step))
