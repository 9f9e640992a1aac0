"""Tiny hand-made networks whose outputs the inference tests can predict exactly."""

from __future__ import annotations

import torch
from torch import nn

from medseg.datasets.classmap import ClassMap
from medseg.inference import Predictor
from medseg.models.spec import ModelSpec, Preprocessing


class Pointwise(nn.Module):
    """A 1x1 conv: every pixel's output depends on that pixel only, so tiling cannot change it."""

    def __init__(self, in_channels: int = 3, classes: int = 1, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(in_channels, classes, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 3)
            self.conv.bias.copy_(torch.randn(self.conv.bias.shape, generator=g))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.conv(x)


class SymmetricBlur(nn.Module):
    """Two 3x3 convs with kernels symmetric under flips and transposes (reflect padding):
    equivariant to hflip, vflip and rot90, and constant in, constant out."""

    def __init__(self, in_channels: int = 3, classes: int = 1):
        super().__init__()
        k = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16
        self.a = nn.Conv2d(in_channels, 4, 3, padding=1, padding_mode="reflect", bias=False)
        self.b = nn.Conv2d(4, classes, 3, padding=1, padding_mode="reflect")
        with torch.no_grad():
            mix1 = torch.linspace(-1, 1, 4 * in_channels).reshape(4, in_channels)
            mix2 = torch.linspace(2, -1, classes * 4).reshape(classes, 4)
            self.a.weight.copy_(mix1[:, :, None, None] * k)
            self.b.weight.copy_(mix2[:, :, None, None] * k)
            self.b.bias.fill_(0.1)

    def forward(self, x):
        return self.b(torch.relu(self.a(x) * 3))


class ZeroPadConv(nn.Module):
    """A small conv net with zero padding and a 9-pixel receptive field (tiles see different borders)."""

    def __init__(self, in_channels: int = 3, classes: int = 1):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=2, dilation=2),
            nn.ReLU(),
            nn.Conv2d(8, classes, 3, padding=1),
        )

    def forward(self, x):
        return self.net(x)


def task_classmap(task: str, n: int = 1) -> ClassMap:
    if task == "binary":
        return ClassMap.binary()
    return ClassMap.from_names([f"c{i}" for i in range(1, n + 1)], task=task)


def predictor(
    model: nn.Module, task: str = "binary", n: int = 1, prep: Preprocessing | None = None, **options
) -> Predictor:
    cm = task_classmap(task, n)
    spec = ModelSpec(
        arch="test", encoder="none", in_channels=(prep.channels if prep else 3), classes=cm.num_classes, task=task
    )
    options.setdefault("device", "cpu")
    return Predictor.from_model(model, spec, cm, prep or Preprocessing(divisible_by=16), **options)
