"""timm ViT position-embedding resampling as ONNX-exportable matrix products (DPT's encoder).

timm resamples a ViT's absolute position embedding to the input's patch grid
with ``F.interpolate(mode="bicubic", antialias=True)`` and skips the step when
the grid is the native one. Traced for ONNX, that gives a graph without the
resampling (traced at the native size) or an operator the TorchScript exporter
cannot translate (``_upsample_bicubic2d_aa``). The exported copy instead always
resamples, as one averaging matrix per axis computed from the input's shape
(:func:`aa_bicubic_weights`), which is torch's antialiased bicubic exactly,
shrinking and enlarging alike (torch's antialiased path is PIL's a = -0.5
kernel with weights renormalised at the borders even when enlarging, so it is
not the plain bicubic there either).
"""

from __future__ import annotations

import types

import torch
from torch import nn


def aa_bicubic_weights(n_in: int, n_out: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
    """The (n_out, n_in) matrix of ``F.interpolate(..., mode="bicubic", antialias=True)`` along one axis.

    Output i is centred at ``scale (i + 1/2)`` on the input (scale = n_in / n_out, align_corners False);
    the cubic kernel is stretched by ``scale`` when shrinking, and each row's weights over the input
    samples inside it sum to 1, as in torch's ``_compute_indices_weights_aa``. ``n_out`` may be a
    traced 0-d tensor (a Shape element), so the graph keeps it dynamic.
    """
    n_out = n_out if isinstance(n_out, torch.Tensor) else torch.tensor(n_out)
    n_out_t = n_out.to(like.dtype)
    i = torch.arange(n_out, device=like.device).to(like.dtype)  # type: ignore[call-overload]
    center = (i + 0.5) * n_in / n_out_t
    stretch = torch.clamp(n_out_t / n_in, max=1.0)  # 1 / scale when shrinking, else 1
    j = torch.arange(n_in, device=like.device, dtype=like.dtype)
    x = ((j[None] + 0.5 - center[:, None]) * stretch).abs()
    a = -0.5
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    w = torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))
    return w / w.sum(1, keepdim=True)


def _vit_pos_embed(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # timm's VisionTransformer._pos_embed (dynamic_img_size: x is B, H, W, C patches) with the
    # resampling always in the graph and written as two matrix products
    shape = torch._shape_as_tensor(x)  # traced as Shape, not frozen into the graph as constants
    grid_h, grid_w = (int(v) for v in self.patch_embed.grid_size)
    prefix = 0 if self.no_embed_class else self.num_prefix_tokens
    pos = self.pos_embed[:, prefix:].reshape(grid_h, grid_w, -1)
    rows = aa_bicubic_weights(grid_h, shape[1], pos)
    cols = aa_bicubic_weights(grid_w, shape[2], pos)
    pos = torch.einsum("ih,hwc,jw->ijc", rows, pos, cols).reshape(1, -1, pos.shape[-1])
    if prefix:
        pos = torch.cat([self.pos_embed[:, :prefix], pos], dim=1)
    x = x.reshape(x.shape[0], -1, x.shape[-1])
    to_cat = [t.expand(x.shape[0], -1, -1) for t in (self.cls_token, self.reg_token) if t is not None]
    if self.no_embed_class:
        x = torch.cat([*to_cat, x + pos], dim=1)
    else:
        x = torch.cat([*to_cat, x], dim=1) + pos
    return self.pos_drop(x)


def vit_unsupported(model: nn.Module) -> str | None:
    """Why ``model``'s timm ViT encoder cannot take a dynamic size in ONNX, or None (also when it has none)."""
    from timm.models.vision_transformer import VisionTransformer

    for module in model.modules():
        if getattr(module, "pos_embed", None) is None or not type(module).__module__.startswith("timm."):
            continue
        name = type(module).__name__
        if not isinstance(module, VisionTransformer) or type(module)._pos_embed is not VisionTransformer._pos_embed:
            return f"its timm {name} encoder's position embedding is not the ViT one medseg rewrites for ONNX"
        if not module.dynamic_img_size:
            return f"its timm {name} encoder was built with dynamic_img_size=False, so it takes its native size only"
    return None


def exportable_vit(model: nn.Module) -> nn.Module:
    """``model`` with every timm ViT's position embedding resampled by :func:`aa_bicubic_weights` (in place)."""
    from timm.models.vision_transformer import VisionTransformer

    for module in model.modules():
        if isinstance(module, VisionTransformer) and module.pos_embed is not None and module.dynamic_img_size:
            module._pos_embed = types.MethodType(_vit_pos_embed, module)
    return model
