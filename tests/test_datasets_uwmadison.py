"""UW-Madison GI tract: train.csv RLE rows + 16-bit slice PNGs; multilabel masks; case groups."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medseg.datasets import dataset as ds
from medseg.datasets import detect_layout, open_dataset, split_by_group
from medseg.errors import MaskError
from medseg.io.rle import rle_encode

ROWS, COLS = 32, 40  # non-square: file names say width (40) before height (32)
CLASSES = ("large_bowel", "small_bowel", "stomach")


def box(r0, r1, c0, c1) -> np.ndarray:
    m = np.zeros((ROWS, COLS), np.uint8)
    m[r0:r1, c0:c1] = 1
    return m


def write_slice(root: Path, case: int, day: int, number: int, seed: int = 0) -> Path:
    scans = root / "train" / f"case{case}" / f"case{case}_day{day}" / "scans"
    scans.mkdir(parents=True, exist_ok=True)
    path = scans / f"slice_{number:04d}_{COLS}_{ROWS}_1.50_1.63.png"
    pixels = np.random.default_rng(seed).integers(0, 4000, size=(ROWS, COLS)).astype(np.uint16)
    Image.fromarray(pixels).save(path)
    return path


def make_uw(root: Path, rows: list[tuple[str, str, str]] | None = None) -> tuple[Path, dict]:
    masks = {
        "case123_day20_slice_0001": {"large_bowel": box(2, 12, 3, 20), "stomach": box(8, 20, 10, 30)},
        "case123_day20_slice_0002": {},
        "case123_day22_slice_0001": {"small_bowel": box(20, 30, 5, 35)},
        "case7_day0_slice_0003": {"stomach": box(0, 5, 0, 40)},
    }
    for k, sid in enumerate(masks):
        case, day, _, number = sid.split("_")
        write_slice(root, int(case[4:]), int(day[3:]), int(number), seed=k)
    with open(root / "train.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "class", "segmentation"])
        for sid, per_class in masks.items():
            for c in CLASSES:
                w.writerow([sid, c, rle_encode(per_class[c]) if c in per_class else ""])
        for row in rows or []:
            w.writerow(row)
    return root, masks


def test_uw_folder_is_detected_and_indexed(tmp_path):
    root, masks = make_uw(tmp_path)
    assert detect_layout(root) == "uwmadison"
    d = open_dataset(root)
    assert d.layout == "uwmadison" and d.problems == []
    assert sorted(s.id for s in d) == sorted(masks)
    assert d.classmap.task == "multilabel" and d.classmap.names == list(CLASSES)
    s = d.by_id("case123_day20_slice_0001")
    assert s.group == "case123" and d.by_id("case7_day0_slice_0003").group == "case7"
    assert s.mask_paths == {"rle": root / "train.csv"}
    assert s.extra["case"] == "case123" and s.extra["day"] == "day20" and s.extra["slice"] == 1
    assert s.extra["spacing"] == (1.63, 1.5)  # (row, col): the name gives col spacing first
    assert s.image_path.name == f"slice_0001_{COLS}_{ROWS}_1.50_1.63.png"


def test_uw_masks_are_overlapping_channels(tmp_path):
    root, masks = make_uw(tmp_path)
    d = open_dataset(root)
    for sid, per_class in masks.items():
        channels = d.by_id(sid).load_mask()
        assert channels.shape == (ROWS, COLS, 3) and channels.dtype == bool
        for k, c in enumerate(CLASSES):
            expected = per_class.get(c, np.zeros((ROWS, COLS), np.uint8)).astype(bool)
            np.testing.assert_array_equal(channels[..., k], expected, err_msg=f"{sid} {c}")
    overlap = d.by_id("case123_day20_slice_0001").load_mask()
    assert (overlap[..., 0] & overlap[..., 2]).sum() == 4 * 10  # rows 8..11 x cols 10..19
    image = d.by_id("case7_day0_slice_0003").load_image()
    assert image.array.shape == (ROWS, COLS) and image.array.dtype == np.uint16


def test_days_of_one_case_never_split(tmp_path):
    root, _ = make_uw(tmp_path)
    d = open_dataset(root)
    for seed in range(20):
        a, b = split_by_group(d.samples, (0.5, 0.5), seed=seed)
        assert {s.group for s in a}.isdisjoint({s.group for s in b})
        assert {s.group for s in a} | {s.group for s in b} == {"case123", "case7"}


def test_uw_problems(tmp_path):
    root, _ = make_uw(
        tmp_path,
        rows=[
            ("case123_day20_slice_0009", "stomach", "5 3"),  # slice file absent
            ("case123_day20_slice_0009", "large_bowel", ""),
            ("not-an-id", "stomach", ""),  # bad id
            ("case7_day0_slice_0003", "stomach", "1 2"),  # second row for the same class
            ("case7_day0_slice_0004", "stomach", "1 x"),  # malformed RLE
        ],
    )
    orphan = write_slice(root, 123, 20, 5)  # slice without rows
    scans = orphan.parent
    (scans / "notes.txt").write_text("?")
    d = open_dataset(root)
    assert len(d) == 4
    kinds = sorted(p.kind for p in d.problems)
    assert kinds == sorted(
        [ds.MISSING_SLICE, ds.BAD_ROW, ds.BAD_ROW, ds.BAD_ROW, ds.IMAGE_WITHOUT_MASK, ds.UNSUPPORTED_FILE]
    )
    missing = next(p for p in d.problems if p.kind == ds.MISSING_SLICE)
    assert "case123_day20_slice_0009" in missing.message  # reported once for its two rows
    bad = [p.message for p in d.problems if p.kind == ds.BAD_ROW]
    assert any("line 16" in m and "not-an-id" in m for m in bad)
    assert any("second row" in m for m in bad) and any("pairs of integers" in m for m in bad)
    assert next(p for p in d.problems if p.kind == ds.IMAGE_WITHOUT_MASK).path == orphan


def test_uw_slice_whose_name_disagrees_with_its_pixels(tmp_path):
    root, _ = make_uw(tmp_path)
    wrong = root / "train" / "case7" / "case7_day0" / "scans" / f"slice_0003_{COLS}_{ROWS}_1.50_1.63.png"
    Image.fromarray(np.zeros((COLS, ROWS), np.uint16)).save(wrong)  # transposed pixels
    d = open_dataset(root)
    assert [(p.path, p.kind) for p in d.problems] == [(wrong, ds.SIZE_MISMATCH)]
    assert len(d) == 3


def test_rle_running_past_the_image_is_a_mask_error(tmp_path):
    root, _ = make_uw(tmp_path)
    text = (root / "train.csv").read_text()
    row = "case7_day0_slice_0003,small_bowel,"
    assert row + "\n" in text
    (root / "train.csv").write_text(text.replace(row + "\n", row + f"{ROWS * COLS} 5\n"))
    d = open_dataset(root)
    assert d.problems == []
    with pytest.raises(MaskError, match="case7_day0_slice_0003") as e:
        d.by_id("case7_day0_slice_0003").load_mask()
    assert "train.csv" in str(e.value)
