"""Tiny generated datasets and configs for the trainer tests (32x32 images, groups by a stem pattern)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from medseg.io.rle import rle_encode

SIZE = 32
GROUP_PATTERN = r"^(p\d+)_"
PALETTE = [0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255]


@pytest.fixture(autouse=True, scope="module")  # module scope: set before module fixtures that train
def one_thread():
    """Two torch threads on a busy 2-core machine spin-wait each other (a 20 ms step took 2 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def disk(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.integers(9, size - 9, 2)
    r = rng.integers(5, 9)
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def make_disks(root: Path, n: int = 12, size: int = SIZE, seed: int = 0, bits: int = 8) -> Path:
    """Binary set: a bright disk (foreground) on noise; stems p<k>_s<j>, two slices per group."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    for i in range(n):
        m = disk(rng, size)
        img = (rng.normal(60, 20, (size, size)) + 120 * m).clip(0, 255)
        if bits == 16:
            img = (img * 200).astype(np.uint16)
        else:
            img = img.astype(np.uint8)
        stem = f"p{i // 2}_s{i % 2}"
        Image.fromarray(img).save(root / "images" / f"{stem}.png")
        Image.fromarray((m * 255).astype(np.uint8)).save(root / "masks" / f"{stem}.png")
    return root


def make_palette(root: Path, n: int = 8, size: int = SIZE, seed: int = 0) -> Path:
    """Multiclass set (seed 003): RGBA images, 'P' masks with classes 1 (disk) and 2 (a band)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    for i in range(n):
        ids = np.zeros((size, size), np.uint8)
        r0 = int(rng.integers(0, size - 8))
        ids[r0 : r0 + 6] = 2
        ids[disk(rng, size)] = 1
        rgba = np.full((size, size, 4), 255, np.uint8)
        rgba[..., :3] = (
            rng.normal(50, 10, (size, size, 3)) + 80 * (ids == 1)[..., None] + 160 * (ids == 2)[..., None]
        ).clip(0, 255)
        stem = f"p{i // 2}_s{i % 2}"
        Image.fromarray(rgba, mode="RGBA").save(root / "images" / f"{stem}.png")
        im = Image.fromarray(ids, mode="P")
        im.putpalette(PALETTE + [0] * (768 - len(PALETTE)))
        im.save(root / "masks" / f"{stem}.png")
    return root


def make_uw(root: Path, n_cases: int = 4, slices: int = 2, size: int = SIZE, seed: int = 0) -> Path:
    """Multilabel UW-Madison layout: 16-bit slices, RLE rows for 3 overlapping classes, groups = cases."""
    rng = np.random.default_rng(seed)
    classes = ("large_bowel", "small_bowel", "stomach")
    rows = []
    for case in range(1, n_cases + 1):
        for number in range(1, slices + 1):
            scans = root / "train" / f"case{case}" / f"case{case}_day0" / "scans"
            scans.mkdir(parents=True, exist_ok=True)
            masks = {"large_bowel": disk(rng, size), "stomach": disk(rng, size)}
            img = rng.integers(0, 1000, (size, size)) + 2000 * masks["large_bowel"] + 3000 * masks["stomach"]
            Image.fromarray(img.astype(np.uint16)).save(scans / f"slice_{number:04d}_{size}_{size}_1.50_1.50.png")
            sid = f"case{case}_day0_slice_{number:04d}"
            for c in classes:
                rows.append([sid, c, rle_encode(masks[c].astype(np.uint8)) if c in masks else ""])
    with open(root / "train.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "class", "segmentation"])
        w.writerows(rows)
    return root


def config(root: Path, out: Path, **over: Any) -> dict[str, Any]:
    """A tiny CPU run: PlainUNet width 8 depth 3 at 32x32, deterministic, no overlays unless asked."""
    d: dict[str, Any] = {
        "data": {
            "root": str(root),
            "image_size": [SIZE, SIZE],
            "group_pattern": GROUP_PATTERN,
            "val_fraction": 0.25,
            "split_seed": 0,
        },
        "model": {"arch": "PlainUNet", "kwargs": {"depth": 3, "base_channels": 8}},
        "loss": "seed004_bce_dice",
        "augment": "none",
        "epochs": 1,
        "batch_size": 2,
        "optim": {"name": "adam", "lr": 1e-2, "scheduler": "constant"},
        "device": "cpu",
        "out_dir": str(out),
        "val_overlays": 0,
        "seed": 0,
    }
    return overridden(d, over)


def overridden(d: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``d`` with ``over`` applied: a mapping merged one level deep into ``d``'s, anything else replaced."""
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(d.get(key), dict):
            d[key] = {**d[key], **value}
        else:
            d[key] = value
    return d


def kinds(events) -> list[str]:
    return [e.kind for e in events]
