"""Out-of-fold ranking one fold per job (--fold I), merged (--merge), and in parallel processes (--devices):
the same queue as one run with the same seed, nothing written into the workspace by a fold job, and every
missing or mismatched fold file named."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from _rank_data import make_planted, tiny_rank_config
from _train_data import one_thread  # noqa: F401, E402  (autouse: one torch thread)

from medseg.cli import main
from medseg.qc import review_queue
from medseg.qc.fold_files import fold_file
from medseg.qc.oof import iter_rank_oof
from medseg.qc.prediction_store import load_prediction
from medseg.workspace import Workspace

CONFIG = tiny_rank_config(epochs=3)
K = 3


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("foldmerge")
    root, _ = make_planted(tmp / "data", n=18)
    cfg = tmp / "rank.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    return tmp, root, cfg


@pytest.fixture(scope="module")
def single(data):
    """The reference: one K=3 run in this process."""
    tmp, root, _ = data
    ws = Workspace.create(tmp / "single", root, group_by="stem")
    list(iter_rank_oof(ws, CONFIG, folds=K, seed=0))
    yield ws
    ws.close()


def rank(ws_root, cfg, *more) -> int:
    return main(["rank", str(ws_root), "--folds", str(K), "--config", str(cfg), "--quiet", *more])


def same_queue(a, b, method="oof-k3"):
    qa, qb = review_queue(a, method=method), review_queue(b, method=method)
    assert [i.sample_id for i in qa] == [i.sample_id for i in qb]
    np.testing.assert_allclose([i.score for i in qa], [i.score for i in qb], rtol=0, atol=1e-9)
    np.testing.assert_allclose([i.priority for i in qa], [i.priority for i in qb], rtol=0, atol=1e-9)
    assert [i.signals for i in qa] == [i.signals for i in qb]


@pytest.fixture(scope="module")
def folded(data):
    """The same ranking as three --fold jobs; the workspace as they left it; then --merge."""
    tmp, root, cfg = data
    ws = Workspace.create(tmp / "folded", root, group_by="stem")
    ws.close()
    for fold in range(K):
        assert rank(tmp / "folded", cfg, "--fold", str(fold)) == 0
    with Workspace.open(tmp / "folded") as w:
        before = (w.scores("oof-k3"), w.model_runs())
    yield tmp / "folded", before


def test_fold_jobs_write_fold_files_and_nothing_into_the_workspace(folded, capsys):
    root, (scores, runs) = folded
    assert scores == {} and runs == []  # a scheduler's jobs only read the workspace
    assert not (root / "predictions").exists()
    held = set()
    for k in range(K):
        d = json.loads(fold_file(root / "runs" / "oof-k3", k, K).read_text())
        assert (d["fold"], d["folds"], d["fold_seed"], d["method"]) == (k, K, 0, "oof-k3")
        assert len(d["config_digest"]) == 64 and len(d["samples"]) == 18
        assert set(d["scores"]) == set(d["held_out"]) and not set(d["held_out"]) & set(d["train"])
        assert not set(d["held_out"]) & held
        held |= set(d["held_out"])
        assert d["training_runs"] and d["training_runs"][0][2] == "train"
    assert held == set(d["samples"])


def test_merge_gives_the_single_runs_queue(single, folded, data, capsys):
    root, _ = folded
    _, _, cfg = data
    capsys.readouterr()
    assert rank(root, cfg, "--merge", "--top", "4") == 0
    out = capsys.readouterr().out
    with Workspace.open(root) as ws:
        same_queue(single, ws)
        assert out.splitlines()[1].split()[1] == review_queue(ws, method="oof-k3")[0].sample_id
        details = ws.score_details("oof-k3")
        for sid, d in details.items():  # the suspicion maps come with the scores, from the run that scored
            stored = load_prediction(ws.root, "oof-k3", sid)
            assert stored is not None and stored[1] == d["run"] and d["out_of_fold"] is True
        kinds = sorted(r.kind for r in ws.model_runs())
        assert kinds == ["rank"] * K + ["train"] * K
        # merging again changes nothing and records nothing twice
        assert rank(root, cfg, "--merge") == 0
        same_queue(single, ws)
        assert len(ws.model_runs()) == 2 * K


def test_merge_names_the_missing_or_mismatched_fold_file(folded, data, tmp_path, capsys):
    root, _ = folded
    _, _, cfg = data
    runs = root / "runs" / "oof-k3"
    # another seed, another config, another K: each named with the file
    assert rank(root, cfg, "--merge", "--fold-seed", "1") == 2
    err = capsys.readouterr().err
    assert "fold-0-of-3.json: --fold-seed 0 in the fold file, 1 in this merge" in err
    assert rank(root, cfg, "--merge", "--set", "epochs=4") == 2
    err = capsys.readouterr().err
    assert "fold-0-of-3.json: fold 0 was trained with another training config" in err and "--set" in err
    assert main(["rank", str(root), "--folds", "2", "--config", str(cfg), "--merge", "--method", "oof-k3"]) == 2
    err = capsys.readouterr().err
    assert "2 of 2 fold file(s) missing: fold 0" in err and "fold-0-of-2.json" in err
    # one missing, one damaged, one from another split: each named
    path = fold_file(runs, 1, K)
    saved = path.read_text()
    try:
        path.unlink()
        assert rank(root, cfg, "--merge") == 2
        err = capsys.readouterr().err
        assert "1 of 3 fold file(s) missing: fold 1" in err and str(path) in err and "--fold 1 first" in err
        path.write_text(saved[: len(saved) // 2])
        assert rank(root, cfg, "--merge") == 2
        assert f"{path}: fold file cannot be read" in capsys.readouterr().err
        d = json.loads(saved)
        other = json.loads(fold_file(runs, 2, K).read_text())
        d["held_out"], d["scores"] = other["held_out"], other["scores"]
        path.write_text(json.dumps(d))
        assert rank(root, cfg, "--merge") == 2
        assert f"{path}: fold 1's held-out samples are not fold 1 of this split" in capsys.readouterr().err
    finally:
        path.write_text(saved)


def test_merge_refuses_labels_changed_since_the_folds_ran(data, capsys):
    tmp, root, cfg = data
    ws = Workspace.create(tmp / "edited", root, group_by="stem")
    ws.close()
    for fold in range(K):
        assert rank(tmp / "edited", cfg, "--fold", str(fold)) == 0
    with Workspace.open(tmp / "edited") as w:
        mask = w.current_mask("s05")
        w.save_revision("s05", np.zeros_like(mask), origin="manual")
    assert rank(tmp / "edited", cfg, "--merge") == 2
    err = capsys.readouterr().err
    assert "labels changed since fold" in err and "s05" in err and "run the folds again" in err
    with Workspace.open(tmp / "edited") as w:
        assert w.scores("oof-k3") == {}


def test_wrong_fold_options_exit_2(folded, data, capsys):
    root, _ = folded
    _, _, cfg = data
    assert rank(root, cfg, "--fold", "3") == 2
    assert "--fold 3: folds are numbered 0 to 2" in capsys.readouterr().err
    assert main(["rank", str(root), "--merge", "--quiet"]) == 2
    assert "--merge needs --folds K" in capsys.readouterr().err
    assert rank(root, cfg, "--merge", "--fold", "1") == 2
    assert "--fold and --merge: give one of them" in capsys.readouterr().err
    assert rank(root, cfg, "--devices", "cuda:7") == 2
    assert "--devices cuda:7: this machine has" in capsys.readouterr().err


def test_folds_in_two_cpu_processes_give_the_single_runs_queue(single, data, monkeypatch, capsys):
    tmp, root, cfg = data
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ws = Workspace.create(tmp / "parallel", root, group_by="stem")
    ws.close()
    assert rank(tmp / "parallel", cfg, "--devices", "cpu,cpu") == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    # each fold as its process starts and ends, then as the merge stores it
    assert sum(f"fold {k + 1}/{K}: training on" in err for k in range(K)) == K
    assert len([ln for ln in err.splitlines() if "samples scored" in ln]) == 2 * K
    runs = tmp / "parallel" / "runs" / "oof-k3"
    assert all((runs / f"fold-{k}.log").is_file() for k in range(K))
    with Workspace.open(tmp / "parallel") as w:
        same_queue(single, w)


def fake_children(monkeypatch, code: str):
    """The fold processes replaced by a tiny Python child (no torch): what the parent does with them."""
    import sys

    import medseg.qc.fold_parallel as par

    monkeypatch.setattr(par, "fold_command", lambda *a, **k: [sys.executable, "-c", code])


def test_a_failed_fold_process_stops_the_others_and_is_named(data, monkeypatch):
    from medseg.errors import RankingError
    from medseg.qc.fold_parallel import iter_rank_parallel
    from medseg.training.config import TrainConfig

    tmp, root, _ = data
    ws = Workspace.create(tmp / "failing", root, group_by="stem")
    ws.close()
    fake_children(monkeypatch, "import sys; print('CUDA out of memory'); sys.exit(3)")
    config = TrainConfig.from_dict({**CONFIG, "data": {**CONFIG["data"], "root": str(tmp / "failing")}})
    with pytest.raises(RankingError, match=r"fold 0 of 3 on cpu failed \(exit 3\): CUDA out of memory") as e:
        list(iter_rank_parallel(tmp / "failing", config, folds=K, devices=["cpu"]))
    assert str(tmp / "failing" / "runs" / "oof-k3" / "fold-0.log") in str(e.value)
    with Workspace.open(tmp / "failing") as w:
        assert w.scores("oof-k3") == {}


def test_cancel_stops_every_fold_process(data, monkeypatch):
    from medseg.errors import Cancelled
    from medseg.jobs import CancelToken
    from medseg.qc.fold_parallel import iter_rank_parallel
    from medseg.qc.ranking import FoldStarted
    from medseg.training.config import TrainConfig

    tmp, root, _ = data
    ws = Workspace.create(tmp / "cancelled", root, group_by="stem")
    ws.close()
    fake_children(monkeypatch, "import time; time.sleep(600)")
    config = TrainConfig.from_dict({**CONFIG, "data": {**CONFIG["data"], "root": str(tmp / "cancelled")}})
    token = CancelToken()
    job = iter_rank_parallel(tmp / "cancelled", config, folds=K, devices=["cpu", "cpu"], cancel=token)
    started = []
    with pytest.raises(Cancelled, match="fold files of folds none are kept"):
        for event in job:
            if isinstance(event, FoldStarted):
                started.append(event.fold)
                if len(started) == 2:
                    token.set()
    assert started == [0, 1]  # two devices: the third fold never started
    logs = tmp / "cancelled" / "runs" / "oof-k3"
    assert sorted(p.name for p in logs.glob("fold-*.log")) == ["fold-0.log", "fold-1.log"]
