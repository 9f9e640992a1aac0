"""Sliding-window inference for 2-D images of any size.

Per axis: when the axis, padded up to a multiple of the network's stride, fits in
the tile, it is mirror-padded to that size and covered by one window (so an image
that fits is inferred whole). Otherwise the axis is mirror-padded by half a tile
on each side (the U-Net paper's overlap-tile strategy, so border pixels see as
much context as interior ones; ``pad_border=False`` turns this off) and covered
by windows ``tile * (1 - overlap)`` apart, the last one flush with the end: the
same placement as MONAI's ``sliding_window_inference``. Windows are batched,
their outputs multiplied by a blending weight (Gaussian with sigma = tile/8 as in
nnU-Net and MONAI, a linear ramp, or constant), summed and divided by the summed
weights, then the padding is cropped off.

The windows are split into ``ceil(windows / batch_size)`` batches of nearly equal
size (9 windows at 4 a batch run as 3, 3, 3, not 4, 4, 1): the same number of
forwards with the smallest batch as large as it can be, since a CPU forward
costs less per window in a larger batch (Unet-ResNet34, 512 px tiles, 2 threads
on a loaded machine: per window, a batch of 8 took 0.50x the time of a batch of
1 in the Predictor's PyTorch, 0.66x eager; ``--batches`` of
``benchmarks/bench_sliding.py`` measures it). With the same window function the
blended output equals MONAI's (``tests/test_inference_sliding_monai.py``).

Whatever ``fn`` returns is blended; the Predictor hands in probabilities (after
sigmoid / softmax), so TTA and ensemble members are averaged in probability
space, the usual choice, and blending never sharpens or flattens the logits.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from medseg.errors import InferenceError

BLENDS = ("gaussian", "linear", "constant")
# Floor of every blending weight (as MONAI): keeps the division well conditioned at tile corners.
MIN_WEIGHT = 1e-3


def blend_weights(
    tile: tuple[int, int], mode: str = "gaussian", sigma_scale: float = 0.125, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(th, tw) float32 weights, about 1 in the middle, symmetric under flips.

    As MONAI's ``compute_importance_map``: not rescaled, floored at ``MIN_WEIGHT``
    (or the smallest weight when that is larger), so outputs match MONAI's.
    """
    if mode not in BLENDS:
        raise InferenceError(f"unknown blend {mode!r}; valid: {', '.join(BLENDS)}")
    axes = []
    for n in tile:
        x = torch.arange(n, dtype=torch.float32, device=device) - (n - 1) / 2.0
        if mode == "gaussian":
            axes.append(torch.exp(x**2 / (-2 * (n * sigma_scale) ** 2)))
        elif mode == "linear":
            axes.append(1.0 - x.abs() / (n / 2.0))  # a tent: 1 at the centre, 1/n at the edges
        else:
            axes.append(torch.ones(n, dtype=torch.float32, device=device))
    w = axes[0][:, None] * axes[1][None, :]
    return w.clamp_(min=max(float(w.min()), MIN_WEIGHT))


def window_starts(length: int, tile: int, step: int) -> list[int]:
    """Window starts covering ``0..length`` (``length >= tile``), the last one flush with the end."""
    if length <= tile:
        return [0]
    starts, s = [], 0
    while True:
        starts.append(min(s, length - tile))
        if s + tile >= length:
            return starts
        s += step


