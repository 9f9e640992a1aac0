"""Run-length encoding as in UW-Madison GI Tract's train.csv (and most Kaggle sets).

"start length start length ...": the mask flattened row-major (C order), starts
1-indexed, runs sorted and disjoint. An empty mask is "" (a missing CSV cell,
read by pandas as NaN, means the same).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import numpy as np

from medseg.classmap import ClassMap

_DIGITS = re.compile(r"[0-9]+")


def rle_encode(mask: np.ndarray) -> str:
    """Encode a boolean or 0/1 mask; "" when it is empty."""
    m = np.asarray(mask)
    if m.dtype != bool:
        if not np.isin(m, (0, 1)).all():
            vals = np.unique(m)
            raise ValueError(
                f"rle_encode needs a boolean or 0/1 mask, got values {vals[:6].tolist()}"
                f"{' ...' if len(vals) > 6 else ''}; binarise it first"
            )
        m = m.astype(bool)
    flat = np.concatenate([[False], m.ravel(order="C"), [False]])
    edges = np.flatnonzero(flat[1:] != flat[:-1])  # 0-based flat index of each run start / end
    starts, ends = edges[0::2], edges[1::2]
    runs = np.empty(2 * len(starts), dtype=np.int64)
    runs[0::2] = starts + 1
    runs[1::2] = ends - starts
    return " ".join(map(str, runs.tolist()))


def _is_empty(rle: object) -> bool:
    if rle is None:
        return True
    if isinstance(rle, (float, np.floating)):
        if math.isnan(rle):
            return True
        raise ValueError(f"RLE must be a string, None or NaN, got the number {rle!r}")
    if not isinstance(rle, str):
        raise ValueError(f"RLE must be a string, None or NaN, got {type(rle).__name__}")
    return not rle.strip()


def _parse(rle: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    tokens = rle.split()
    if len(tokens) % 2:
        raise ValueError(f"RLE has {len(tokens)} numbers; it needs start/length pairs (an even count)")
    bad = [t for t in tokens if not _DIGITS.fullmatch(t)]
    if bad:
        raise ValueError(f"RLE holds tokens that are not non-negative integers: {bad[:5]}")
    runs = np.array([int(t) for t in tokens], dtype=np.int64)
    starts, lengths = runs[0::2], runs[1::2]
    if (starts < 1).any():
        raise ValueError("RLE starts are 1-indexed; found a start of 0")
    if (lengths < 1).any():
        i = int(np.flatnonzero(lengths < 1)[0])
        raise ValueError(f"RLE run {i + 1} (start {starts[i]}) has length 0")
    ends = starts + lengths - 1  # last pixel of each run, 1-indexed
    if len(starts) > 1:
        order = np.flatnonzero(starts[1:] <= starts[:-1])
        if order.size:
            i = int(order[0])
            raise ValueError(f"RLE runs are not sorted: start {starts[i + 1]} follows start {starts[i]}")
        clash = np.flatnonzero(starts[1:] <= ends[:-1])
        if clash.size:
            i = int(clash[0])
            raise ValueError(
                f"RLE runs overlap: run at {starts[i]} (length {lengths[i]}) reaches "
                f"{ends[i]}, next run starts at {starts[i + 1]}"
            )
    if len(ends) and ends[-1] > size:
        raise ValueError(
            f"RLE run at {starts[-1]} (length {lengths[-1]}) ends at pixel {ends[-1]}, past the mask's {size} pixels"
        )
    return starts - 1, lengths


def rle_decode(rle: str | float | None, shape: tuple[int, ...]) -> np.ndarray:
    """Decode to a uint8 0/1 array of ``shape`` (rows, cols); None, NaN or "" give zeros.

    Malformed strings raise ValueError saying what is wrong.
    """
    shape = tuple(int(s) for s in shape)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"shape must be positive sizes, got {shape}")
    size = math.prod(shape)
    flat = np.zeros(size, dtype=np.uint8)
    if _is_empty(rle):
        return flat.reshape(shape)
    starts, lengths = _parse(rle, size)
    # runs are disjoint, so +1 at each start and -1 after each end, summed, marks them
    delta = np.zeros(size + 1, dtype=np.int32)
    delta[starts] += 1  # starts are distinct, and so are the run ends
    delta[starts + lengths] -= 1
    flat[:] = np.cumsum(delta[:-1]) > 0
    return flat.reshape(shape)


def rle_decode_multilabel(
    rows: Mapping[str, str | float | None], shape: tuple[int, int], classmap: ClassMap
) -> np.ndarray:
    """(rows, cols, C) bool in ``classmap`` order from {class name: RLE}; overlaps kept.

    Classes without a row (or with an empty RLE) give empty channels.
    """
    unknown = [name for name in rows if name not in classmap.names]
    if unknown:
        raise ValueError(f"RLE rows for classes not in the class map: {unknown} (classes: {classmap.names})")
    out = np.zeros(tuple(shape) + (len(classmap.classes),), dtype=bool)
    for name, rle in rows.items():
        try:
            out[..., classmap.names.index(name)] = rle_decode(rle, shape).astype(bool)
        except ValueError as e:
            raise ValueError(f"class {name!r}: {e}") from None
    return out


def rle_encode_multilabel(channels: np.ndarray, classmap: ClassMap) -> dict[str, str]:
    """{class name: RLE} for (rows, cols, C) channels in ``classmap`` order (empty class -> "")."""
    ch = np.asarray(channels)
    if ch.ndim != 3 or ch.shape[-1] != len(classmap.classes):
        raise ValueError(
            f"expected (rows, cols, {len(classmap.classes)}) channels for {classmap.names}, got shape {ch.shape}"
        )
    return {name: rle_encode(ch[..., k]) for k, name in enumerate(classmap.names)}
