"""Checkpoints and images for the Predict widget tests.

``BrightNet`` is a registered architecture whose prediction the tests know in
advance: a pixel is foreground when its mean intensity is above one half, so
a bright disk on dark noise comes back as that disk. ``tiny_unet`` saves a
real (untrained) PlainUNet checkpoint for the tests that need a real network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from medseg.datasets.classmap import ClassMap
from medseg.models import save_checkpoint
from medseg.models.registry import ARCHITECTURES, Architecture, create_model, register
from medseg.models.spec import ModelSpec, Preprocessing

BRIGHT = "BrightNet"


class BrightNet(nn.Module):
    """logit = 20 * (mean of the [0, 1] channels - 0.5) for every class: foreground where the image is bright."""

    def __init__(self, in_channels: int = 3, classes: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, classes, 1)
        with torch.no_grad():
            self.conv.weight.fill_(20.0 / in_channels)
            self.conv.bias.fill_(-10.0)

    def forward(self, x):
        return self.conv(x)


def register_bright() -> None:
    register(Architecture(BRIGHT, lambda spec, load_weights: BrightNet(spec.in_channels, spec.classes), lambda spec: 1))


def unregister_bright() -> None:
    ARCHITECTURES.pop(BRIGHT, None)


def bright_checkpoint(folder: Path, name: str = "bright", classmap: ClassMap | None = None) -> Path:
    classmap = classmap or ClassMap.binary("polyp")
    spec = ModelSpec(arch=BRIGHT, encoder="none", classes=classmap.num_classes, task=classmap.task)
    return save_checkpoint(
        folder / name, create_model(spec).eval(), spec, classmap, Preprocessing(channels=3, divisible_by=1)
    )


def bright_25d_checkpoint(folder: Path, name: str, class_name: str, window: tuple[float, float]) -> Path:
    """A 2.5-D BrightNet checkpoint of one class: 3 neighbouring slices as channels through one CT ``window``
    (center, width) for the whole volume, so a voxel is the class where its 3-slice windowed mean is above
    one half (the window's center in HU)."""
    classmap = ClassMap.binary(class_name)
    spec = ModelSpec(arch=BRIGHT, encoder="none", in_channels=3, classes=1, task="binary")
    prep = Preprocessing(channels=3, window=list(window), divisible_by=1, slices=3, scope="volume")
    return save_checkpoint(folder / name, create_model(spec).eval(), spec, classmap, prep)


def tiny_unet(folder: Path, name: str = "unet", seed: int = 0) -> Path:
    torch.manual_seed(seed)
    spec = ModelSpec(arch="PlainUNet", classes=1, task="binary", kwargs={"depth": 2, "base_channels": 4})
    return save_checkpoint(
        folder / name,
        create_model(spec).eval(),
        spec,
        ClassMap.binary("polyp"),
        Preprocessing(channels=3, input_size=[32, 32], divisible_by=4),
    )


def disk_mask(shape: tuple[int, int], cy: int, cx: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def disk_image(shape=(48, 56), cy=20, cx=30, r=9, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 grey image: a bright disk (about 200) on dark noise (about 50), and the disk's mask."""
    rng = np.random.default_rng(seed)
    mask = disk_mask(shape, cy, cx, r)
    img = (rng.normal(50, 12, shape) + 150 * mask).clip(0, 255).astype(np.uint8)
    return img, mask


def disk_stack(n: int = 6, shape=(48, 56)) -> tuple[np.ndarray, np.ndarray]:
    """(n, H, W) frames whose disk moves right frame by frame."""
    pairs = [disk_image(shape, cy=22, cx=12 + 6 * k, r=7, seed=k) for k in range(n)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
