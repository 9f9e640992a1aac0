"""Finding 12 of issue 16: exported masks keep the source's value convention (0/255 stays 0/255) unless
``mask_values="ids"`` asks for class ids; nnU-Net and MONAI write ids and say so; the manifest, CHANGES.md
and the summary say what was written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from _export_data import make_palette, read_png

from medseg.cli import main
from medseg.datasets.demo import make_demo_dataset
from medseg.export import export_dataset
from medseg.io.mask_read import read_mask_values
from medseg.workspace import Workspace


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def _cvc_frames(cvc_dir: Path, root: Path, frames=range(20, 26)) -> Path:
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
        for k in frames:
            shutil.copyfile(cvc_dir / sub / f"{k}.png", root / sub / f"{k}.png")
    return root


def test_demo_masks_stay_0_255_by_default_and_ids_gives_0_1(tmp_path):
    make_demo_dataset(tmp_path / "demo")
    assert set(np.unique(read_mask_values(tmp_path / "demo" / "masks" / "2.png"))) == {0, 255}  # its convention
    with Workspace.create(tmp_path / "ws", tmp_path / "demo") as ws:
        result = export_dataset(ws, tmp_path / "out", "folders")
        for sid in ("2", "8", "24"):
            written = read_png(tmp_path / "out" / "masks" / f"{sid}.png")
            assert set(np.unique(written)) == {0, 255}
            np.testing.assert_array_equal(written, ws.current_mask(sid).astype(np.uint8) * 255)
        m = manifest(tmp_path / "out")
        assert m["mask_values"]["written"] == "0/255" and m["mask_values"]["source"] == "0/255"
        assert m["options"]["mask_values"] == "source"
        assert "Masks written as 0/255 like the source." in (tmp_path / "out" / "CHANGES.md").read_text()
        assert "Masks written as 0/255 like the source." in result.summary_text

        result = export_dataset(ws, tmp_path / "ids", "folders", mask_values="ids")
        assert set(np.unique(read_png(tmp_path / "ids" / "masks" / "2.png"))) == {0, 1}
        assert manifest(tmp_path / "ids")["mask_values"]["written"] == "class ids"
        assert "class ids 0/1 (the source stores 0/255)" in result.summary_text


def test_cvc_clinicdb_frames_export_as_0_255_through_the_cli(cvc_dir, tmp_path, capsys):
    root = _cvc_frames(cvc_dir, tmp_path / "cvc")
    with Workspace.create(tmp_path / "ws", root):
        pass
    assert main(["export", str(tmp_path / "ws"), "--format", "folders", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert "Masks written as 0/255 like the source." in capsys.readouterr().out
    for k in range(20, 26):
        src = read_mask_values(cvc_dir / "masks" / f"{k}.png")
        src = src[..., 0] if src.ndim == 3 else src
        np.testing.assert_array_equal(read_png(tmp_path / "out" / "masks" / f"{k}.png"), np.where(src > 127, 255, 0))
    assert manifest(tmp_path / "out")["mask_values"]["written"] == "0/255"
    assert (
        main(
            [
                "export",
                str(tmp_path / "ws"),
                "--format",
                "folders",
                "--out",
                str(tmp_path / "ids"),
                "--mask-values",
                "ids",
                "--quiet",
            ]
        )
        == 0
    )
    assert set(np.unique(read_png(tmp_path / "ids" / "masks" / "20.png"))) == {0, 1}


def test_nnunet_and_monai_keep_class_ids_and_say_so(cvc_dir, tmp_path):
    root = _cvc_frames(cvc_dir, tmp_path / "cvc", range(20, 23))
    with Workspace.create(tmp_path / "ws", root) as ws:
        for fmt, labels in (("nnunet", "labelsTr"), ("monai", "labels")):
            result = export_dataset(ws, tmp_path / fmt, fmt)
            assert set(np.unique(read_png(tmp_path / fmt / labels / "20.png"))) == {0, 1}
            mv = manifest(tmp_path / fmt)["mask_values"]
            assert mv["written"] == "class ids" and mv["source"] == "0/255"
            assert "Masks written as class ids" in result.summary_text
            assert mv["note"] in (tmp_path / fmt / "CHANGES.md").read_text()


def test_a_multiclass_dataset_keeps_its_ids(tmp_path):
    with Workspace.create(tmp_path / "ws", make_palette(tmp_path / "ds")) as ws:
        export_dataset(ws, tmp_path / "out", "folders")
        for sid in ws.sample_ids():
            np.testing.assert_array_equal(read_png(tmp_path / "out" / "masks" / f"{sid}.png"), ws.current_mask(sid))
        mv = manifest(tmp_path / "out")["mask_values"]
        assert mv["source"] == "class ids" and mv["written"] == "class ids"
        assert mv["note"] == "Masks written as class ids like the source."


def test_an_unknown_mask_values_option_is_refused_before_anything_is_written(tmp_path):
    import pytest

    from medseg.errors import ExportError

    make_demo_dataset(tmp_path / "demo", sequences=1, frames=3, planted=0)
    with Workspace.create(tmp_path / "ws", tmp_path / "demo") as ws:
        with pytest.raises(ExportError, match="mask values must be one of source, ids"):
            export_dataset(ws, tmp_path / "out", "folders", mask_values="255")
    assert not (tmp_path / "out").exists()
