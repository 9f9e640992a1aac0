"""A small synthetic dataset with planted label errors, and a tiny training config, for the ranking tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _train_run import tiny_config
from PIL import Image

# which samples get a wrong label, and how
PLANTED = {"s03": "shifted", "s08": "wrong_object", "s14": "empty", "s19": "other_mask"}


def ellipse(shape: tuple[int, int], cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def make_planted(root: Path, n: int = 24, size: int = 64, seed: int = 0) -> tuple[Path, dict[str, str]]:
    """``n`` noisy grey-RGB images of one bright ellipse each, masks 0/255; the ``PLANTED`` masks are wrong.

    Files are ``images/sNN.png`` and ``masks/sNN.png`` (one group per stem
    with ``group_by="stem"``). Returns (root, planted).
    """
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    shape = (size, size)
    masks = []
    for k in range(n):
        ry, rx = rng.uniform(size * 0.12, size * 0.22, 2)
        cy, cx = rng.uniform(ry + 2, size - ry - 2), rng.uniform(rx + 2, size - rx - 2)
        obj = ellipse(shape, cy, cx, ry, rx)
        img = rng.normal(60, 20, (*shape, 3))
        img[obj] += 120
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / "images" / f"s{k:02d}.png")
        masks.append(obj)
    for k, obj in enumerate(masks):
        sid = f"s{k:02d}"
        label = corrupt(obj, PLANTED.get(sid), masks[(k + 7) % n], rng)
        Image.fromarray((label * 255).astype(np.uint8)).save(root / "masks" / f"{sid}.png")
    return root, dict(PLANTED)


def corrupt(obj: np.ndarray, kind: str | None, other: np.ndarray, rng) -> np.ndarray:
    if kind is None:
        return obj
    if kind == "shifted":
        return np.roll(obj, (obj.shape[0] // 4, obj.shape[1] // 4), axis=(0, 1))
    if kind == "wrong_object":  # an outline where the image has nothing, the real object left out
        h, w = obj.shape
        wrong = ellipse(obj.shape, h - 1 - h * 0.3, w - 1 - w * 0.3, h * 0.12, w * 0.12)
        return wrong & ~obj if (wrong & ~obj).any() else ellipse(obj.shape, h * 0.2, w * 0.2, h * 0.1, w * 0.1)
    if kind == "empty":
        return np.zeros_like(obj)
    if kind == "other_mask":
        return other
    raise ValueError(kind)


def tiny_rank_config(**over) -> dict:
    """_train_run's tiny config at 64x64 with 8 channels and no validation split: about a second per epoch.

    ``data.root`` and ``out_dir`` are left out: the ranking sets them per fold."""
    mine = {
        "data__val_fraction": 0.0,
        "data__image_size": [64, 64],
        "data__cache_mb": 64,
        "model__kwargs__base_channels": 8,
        "epochs": 6,
        "batch_size": 4,
    }
    cfg = tiny_config(Path("."), Path("."), **{**mine, **over})
    del cfg["out_dir"], cfg["data"]["root"], cfg["data"]["group_by"]
    return cfg
