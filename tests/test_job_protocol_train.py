"""QC, label-quality ranking and training as jobs of the one protocol (medseg.jobs): each driven to its end
through ``drive`` (Started, Progress..., Result with the right value), and each cancelled mid-way by its token
set after the first Progress (last event Cancelled, and what it keeps: QC nothing, ranking the completed folds,
training its last good checkpoint)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _rank_data import make_planted, tiny_rank_config
from _train_data import config, make_disks, one_thread  # noqa: F401 - one_thread is an autouse fixture

from medseg.errors import Cancelled
from medseg.jobs import CancelToken, Progress, Result, Started, drive
from medseg.qc import QCReport, run_qc
from medseg.qc.oof import iter_rank_oof
from medseg.qc.ranking import FoldScored, RankResult, SampleScored, iter_score_checkpoint
from medseg.training.events import CheckpointSaved, Step, TrainSummary
from medseg.training.trainer import Trainer
from medseg.workspace import Workspace
from tests._qc_data import natural, rect_mask, write_dataset

RANK = tiny_rank_config(epochs=1, data__image_size=[32, 32], model__kwargs__base_channels=4)


def _drive(job, token=None, stop_after_first_progress=False):
    events = []
    for event in drive(job, token):
        events.append(event)
        if stop_after_first_progress and isinstance(event, Progress) and token is not None:
            token.set()
    return events


def _shape(events) -> list[str]:
    """The protocol's order: Started first, then Progress (and domain events), one end event last."""
    kinds = [
        "started"
        if isinstance(e, Started)
        else "progress"
        if isinstance(e, Progress)
        else "result"
        if isinstance(e, Result)
        else "cancelled"
        if isinstance(e, Cancelled)
        else "other"
        for e in events
    ]
    assert kinds[0] == "started" and kinds[-1] in ("result", "cancelled")
    assert kinds.count("started") == 1 and kinds.count("result") + kinds.count("cancelled") == 1
    return kinds


# ------------------------------------------------------------------------------------------------ QC
@pytest.fixture
def qc_workspace(tmp_path):
    speckled = rect_mask(64, (10, 40, 10, 40))
    speckled[50, 50:55] = 255
    root = write_dataset(
        tmp_path / "ds",
        {
            f"s{k}": (natural(name), speckled if k % 2 else rect_mask(64))
            for k, name in enumerate(["astronaut", "coffee", "chelsea", "camera"])
        },
    )
    with Workspace.create(tmp_path / "ws", root) as ws:
        yield ws


def test_qc_runs_to_its_report_and_a_cancel_stores_nothing(qc_workspace):
    ws = qc_workspace
    events = _drive(run_qc(ws, "specks,holes,exact_duplicate", workers=1))
    kinds = _shape(events)
    assert kinds[-1] == "result" and "progress" in kinds
    progress = [e for e in events if isinstance(e, Progress)]
    samples = [e for e in progress if e.stage == "samples"]
    assert samples[-1].done == samples[-1].total == 4 and [e.item for e in samples[1:]] == ["s0", "s1", "s2", "s3"]
    assert [(e.stage, e.done, e.total, e.item) for e in progress[len(samples) :]] == [
        ("dataset-wide checks", 0, 1, None),
        ("dataset-wide checks", 1, 1, "exact_duplicate"),
    ]
    report = events[-1].value
    assert isinstance(report, QCReport) and report.n_samples == 4
    stored = {(f.sample_id, f.check) for f in ws.findings(source="qc")}
    assert stored == {("s1", "specks"), ("s3", "specks")}

    token = CancelToken()
    events = _drive(run_qc(ws, "specks,holes,exact_duplicate,mask_values", workers=1), token, True)
    assert _shape(events)[-1] == "cancelled"
    end = events[-1]
    assert "QC cancelled" in str(end) and "no findings were written" in str(end)
    assert not any(isinstance(e, Result) for e in events)
    # nothing stored by the cancelled run: the first run's findings stay as they were
    assert {(f.sample_id, f.check) for f in ws.findings(source="qc")} == stored


# ------------------------------------------------------------------------------------------- ranking
@pytest.fixture
def rank_workspace(tmp_path):
    root, planted = make_planted(tmp_path / "data", n=8, size=32)
    with Workspace.create(tmp_path / "ws", root, group_by="stem") as ws:
        yield ws


