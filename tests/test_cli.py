"""The ``medseg`` command on real files and generated folders."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from medseg.cli import main


def test_info_on_real_dicom_reports_hu_and_spacing(ct_small, capsys):
    assert main(["info", str(ct_small)]) == 0
    out = capsys.readouterr().out
    assert "dicom CT shape (128, 128) int16" in out
    assert "0.661468 x 0.661468 mm" in out


def test_info_json_and_bad_file_names_the_file(ct_small, tmp_path, capsys):
    bad = tmp_path / "notes.dcm"
    bad.write_text("this is not a DICOM file\n")
    assert main(["info", "--json", str(ct_small), str(bad)]) == 2
    captured = capsys.readouterr()
    d = json.loads(captured.out.strip().splitlines()[0])
    assert d["metadata"]["modality"] == "CT" and d["spacing"][0] > 0.6
    assert "notes.dcm" in captured.err and "error:" in captured.err and "Traceback" not in captured.err


def _write_pairs(root, n, size=(40, 32)):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(1, n + 1):
        Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(root / "images" / f"p{i}.png")
        m = np.zeros(size[::-1], np.uint8)
        m[5:15, 5:20] = 255
        Image.fromarray(m).save(root / "masks" / f"p{i}.png")


def test_index_lists_problems_and_strict_fails(tmp_path, capsys):
    _write_pairs(tmp_path / "ds", 4)
    (tmp_path / "ds" / "masks" / "p4.png").unlink()
    assert main(["index", str(tmp_path / "ds")]) == 0
    out = capsys.readouterr().out
    assert "layout images_masks, 3 samples" in out
    assert "1 problem: 1 image_without_mask" in out and "p4.png" in out
    assert main(["index", "--strict", "--json", str(tmp_path / "ds")]) == 2
    d = json.loads(capsys.readouterr().out)
    assert d["samples"] == 3 and d["problems"][0]["kind"] == "image_without_mask"


def test_index_of_a_non_dataset_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "readme.txt").write_text("x")
    assert main(["index", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "no known dataset layout" in err and "Traceback" not in err


def test_console_script_is_installed():
    exe = __import__("pathlib").Path(sys.executable).with_name("medseg")
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "index" in out.stdout and "info" in out.stdout
