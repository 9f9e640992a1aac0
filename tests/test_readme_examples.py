"""README.md's examples work as written: its Python blocks run, its shell lines' medseg options exist."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medseg.cli.main import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def blocks(*langs: str) -> list[tuple[int, str]]:
    """(line number, text) of README's fenced blocks in these languages."""
    text = README.read_text(encoding="utf-8")
    return [(text[: m.start()].count("\n") + 1, m.group(2)) for m in _FENCE.finditer(text) if m.group(1) in langs]


def medseg_lines() -> list[tuple[int, list[str]]]:
    out = []
    for start, body in blocks("bash", "console", "sh", "shell"):
        for k, line in enumerate(body.splitlines()):
            words = shlex.split(line.removeprefix("$ ").strip(), comments=True)
            if words and words[0] == "medseg":
                out.append((start + 1 + k, words[1:]))
    return out


def test_readme_has_examples():
    assert blocks("python") and len(medseg_lines()) >= 10


@pytest.mark.parametrize("line, argv", medseg_lines(), ids=[f"README:{n}" for n, _ in medseg_lines()])
def test_shell_example_parses(line, argv, capsys):
    """argparse exits 2 on an unknown sub-command or option: the README must not show one."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        pytest.fail(f"README.md line {line}: medseg {' '.join(argv)}: {capsys.readouterr().err.strip()} ({e})")
    assert callable(args.func)


def _frames(root: Path, n: int = 44, h: int = 32, w: int = 40) -> Path:
    """A CVC-ClinicDB-like folder (images/ + masks/, 1.png ... n.png): two 'videos' of a disk on stripes."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[:h, :w]
    for i in range(1, n + 1):
        video = (i - 1) * 2 // n
        stripes = np.sin((xx if video else yy) / 2.0)[..., None] * 40
        base = np.array([[200, 70, 50], [40, 150, 210]][video], np.float32)
        cy, cx = 12 + video * 8 + rng.integers(-1, 2), 14 + video * 10 + rng.integers(-1, 2)
        m = (yy - cy) ** 2 + (xx - cx) ** 2 <= 36
        img = (base * 0.7 + stripes + rng.normal(0, 4, (h, w, 3)) + 60 * m[..., None]).clip(0, 255)
        Image.fromarray(img.astype(np.uint8)).save(root / "images" / f"{i}.png")
        Image.fromarray((m * 255).astype(np.uint8)).save(root / "masks" / f"{i}.png")
    return root


@pytest.mark.parametrize("line, code", blocks("python"), ids=[f"README:{n}" for n, _ in blocks("python")])
def test_python_example_runs(line, code, tmp_path, monkeypatch):
    """Run as written, in a folder holding what it names: data/cvc-clinicdb (44 small frames), CT_small.dcm,
    runs/quick/best.medseg; ``image`` and ``corrected_mask`` are the reader's own image and edit."""
    from pydicom.data import get_testdata_file

    from medseg.datasets.classmap import ClassMap
    from medseg.models import ModelSpec, Preprocessing, create_model, save_checkpoint

    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    root = _frames(tmp_path / "data" / "cvc-clinicdb")
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "CT_small.dcm")
    spec = ModelSpec("PlainUNet", "none", classes=1, kwargs={"depth": 2, "base_channels": 4})
    save_checkpoint(
        tmp_path / "runs" / "quick" / "best.medseg",
        create_model(spec).eval(),
        spec,
        ClassMap.binary("polyp"),
        Preprocessing(input_size=[32, 40], divisible_by=4, resize=True),
    )
    source = root.parent.joinpath("cvc-clinicdb", "masks", "42.png")
    corrected = (np.asarray(Image.open(source)) > 0).astype(np.uint8)
    corrected[:4] = 1  # an edit: a band the original label lacks
    namespace = {
        "__name__": "readme",
        "image": np.asarray(Image.open(root / "images" / "7.png")),
        "corrected_mask": corrected,
    }
    exec(compile(code, f"README.md:{line}", "exec"), namespace)
    ws = namespace["ws"]
    assert ws.sample("42").status == "corrected"
    assert np.array_equal(ws.current_mask("42") > 0, corrected > 0)
    assert namespace["ct"].metadata.get("modality") == "CT"
    assert (tmp_path / "runs" / "medseg").is_dir()  # the Trainer's default out_dir: it trained
    assert (tmp_path / "cvc-clean" / "manifest.json").is_file()
    assert namespace["prediction"].labels.shape == namespace["image"].shape[:2]