def tile_batches(windows: int, batch_size: int) -> list[int]:
    """Sizes of the ``ceil(windows / batch_size)`` batches that carry ``windows`` windows, as equal as they
    can be (larger ones first)."""
    if windows < 1:
        return []
    n = -(-windows // batch_size)
    return [windows // n + (1 if i < windows % n else 0) for i in range(n)]


def mirror_pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """Reflect-pad the last two axes by any amount (reflecting again when a pad exceeds the size)."""
    while top or bottom or left or right:
        h, w = x.shape[-2:]
        t, b, l, r = min(top, h - 1), min(bottom, h - 1), min(left, w - 1), min(right, w - 1)
        if h == 1 and (top or bottom):  # nothing to reflect: repeat the single row (columns next round)
            t, b, l, r = top, bottom, 0, 0
            x = F.pad(x, (0, 0, t, b), mode="replicate")
        elif w == 1 and (left or right):
            t, b, l, r = 0, 0, left, right
            x = F.pad(x, (l, r, 0, 0), mode="replicate")
        else:
            x = F.pad(x, (l, r, t, b), mode="reflect")
        top, bottom, left, right = top - t, bottom - b, left - l, right - r
    return x


@dataclass(frozen=True)
class AxisPlan:
    size: int  # the image's length on this axis
    tile: int  # window length
    before: int  # mirror padding added in front
    after: int  # and behind
    starts: tuple[int, ...]  # window starts in padded coordinates


@dataclass(frozen=True)
class TilePlan:
    rows: AxisPlan
    cols: AxisPlan

    @property
    def windows(self) -> list[tuple[int, int]]:
        return [(y, x) for y in self.rows.starts for x in self.cols.starts]

    @property
    def whole(self) -> bool:
        """True when one window covers the image (whole-image inference)."""
        return len(self.rows.starts) == 1 and len(self.cols.starts) == 1


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


def _plan_axis(size: int, tile: int, overlap: float, stride: int, pad_border: bool) -> AxisPlan:
    fitted = _round_up(size, stride)
    if fitted <= tile:
        extra = fitted - size
        return AxisPlan(size, fitted, extra // 2, extra - extra // 2, (0,))
    before = tile // 2 if pad_border else 0
    after = before
    if size + before + after < tile:  # only without border padding: pad up to one tile
        after = tile - size - before
    step = max(1, int(tile * (1 - overlap)))
    return AxisPlan(size, tile, before, after, tuple(window_starts(size + before + after, tile, step)))


def plan_tiles(
    height: int,
    width: int,
    tile: int | tuple[int, int] | None,
    overlap: float = 0.25,
    stride: int = 32,
    pad_border: bool = True,
) -> TilePlan:
    """Where the windows go for an image of ``height`` x ``width``; ``tile=None`` means whole image."""
    if height < 1 or width < 1:
        raise InferenceError(f"image size must be positive, got {height} x {width}")
    if stride < 1:
        raise InferenceError(f"stride must be >= 1, got {stride}")
    if not 0 <= overlap < 1:
        raise InferenceError(f"overlap must be in [0, 1), got {overlap}")
    if tile is None:
        th = tw = None
    else:
        th, tw = (tile, tile) if isinstance(tile, int) else (int(tile[0]), int(tile[1]))
        for t in (th, tw):
            if t < stride or t % stride:
                raise InferenceError(f"tile size {t} must be a positive multiple of the model's stride {stride}")
    rows = _plan_axis(height, th or _round_up(height, stride), overlap, stride, pad_border)
    cols = _plan_axis(width, tw or _round_up(width, stride), overlap, stride, pad_border)
    return TilePlan(rows, cols)


def iter_sliding_window(
    x: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor],
    tile: int | tuple[int, int] | None,
    overlap: float = 0.25,
    blend: str = "gaussian",
    batch_size: int = 4,
    stride: int = 32,
    pad_border: bool = True,
) -> Generator[tuple[int, int], None, torch.Tensor]:
    """Like ``sliding_window_inference`` but a generator: yields (batches done, batches in all)
    after every forward, and returns the (B, K, H, W) float32 result (``StopIteration.value``).

    Stopping early (``close()``) leaves no state behind, which is how callers cancel.
    """
    if x.ndim != 4:
        raise InferenceError(f"sliding window takes a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    if batch_size < 1:
        raise InferenceError(f"batch_size must be >= 1, got {batch_size}")
    b, _, h, w = x.shape
    plan = plan_tiles(h, w, tile, overlap, stride, pad_border)
    r, c = plan.rows, plan.cols
    padded = mirror_pad(x, r.before, r.after, c.before, c.after)
    windows = plan.windows
    if plan.whole:
        out = _checked(fn(padded), padded.shape[0], r.tile, c.tile).float()
        yield 1, 1
        return out[..., r.before : r.before + h, c.before : c.before + w]

    weight = blend_weights((r.tile, c.tile), blend, device=x.device)
    norm = torch.zeros(padded.shape[-2:], dtype=torch.float32, device=x.device)
    for y, xx in windows:
        norm[y : y + r.tile, xx : xx + c.tile] += weight
    acc: torch.Tensor | None = None
    sizes = tile_batches(len(windows), batch_size)
    first = 0
    for i, n in enumerate(sizes):
        chunk = windows[first : first + n]
        first += n
        tiles = torch.cat([padded[..., y : y + r.tile, xx : xx + c.tile] for y, xx in chunk])
        out = _checked(fn(tiles), tiles.shape[0], r.tile, c.tile).float()
        if acc is None:
            acc = torch.zeros((b, out.shape[1], *padded.shape[-2:]), dtype=torch.float32, device=x.device)
        for j, (y, xx) in enumerate(chunk):
            # in place: no temporary of the weighted tile (on a GPU the blend is a few kernels a window)
            acc[..., y : y + r.tile, xx : xx + c.tile].addcmul_(out[j * b : (j + 1) * b], weight)
        yield i + 1, len(sizes)
    assert acc is not None
    acc = acc[..., r.before : r.before + h, c.before : c.before + w]
    return acc.div_(norm[r.before : r.before + h, c.before : c.before + w])


def _checked(out: torch.Tensor, n: int, th: int, tw: int) -> torch.Tensor:
    if not isinstance(out, torch.Tensor) or out.ndim != 4 or out.shape[0] != n or tuple(out.shape[-2:]) != (th, tw):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InferenceError(
            f"the model returned {got} for a ({n}, C, {th}, {tw}) input; "
            f"expected ({n}, K, {th}, {tw}): it must keep the spatial size"
        )
    return out


def sliding_window_inference(
    x: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor],
    tile: int | tuple[int, int] | None,
    overlap: float = 0.25,
    blend: str = "gaussian",
    batch_size: int = 4,
    stride: int = 32,
    pad_border: bool = True,
) -> torch.Tensor:
    """``fn`` over overlapping ``tile`` windows of ``x`` (B, C, H, W), blended into (B, K, H, W) float32.

    ``fn`` maps (N, C, th, tw) to (N, K, th, tw). See the module docstring for the
    window placement, the padding and the blending.
    """
    gen = iter_sliding_window(x, fn, tile, overlap, blend, batch_size, stride, pad_border)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
