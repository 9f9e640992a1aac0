"""``medseg export``: writes the dataset, refuses unsafe folders with exit code 1, parses its options."""

from __future__ import annotations

import json

import pytest
from _export_data import make_frames

from medseg.cli import main
from medseg.workspace import Workspace


@pytest.fixture
def ws_path(tmp_path):
    with Workspace.create(tmp_path / "ws", make_frames(tmp_path / "ds")) as ws:
        ws.set_status("3", "excluded", "blurred")
    return tmp_path / "ws"


def test_cli_exports_with_a_split_and_refuses_to_overwrite(ws_path, tmp_path, capsys):
    out = tmp_path / "Dataset502_Frames"
    assert (
        main(["export", str(ws_path), "--format", "nnunet", "--out", str(out), "--split", "0.5,0.5", "--seed", "2"])
        == 0
    )
    captured = capsys.readouterr()
    assert "11 samples:" in captured.out and "10 exported as nnunet" in captured.out
    assert "export" in captured.err  # the progress bar
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 10
    split = json.loads((out / "splits_final.json").read_text())
    assert len(split[0]["train"]) + len(split[0]["val"]) == 10 and "3" not in split[0]["train"] + split[0]["val"]

    assert main(["export", str(ws_path), "--format", "folders", "--out", str(out), "--quiet"]) == 2
    assert "not empty" in capsys.readouterr().err and (out / "dataset.json").exists()

    assert (
        main(
            [
                "export",
                str(ws_path),
                "--format",
                "folders",
                "--out",
                str(out),
                "--overwrite",
                "--include-excluded",
                "--statuses",
                "unreviewed",
                "--quiet",
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["n_samples"] == 11 and result["manifest"] == str(out.resolve() / "manifest.json")
    assert (out / "masks" / "3.png").exists() and not (out / "dataset.json").exists()


def test_cli_rejects_bad_options(ws_path, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["export", str(ws_path), "--format", "folders", "--out", str(tmp_path / "o"), "--statuses", "done"])
    assert e.value.code == 2 and "unknown status 'done'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", str(ws_path), "--format", "folders", "--out", str(tmp_path / "o"), "--split", "0.8"])
    with pytest.raises(SystemExit):
        main(
            [
                "export",
                str(ws_path),
                "--format",
                "folders",
                "--out",
                str(tmp_path / "o"),
                "--split",
                "0.8,0.2",
                "--folds",
                "3",
            ]
        )
    assert main(["export", str(ws_path), "--format", "folders", "--out", str(ws_path / "x"), "--quiet"]) == 2
    assert "inside the workspace" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_ctrl_c_leaves_nothing_behind(ws_path, tmp_path, capsys, monkeypatch):
    from medseg.export.writers_folders import FoldersWriter

    real, calls = FoldersWriter.write, []

    def write(self, item):
        calls.append(item.sample_id)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(self, item)

    monkeypatch.setattr(FoldersWriter, "write", write)
    out = tmp_path / "clean"
    assert main(["export", str(ws_path), "--format", "folders", "--out", str(out)]) == 130
    assert "interrupted: nothing was written" in capsys.readouterr().err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".medseg-export-" in p.name]
