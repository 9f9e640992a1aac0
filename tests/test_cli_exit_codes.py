"""Exit codes a script can rely on: 0 done, 2 a wrong input or request (one line, no traceback), 130
interrupted, 1 only for a bug (traceback + where to report it). Predict lists every input it skips."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _guard_data import stem_mask_dataset, tiny_checkpoint

import medseg.cli.index as cli
from medseg.cli import main

EXE = Path(sys.executable).with_name("medseg")


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, timeout=300)


def test_a_bad_file_exits_2_with_one_line_naming_it(tmp_path):
    bad = tmp_path / "scan.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30)  # a PNG cut after its signature
    r = _run("info", bad)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(bad) in r.stderr and r.stderr.strip().count("\n") == 0
    r = _run("index", tmp_path / "missing")
    assert r.returncode == 2 and "missing" in r.stderr and "Traceback" not in r.stderr


def test_a_typo_in_an_option_exits_2_naming_it(cvc_dir, tmp_path):
    ds = stem_mask_dataset(cvc_dir, tmp_path / "cvc")
    r = _run("index", ds, "--layout", "images_mask")
    assert r.returncode == 2 and "--layout" in r.stderr and "images_masks" in r.stderr
    assert "Traceback" not in r.stderr
    assert main(["workspace", "create", str(ds), str(tmp_path / "ws"), "--layout", "nnunet", "--quiet"]) == 2


def test_interrupted_exits_130(monkeypatch, tmp_path, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_index", interrupted)
    assert main(["index", str(tmp_path)]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"


def test_a_bug_exits_1_with_the_traceback_and_where_to_report_it(monkeypatch, tmp_path, capsys):
    def broken(args):
        raise RuntimeError("an invariant we got wrong")

    monkeypatch.setattr(cli, "cmd_index", broken)
    assert main(["index", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "RuntimeError: an invariant we got wrong" in err
    assert "bug in napari-medseg" in err and "please report it" in err and "traceback above" in err


def test_sub_commands_share_the_codes(monkeypatch, tmp_path, capsys):
    import medseg.cli.workspace as ws_cli

    assert main(["workspace", "info", str(tmp_path / "nowhere")]) == 2
    assert "Traceback" not in capsys.readouterr().err

    def broken(args):
        raise KeyError("sample")

    monkeypatch.setattr(ws_cli, "_info", broken)
    assert main(["workspace", "info", str(tmp_path)]) == 1
    assert "KeyError" in capsys.readouterr().err


def test_help_documents_the_exit_codes():
    r = _run("--help")
    text = " ".join(r.stdout.split())
    assert r.returncode == 0
    assert "0 done; 2 the input or the request is wrong" in text and "130 interrupted" in text
    assert "1 a bug in napari-medseg" in text


# ------------------------------------------------------------------ predict's skips
@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt"))


def test_predict_lists_each_skipped_input_and_exits_2_unless_keep_going(cvc_dir, ckpt, tmp_path, capsys):
    ds = stem_mask_dataset(cvc_dir, tmp_path / "cvc")
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in (1, 2):
        shutil.copy(ds / "images" / f"{i}.png", folder / f"{i}.png")
    whole = (ds / "images" / "3.png").read_bytes()
    (folder / "3.png").write_bytes(whole[: len(whole) // 2])  # truncated mid-stream
    (folder / "notes.txt").write_text("frames from the second session")
    args = ["predict", str(ckpt), str(folder), "--out", str(tmp_path / "out"), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("skipped ")]
    assert len(lines) == 2, err
    assert any(str(folder / "notes.txt") in x and "not an image" in x for x in lines)
    assert any(x.startswith(f"skipped {folder / '3.png'}: cannot decode PNG data") for x in lines)
    assert "2 of 4 inputs predicted" in err and "2 skipped" in err
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["1_mask.png", "2_mask.png"]
    assert main([*args, "--keep-going", "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert sum(x.startswith("skipped ") for x in err.splitlines()) == 2 and "2 skipped" in err


def test_predict_reports_dataset_problems_it_skips(cvc_dir, ckpt, tmp_path, capsys):
    ds = stem_mask_dataset(cvc_dir, tmp_path / "cvc")
    (ds / "images" / "readme.txt").write_text("x")
    shutil.copy(ds / "masks" / "4_mask.png", ds / "masks" / "9_mask.png")  # a mask without an image
    (ds / "masks" / "2_mask.png").unlink()  # an image without a mask is still predicted, not skipped
    assert main(["predict", str(ckpt), str(ds), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"skipped {ds / 'images' / 'readme.txt'}: unsupported file" in err
    assert f"skipped {ds / 'masks' / '9_mask.png'}: mask without image" in err
    assert "4 of 6 inputs predicted" in err and (tmp_path / "out" / "2_mask.png").is_file()


def test_train_tells_a_bad_input_from_a_bug(cvc_dir, tmp_path, monkeypatch, capsys):
    from _train_run import tiny_config, write_config

    import medseg.training.trainer as trainer_mod
    from medseg.errors import ReadError

    ds = stem_mask_dataset(cvc_dir, tmp_path / "cvc")
    cfg = write_config(tmp_path / "train.yaml", tiny_config(ds, tmp_path / "run"))

    class Raising:
        error: Exception

        def __init__(self, *a, **k):
            raise self.error

    Raising.error = ReadError(ds / "images" / "2.png", "cannot decode PNG data")
    monkeypatch.setattr(trainer_mod, "Trainer", Raising)
    assert main(["train", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "2.png: cannot decode PNG data" in err and "Traceback" not in err
    Raising.error = RuntimeError("a shape we got wrong")
    assert main(["train", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "bug in napari-medseg" in err

    class FailsWhileRunning:
        last_path = tmp_path / "run" / "last.medseg"

        def __init__(self, *a, **k):
            pass

        def run(self):  # a job raises its error (the Trainer logs it as a Failed line first)
            yield from ()
            raise ReadError(ds / "images" / "3.png", "truncated")

    monkeypatch.setattr(trainer_mod, "Trainer", FailsWhileRunning)
    assert main(["train", str(cfg)]) == 2
    assert "3.png: truncated" in capsys.readouterr().err
