"""TrainingProcess: a real ``medseg train`` child, its event stream, cancel, config errors and crashes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from _train_run import child_env, make_dataset, tiny_config

from medseg.models import load_checkpoint
from medseg.training.config import TrainConfig
from medseg.training.runner import TrainingProcess


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"))


def _collect(proc: TrainingProcess, on_event=None) -> list:
    events = []
    for e in proc.events():
        events.append(e)
        if on_event is not None:
            on_event(proc, e)
    return events


def test_events_arrive_in_order_and_end_with_finished(data, tmp_path):
    cfg = TrainConfig.from_dict(tiny_config(data, tmp_path / "run"))
    with TrainingProcess(cfg, env=child_env()) as proc:
        events = _collect(proc)
    kinds = [e.kind for e in events]
    assert kinds[0] == "started" and kinds[-1] == "result", proc.stderr_tail()
    assert kinds.count("result") == 1 and "error" not in kinds
    steps = [e.global_step for e in events if e.kind == "step"]
    assert steps and steps == sorted(steps) and len(set(steps)) == len(steps)
    epochs = [e.epoch for e in events if e.kind == "epoch"]
    assert len(epochs) == 2 and epochs == sorted(epochs)
    # every step of an epoch comes before that epoch's summary
    last_step_of = {e.epoch: i for i, e in enumerate(events) if e.kind == "step"}
    summary_of = {e.epoch: i for i, e in enumerate(events) if e.kind == "epoch"}
    assert all(last_step_of[k] < summary_of[k] for k in summary_of)
    assert proc.returncode == 0
    assert (tmp_path / "run" / "launch_config.yaml").is_file() and (tmp_path / "run" / "train.log").is_file()
    assert load_checkpoint(events[-1].value.last_checkpoint).spec.arch == "PlainUNet"


def test_cancel_mid_run_yields_cancelled_and_a_loadable_checkpoint(data, tmp_path):
    cfg = TrainConfig.from_dict(tiny_config(data, tmp_path / "run", epochs=500))

    def cancel_after_two_steps(proc, e):
        if e.kind == "step" and e.global_step >= 2 and not proc.cancel_requested:
            proc.cancel(timeout=60)

    with TrainingProcess(cfg, env=child_env()) as proc:
        events = _collect(proc, cancel_after_two_steps)
    assert events[-1].kind == "cancelled", proc.stderr_tail()
    assert events[-1].done >= 2 and events[-1].partial["epoch"] < 500
    assert proc.returncode == 130
    ckpt = load_checkpoint(events[-1].partial["checkpoint"])
    assert ckpt.spec.arch == "PlainUNet" and ckpt.classmap.task == "binary"


def test_config_error_yields_failed_with_the_message(data, tmp_path):
    cfg = TrainConfig.from_dict(tiny_config(data, tmp_path / "run"))
    cfg.epochs, cfg.optim.lr = 0, -1.0  # a dataclass does not validate on assignment; the child must
    with TrainingProcess(cfg, env=child_env()) as proc:
        events = _collect(proc)
    assert [e.kind for e in events] == ["error"]
    assert "epochs: must be >= 1" in events[0].message and "optim.lr: must be > 0" in events[0].message
    assert proc.returncode == 2


def _fake_python(tmp_path: Path, body: str) -> str:
    """A stand-in interpreter that ignores its arguments: the runner must cope with whatever a child does."""
    script = tmp_path / "fake_python"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


STARTED = (
    '{"event": "started", "job": "train", "total": 3, "detail": {"run_dir": "r", "n_train": 6, "n_val": 2, '
    '"device": "cpu", "precision": "fp32", "epochs": 1, "steps_per_epoch": 3}}'
)


@pytest.mark.skipif(os.name == "nt", reason="a POSIX shell script stands in for the interpreter")
def test_garbage_lines_are_skipped_and_a_silent_exit_becomes_failed(tmp_path):
    python = _fake_python(
        tmp_path,
        f"echo 'Loading weights...'\necho '{STARTED}'\necho '{{\"event\": \"bogus\"}}'\n"
        "echo 'something broke' >&2\nexit 3\n",
    )
    cfg = TrainConfig.from_dict(tiny_config(tmp_path / "data", tmp_path / "run"))  # a run never inside its data
    with TrainingProcess(cfg, python=python) as proc:
        events = _collect(proc)
    assert [e.kind for e in events] == ["started", "error"]
    assert events[0].detail["n_train"] == 6
    assert "exited with status 3" in events[1].message and "something broke" in events[1].traceback
    assert proc.returncode == 3


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL")
def test_a_killed_child_yields_failed(data, tmp_path):
    cfg = TrainConfig.from_dict(tiny_config(data, tmp_path / "run", epochs=500))

    def kill_after_first_step(proc, e):
        if e.kind == "step":
            os.kill(proc.pid, 9)

    with TrainingProcess(cfg, env=child_env()) as proc:
        events = _collect(proc, kill_after_first_step)
    assert events[-1].kind == "error" and "killed by SIGKILL" in events[-1].message
    assert [e.kind for e in events].count("error") == 1
    assert proc.returncode == -9
