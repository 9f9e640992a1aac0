"""``medseg train``: config from YAML + flags, the JSON event stream, exit codes, cancel by signal."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from _train_run import make_dataset, tiny_config, write_config

from medseg.cli import build_parser, main
from medseg.cli.train import build_config
from medseg.training.config import ConfigError
from medseg.training.events import read_event as event_from_dict


def _args(*argv):
    return build_parser().parse_args(["train", *argv])


def test_flags_and_set_override_the_yaml(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", tiny_config(tmp_path / "data", tmp_path / "run"))
    c = build_config(
        _args(
            str(cfg),
            "--epochs",
            "5",
            "--lr",
            "0.5",
            "--batch-size",
            "3",
            "--arch",
            "Unet",
            "--encoder",
            "resnet18",
            "--root",
            "/elsewhere",
            "--out",
            "/runs/x",
            "--seed",
            "9",
            "--precision",
            "bf16",
            "--device",
            "cuda:1",
            "--set",
            "optim.name=sgd",
            "--set",
            "data.image_size=[64, 96]",
            "--set",
            "model.kwargs.depth=3",
            "--set",
            "epochs=99",
            "--set",
            "grad_clip=null",
        )
    )
    assert (c.epochs, c.optim.lr, c.batch_size, c.model.arch, c.model.encoder) == (5, 0.5, 3, "Unet", "resnet18")
    assert (c.data.root, c.out_dir, c.seed, c.precision, c.device) == ("/elsewhere", "/runs/x", 9, "bf16", "cuda:1")
    assert c.optim.name == "sgd" and c.data.image_size == [64, 96] and c.grad_clip is None
    assert c.model.kwargs == {"depth": 3, "base_channels": 4, "dropout": 0.0}  # merged, not replaced
    assert c.data.val_fraction == 0.25  # untouched fields keep the YAML's values


def test_every_problem_is_listed_at_once(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", tiny_config(tmp_path / "data", tmp_path / "run", epochs=0))
    with pytest.raises(ConfigError) as e:
        build_config(_args(str(cfg), "--set", "optim.nmae=adam", "--set", "novalue", "--lr", "-1"))
    msg = str(e.value)
    assert "epochs: must be >= 1" in msg and "optim.lr: must be > 0" in msg
    assert "did you mean 'name'" in msg and "'novalue': expected KEY=VALUE" in msg
    assert str(cfg) in msg
    with pytest.raises(ConfigError, match="loss is 'seed004_bce_dice' in the config, not a mapping"):
        build_config(_args(str(cfg), "--set", "loss.terms=[]"))
    with pytest.raises(ConfigError, match="cannot read the file"):
        build_config(_args(str(tmp_path / "missing.yaml")))


def test_invalid_config_exits_2_with_the_message(tmp_path, capfd):
    cfg = write_config(tmp_path / "c.yaml", tiny_config(tmp_path / "data", tmp_path / "run", batch_size=0))
    assert main(["train", str(cfg)]) == 2
    out, err = capfd.readouterr()
    assert out == "" and "batch_size: must be >= 1" in err


def test_jsonl_mode_reports_a_config_error_as_one_failed_event(tmp_path, capfd):
    cfg = write_config(tmp_path / "c.yaml", tiny_config(tmp_path / "data", tmp_path / "run", optim__name="rmsprop"))
    assert main(["train", str(cfg), "--events", "jsonl"]) == 2
    out, _ = capfd.readouterr()
    lines = out.splitlines()
    assert len(lines) == 1
    event = event_from_dict(json.loads(lines[0]))
    assert event.kind == "error" and "optim.name: 'rmsprop' is not one of adam, adamw, sgd" in event.message
    assert event.exit_code == 2


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data"))


def _noisy_run(monkeypatch, then=None):
    """Wrap Trainer.run so that stray output (Python and C level) and, optionally, a signal come mid-run."""
    from medseg.training import trainer as trainer_mod

    original = trainer_mod.Trainer.run

    def run(self):
        print("stray print from a library")
        os.write(1, b"stray C-level write to fd 1\n")
        for event in original(self):
            yield event
            if then is not None and event.kind == "step":
                then()

    monkeypatch.setattr(trainer_mod.Trainer, "run", run)


def test_jsonl_stdout_holds_only_events_and_ends_with_finished(data, tmp_path, capfd, monkeypatch):
    _noisy_run(monkeypatch)
    cfg = write_config(tmp_path / "c.yaml", tiny_config(data, tmp_path / "run"))
    code = main(["train", str(cfg), "--events", "jsonl", "--epochs", "1", "--weights-digest", str(tmp_path / "d")])
    out, err = capfd.readouterr()
    events = [event_from_dict(json.loads(line)) for line in out.splitlines()]
    assert code == 0 and events[0].kind == "started" and events[-1].kind == "result"
    assert [e.epoch for e in events if e.kind == "epoch"] == [0] and events[-1].value.epochs_run == 1  # --epochs 1
    assert "stray print" in err and "stray C-level" in err
    from medseg.models import load_checkpoint
    from medseg.training.distributed import parameter_digest

    digest = (tmp_path / "d" / "rank0.sha256").read_text().strip()
    assert digest == parameter_digest(load_checkpoint(events[-1].value.last_checkpoint).model)


def test_progress_mode_writes_nothing_on_stdout(data, tmp_path, capfd):
    cfg = write_config(tmp_path / "c.yaml", tiny_config(data, tmp_path / "run"))
    assert main(["train", str(cfg), "--out", str(tmp_path / "other")]) == 0
    out, err = capfd.readouterr()
    assert out == ""
    assert "epoch 2/2: train loss" in err and "finished after 2 epoch(s)" in err
    assert (tmp_path / "other" / "last.medseg").is_dir() and not (tmp_path / "run").exists()


def test_sigint_cancels_after_the_step_and_exits_130(data, tmp_path, capfd, monkeypatch):
    sent = []

    def interrupt():
        if not sent:
            sent.append(1)
            os.kill(os.getpid(), signal.SIGINT)

    _noisy_run(monkeypatch, then=interrupt)
    before = signal.getsignal(signal.SIGINT)
    cfg = write_config(tmp_path / "c.yaml", tiny_config(data, tmp_path / "run", epochs=200))
    code = main(["train", str(cfg), "--events", "jsonl"])
    out, err = capfd.readouterr()
    events = [event_from_dict(json.loads(line)) for line in out.splitlines()]
    assert code == 130 and events[-1].kind == "cancelled", err[-2000:]
    assert events[-1].partial["epoch"] < 200 and Path(events[-1].partial["checkpoint"]).is_dir()
    assert "SIGINT: stopping after the current step" in err
    assert signal.getsignal(signal.SIGINT) is before  # the CLI leaves the process's handlers as it found them

    monkeypatch.undo()
    code = main(["train", str(cfg), "--events", "jsonl", "--resume", str(tmp_path / "run"), "--epochs", "1"])
    out, err = capfd.readouterr()
    resumed = [event_from_dict(json.loads(line)) for line in out.splitlines()]
    assert code == 0 and resumed[0].detail["resumed_from"] == str(tmp_path / "run" / "last.medseg"), out[-3000:]
    steps = [e.global_step for e in resumed if e.kind == "step"]
    assert steps[0] == events[-1].done + 1  # continues after the cancelled step, not from scratch
    assert resumed[-1].kind == "result" and resumed[-1].value.epochs_run == 1
