"""Label-quality signals: what each measures, how a sample is scored, and the registry the queue reads.

A *signal* is one kind of evidence that a sample's label is wrong, judged
without ground truth: the outline's fit to the image's edges, agreement with
the neighbouring frames of the same video, the labelled region's contrast,
the dataset's own shape prior, an empty mask where masks rarely are, a fold
model's disagreement. Each is computed during QC from the per-sample measures
of the QC table (``FEATURES`` of :mod:`medseg.qc.checks_registry`) and stored
as a workspace score method named ``Signal.method``: per sample, its
percentile among the dataset's judged samples (0 = the most suspect in the
dataset), with ``details["raw"]`` and the label ``revision`` judged.

``Signal.raw(table, ctx, sample_id, own)`` is the contract both the stored
scores and the reliability calibration (:mod:`medseg.qc.reliability`) use:
higher means the label looks right, None means the signal cannot judge this
sample. ``own``, when given, replaces the sample's own per-sample measures
({feature name: measure}, e.g. those of a deliberately corrupted copy of its
mask) while every other sample's stay as in ``table``: that is how the
calibration asks "would this signal have noticed this error here?" on the
user's own data. Dataset-level statistics a signal learns (a shape prior, an
index of neighbours) are computed from ``table`` once and kept in
``ctx.cache`` under the signal's method name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from medseg.qc.ranks import average_ranks

__all__ = ["SIGNALS", "Signal", "percentiles", "register", "signal_scores"]

RawFn = Callable[[dict, Any, str, "dict | None"], "float | None"]


@dataclass(frozen=True)
class Signal:
    """One label-quality signal (module doc).

    ``method``: the workspace score method it is stored under ("neighbour-fit");
    ``words``: what it measures, as a person says it ("agreement with the neighbouring frames' masks");
    ``suspect_words``: the phrase a queue row uses when it put the sample early
    ("the mask disagrees with the neighbouring frames' masks");
    ``needs``: the QC table's per-sample measures it reads (``FEATURES`` keys);
    ``raw``: (table, ctx, sample_id, own) -> float | None, higher = the label looks right.
    """

    method: str
    words: str
    suspect_words: str
    needs: tuple[str, ...]
    raw: RawFn


SIGNALS: dict[str, Signal] = {}


def register(signal: Signal) -> Signal:
    SIGNALS[signal.method] = signal
    return signal


def own_measure(table: dict, sample_id: str, own: dict | None, feature: str) -> Any:
    """The sample's measure ``feature``: from ``own`` when given, else from the table (None when absent)."""
    if own is not None and feature in own:
        return own[feature]
    return table.get(feature, {}).get(sample_id)


def percentiles(values: dict[str, float]) -> dict[str, float]:
    """{sample: rank among ``values`` in [0, 1], 0 = lowest}, ties averaged; 0.5 for a single value."""
    ids = list(values)
    if len(ids) < 2:
        return dict.fromkeys(ids, 0.5)
    ranks = average_ranks(np.array([values[s] for s in ids], dtype=float))
    return {s: float(r) / (len(ids) - 1) for s, r in zip(ids, ranks)}


def raw_values(signal: Signal, table: dict, ctx) -> dict[str, float]:
    """{sample: raw value} over the samples the signal can judge (finite values only), once per ``ctx``:
    the stored scores and the calibration's standings both ask (the table is filled before either)."""
    return dict(_raw(signal, table, ctx))


def _raw(signal: Signal, table: dict, ctx) -> dict[str, float]:
    """:func:`raw_values`' own dict, kept in ``ctx.cache``: read, never changed."""
    key = f"{signal.method}:raw"
    if key not in ctx.cache:
        out = {}
        for sid in ctx.sample_ids:
            v = signal.raw(table, ctx, sid, None)
            if v is not None and math.isfinite(v):
                out[sid] = float(v)
        ctx.cache[key] = out
    return ctx.cache[key]


class RawDetails(Mapping):
    """A signal's stored details, {sample: {"raw": value[, "revision": the label's revision]}}, each dict made
    when read from the raw values and the table's revisions: made at once they were a dict and a float a
    sample per signal, 220 bytes (110 MB at 100,000 samples over five signals) held until the scores are
    stored."""

    def __init__(self, raw: dict[str, float], revisions):
        self._raw, self._revisions = raw, revisions

    def __getitem__(self, sample_id: str) -> dict:
        d: dict = {"raw": self._raw[sample_id]}
        revision = self._revisions.get(sample_id)
        if revision is not None:
            d["revision"] = int(revision)
        return d

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


def signal_scores(signal: Signal, table: dict, ctx) -> tuple[dict[str, float], Mapping[str, dict]]:
    """The stored form of a signal: ({sample: percentile}, {sample: {"raw", "revision"}}), judged samples only
    (the details made when read: :class:`RawDetails`, over the table's revisions, so read them while the
    table is open)."""
    raw = _raw(signal, table, ctx)
    return percentiles(raw), RawDetails(raw, table.get("revision", {}))


def standing_of(signal: Signal, table: dict, ctx, sample_id: str, own: dict) -> float | None:
    """Where a sample with measures ``own`` would stand among the dataset's judged samples, in [0, 1]
    (0 = below every one of them); None when the signal cannot judge it."""
    v = signal.raw(table, ctx, sample_id, own)
    if v is None or not math.isfinite(v):
        return None
    key = f"{signal.method}:sorted"
    if key not in ctx.cache:
        ctx.cache[key] = np.sort(np.array(list(_raw(signal, table, ctx).values()), dtype=float))
    ref = ctx.cache[key]
    if len(ref) == 0:
        return 0.5
    below = np.searchsorted(ref, v, side="left")
    level = np.searchsorted(ref, v, side="right")
    return float((below + level) / 2 / len(ref))
