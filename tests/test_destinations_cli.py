"""Every CLI command that writes refuses a dataset's source files and a workspace's internals, exit 2, one
line naming both paths (real CVC-ClinicDB frames; every refusal comes before any long work)."""

from __future__ import annotations

import pytest
from _guard_data import stem_mask_dataset, tree_hashes
from _train_run import tiny_config, write_config

from medseg.cli import main


@pytest.fixture
def ds(cvc_dir, tmp_path):
    return stem_mask_dataset(cvc_dir, tmp_path / "cvc")


@pytest.fixture
def ws_path(ds, tmp_path):
    from medseg.workspace import Workspace

    Workspace.create(tmp_path / "ws", ds).close()
    return tmp_path / "ws"


def _refused(capsys, args, dest, protected) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(dest) in err and str(protected) in err and "Traceback" not in err, err
    assert err.startswith("error: refusing") and err.count("\n") == 1
    return err


def test_workspace_create(ds, ws_path, capsys):
    before = tree_hashes(ds)
    _refused(capsys, ["workspace", "create", str(ds), str(ds / "masks" / "ws"), "--quiet"], ds / "masks" / "ws", ds)
    _refused(
        capsys,
        ["workspace", "create", str(ds), str(ws_path / "masks" / "w2"), "--quiet"],
        ws_path / "masks" / "w2",
        ws_path,
    )
    assert tree_hashes(ds) == before


def test_qc_reports(ds, ws_path, tmp_path, capsys):
    before, ws_before = tree_hashes(ds), tree_hashes(ws_path / "masks")
    _refused(capsys, ["qc", str(ds), "--json", str(ds / "masks" / "qc.json"), "--quiet"], ds / "masks" / "qc.json", ds)
    _refused(capsys, ["qc", str(ds), "--csv", str(ds / "qc.csv"), "--quiet"], ds / "qc.csv", ds)
    _refused(capsys, ["qc", str(ws_path), "--json", str(ws_path / "qc.json"), "--quiet"], ws_path / "qc.json", ws_path)
    _refused(
        capsys,
        ["qc", str(ws_path), "--csv", str(ds / "images" / "f.csv"), "--quiet"],
        ds / "images" / "f.csv",
        ds / "images",
    )  # the workspace's dataset, found from the workspace
    assert tree_hashes(ds) == before and tree_hashes(ws_path / "masks") == ws_before
    report = tmp_path / "reports" / "qc.json"
    args = ["qc", str(ds), "--json", str(report), "--csv", str(tmp_path / "reports" / "qc.csv"), "--quiet"]
    assert main(args) == 0 and report.is_file()
    assert main(args) == 2 and "the file exists" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    report.write_text(report.read_text() + " ")
    assert main([*args, "--overwrite"]) == 2
    assert f"refusing to overwrite {report}" in capsys.readouterr().err


def test_rank_outputs_and_runs(ws_path, ds, tmp_path, capsys):
    _refused(
        capsys,
        ["rank", str(ws_path), "--json", str(ws_path / "queue.json"), "--quiet"],
        ws_path / "queue.json",
        ws_path,
    )
    _refused(
        capsys, ["rank", str(ws_path), "--csv", str(ds / "masks" / "q.csv"), "--quiet"], ds / "masks" / "q.csv", ds
    )
    err = _refused(
        capsys,
        ["rank", str(ws_path), "--runs", str(ws_path / "runs" / "mine"), "--quiet"],
        ws_path / "runs" / "mine",
        ws_path,
    )
    assert "written only by medseg's own jobs" in err
    assert not (ws_path / "runs").exists()


def test_train_run_folder(ds, ws_path, tmp_path, capsys):
    cfg = write_config(tmp_path / "train.yaml", tiny_config(ds, tmp_path / "run"))
    _refused(capsys, ["train", str(cfg), "--out", str(ds / "masks" / "run")], ds / "masks" / "run", ds)
    _refused(capsys, ["train", str(cfg), "--out", str(ds / "runs")], ds / "runs", ds)  # inside the data root
    ws_cfg = write_config(tmp_path / "ws.yaml", tiny_config(ws_path, tmp_path / "run"))
    _refused(capsys, ["train", str(ws_cfg), "--out", str(ws_path / "runs" / "x")], ws_path / "runs" / "x", ws_path)
    _refused(capsys, ["train", str(ws_cfg), "--out", str(ds / "x")], ds / "x", ds)  # the workspace's dataset


def test_training_process_refuses_before_starting_a_child(ds, tmp_path):
    from medseg.errors import DestinationError
    from medseg.training.config import TrainConfig
    from medseg.training.runner import TrainingProcess

    with pytest.raises(DestinationError, match="masks/ folder"):
        TrainingProcess(TrainConfig.from_dict(tiny_config(tmp_path / "other", ds / "masks" / "run")))
    assert not (ds / "masks" / "run").exists()


def test_export(ds, ws_path, capsys):
    before = tree_hashes(ds)
    _refused(
        capsys, ["export", str(ws_path), "--format", "folders", "--out", str(ds / "clean"), "--quiet"], ds / "clean", ds
    )
    _refused(
        capsys,
        ["export", str(ws_path), "--format", "nnunet", "--out", str(ws_path / "runs" / "e"), "--quiet"],
        ws_path / "runs" / "e",
        ws_path,
    )
    assert tree_hashes(ds) == before