def test_out_of_fold_ranking_runs_to_its_scores(rank_workspace):
    ws = rank_workspace
    events = _drive(iter_rank_oof(ws, RANK, folds=2))
    assert _shape(events)[-1] == "result"
    steps = [e for e in events if isinstance(e, Step)]
    assert {e.stage for e in steps} == {"fold 1/2 train", "fold 2/2 train"}
    scored = [e for e in events if isinstance(e, SampleScored)]
    assert len(scored) == 8 and {e.stage for e in scored} == {"fold 1/2 score", "fold 2/2 score"}
    result = events[-1].value
    assert isinstance(result, RankResult) and result.method == "oof-k2" and not result.biased
    assert result.folds_done == 2 and set(result.scores) == set(ws.sample_ids())
    assert ws.scores("oof-k2") == pytest.approx(result.scores)

    checkpoint = next(e.checkpoint for e in events if isinstance(e, FoldScored))
    events = _drive(iter_score_checkpoint(ws, checkpoint, device="cpu"))
    assert _shape(events)[-1] == "result"
    assert [e.done for e in events if isinstance(e, SampleScored)] == list(range(1, 9))
    assert events[-1].value.biased and ws.scores("checkpoint") == pytest.approx(events[-1].value.scores)

    # a cancelled checkpoint pass leaves the stored scores as they were
    before = ws.scores("checkpoint")
    token = CancelToken()
    events = _drive(iter_score_checkpoint(ws, checkpoint, device="cpu", cancel=token), token, True)
    assert _shape(events)[-1] == "cancelled" and events[-1].partial == RankResult("checkpoint", {}, biased=True)
    assert ws.scores("checkpoint") == before


def test_a_cancelled_ranking_keeps_its_completed_folds_only(rank_workspace):
    ws = rank_workspace
    token = CancelToken()
    events = []
    for event in drive(iter_rank_oof(ws, RANK, folds=2, cancel=token), token):
        events.append(event)
        if isinstance(event, Step) and event.stage == "fold 2/2 train":
            token.set()  # the first Progress of the second fold: the first fold is scored and stored
    assert _shape(events)[-1] == "cancelled"
    kept = events[-1].partial
    fold1 = {e.sample_id for e in events if isinstance(e, SampleScored) and e.fold == 0}
    assert isinstance(kept, RankResult) and kept.folds_done == 1 and set(kept.scores) == fold1 and len(fold1) == 4
    assert set(ws.scores("oof-k2")) == fold1
    assert "4 samples of 1 completed fold(s)" in str(events[-1])


# ------------------------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def disks(tmp_path_factory):
    return make_disks(tmp_path_factory.mktemp("disks"), n=8)


def test_training_runs_to_its_summary(disks, tmp_path):
    events = _drive(Trainer(config(disks, tmp_path / "run", epochs=2, max_steps_per_epoch=2)).run())
    assert _shape(events)[-1] == "result"
    started, steps = events[0], [e for e in events if isinstance(e, Progress)]
    assert started.job == "train" and started.total == 4 and started.detail["run_dir"] == str(tmp_path / "run")
    assert all(isinstance(e, Step) for e in steps) and [e.done for e in steps] == [1, 2, 3, 4]
    assert {(e.total, e.stage) for e in steps} == {(4, "train")}
    summary = events[-1].value
    assert isinstance(summary, TrainSummary) and summary.epochs_run == 2
    assert summary.last_checkpoint == str(tmp_path / "run" / "last.medseg") and summary.checkpoint


def test_a_cancelled_training_leaves_its_last_good_checkpoint(disks, tmp_path):
    from medseg.models import load_checkpoint

    token = CancelToken()
    trainer = Trainer(config(disks, tmp_path / "run", epochs=3, max_steps_per_epoch=3), cancel=token)
    events = _drive(trainer.run(), token, True)  # drive() throws the cancel in at the first Step
    assert _shape(events)[-1] == "cancelled"
    end = events[-1]
    assert end.done == 1 and end.partial["global_step"] == 1 and end.partial["epoch"] == 0
    assert [e.done for e in events if isinstance(e, Step)] == [1]
    ckpt = load_checkpoint(end.partial["checkpoint"])
    assert ckpt.provenance["training"]["resumable"] and ckpt.provenance["training"]["global_step"] == 1
    assert np.isfinite(ckpt.model(torch.zeros(1, 3, 32, 32)).detach().numpy()).all()
    # the checkpoint written at the cancel is in the run's log, before the cancel itself
    log = (tmp_path / "run" / "events.jsonl").read_text().splitlines()
    assert '"event": "checkpoint"' in log[-2] and '"event": "cancelled"' in log[-1]
    assert not any(isinstance(e, CheckpointSaved) for e in events)  # logged, not yielded after the cancel

    resumed = _drive(
        Trainer(
            config(disks, tmp_path / "run", epochs=1, max_steps_per_epoch=3), resume=tmp_path / "run" / "last.medseg"
        ).run()
    )
    assert [e.done for e in resumed if isinstance(e, Step)] == [2, 3]  # continues after the cancelled step
