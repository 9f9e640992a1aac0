"""The dataset overview (``medseg.stats``, ``medseg stats``) on synthetic data whose numbers are known."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from medseg.cli import main
from medseg.errors import Cancelled
from medseg.jobs import CancelToken, Progress, run
from medseg.stats import JSON_NAME, iter_stats, stats
from medseg.workspace import Workspace
from tests._workspace_data import make_palette

H, W = 32, 40


def _write(root, masks: dict[str, np.ndarray], grey: dict[str, int]) -> None:
    """RGB images of one known colour per sample (``grey`` gives the value of all three channels)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for sid, mask in masks.items():
        Image.fromarray(np.full((H, W, 3), grey[sid], np.uint8)).save(root / "images" / f"{sid}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / "masks" / f"{sid}.png")


@pytest.fixture
def binary_root(tmp_path):
    one = np.zeros((H, W), bool)
    one[2:12, 4:14] = True  # 100 px, one object
    two = np.zeros((H, W), bool)
    two[0:5, 0:4] = True  # 20 px
    two[20:30, 20:30] = True  # 100 px: two objects, 120 px
    diag = np.zeros((H, W), bool)
    diag[5, 5] = diag[6, 6] = True  # touching at a corner: one object (8-connected)
    root = tmp_path / "ds"
    _write(root, {"1": one, "2": two, "3": np.zeros((H, W), bool), "4": diag}, {"1": 10, "2": 20, "3": 30, "4": 40})
    return root


def test_binary_dataset_numbers_are_exact(binary_root):
    report = stats(binary_root, workers=1)
    d = report.to_dict()
    assert d["samples"] == 4 and d["source"]["kind"] == "dataset" and d["source"]["task"] == "binary"
    img = d["images"]
    assert img["sizes"] == {f"{H}x{W}": 4} and img["read_pixels"] == 4
    assert img["formats"] == {"png": 4} and img["modalities"] == {"PNG RGB": 4} and img["bit_depths"] == {"8": 4}
    assert img["spacing_known"] == 0 and img["spacings"] == {"1 x 1": 4}
    red = img["intensity"]["PNG RGB"]["channels"]["R"]
    assert (red["min"], red["max"], red["mean"]) == (10, 40, 25.0)
    assert sum(red["histogram"]["counts"]) == 4 * H * W  # every pixel of images this small is pooled
    assert red["histogram"]["counts"][20] == H * W
    labels = d["labels"]
    assert labels["masks"] == 4 and labels["empty_masks"] == 1 and labels["pixels"] == 4 * H * W
    fg = labels["classes"]["foreground"]
    assert fg["pixels"] == 222 and fg["objects"] == 4 and fg["samples"] == 3
    assert fg["pixel_fraction"] == pytest.approx(222 / (4 * H * W))
    assert fg["area_fraction"]["max"] == pytest.approx(120 / (H * W))
    assert fg["area_fraction"]["median"] == pytest.approx(100 / (H * W))
    assert sum(fg["area_histogram"]) == 3
    assert d["findings"]["by_check"] == {} and d["unreadable"] == []
    text = "\n".join(report.lines())
    assert "4 samples" in text and "foreground: 4.336% of pixels, 4 objects in 3 samples" in text


def test_header_only_images_keep_sizes_and_skip_intensities(binary_root):
    d = stats(binary_root, intensity_images=0, workers=1).to_dict()
    assert d["images"]["read_pixels"] == 0 and d["images"]["intensity"] == {}
    assert d["images"]["sizes"] == {f"{H}x{W}": 4} and d["images"]["bit_depths"] == {"8": 4}
    assert d["labels"]["classes"]["foreground"]["objects"] == 4  # masks are always read
    two = stats(binary_root, intensity_images=2, workers=2).to_dict()
    assert two["images"]["read_pixels"] == 2 and two["images"]["intensity"]["PNG RGB"]["images"] == 2
    assert two["labels"] == d["labels"]  # threads give the same sums


def test_multiclass_palette_dataset(tmp_path):
    d = stats(make_palette(tmp_path / "pal", n=3), workers=1).to_dict()
    classes = d["labels"]["classes"]
    assert [c["pixels"] for c in classes.values()] == [3 * 180, 3 * 196, 3 * 280]
    assert [c["objects"] for c in classes.values()] == [3, 3, 3]
    assert [c["samples"] for c in classes.values()] == [3, 3, 3]


def test_workspace_review_findings_and_before_after_cleaning(binary_root, tmp_path):
    from medseg.qc import qc

    with Workspace.create(tmp_path / "ws", binary_root) as ws:
        grown = ws.current_mask("1").copy()
        grown[2:12, 14:24] = 1  # 100 px more, still one object
        ws.save_revision("1", grown, origin="manual")
        ws.set_status("2", "excluded", "image unusable")
        ws.set_status("4", "accepted")
        qc(ws, checks="specks,empty_mask")
        by_check = ws.summary()["by_check"]
        d = stats(ws, workers=1).to_dict()
    assert d["source"]["kind"] == "workspace" and d["samples"] == 4
    assert d["review"]["by_status"] == {"unreviewed": 1, "accepted": 1, "corrected": 1, "excluded": 1}
    assert d["findings"]["by_check"] == by_check and by_check  # the stored QC findings, counted by check
    assert d["cleaning"] == {"samples_changed": 1, "samples_excluded": 1}
    before, now = d["labels_imported"], d["labels"]
    assert before["masks"] == 4 and before["classes"]["foreground"]["pixels"] == 222
    assert now["masks"] == 3  # the excluded sample is left out of the labels as they are now
    assert now["classes"]["foreground"]["pixels"] == 200 + 2
    assert now["classes"]["foreground"]["objects"] == 2 and now["classes"]["foreground"]["samples"] == 2
    report_text = "\n".join(stats(tmp_path / "ws", workers=1).lines())  # a folder holding a workspace
    assert "1 labels changed since import, 1 excluded" in report_text
    assert "objects 4 -> 2" in report_text


def test_plots_are_pngs_and_the_folder_gets_every_file(binary_root, tmp_path):
    report = stats(binary_root, workers=1)
    written = report.write(tmp_path / "out")
    names = sorted(p.name for p in written)
    assert names == sorted([JSON_NAME, "images.png", "classes.png", "areas.png", "intensity.png"])
    for p in written:
        if p.suffix == ".png":
            with Image.open(p) as im:
                assert im.format == "PNG" and im.size[0] > 200
    assert json.loads((tmp_path / "out" / JSON_NAME).read_text())["labels"]["classes"]["foreground"]["pixels"] == 222


def test_job_events_and_cancel(binary_root):
    events = []
    run(iter_stats(binary_root, workers=1), on_event=events.append)
    done = [e.done for e in events if isinstance(e, Progress)]
    assert done == [0, 1, 2, 3, 4]
    token = CancelToken()
    job = iter_stats(binary_root, workers=1, cancel=token)
    with pytest.raises(Cancelled):
        for e in job:
            if isinstance(e, Progress) and e.done == 2:
                token.set()


def test_an_unreadable_mask_is_named_and_the_rest_counted(binary_root):
    path = binary_root / "masks" / "2.png"
    path.write_bytes(path.read_bytes()[:60])  # the header indexes, the pixels are cut off
    d = stats(binary_root, workers=1).to_dict()
    assert [u["sample"] for u in d["unreadable"]] == ["2"] and "2.png" in d["unreadable"][0]["error"]
    assert d["labels"]["masks"] == 3 and d["labels"]["classes"]["foreground"]["pixels"] == 102
    broken = binary_root / "masks" / "3.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n broken")  # no header at all: the index leaves the sample out
    d = stats(binary_root, workers=1).to_dict()
    assert d["samples"] == 3 and d["findings"]["by_check"] == {"unreadable": 1}


def test_cli_prints_writes_and_refuses(binary_root, tmp_path, capsys):
    out, numbers = tmp_path / "overview", tmp_path / "n.json"
    rc = main(["stats", str(binary_root), "--out", str(out), "--json", str(numbers), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "4 samples in" in text and "foreground" in text
    assert (out / "classes.png").is_file() and (out / JSON_NAME).is_file()
    assert json.loads(numbers.read_text())["labels"]["classes"]["foreground"]["objects"] == 4
    assert main(["stats", str(binary_root), "--out", str(out), "--quiet"]) == 2  # the files exist
    assert "--overwrite" in capsys.readouterr().err
    assert main(["stats", str(binary_root), "--out", str(out), "--overwrite", "--quiet"]) == 0
    # never into the dataset it reads
    assert main(["stats", str(binary_root), "--out", str(binary_root / "stats"), "--quiet"]) == 2
    assert not (binary_root / "stats").exists()
    assert main(["stats", str(tmp_path / "nothing")]) == 2
    assert "nothing" in capsys.readouterr().err
