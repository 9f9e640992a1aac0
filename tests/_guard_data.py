"""Datasets, a workspace and a checkpoint for the write-guard tests, from real CVC-ClinicDB frames.

``stem_mask_dataset`` is the layout of the issue's data loss: ``images/<i>.png`` and
``masks/<i>_mask.png``, exactly the names ``medseg predict`` writes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

FRAMES = (1, 2, 3, 4)
SIZE = (64, 48)  # (width, height): small, so a prediction takes milliseconds


def stem_mask_dataset(cvc_dir: Path, root: Path, frames=FRAMES) -> Path:
    """images/<i>.png (RGB frames) + masks/<i>_mask.png (0/255) from CVC-ClinicDB, shrunk to SIZE."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in frames:
        with Image.open(cvc_dir / "images" / f"{i}.png") as im:
            im.convert("RGB").resize(SIZE, Image.BILINEAR).save(root / "images" / f"{i}.png")
        with Image.open(cvc_dir / "masks" / f"{i}.png") as m:
            a = np.asarray(m.convert("L").resize(SIZE, Image.NEAREST))
        Image.fromarray(np.where(a > 127, 255, 0).astype(np.uint8)).save(root / "masks" / f"{i}_mask.png")
    return root


def tree_hashes(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``folder``: byte-identical means equal dicts."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def tiny_checkpoint(folder: Path) -> Path:
    from _predict_data import tiny_unet

    return tiny_unet(folder, "tiny")
