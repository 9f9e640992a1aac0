"""Tiny datasets for the workspace tests, and a snapshot of a source tree to prove it is never written."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from medseg.io.rle import rle_encode

H, W = 32, 40
PALETTE = [0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255]  # ids 1 red, 2 green, 3 blue
UW_CLASSES = ("large_bowel", "small_bowel", "stomach")


def box(r0: int, r1: int, c0: int, c1: int, value: int = 1, dtype=np.uint8) -> np.ndarray:
    m = np.zeros((H, W), dtype)
    m[r0:r1, c0:c1] = value
    return m


def make_binary(root: Path, n: int = 4, grey_noise_in: int | None = None) -> Path:
    """images/<i>.png RGB + masks/<i>.png 0/255; sample ``grey_noise_in`` also holds faint grey levels
    (10..40, as in CVC-ClinicDB's original frame 1) in a block away from its object."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(1, n + 1):
        rng = np.random.default_rng(i)
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(root / "images" / f"{i}.png")
        mask = box(4 + i, 14 + i, 5, 20, 255)
        if i == grey_noise_in:
            mask[24:30, 25:38] = rng.integers(10, 41, (6, 13))
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    return root


def make_palette(root: Path, n: int = 3) -> Path:
    """Multiclass set: palette masks with ids 0..3."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        rng = np.random.default_rng(10 + i)
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(root / "images" / f"t{i}.png")
        ids = box(2, 12, 2, 20, 1) + box(16, 30, 4, 18, 2) + box(5, 25, 24, 38, 3)
        im = Image.fromarray(ids, mode="P")
        im.putpalette(PALETTE + [0] * (768 - len(PALETTE)))
        im.save(root / "masks" / f"t{i}.png")
    return root


UW_MASKS = {
    "case1_day1_slice_0001": {"large_bowel": box(2, 12, 3, 20), "stomach": box(8, 20, 10, 30)},
    "case2_day3_slice_0001": {"small_bowel": box(20, 30, 5, 35)},
}


def make_uw(root: Path) -> Path:
    """UW-Madison layout: multilabel (overlapping) RLE classes in train.csv."""
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


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """{relative path: (size, mtime_ns, sha256)} of every file, and folders with their mtimes."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.stat()
        rel = p.relative_to(root).as_posix()
        if p.is_dir():
            out[rel + "/"] = (0, st.st_mtime_ns, "")
        else:
            out[rel] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out
