"""The project's own U-Nets, in plain torch: seed 000's two polyp models and seed 003's plain U-Net.

Each takes ``in_channels``/``classes`` from the ``ModelSpec`` and the rest
from ``spec.kwargs``; each returns logits (B, classes, H, W) for any H, W
divisible by ``2 ** depth`` (``model.stride``), keeps its encoder stages in
``model.encoder`` (so local pretrained weights can be loaded into it), and
with ``aux=True`` leaves per-class presence logits in ``model.last_aux``
(see ``medseg.models.aux_head``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medseg.models.aux_head import PooledClassifier
from medseg.models.blocks import ASPP, CBAM, AttentionGate, ConvBNAct, DoubleConv, ResidualBlock


def _widths(base_channels: int, depth: int) -> list[int]:
    if int(depth) < 1 or int(base_channels) < 1:
        raise ValueError(f"depth and base_channels must be >= 1, got depth={depth}, base_channels={base_channels}")
    return [int(base_channels) * 2**i for i in range(int(depth) + 1)]


def _to_size(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    # a transposed conv doubles floor(H / 2): off by one for odd sizes, which a stride-conforming input never has
    return x if x.shape[-2:] == ref.shape[-2:] else F.interpolate(x, size=ref.shape[-2:], mode="nearest")


class _OwnUNet(nn.Module):
    """What the own architectures share: stride, and the aux logits of the last forward."""

    last_aux: torch.Tensor | None = None

    def __init__(self, depth: int, aux_channels: int, classes: int, aux: bool, aux_dropout: float):
        super().__init__()
        self.stride = 2 ** int(depth)
        self.aux_head = PooledClassifier(aux_channels, classes, aux_dropout) if aux else None

    def _store_aux(self, bottleneck: torch.Tensor) -> None:
        self.last_aux = self.aux_head(bottleneck) if self.aux_head is not None else None


class PlainUNet(_OwnUNet):
    """Seed 003's U-Net (after Ronneberger et al. 2015, arXiv 1505.04597).

    Encoder: ``depth`` blocks of conv-BN-ReLU x2, each followed by 2x2 max
    pooling and dropout (``dropout``, 0.2 in the seed); a conv-BN-ReLU x2
    bridge with ``base_channels * 2 ** depth`` channels. Decoder: 2x2
    transposed convolution, concatenation with the skip, conv-BN-ReLU x2.
    A 1x1 convolution gives the logits.
    """

    def __init__(
        self,
        in_channels: int = 3,
        classes: int = 1,
        depth: int = 4,
        base_channels: int = 64,
        dropout: float = 0.2,
        aux: bool = False,
        aux_dropout: float = 0.2,
    ):
        w = _widths(base_channels, depth)
        super().__init__(depth, w[-1], classes, aux, aux_dropout)
        self.encoder = nn.ModuleList(
            [DoubleConv(in_channels if i == 0 else w[i - 1], w[i]) for i in range(depth)]
            + [DoubleConv(w[depth - 1], w[depth])]
        )
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout(dropout)
        self.up = nn.ModuleList(nn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2) for i in reversed(range(depth)))
        self.decoder = nn.ModuleList(DoubleConv(2 * w[i], w[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(w[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.encoder[:-1]:
            x = block(x)
            skips.append(x)
            x = self.dropout(self.pool(x))
        x = self.encoder[-1](x)
        self._store_aux(x)
        for up, block, skip in zip(self.up, self.decoder, reversed(skips)):
            x = block(torch.cat([_to_size(up(x), skip), skip], dim=1))
        return self.head(x)


class ResAttUNet(_OwnUNet):
    """Seed 000's U-Net with residual blocks, CBAM, an ASPP bridge and attention-gated skips.

    Encoder stage i (i = 0..depth-1, 2x2 max pooling between stages): a
    residual block (He et al. 2016) with ``base_channels * 2 ** i`` channels
    followed by CBAM (Woo et al. 2018). Bridge: a residual block then ASPP
    (Chen et al., DeepLab v3) with atrous ``aspp_rates`` plus image pooling.
    Decoder stage: 2x2 transposed convolution, the skip features multiplied
    by an attention gate (Oktay et al. 2018) driven by the coarser decoder
    features, concatenation, residual block. Each part can be switched off
    for ablations: ``residual=False`` uses conv-BN-ReLU x2 blocks,
    ``cbam=False``, ``aspp=False``, ``attention_gates=False`` (plain skips).
    """

    def __init__(
        self,
        in_channels: int = 3,
        classes: int = 1,
        depth: int = 4,
        base_channels: int = 32,
        residual: bool = True,
        cbam: bool = True,
        aspp: bool = True,
        attention_gates: bool = True,
        aspp_rates: Sequence[int] = (1, 6, 12, 18),
        aspp_dropout: float = 0.1,
        aux: bool = False,
        aux_dropout: float = 0.2,
    ):
        w = _widths(base_channels, depth)
        super().__init__(depth, w[-1], classes, aux, aux_dropout)
        block = ResidualBlock if residual else DoubleConv

        def stage(cin: int, cout: int) -> nn.Module:
            return nn.Sequential(block(cin, cout), CBAM(cout)) if cbam else block(cin, cout)

        bridge = [block(w[depth - 1], w[depth])] + (
            [ASPP(w[depth], w[depth], aspp_rates, aspp_dropout)] if aspp else []
        )
        self.encoder = nn.ModuleList(
            [stage(in_channels if i == 0 else w[i - 1], w[i]) for i in range(depth)] + [nn.Sequential(*bridge)]
        )
        self.pool = nn.MaxPool2d(2)
        levels = list(reversed(range(depth)))
        self.up = nn.ModuleList(nn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2) for i in levels)
        self.gates = nn.ModuleList(AttentionGate(w[i], w[i + 1]) for i in levels) if attention_gates else None
        self.decoder = nn.ModuleList(block(2 * w[i], w[i]) for i in levels)
        self.head = nn.Conv2d(w[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, stage in enumerate(self.encoder):
            x = stage(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        self._store_aux(x)
        for j, (up, block) in enumerate(zip(self.up, self.decoder)):
            skip = skips[-1 - j]
            if self.gates is not None:
                skip = self.gates[j](skip, x)
            x = block(torch.cat([_to_size(up(x), skip), skip], dim=1))
        return self.head(x)


class DilatedUNet(_OwnUNet):
    """U-Net with dilated convolutions for polyp segmentation (Sun et al. 2019, arXiv 1912.11947).

    Our reading of the paper (only its abstract was available to us; the
    seed's own implementation of it was read as a cross-check): the encoder
    learns high-level features "without resolution reduction" by replacing
    the last stage's downsampling with dilated convolutions, and a
    "simplified decoder" combines the multi-scale features with fewer
    parameters than U-Net's.

    Here: a residual stem at full resolution, ``depth`` residual stages each
    after 2x2 max pooling (``base_channels * 2 ** i`` channels), then a
    dilated stage at the same resolution: residual blocks whose 3x3
    convolutions are dilated by ``dilations`` (2, 4 by default, as in
    DRN/DeepLab's stride-to-dilation replacement). Decoder: every stage's
    output is reduced to ``decoder_channels`` by a 1x1 conv-BN-ReLU and
    upsampled bilinearly to the input size; the concatenation goes through
    two 3x3 conv-BN-ReLU layers and a 1x1 convolution.
    """

    def __init__(
        self,
        in_channels: int = 3,
        classes: int = 1,
        depth: int = 4,
        base_channels: int = 32,
        dilations: Sequence[int] = (2, 4),
        decoder_channels: int = 16,
        aux: bool = False,
        aux_dropout: float = 0.2,
    ):
        w = _widths(base_channels, depth)
        if not dilations or any(int(d) < 1 for d in dilations):
            raise ValueError(f"dilations must be positive integers, got {list(dilations)}")
        super().__init__(depth, w[-1], classes, aux, aux_dropout)
        self.encoder = nn.ModuleList(
            [ResidualBlock(in_channels if i == 0 else w[i - 1], w[i]) for i in range(depth + 1)]
            + [nn.Sequential(*(ResidualBlock(w[depth], w[depth], dilation=int(d)) for d in dilations))]
        )
        self.pool = nn.MaxPool2d(2)
        self.lateral = nn.ModuleList(ConvBNAct(c, decoder_channels, kernel_size=1) for c in w + [w[depth]])
        fused = 2 * decoder_channels
        self.fuse = nn.Sequential(ConvBNAct(decoder_channels * len(self.lateral), fused), ConvBNAct(fused, fused))
        self.head = nn.Conv2d(fused, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        feats = []
        for i, stage in enumerate(self.encoder):
            x = stage(self.pool(x) if 1 <= i < len(self.encoder) - 1 else x)
            feats.append(x)
        self._store_aux(x)
        ups = [
            F.interpolate(lat(f), size=size, mode="bilinear", align_corners=False) if f.shape[-2:] != size else lat(f)
            for lat, f in zip(self.lateral, feats)
        ]
        return self.head(self.fuse(torch.cat(ups, dim=1)))
