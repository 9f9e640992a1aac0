"""What a review queue's order is computed from, kept in the workspace between opens.

:func:`medseg.qc.queue.review_queue` computes, over every score and finding, each sample's priority and the
keys its ties are broken by, the standings its words quote and the pairs of disagreeing duplicates: a
:class:`QueueState`. Stored as arrays (``numpy.savez``, about 60 bytes a sample and signal) in the
workspace's ``queue_cache`` table (:mod:`medseg.workspace.queue_store`: emptied by any write to scores,
findings or a sample's label, group or place), the next open reads it and the samples' ids and statuses
instead of every score and finding: 100,000 samples (5 signals, 57,000 findings) opened in 0.09-0.27 s
against 4.7 s computed, on a loaded 2-core machine.

An item is still made when asked for (:class:`~medseg.qc.queue_index.ReviewQueue`); from a stored state its
score's details and its findings are read then, by sample (:class:`StoredWords`, a short read-only
connection of its own, so the workspace may be closed by then): they are what the workspace holds when the
item is made. Any write that changes them also drops the stored order, so the app, which rebuilds its
queue after each such write, shows words and places of the same state.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from medseg.qc.queue_state import QueueState
from medseg.workspace import queue_store
from medseg.workspace.records import UNREVIEWED


def load(workspace, key: str) -> tuple[QueueState | None, list[str]]:
    """The stored state of ``key`` and the samples' statuses in the workspace's order; (None, []) if none."""
    payload, n, set_ = workspace.queue_cache_load(key)
    if payload is None:
        return None, []
    try:
        state = QueueState.from_bytes(payload)
    except (ValueError, KeyError, OSError):  # written by another layout: computed again and replaced
        return None, []
    if len(state.ids) != n:
        return None, []
    statuses = [UNREVIEWED] * n
    at = np.searchsorted(state.positions, [p for p, _ in set_])
    for k, (_, status) in zip(at.tolist(), set_):
        statuses[k] = status
    return state, statuses


class StoredWords:
    """An item's score details and findings read when the item is made (module doc), by sample id."""

    def __init__(self, db_path: Path):
        self.uri = f"{Path(db_path).absolute().as_uri()}?mode=ro"

    def _read(self, what):
        conn = sqlite3.connect(self.uri, uri=True)
        try:
            return what(conn)
        finally:
            conn.close()

    def details(self, method: str, sample_id: str) -> str | None:
        return self._read(lambda c: queue_store.details(c, method, sample_id))

    def findings(self, sample_id: str) -> list[tuple]:
        return self._read(lambda c: queue_store.findings(c, sample_id))
