"""Group-aware splits: every group (patient, case, video block) lands on one side only.

Groups are shuffled with the seed and laid end to end, each as long as its
number of samples; a part takes the groups whose midpoints fall inside its
share of that line. Fractions therefore hold in samples to within half the
largest group at each boundary, and the same seed gives the same split.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def split_by_group(samples: Sequence[T], fractions: Sequence[float] = (0.8, 0.2), seed: int = 0) -> list[list[T]]:
    """Split ``samples`` (anything with a ``.group``) into ``len(fractions)`` parts.

    Every part with a positive fraction receives at least one group; raises
    ValueError when there are fewer groups than such parts.
    """
    fractions = np.asarray(fractions, dtype=float)
    if fractions.ndim != 1 or len(fractions) == 0 or (fractions < 0).any() or fractions.sum() <= 0:
        raise ValueError(f"fractions must be non-negative numbers with a positive sum, got {list(fractions)}")
    fractions = fractions / fractions.sum()
    by_group = _groups(samples)
    wanted = int((fractions > 0).sum())
    if len(by_group) < wanted:
        raise ValueError(f"cannot split {len(by_group)} group(s) into {wanted} non-empty parts")

    names = sorted(by_group)
    rng = np.random.default_rng(seed)
    names = [names[i] for i in rng.permutation(len(names))]
    sizes = np.array([len(by_group[n]) for n in names], dtype=float)
    mids = (np.cumsum(sizes) - sizes / 2) / sizes.sum()
    edges = np.cumsum(fractions)
    part_of = np.minimum(np.searchsorted(edges, mids, side="right"), len(fractions) - 1)
    _fill_empty_parts(part_of, fractions, sizes)

    parts: list[list[T]] = [[] for _ in fractions]
    for name, part in zip(names, part_of):
        parts[int(part)].extend(by_group[name])
    return parts


def kfold_by_group(samples: Sequence[T], k: int = 5, seed: int = 0) -> list[tuple[list[T], list[T]]]:
    """``k`` (train, validation) pairs; each group is in exactly one validation fold."""
    if k < 2:
        raise ValueError(f"k-fold needs k >= 2, got {k}")
    folds = split_by_group(samples, [1.0 / k] * k, seed=seed)
    return [([s for j, fold in enumerate(folds) if j != i for s in fold], folds[i]) for i in range(k)]


def _groups(samples: Sequence[T]) -> dict[str, list[T]]:
    by_group: dict[str, list[T]] = defaultdict(list)
    for s in samples:
        group = getattr(s, "group", None)
        if group is None or group == "":
            raise ValueError(f"sample {getattr(s, 'id', s)!r} has no group")
        by_group[str(group)].append(s)
    return by_group


def _fill_empty_parts(part_of: np.ndarray, fractions: np.ndarray, sizes: np.ndarray) -> None:
    """Move a group into each wanted part the midpoint rule left empty (few, large groups)."""
    for part in np.flatnonzero(fractions > 0):
        if (part_of == part).any():
            continue
        counts = np.bincount(part_of, minlength=len(fractions))
        # take the smallest group from the part holding the most groups
        donor = int(np.argmax(counts))
        candidates = np.flatnonzero(part_of == donor)
        part_of[candidates[np.argmin(sizes[candidates])]] = part
