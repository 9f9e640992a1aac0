"""``medseg import-weights``: another script's state dict becomes a checkpoint the whole tool loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _train_run import tiny_config, write_config
from PIL import Image

from medseg.cli.main import main
from medseg.models import create_model, load_checkpoint
from medseg.models.spec import ModelSpec


class Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def _config(tmp_path: Path, **over) -> Path:
    return write_config(tmp_path / "model.yaml", tiny_config(tmp_path / "data", tmp_path / "runs", **over))


def _plain(classes: int) -> torch.nn.Module:
    task = "binary" if classes == 1 else "multiclass"
    spec = ModelSpec(
        arch="PlainUNet", encoder="none", classes=classes, task=task, kwargs={"depth": 2, "base_channels": 4}
    )
    torch.manual_seed(3)
    return create_model(spec).eval()


def test_a_lightning_style_state_dict_becomes_a_checkpoint_that_predicts_like_the_model(tmp_path, cvc_dir, capsys):
    model = _plain(3)
    torch.save({"epoch": 7, "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "w.pth")
    cfg = _config(tmp_path, data__image_size=[64, 96])
    out = tmp_path / "imported.medseg"
    assert (
        main(
            [
                "import-weights",
                str(tmp_path / "w.pth"),
                "--config",
                str(cfg),
                "--classes",
                "polyp,tool",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "multiclass polyp, tool; inputs resized to 64x96" in capsys.readouterr().out
    ck = load_checkpoint(out)
    assert (ck.spec.arch, ck.spec.classes, ck.classmap.names) == ("PlainUNet", 3, ["polyp", "tool"])
    assert ck.preprocessing.input_size == [64, 96] and ck.preprocessing.resize and ck.preprocessing.mean is None
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(ck.model(x), model(x))
    assert ck.provenance["imported_from"]["file"] == str((tmp_path / "w.pth").resolve())
    # and the tool uses it: a real frame predicted from the command line
    frame = sorted((cvc_dir / "images").iterdir())[0]
    assert main(["predict", str(out), str(frame), "--out", str(tmp_path / "pred")]) == 0
    mask = np.asarray(Image.open(next((tmp_path / "pred").rglob("*.png"))))
    assert mask.shape == np.asarray(Image.open(frame)).shape[:2]


def test_pretrained_encoder_configs_get_imagenet_normalisation_without_fetching_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = ModelSpec(
        arch="Unet", encoder="resnet18", classes=1, kwargs={"encoder_depth": 3, "decoder_channels": [16, 8, 4]}
    )
    model = create_model(spec).eval()
    torch.save(model.state_dict(), tmp_path / "unet.pt")
    cfg = _config(
        tmp_path,
        model={"arch": "Unet", "encoder": "resnet18", "encoder_weights": "imagenet", "kwargs": spec.kwargs},
    )
    out = tmp_path / "unet.medseg"
    assert (
        main(
            ["import-weights", str(tmp_path / "unet.pt"), "--config", str(cfg), "--classes", "polyp", "--out", str(out)]
        )
        == 0
    )
    ck = load_checkpoint(out)
    assert ck.spec.encoder_weights is None and ck.classmap.task == "binary"
    assert ck.preprocessing.mean == pytest.approx([0.485, 0.456, 0.406])


def test_wrong_or_unsafe_files_are_refused_in_one_line_and_nothing_is_written(tmp_path, capsys):
    cfg = _config(tmp_path)
    out = tmp_path / "o.medseg"
    torch.save(_plain(3).state_dict(), tmp_path / "three.pth")
    assert (
        main(
            [
                "import-weights",
                str(tmp_path / "three.pth"),
                "--config",
                str(cfg),
                "--classes",
                "polyp",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "three.pth" in err and "do not fit the PlainUNet" in err and "Traceback" not in err
    marker = tmp_path / "ran"
    torch.save({"state_dict": Evil(marker)}, tmp_path / "evil.pth")
    assert (
        main(
            [
                "import-weights",
                str(tmp_path / "evil.pth"),
                "--config",
                str(cfg),
                "--classes",
                "polyp",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "weights-only" in capsys.readouterr().err and not marker.exists()
    bad = _config(tmp_path, model={"arch": "NoSuchNet"})
    assert (
        main(
            [
                "import-weights",
                str(tmp_path / "three.pth"),
                "--config",
                str(bad),
                "--classes",
                "polyp",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "NoSuchNet" in capsys.readouterr().err
    assert not out.exists()
