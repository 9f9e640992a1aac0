"""Which engine jobs export their checkpoints to ONNX: the label-quality ranking's fold and fit-all models and a
training run's final evaluation are scored once and thrown away (PyTorch: no export, nothing in the cache);
scoring a kept checkpoint over the workspace goes through the ``auto`` backend like ``medseg predict``."""

from __future__ import annotations

import pytest
import yaml
from _rank_data import make_planted, tiny_rank_config
from _train_data import one_thread  # noqa: F401  (autouse: one torch thread)
from _train_run import make_dataset, tiny_config

from medseg.cli.main import main
from medseg.inference.onnx_cache import cache_dir
from medseg.models import onnx_export
from medseg.qc.fit_all import iter_rank_fit
from medseg.qc.fold_files import iter_rank_fold
from medseg.qc.oof import iter_rank_oof
from medseg.qc.ranking import iter_score_checkpoint
from medseg.workspace import Workspace


@pytest.fixture()
def exports(tmp_path, monkeypatch):
    """Every ONNX export of the test, as the checkpoint paths exported."""
    monkeypatch.setenv("MEDSEG_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    real = onnx_export.write_onnx
    monkeypatch.setattr(onnx_export, "write_onnx", lambda ckpt, *a, **k: calls.append(ckpt.path) or real(ckpt, *a, **k))
    return calls


def _cached() -> list:
    return sorted(cache_dir().iterdir()) if cache_dir().exists() else []


def test_ranking_models_run_on_torch_and_export_nothing(tmp_path, exports):
    root, _ = make_planted(tmp_path / "data", n=12)
    ws = Workspace.create(tmp_path / "ws", root, group_by="stem")
    config = tiny_rank_config(epochs=1)
    try:
        assert list(iter_rank_oof(ws, config, folds=2))
        assert list(iter_rank_fit(ws, config))
        assert list(iter_rank_fold(ws, config, folds=2, fold=1, runs_dir=tmp_path / "fold-runs"))
        assert exports == [] and _cached() == []
        # a kept checkpoint scored over the workspace: the auto backend, exported once as for medseg predict
        best = sorted((ws.root / "runs").rglob("best.medseg"))[0]
        assert list(iter_score_checkpoint(ws, best, device="cpu"))
    finally:
        ws.close()
    assert len(exports) == 1 and [p.suffix for p in _cached()] == [".onnx"]


def test_the_final_evaluation_of_a_training_run_exports_nothing(tmp_path, exports):
    data = make_dataset(tmp_path / "data", n=8)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(data, tmp_path / "runs" / "r1", epochs=1)))
    assert main(["train", str(cfg)]) == 0
    assert (tmp_path / "runs" / "r1" / "evaluation" / "summary.json").is_file()  # it ran
    assert exports == [] and _cached() == []
