"""The review queue's order kept between opens (medseg.qc.queue_cache, medseg.workspace.queue_store).

A stored order gives the queue a computed one gives, item for item (and the per-sample walk of
tests/_queue_reference.py); every write that changes the order drops it, in this connection or another;
a verdict does not, and the queue shows the new status; a write while an order is computed keeps that
order from being stored; a new calibration or a damaged stored row computes it again.
"""

from __future__ import annotations

import dataclasses
import sqlite3

import _queue_reference as reference
import numpy as np
import pytest
from _scored_workspace import correct, scored_workspace

from medseg.qc import Finding, reliability
from medseg.qc.queue import review_queue
from medseg.workspace import Workspace
from medseg.workspace.records import CORRECTED


def _fields(item) -> dict:
    return {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}


def _stored(ws) -> list[str]:
    """The keys of the orders the workspace holds (pending computations left out)."""
    with sqlite3.connect(ws.root / "workspace.sqlite") as conn:
        has = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'queue_cache'").fetchone()
        rows = conn.execute("SELECT key FROM queue_cache").fetchall() if has else []
    return [k for (k,) in rows if not k.startswith("pending:")]


def _same(queue, expected) -> None:
    assert queue.sample_ids == [i.sample_id for i in expected]
    assert queue.statuses == [i.status for i in expected]
    assert queue.priorities.tolist() == [i.priority for i in expected]  # to the bit
    assert [_fields(i) for i in queue] == [_fields(i) for i in expected]


def _from_store(ws, monkeypatch, **options):
    """The queue read from the stored order: computing it (reading every score and finding) fails here."""

    def computed():
        raise AssertionError("the queue was computed, not read from the stored order")

    with monkeypatch.context() as m:
        m.setattr(ws, "queue_columns", computed)
        return review_queue(ws, **options)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    w = scored_workspace(tmp_path_factory.mktemp("cache"))
    yield w
    w.close()


OPTIONS = [
    {},
    {"method": "outline-fit"},
    {"models": False},
    {"statuses": ["unreviewed"]},
    {"statuses": ["accepted", "unreviewed"], "checks": ["specks", "duplicate_mask_disagreement"]},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "default")
def test_a_stored_order_gives_the_computed_queue(ws, monkeypatch, options):
    ws.queue_cache_clear()
    computed = review_queue(ws, **options)
    assert len(_stored(ws)) == 1
    stored = _from_store(ws, monkeypatch, **options)
    walked = reference.review_queue(ws, **options)
    _same(computed, walked)
    _same(stored, walked)


def test_items_of_a_stored_order_are_made_after_the_workspace_closed(ws, monkeypatch):
    review_queue(ws)  # stored
    with Workspace.open(ws.root, verify="none") as other:
        queue = _from_store(other, monkeypatch)
    _same(queue, reference.review_queue(ws))


WRITES = {
    "scores": lambda w, ids: w.set_scores("oof-k3", {ids[3]: 0.01}, {ids[3]: {"dice": 0.01}}),
    "new score method": lambda w, ids: w.set_scores("fit-all", {s: 0.5 for s in ids[:6]}),
    "findings": lambda w, ids: w.add_findings([Finding(ids[9], "full_mask", "error", "all foreground")], source="qc"),
    "findings removed": lambda w, ids: w.add_findings([], source="qc"),
    "a corrected label": lambda w, ids: correct(w, ids[10]),
    "a reverted label": lambda w, ids: w.revert(ids[2], w.revisions(ids[2])[0].id),
}


@pytest.mark.parametrize("write", list(WRITES))
def test_every_write_that_orders_the_queue_drops_the_stored_order(tmp_path, write):
    with scored_workspace(tmp_path) as w:
        ids = w.sample_ids()
        before = review_queue(w)
        assert len(_stored(w)) == 1
        WRITES[write](w, ids)
        assert _stored(w) == []
        after = review_queue(w)
        _same(after, reference.review_queue(w))
        assert [_fields(i) for i in after] != [_fields(i) for i in before]  # the write mattered


def test_a_write_by_another_process_drops_it_too(tmp_path):
    with scored_workspace(tmp_path) as w:
        ids = w.sample_ids()
        before = review_queue(w)
        # scored on its current label (ids[2]'s score is stale), at the end
        sid = next(s for s in reversed(before.sample_ids) if s not in (ids[0], ids[2]))
        with sqlite3.connect(w.root / "workspace.sqlite") as conn:  # no medseg: the database's own triggers
            conn.execute("UPDATE scores SET score = 0.0 WHERE method = 'oof-k3' AND sample_id = ?", (sid,))
        assert _stored(w) == []
        queue = review_queue(w)
        assert queue.place(sid) < before.place(sid)
        _same(queue, reference.review_queue(w))


def test_a_verdict_keeps_the_stored_order_and_the_queue_shows_it(ws, monkeypatch):
    ws.queue_cache_clear()
    review_queue(ws)
    sid = ws.sample_ids()[3]
    ws.set_status(sid, CORRECTED)
    assert len(_stored(ws)) == 1
    queue = _from_store(ws, monkeypatch)
    assert queue.statuses[queue.place(sid)] == CORRECTED
    _same(queue, reference.review_queue(ws))
    for statuses in (["unreviewed"], ["corrected"]):
        _same(_from_store(ws, monkeypatch, statuses=statuses), reference.review_queue(ws, statuses=statuses))


def test_a_write_while_the_order_is_computed_keeps_it_from_being_stored(tmp_path):
    with scored_workspace(tmp_path) as w:
        ids = w.sample_ids()
        columns = w.queue_columns

        def read_then_written():
            cols = columns()  # what this computation orders by ...
            with Workspace.open(w.root, verify="none") as other:  # ... and a QC elsewhere stores a score
                other.set_scores("oof-k3", {ids[11]: 0.0}, {ids[11]: {"dice": 0.0}})
            return cols

        w.queue_columns = read_then_written
        stale = review_queue(w)
        del w.queue_columns
        assert _stored(w) == []
        fresh = review_queue(w)
        assert fresh.place(ids[11]) < stale.place(ids[11])
        _same(fresh, reference.review_queue(w))


def test_a_new_calibration_or_a_damaged_row_computes_the_order_again(ws, monkeypatch):
    ws.queue_cache_clear()
    review_queue(ws)
    cal = reliability.Calibration({"outline-fit": 1.3, "neighbour-fit": 0.4, "oof-k3": 2.1}, -0.7, {}, {}, n_pairs=20)
    monkeypatch.setattr(reliability, "calibration", lambda root, model: dataclasses.replace(cal, model=model))
    _same(review_queue(ws), reference.review_queue(ws))
    with sqlite3.connect(ws.root / "workspace.sqlite") as conn:
        conn.execute("UPDATE queue_cache SET payload = x'00ff'")
    _same(review_queue(ws), reference.review_queue(ws))
    assert isinstance(review_queue(ws).priorities, np.ndarray)
