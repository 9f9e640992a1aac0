"""Tiny datasets for the export tests: binary video frames, palette multiclass, UW-Madison multilabel, JPEG."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from medseg.io.rle import rle_encode

H, W = 32, 40
BLOCKS = ((1, 2, 3), (10, 11, 12), (20, 21, 22), (30, 31))  # frame blocks: the groups "1-3", "10-12", ...
PALETTE = [0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 0, 0, 0, 255]  # ids 1 red, 2 green, 4 blue (3 unused)
UW_CLASSES = ("large_bowel", "small_bowel", "stomach")


def box(r0: int, r1: int, c0: int, c1: int, value: int = 1) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[r0:r1, c0:c1] = value
    return m


def frame(block: int, k: int) -> np.ndarray:
    """An RGB frame whose colour is its block's, so frame_blocks keeps each block together."""
    rng = np.random.default_rng(100 * block + k)
    base = np.array([(60 * block) % 256, (200 - 40 * block) % 256, (90 + 70 * block) % 256])
    return np.clip(base + rng.integers(-6, 7, size=(H, W, 3)), 0, 255).astype(np.uint8)


def make_frames(root: Path, suffix: str = ".png") -> Path:
    """Binary polyp-like set: images/<n>.png RGB, masks/<n>.png 0/255, four frame blocks."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for b, block in enumerate(BLOCKS):
        for k, n in enumerate(block):
            Image.fromarray(frame(b, k)).save(root / "images" / f"{n}{suffix}", quality=95)
            Image.fromarray(box(4 + k, 14 + k, 5 + b, 20 + b, 255)).save(root / "masks" / f"{n}.png")
    return root


def save_palette(path: Path, ids: np.ndarray) -> None:
    im = Image.fromarray(ids, mode="P")
    im.putpalette(PALETTE + [0] * (768 - len(PALETTE)))
    im.save(path)


def make_palette(root: Path) -> Path:
    """Multiclass set with palette masks holding ids 0, 1, 2 and 4 (not consecutive), RGBA images."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(4):
        rgba = np.full((H, W, 4), 255, np.uint8)
        rgba[..., :3] = frame(i, 0)
        Image.fromarray(rgba, mode="RGBA").save(root / "images" / f"tissue_{i}.png")
        ids = box(2, 12, 2, 20, 1) + box(16, 30, 4, 18, 2) + box(5, 25, 24, 38, 4 if i % 2 == 0 else 2)
        save_palette(root / "masks" / f"tissue_{i}.png", ids)
    return root


UW_MASKS = {
    "case1_day1_slice_0001": {"large_bowel": box(2, 12, 3, 20), "stomach": box(8, 20, 10, 30)},
    "case1_day1_slice_0002": {},
    "case2_day3_slice_0001": {"small_bowel": box(20, 30, 5, 35), "stomach": box(18, 26, 0, 12)},
    "case3_day0_slice_0004": {
        "stomach": box(0, 5, 0, 40),
        "large_bowel": box(0, 10, 0, 10),
        "small_bowel": box(3, 8, 2, 6),
    },
}


def make_uw(root: Path) -> Path:
    """UW-Madison layout: 16-bit grey slices and overlapping RLE classes in train.csv."""
    for k, sid in enumerate(UW_MASKS):
        case, day, _, number = sid.split("_")
        scans = root / "train" / case / f"{case}_{day}" / "scans"
        scans.mkdir(parents=True, exist_ok=True)
        pixels = np.random.default_rng(k).integers(0, 4000, size=(H, W)).astype(np.uint16)
        Image.fromarray(pixels).save(scans / f"slice_{int(number):04d}_{W}_{H}_1.50_1.50.png")
    with open(root / "train.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "class", "segmentation"])
        for sid, per_class in UW_MASKS.items():
            for c in UW_CLASSES:
                w.writerow([sid, c, rle_encode(per_class[c]) if c in per_class else ""])
    return root


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.array(im)
