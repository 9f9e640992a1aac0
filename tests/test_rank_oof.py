"""Out-of-fold ranking on a synthetic set with planted label errors; single-checkpoint mode; cancel; CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import yaml
from _rank_data import make_planted, tiny_rank_config
from _train_data import one_thread  # noqa: F401, E402  (autouse: one torch thread)

from medseg.errors import Cancelled, RankingError
from medseg.jobs import CancelToken, Result, drive
from medseg.qc import review_queue
from medseg.qc.oof import iter_rank_oof, make_folds
from medseg.qc.prediction_store import load_prediction, prediction_path
from medseg.qc.ranking import (
    BIAS_NOTE,
    FoldScored,
    FoldStarted,
    RankResult,
    SampleScored,
    iter_score_checkpoint,
)
from medseg.qc.suspicion import suspicion_map
from medseg.training.events import Step
from medseg.workspace import Workspace

CONFIG = tiny_rank_config(epochs=16)  # fold models keep a fifth of their samples to validate on


def new_workspace(tmp_path):
    root, planted = make_planted(tmp_path / "data")
    return Workspace.create(tmp_path / "ws", root, group_by="stem"), planted


@pytest.fixture(scope="module")
def ranked(tmp_path_factory):
    """One K=3 out-of-fold run over 24 samples (4 planted errors), with every event kept."""
    tmp = tmp_path_factory.mktemp("oof")
    ws, planted = new_workspace(tmp)
    events = list(iter_rank_oof(ws, CONFIG, folds=3))
    yield ws, planted, events
    ws.close()


def test_planted_errors_rank_first(ranked):
    ws, planted, _ = ranked
    queue = review_queue(ws, method="oof-k3")
    assert {i.sample_id for i in queue[: len(planted)]} == set(planted), [(i.sample_id, i.score) for i in queue[:6]]
    clean = [i.score for i in queue if i.sample_id not in planted]
    assert max(i.score for i in queue if i.sample_id in planted) < min(clean)
    assert "out-of-fold prediction" in queue[0].reason


def test_events_scores_details_and_model_runs(ranked):
    ws, _, events = ranked
    kinds = [type(e) for e in events]
    assert kinds.count(FoldStarted) == 3 and kinds.count(FoldScored) == 3 and kinds[-1] is Result
    scored = [e for e in events if isinstance(e, SampleScored)]
    assert len(scored) == 24 and {e.stage for e in scored} == {f"fold {k}/3 score" for k in (1, 2, 3)}
    steps = [e for e in events if isinstance(e, Step)]
    assert steps and {e.stage for e in steps} == {f"fold {k}/3 train" for k in (1, 2, 3)}
    done = events[-1].value
    assert isinstance(done, RankResult) and done.folds_done == 3
    assert done.method == "oof-k3" and not done.biased and len(done.scores) == 24
    details = ws.score_details("oof-k3")
    assert ws.scores("oof-k3") == pytest.approx(done.scores)
    runs = {r.run_id: r for r in ws.model_runs()}
    rank_runs = [r for r in runs.values() if r.kind == "rank"]
    train_runs = [r for r in runs.values() if r.kind == "train"]
    assert len(rank_runs) == 3 and len(train_runs) == 3
    for sid, d in details.items():
        assert d["out_of_fold"] and not d["biased"] and d["folds"] == 3
        assert d["revision"] == ws.sample(sid).head_revision
        assert {"dice", "iou", "hd95", "cleanlab", "score", "fold", "run", "checkpoint"} <= set(d)
        # the scoring run names this revision; no training run of the scoring model used this sample
        assert runs[d["run"]].revisions[sid] == d["revision"]
        fold_train = [r for r in train_runs if f"fold-{d['fold']}" in r.run_id]
        assert len(fold_train) == 1 and sid not in fold_train[0].revisions
    # folds split by group: no sample scored by a fold that trained on it, every sample scored once
    assert sorted(details) == sorted(ws.sample_ids())


def test_suspicion_map_from_stored_prediction(ranked):
    ws, planted, _ = ranked
    sid = next(s for s, k in planted.items() if k == "shifted")
    m = suspicion_map(ws, sid, "oof-k3")
    label = ws.current_mask(sid).astype(bool)
    probs, run = load_prediction(ws.root, "oof-k3", sid)
    assert probs.dtype == np.float32 and probs.shape == (1, *label.shape)
    assert run == ws.score_details("oof-k3")[sid]["run"]
    assert m.shape == label.shape and m.dtype == np.float32
    predicted = probs[0] >= 0.5
    disagree = predicted ^ label
    assert m[disagree].mean() > 0.6
    assert m[~disagree].mean() < 0.2
    assert suspicion_map(ws, sid, "no-such-method") is None
    # stored beside the workspace, never in the dataset
    assert prediction_path(ws.root, "oof-k3", sid).is_relative_to(ws.root)
    assert not any(p.suffix == ".npz" for p in ws.dataset_root.rglob("*"))


def test_single_checkpoint_mode_marks_bias(ranked):
    ws, _, events = ranked
    checkpoint = next(e.checkpoint for e in events if isinstance(e, FoldScored))
    out = list(iter_score_checkpoint(ws, checkpoint, device="cpu", method="checkpoint"))
    assert isinstance(out[-1], Result) and out[-1].value.biased and len(out[-1].value.scores) == 24
    details = ws.score_details("checkpoint")
    assert all(d["biased"] and d["bias"] == BIAS_NOTE and not d["out_of_fold"] for d in details.values())
    trained_on = next(r for r in ws.model_runs() if r.kind == "train" and "fold-0" in r.run_id).revisions
    assert {s for s, d in details.items() if d["seen_in_training"]} == set(trained_on)
    assert "may have seen this label" in review_queue(ws, method="checkpoint")[0].reason
    assert any(r.kind == "score" for r in ws.model_runs())
    # a cancelled single-checkpoint pass leaves the stored scores as they were
    cancel = CancelToken()
    gen = iter_score_checkpoint(ws, checkpoint, device="cpu", method="checkpoint", cancel=cancel)
    with pytest.raises(Cancelled, match="after 3 of 24 samples") as stopped:
        for e in gen:
            if isinstance(e, SampleScored) and e.done == 3:
                cancel.set()
    assert stopped.value.partial == RankResult("checkpoint", {}, biased=True)
    assert ws.score_details("checkpoint") == details


def test_cancel_keeps_completed_folds(tmp_path):
    ws, _ = new_workspace(tmp_path)
    cancel = CancelToken()
    events = []
    with ws:
        for e in drive(iter_rank_oof(ws, tiny_rank_config(epochs=2), folds=3, cancel=cancel)):
            events.append(e)
            if isinstance(e, Step) and e.stage == "fold 2/3 train":
                cancel.set()  # mid-training of the second fold
        end = events[-1]
        assert isinstance(end, Cancelled) and end.partial.folds_done == 1 and "8 samples of 1 completed" in str(end)
        fold0 = {e.sample_id for e in events if isinstance(e, SampleScored) and e.fold == 0}
        assert set(ws.scores("oof-k3")) == fold0 == set(end.partial.scores) and len(fold0) == 8
        assert {d["fold"] for d in ws.score_details("oof-k3").values()} == {0}


def test_too_few_groups_and_bad_checkpoint(tmp_path):
    class S:
        def __init__(self, i, g):
            self.id, self.group = i, g

    with pytest.raises(RankingError, match="5 folds need at least 5 groups"):
        make_folds([S(i, i % 3) for i in range(9)], 5)
    pairs = make_folds([S(i, i // 3) for i in range(15)], 5)
    for train, held in pairs:
        assert not {s.group for s in train} & {s.group for s in held}
    ws, _ = new_workspace(tmp_path)
    with ws, pytest.raises(Exception, match="nothing.medseg"):
        list(iter_score_checkpoint(ws, tmp_path / "nothing.medseg"))


def test_cli_rank_end_to_end(ranked, tmp_path, capsys):
    from medseg.cli import main

    ws, planted, _ = ranked
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    code = main(
        [
            "rank",
            str(ws.root),
            "--folds",
            "3",
            "--config",
            str(cfg),
            "--method",
            "cli-k3",
            "--top",
            "5",
            "--json",
            str(tmp_path / "q.json"),
            "--csv",
            str(tmp_path / "q.csv"),
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["#", "sample", "status"] and "19 more" in lines[-1]
    assert {line.split()[1] for line in lines[1:5]} == set(planted)
    import json

    rows = json.loads((tmp_path / "q.json").read_text())
    assert len(rows) == 24 and rows[0]["method"] == "cli-k3" and rows[0]["reason"]
    assert (tmp_path / "q.csv").read_text().splitlines()[0].startswith("rank,sample_id")
    assert main(["rank", str(tmp_path / "not-a-ws")]) == 2
    assert "error:" in capsys.readouterr().err


def test_cli_ctrl_c_keeps_completed_folds(tmp_path):
    """A real SIGINT to `medseg rank` after the first fold: exit 130, that fold's scores stored."""
    ws, _ = new_workspace(tmp_path)
    ws.close()
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump(tiny_rank_config(epochs=8)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "medseg.cli",
            "rank",
            str(tmp_path / "ws"),
            "--folds",
            "3",
            "--config",
            str(cfg),
            "--quiet",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    seen = []
    try:
        for line in proc.stderr:
            seen.append(line)
            if "fold 1/3:" in line and "scored" in line:
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, "".join(seen) + err
    assert "interrupted: 8 samples of 1 completed fold(s)" in err
    with Workspace.open(tmp_path / "ws") as w:
        assert len(w.scores("oof-k3")) == 8
        assert w.check_integrity() == []
    assert out.splitlines()[0].split()[:2] == ["#", "sample"]
