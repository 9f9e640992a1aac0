"""The review queue over columns: the order of 100,000 samples without an item per sample.

:func:`medseg.qc.queue.review_queue` reads the workspace once as columns (ids, statuses, groups, heads,
scores with their scored revision and Dice read by SQLite, findings as rows: ``Workspace.queue_columns``),
computes every sample's priority over arrays (one vector per signal, the same float operations in the same
order as the per-sample rule, so the priorities are equal to the bit) and sorts with ``numpy.lexsort`` on the
rule's keys. A :class:`ReviewQueue` holds that order; a :class:`~medseg.qc.queue.QueueItem` and its words are
built when an item is asked for (a row on screen, the sample shown, a CSV written), from the same snapshot,
so an item says what was true when its place was computed, and the workspace may be closed by then.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from medseg.findings import Finding
from medseg.qc import reliability

PAIR_CHECK = "duplicate_mask_disagreement"  # duplicates whose masks disagree: the one check that pairs samples


def finding_of(row: tuple) -> Finding:
    """A stored finding row of ``Workspace.queue_columns`` as the ``Finding`` ``Workspace.findings`` gives."""
    sample_id, check, severity, value, message, path, fix, details = row
    return Finding(
        sample_id=sample_id,
        check=check,
        severity=severity,
        message=message,
        value=value,
        path=path,
        fix=fix,
        details=json.loads(details),
    )


def told_rows(rows: list, partner: str, trusted: bool = True) -> list:
    """``rows`` (a sample's finding rows) as the queue reads them when the other signals tell its pair apart
    (:func:`medseg.qc.queue_state.told_pairs`): the trusted label's disagreeing-duplicate error about
    ``partner`` becomes info naming it (``trusted_over``); the other label's stays an error and names the
    label trusted over it (``trusted_partner``). The stored findings stay as QC wrote them."""
    key, severity = ("trusted_over", "info") if trusted else ("trusted_partner", "error")
    return [
        (r[0], r[1], severity, *r[3:7], json.dumps({**json.loads(r[7]), key: [partner]}))
        if r[1] == PAIR_CHECK and r[2] == "error"
        else r
        for r in rows
    ]


class Standings:
    """One signal's standing per sample as arrays in the workspace's order: ``value`` (NaN where it does not
    judge) and ``stale`` (judged an earlier revision: stands at the stale standing)."""

    def __init__(self, n: int, values: dict[int, float], stale: set[int], stale_value: float):
        self.value = np.full(n, np.nan)
        if values:
            self.value[np.fromiter(values, np.int64, len(values))] = np.fromiter(values.values(), float, len(values))
        self.stale = np.zeros(n, bool)
        if stale:
            self.stale[np.fromiter(stale, np.int64, len(stale))] = True
        self.value[self.stale] = stale_value

    @classmethod
    def of(cls, value: np.ndarray, stale: np.ndarray) -> Standings:
        """Standings from their arrays (a stored queue's, :mod:`medseg.qc.queue_cache`)."""
        out = cls.__new__(cls)
        out.value, out.stale = value, stale
        return out

    def judged(self) -> np.ndarray:
        return ~np.isnan(self.value)

    def at(self, k: int, stale_marker):
        """The standing of sample ``k`` as the per-sample rule holds it: None, ``stale_marker`` or a float."""
        if self.stale[k]:
            return stale_marker
        v = self.value[k]
        return None if math.isnan(v) else float(v)


def calibrated(bias: float, weights: dict[str, float], judged: dict[str, Standings], n: int) -> np.ndarray:
    """``Calibration.combined`` of every sample: z summed signal by signal (an unjudged or absent signal at
    0.5, each standing's ``reliability.suspicion`` through ``math.log``), then 1 - logistic(z) through
    ``math.exp`` (numpy's log and exp may differ in the last bit)."""
    z = np.full(n, float(bias))
    for m, w in weights.items():
        x = judged[m].value if m in judged else np.full(n, np.nan)
        z = z + w * reliability.suspicions(np.where(np.isnan(x), 0.5, x))
    return np.array([1.0 - 1.0 / (1.0 + math.exp(-v)) for v in z.tolist()])


def weighted_mean(weights: dict[str, float], judged: dict[str, Standings], n: int, unjudged: float) -> np.ndarray:
    """The plain rule: the weighted mean of the standings that judged each sample (``unjudged`` where none)."""
    num, den, said = np.zeros(n), np.zeros(n), np.zeros(n, bool)
    for m, s in judged.items():
        ok = s.judged()
        num = num + np.where(ok, weights[m] * np.where(ok, s.value, 0.0), 0.0)
        den = den + np.where(ok, weights[m], 0.0)
        said |= ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(said, num / np.where(said, den, 1.0), unjudged)


def queue_order(
    priority: np.ndarray, unscored: np.ndarray, worst: np.ndarray, count: np.ndarray, groups: list[list[int]]
) -> tuple[np.ndarray, np.ndarray]:
    """(places, shared priority) of the queue's items given per item (in the workspace's order): ascending
    priority, then scored before unscored, the worst finding, the most findings, the workspace's order; the
    items of each of ``groups`` (lists of item indices) share their lowest (priority, own key) and follow one
    another, the one whose own priority is lowest (the likelier error) first."""
    n = len(priority)
    pos = np.arange(n)
    own = (unscored.astype(np.int8), -worst, -count, pos)
    low = [priority.copy(), *(a.copy() for a in own)]
    for members in groups:
        best = min(members, key=lambda i: (priority[i], *(a[i] for a in own)))
        for i in members:
            for lo, a in zip(low, (priority, *own)):
                lo[i] = a[best]
    order = np.lexsort((*reversed(own), priority, *reversed(low)))
    return order, low[0]


class ReviewQueue(Sequence):
    """The review queue in order: ``sample_ids``, ``statuses`` and ``priorities`` for every place at once,
    a :class:`~medseg.qc.queue.QueueItem` per place made when asked (``build(k)``, ``k`` the sample's index in
    the workspace's order; the last ``KEEP`` kept). Indexing, slicing and iteration give items as the list
    ``review_queue`` returned before; ``place`` and ``item_of`` find a sample without a pass over the queue."""

    KEEP = 4096

    def __init__(self, rows: np.ndarray, ids: list[str], statuses: list[str], priorities: np.ndarray, build: Callable):
        self._rows = rows
        self.sample_ids = [ids[k] for k in rows.tolist()]
        self.statuses = [statuses[k] for k in rows.tolist()]
        self.priorities = priorities
        self._build = build
        self._kept: OrderedDict = OrderedDict()
        self._places: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self.sample_ids)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        k = range(len(self))[k]  # negative places and IndexError as a list's
        if k in self._kept:
            self._kept.move_to_end(k)
            return self._kept[k]
        item = self._build(int(self._rows[k]), float(self.priorities[k]))
        self._kept[k] = item
        if len(self._kept) > self.KEEP:
            self._kept.popitem(last=False)
        return item

    def __iter__(self):
        for k in range(len(self)):
            yield self[k]

    def __repr__(self) -> str:
        return f"ReviewQueue({len(self)} items, first {self.sample_ids[:3]})"

    def place(self, sample_id: str) -> int | None:
        """The place of ``sample_id`` in the queue (0 = first), None when it is not in it."""
        if self._places is None:
            self._places = {sid: k for k, sid in enumerate(self.sample_ids)}
        return self._places.get(str(sample_id))

    def item_of(self, sample_id: str):
        k = self.place(sample_id)
        return None if k is None else self[k]
