"""A tiny dataset and config for the tests that run ``medseg train`` for real (CLI, runner, torchrun)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def make_dataset(root: Path, n: int = 8, size: int = 32) -> Path:
    """``n`` RGB images with a bright disc and its binary mask (0/255), stems ``caseK`` (one group each)."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:size, :size]
    for k in range(n):
        cy, cx, r = rng.integers(size // 4, 3 * size // 4, 2).tolist() + [int(rng.integers(4, size // 4))]
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        img = rng.integers(0, 90, (size, size, 3)).astype(np.uint8)
        img[disc] = rng.integers(170, 255, (int(disc.sum()), 3))
        Image.fromarray(img).save(root / "images" / f"case{k}.png")
        Image.fromarray((disc * 255).astype(np.uint8)).save(root / "masks" / f"case{k}.png")
    return root


def tiny_config(data: Path, out: Path, **over) -> dict:
    """A PlainUNet (width 4, depth 2) on 32x32 images, CPU, fp32, no augmentation: seconds per epoch."""
    cfg = {
        "data": {"root": str(data), "group_by": "stem", "val_fraction": 0.25, "image_size": [32, 32]},
        "model": {"arch": "PlainUNet", "kwargs": {"depth": 2, "base_channels": 4, "dropout": 0.0}},
        "loss": "seed004_bce_dice",
        "augment": "none",
        "optim": {"name": "adam", "lr": 0.01, "scheduler": "constant"},
        "epochs": 2,
        "batch_size": 2,
        "device": "cpu",
        "precision": "fp32",
        "seed": 0,
        "out_dir": str(out),
        "val_overlays": 0,
    }
    for key, value in over.items():
        node = cfg
        *parents, leaf = key.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return cfg


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child ``python -m medseg.cli``: offline, one thread, no torchrun leftovers."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env.update(NO_ALBUMENTATIONS_UPDATE="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


PYTHON = sys.executable


def watch_training_children(monkeypatch) -> list:
    """The ``TrainingProcess`` objects the plugin's training jobs start from now on (the dock holds none)."""
    import medseg.training.runner as runner

    started = []

    class Watched(runner.TrainingProcess):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(runner, "TrainingProcess", Watched)
    return started


def set_up_finetune(widget, qtbot, timeout: int, **values) -> None:
    """A Fine-tune dock ready for a tiny CPU run: its child's environment, the architectures it offers
    (read in a worker after the dock is built: torch off the GUI thread), then the form's ``values``
    (PlainUNet, 1 epoch at 32x32, no augmentation, on the CPU unless given)."""
    widget.child_env = child_env()
    qtbot.waitUntil(lambda: "PlainUNet" in widget.form.arch.choices, timeout=timeout)
    base = {"arch": "PlainUNet", "epochs": 1, "image_size": 32, "augment": "none", "device": "CPU"}
    for name, value in {**base, **values}.items():
        getattr(widget.form, name).value = value
