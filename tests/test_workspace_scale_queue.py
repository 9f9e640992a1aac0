"""The review queue over columns (medseg.qc.queue_index) gives the queue the per-sample walk gave, item for item.

The reference is the walk as it was before (tests/_queue_reference.py, the previous medseg.qc.queue verbatim):
every QueueItem field equal, priorities to the bit, on a workspace with model-free signals, a model score,
a stale score and a stale signal (labels corrected since), disagreeing-duplicate pairs (one that the other signals
tell apart, :func:`medseg.qc.queue_state.told_pairs`), findings of every
severity, with and without a calibration, filtered by status and by check, and with the model left out.
"""

from __future__ import annotations

import dataclasses

import _queue_reference as reference
import numpy as np
import pytest
from _scored_workspace import correct, scored_workspace

from medseg.qc import reliability
from medseg.qc.queue import ReviewQueue, review_queue


def _fields(item) -> dict:
    return {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    with scored_workspace(tmp_path_factory.mktemp("queue")) as w:
        yield w


OPTIONS = [
    {},
    {"method": "outline-fit"},
    {"models": False},
    {"statuses": ["unreviewed"]},
    {"checks": ["specks", "duplicate_mask_disagreement"]},
]


@pytest.mark.parametrize("calibrated", [False, True])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "default")
def test_the_indexed_queue_equals_the_walk(ws, monkeypatch, calibrated, options):
    if calibrated:
        cal = reliability.Calibration(
            {"outline-fit": 1.3, "neighbour-fit": 0.4, "oof-k3": 2.1}, -0.7, {}, {}, n_pairs=20
        )
        monkeypatch.setattr(reliability, "calibration", lambda root, model: dataclasses.replace(cal, model=model))
    queue = review_queue(ws, **options)
    walked = reference.review_queue(ws, **options)
    assert isinstance(queue, ReviewQueue) and len(queue) == len(walked) > 0
    assert queue.sample_ids == [i.sample_id for i in walked]
    assert queue.statuses == [i.status for i in walked]
    assert queue.priorities.tolist() == [i.priority for i in walked]  # to the bit
    assert [_fields(i) for i in queue] == [_fields(i) for i in walked]
    # the pair follows one another and a stale sample says why
    if "checks" not in options or "duplicate_mask_disagreement" in options.get("checks", ()):
        ids = ws.sample_ids()
        if ids[8] in queue.sample_ids and ids[20] in queue.sample_ids:
            assert abs(queue.place(ids[8]) - queue.place(ids[20])) == 1
        # a pair the other signals tell apart: the trusted label's error reads as info naming the other
        trusted = queue[queue.place(ids[13])]
        (f,) = [f for f in trusted.findings if f.check == "duplicate_mask_disagreement"]
        assert f.severity == "info" and f.details["trusted_over"] == [ids[17]]
        assert any("the other signals trust this label more" in s for s in trusted.signals)
        wrong = queue[queue.place(ids[17])]
        assert [f.severity for f in wrong.findings if f.check == "duplicate_mask_disagreement"] == ["error"]
        assert "the other signals trust that label more, so this one is the likely error" in wrong.signals[0]
        assert queue.place(ids[17]) < queue.place(ids[13]) - 1


def test_items_are_made_when_asked_and_from_the_snapshot(ws, monkeypatch):
    import medseg.qc.queue as q

    made = []
    real = q._ItemContext.item
    monkeypatch.setattr(q._ItemContext, "item", lambda self, k, p: made.append(k) or real(self, k, p))
    queue = review_queue(ws)
    assert made == [] and len(queue.sample_ids) == len(ws.sample_ids())
    first = queue[0]
    assert made == [ws.sample_ids().index(first.sample_id)]
    assert queue.item_of(queue.sample_ids[3]).sample_id == queue.sample_ids[3] and len(made) == 2
    assert queue[-1].sample_id == queue.sample_ids[-1] and queue[1:3] == [queue[1], queue[2]]
    with pytest.raises(IndexError):
        queue[len(queue)]
    assert queue.place("no such sample") is None and queue.item_of("no such sample") is None
    assert isinstance(queue.priorities, np.ndarray)


@pytest.mark.parametrize("corrected", [13, 17])  # the label the signals trusted, the one they distrusted
def test_a_pair_with_a_label_corrected_since_is_not_told_apart(tmp_path, corrected):
    """A person corrected one copy of the told pair: its signals judged a label that is gone (stale, presumed
    right), so nothing calls its copy wrong on that evidence; both stay errors, queued together, until QC and
    ranking judge the new label. The walk agrees."""
    with scored_workspace(tmp_path) as w:
        ids = w.sample_ids()
        correct(w, ids[corrected])
        queue = review_queue(w)
        pair = {
            s: [f for f in queue[queue.place(s)].findings if f.check == "duplicate_mask_disagreement"]
            for s in ids[13:18:4]
        }
        assert all(
            [(f.severity, "trusted_over" in f.details, "trusted_partner" in f.details) for f in fs]
            == [("error", False, False)]
            for fs in pair.values()
        )
        assert abs(queue.place(ids[13]) - queue.place(ids[17])) == 1
        assert [_fields(i) for i in queue] == [_fields(i) for i in reference.review_queue(w)]
