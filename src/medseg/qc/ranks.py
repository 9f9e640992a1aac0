"""Average ranks without scipy.stats: importing it takes a second, on the viewer's thread when the review
queue is first built there."""

from __future__ import annotations

import numpy as np


def average_ranks(v: np.ndarray) -> np.ndarray:
    """0-based ranks of ``v`` with ties sharing their average rank (``scipy.stats.rankdata(v) - 1``)."""
    v = np.asarray(v, dtype=float)
    order = np.argsort(v, kind="mergesort")
    ordered = v[order]
    starts = np.r_[0, np.flatnonzero(ordered[1:] != ordered[:-1]) + 1]
    ends = np.r_[starts[1:], len(v)]
    ranks = np.empty(len(v))
    ranks[order] = np.repeat((starts + ends - 1) / 2.0, ends - starts)
    return ranks
