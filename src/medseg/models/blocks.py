"""Building blocks of the project's own U-Nets (seed 000's attention U-Net, the dilated U-Net, seed 003's plain U-Net).

References:
- Residual block: He et al. 2016, "Deep Residual Learning for Image Recognition", arXiv 1512.03385.
- ASPP: Chen et al. 2017, "Rethinking Atrous Convolution for Semantic Image Segmentation" (DeepLab v3),
  arXiv 1706.05587.
- CBAM: Woo et al. 2018, "CBAM: Convolutional Block Attention Module", arXiv 1807.06521 (timm's implementation).
- Attention gate: Oktay et al. 2018, "Attention U-Net: Learning Where to Look for the Pancreas", arXiv 1804.03999.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.layers.cbam import ChannelAttn, SpatialAttn
from torch import nn


class ConvBNAct(nn.Sequential):
    """``k x k`` convolution (``same`` padding, optional dilation), BatchNorm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1, act: bool = True):
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                padding=dilation * (kernel_size // 2),
                dilation=dilation,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DoubleConv(nn.Sequential):
    """Two conv-BN-ReLU layers: the block of the original U-Net (Ronneberger et al. 2015, arXiv 1505.04597)."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1):
        super().__init__(
            ConvBNAct(in_channels, out_channels, dilation=dilation),
            ConvBNAct(out_channels, out_channels, dilation=dilation),
        )


class ResidualBlock(nn.Module):
    """ResNet basic block (He et al. 2016): ``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``.

    The shortcut is the identity when the channel count is kept, else a 1x1
    conv + BN projection. ``dilation`` widens both 3x3 convolutions' receptive
    field without reducing resolution (used by ``DilatedUNet``).
    """

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1):
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, out_channels, dilation=dilation)
        self.conv2 = ConvBNAct(out_channels, out_channels, dilation=dilation, act=False)
        self.shortcut: nn.Module = (
            nn.Identity()
            if in_channels == out_channels
            else ConvBNAct(in_channels, out_channels, kernel_size=1, act=False)
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling (Chen et al., DeepLab v3, arXiv 1706.05587).

    Parallel branches see the same features at several receptive fields: a
    1x1 conv for rate 1, a 3x3 conv dilated by each other rate, and image-level
    pooling (global context); their concatenation is projected back by a
    1x1 conv. The pooling branch has no BatchNorm, unlike DeepLab's: over a
    1x1 map, BatchNorm cannot train with a batch of one, which fine-tuning on a
    CPU often uses.
    """

    def __init__(
        self, in_channels: int, out_channels: int, rates: Sequence[int] = (1, 6, 12, 18), dropout: float = 0.1
    ):
        super().__init__()
        if not rates or any(int(r) < 1 for r in rates):
            raise ValueError(f"ASPP rates must be positive integers, got {list(rates)}")
        self.branches = nn.ModuleList(
            ConvBNAct(in_channels, out_channels, kernel_size=1)
            if r == 1
            else ConvBNAct(in_channels, out_channels, dilation=int(r))
            for r in rates
        )
        self.pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, out_channels, 1), nn.ReLU(inplace=True)
        )
        self.project = nn.Sequential(
            ConvBNAct(out_channels * (len(rates) + 1), out_channels, kernel_size=1), nn.Dropout2d(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(x).expand(-1, -1, x.shape[-2], x.shape[-1])
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], dim=1))


class CBAM(nn.Module):
    """Convolutional Block Attention Module (Woo et al. 2018, arXiv 1807.06521).

    Channel attention (a shared MLP over average- and max-pooled features,
    sigmoid) then spatial attention (a 7x7 conv over the channel-wise mean and
    max, sigmoid); each multiplies the features by a gate in [0, 1]. The two
    halves are timm's ``ChannelAttn`` and ``SpatialAttn``; ``reduction`` is
    the MLP's channel reduction (16 in the paper), kept >= 1 channel so narrow
    layers work.
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7):
        super().__init__()
        self.channel = ChannelAttn(channels, rd_channels=max(1, channels // reduction))
        self.spatial = SpatialAttn(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


class AttentionGate(nn.Module):
    """Additive attention gate on a skip connection (Oktay et al. 2018, arXiv 1804.03999).

    ``alpha = sigmoid(psi(relu(W_x x + W_g g)))`` with 1x1 convolutions; the
    skip features ``x`` are multiplied by ``alpha`` in [0, 1] per pixel, so the
    decoder's coarser gating signal ``g`` suppresses irrelevant regions. ``g``
    may have a lower resolution than ``x`` (it usually has half): its
    projection is resized bilinearly to ``x``'s size, which also handles odd
    sizes where Oktay's strided ``W_x`` would not line up.
    """

    def __init__(self, skip_channels: int, gate_channels: int, inter_channels: int | None = None):
        super().__init__()
        inter = inter_channels or max(1, skip_channels // 2)
        self.theta_x = nn.Conv2d(skip_channels, inter, 1, bias=False)
        # no conv biases before BatchNorm: it would cancel them (they would never learn)
        self.phi_g = nn.Sequential(nn.Conv2d(gate_channels, inter, 1, bias=False), nn.BatchNorm2d(inter))
        self.psi = nn.Sequential(nn.Conv2d(inter, 1, 1, bias=False), nn.BatchNorm2d(1))

    def coefficients(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Attention coefficients ``alpha`` (B, 1, H, W) in [0, 1] at ``x``'s resolution."""
        phi = self.phi_g(g)
        if phi.shape[-2:] != x.shape[-2:]:
            phi = F.interpolate(phi, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return torch.sigmoid(self.psi(F.relu(self.theta_x(x) + phi)))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return x * self.coefficients(x, g)
