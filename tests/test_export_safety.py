"""Where an export refuses to go, and that a failed or interrupted export leaves nothing that looks complete."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from _export_data import make_frames

from medseg.errors import DestinationError, ExportError
from medseg.export import export_dataset, is_medseg_export, iter_export
from medseg.export.mask_out import mask_problem
from medseg.export.writers_folders import FoldersWriter
from medseg.workspace import Workspace


@pytest.fixture
def ws(tmp_path):
    ds = make_frames(tmp_path / "data" / "ds")
    with Workspace.create(tmp_path / "data" / "ws", ds) as w:
        yield w


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".medseg-export-" in p.name)


def tree_digest(folder) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def test_refuses_the_dataset_and_the_workspace_and_their_parents(ws, tmp_path):
    before = tree_digest(tmp_path / "data")
    for out, why in [
        (ws.dataset_root / "clean", "is inside the source dataset"),
        (ws.dataset_root, "is the source dataset"),
        (ws.root / "export", "is inside the workspace"),
        (tmp_path / "data", "contains the source dataset"),
    ]:
        with pytest.raises(DestinationError, match=why):
            export_dataset(ws, out, "folders", overwrite=True)
    assert tree_digest(tmp_path / "data") == before


def test_refuses_a_non_empty_folder_and_never_wipes_a_foreign_one(ws, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(ExportError, match="not empty"):
        export_dataset(ws, out, "folders")
    with pytest.raises(ExportError, match="not a previous export"):
        export_dataset(ws, out, "folders", overwrite=True)
    assert (out / "thesis.tex").read_text() == "years of work" and sorted(p.name for p in out.iterdir()) == [
        "thesis.tex"
    ]
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ExportError, match="is a file"):
        export_dataset(ws, tmp_path / "afile", "folders")
    with pytest.raises(ExportError, match="parent folder"):
        export_dataset(ws, tmp_path / "no" / "such" / "place", "folders")
    assert leftovers(tmp_path) == []


def test_an_empty_folder_is_used_and_a_previous_export_replaced_only_with_overwrite(ws, tmp_path):
    out = tmp_path / "clean"
    out.mkdir()
    export_dataset(ws, out, "folders")
    assert is_medseg_export(out) and (out / "images").is_dir()
    with pytest.raises(ExportError, match="not empty"):
        export_dataset(ws, out, "nnunet")
    export_dataset(ws, out, "nnunet", overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [
        "CHANGES.md",
        "dataset.json",
        "imagesTr",
        "labelsTr",
        "manifest.json",
    ]
    assert json.loads((out / "manifest.json").read_text())["format"] == "nnunet"
    assert leftovers(tmp_path) == []


class Boom(RuntimeError):
    pass


def failing_after(n: int, exc: type[BaseException] = Boom):
    real = FoldersWriter.write
    calls = {"n": 0}

    def write(self, item):
        calls["n"] += 1
        if calls["n"] > n:
            raise exc("disk full (injected)")
        return real(self, item)

    return write


def test_a_failure_mid_export_leaves_no_dataset(ws, tmp_path, monkeypatch):
    monkeypatch.setattr(FoldersWriter, "write", failing_after(3))
    with pytest.raises(Boom):
        export_dataset(ws, tmp_path / "clean", "folders")
    assert not (tmp_path / "clean").exists() and leftovers(tmp_path) == []


def test_a_failure_keeps_the_previous_export_intact(ws, tmp_path, monkeypatch):
    out = tmp_path / "clean"
    export_dataset(ws, out, "folders")
    before = tree_digest(out)
    monkeypatch.setattr(FoldersWriter, "write", failing_after(5, KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        export_dataset(ws, out, "folders", overwrite=True)
    assert tree_digest(out) == before and leftovers(tmp_path) == []


def test_closing_the_generator_early_cancels_cleanly(ws, tmp_path):
    events = iter_export(ws, tmp_path / "clean", "monai")
    next(events), next(events), next(events)
    assert len(leftovers(tmp_path)) == 1  # the staging folder, hidden beside out
    events.close()
    assert not (tmp_path / "clean").exists() and leftovers(tmp_path) == []


def test_a_source_image_changed_since_import_is_left_out_and_said_so(ws, tmp_path):
    changed = ws.sample("10").image_path
    changed.write_bytes(changed.read_bytes() + b"\0")
    export_dataset(ws, tmp_path / "clean", "folders")
    assert not (tmp_path / "clean" / "images" / "10.png").exists()
    entry = next(
        s for s in json.loads((tmp_path / "clean" / "manifest.json").read_text())["samples"] if s["id"] == "10"
    )
    assert entry["exported"] is None and "changed since the workspace imported it" in entry["left_out"]
    assert "- 10: source image" in (tmp_path / "clean" / "CHANGES.md").read_text()


def test_bad_options_are_refused_before_anything_is_written(ws, tmp_path):
    with pytest.raises(ExportError, match="unknown export format 'coco'; valid: folders, nnunet, monai"):
        export_dataset(ws, tmp_path / "a", "coco")
    with pytest.raises(ExportError, match="two positive"):
        export_dataset(ws, tmp_path / "a", "folders", split=(0.8, 0.1, 0.1))
    with pytest.raises(ExportError, match="k >= 2"):
        export_dataset(ws, tmp_path / "a", "folders", split=1)
    with pytest.raises(ExportError, match="cannot split 4 group"):
        export_dataset(ws, tmp_path / "a", "folders", split=5)
    with pytest.raises(ExportError, match="only offered by the folders format"):
        export_dataset(ws, tmp_path / "a", "nnunet", mask_scale=255)
    assert not (tmp_path / "a").exists() and leftovers(tmp_path) == []


def test_masks_that_do_not_fit_the_class_map_are_named(ws):
    cm = ws.classmap
    assert mask_problem(np.array([[0, 1]], np.uint8), cm) is None
    assert "outside the class map (255; valid: 0, 1)" in mask_problem(np.array([[0, 255]], np.uint8), cm)


def test_nnunet_refuses_cases_with_other_channels(ws, tmp_path):
    from PIL import Image

    grey = ws.sample("31").image_path
    Image.fromarray(np.zeros((32, 40), np.uint8)).save(grey)  # an RGB dataset with one grey frame
    # re-import so the workspace accepts the new bytes as the source
    ws2 = Workspace.create(tmp_path / "ws2", ws.dataset_root)
    with pytest.raises(ExportError, match="sample 1 is rgb .png but sample 31 .* is grey .png"):
        export_dataset(ws2, tmp_path / "nn", "nnunet")
    ws2.close()
    assert not (tmp_path / "nn").exists() and leftovers(tmp_path) == []
