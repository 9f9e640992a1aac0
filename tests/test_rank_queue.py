"""The review queue: order by score with QC findings folded in, filters, plain-words reasons."""

from __future__ import annotations

import pytest
from _rank_data import make_planted

from medseg.errors import UnknownNameError, WorkspaceError
from medseg.qc import Finding, QueueItem, review_queue
from medseg.qc.queue import default_method, finding_phrase
from medseg.workspace import Workspace


@pytest.fixture
def ws(tmp_path):
    root, _ = make_planted(tmp_path / "data", n=8, size=32)
    with Workspace.create(tmp_path / "ws", root, group_by="stem") as w:
        yield w


def ids(queue):
    return [i.sample_id for i in queue]


def test_unscored_queue_orders_by_worst_finding_then_count_then_id(ws):
    ws.add_findings(
        [
            Finding("s05", "specks", "warning", "3 specks", value=3),
            Finding("s02", "duplicate_mask_disagreement", "error", "masks disagree", value=0.31),
            Finding("s07", "holes", "info", "a hole", value=1),
            Finding("s06", "specks", "warning", "2 specks", value=2),
            Finding("s06", "holes", "info", "a hole", value=1),
        ],
        source="qc",
    )
    queue = review_queue(ws)
    assert all(isinstance(i, QueueItem) for i in queue)
    assert ids(queue) == ["s02", "s06", "s05", "s07", "s00", "s01", "s03", "s04"]
    assert all(i.score is None and i.method is None for i in queue)
    assert queue[0].reason == ("not scored by a model yet; 1 QC finding: duplicate image's mask disagrees (IoU 0.31)")
    assert queue[-1].reason == "not scored by a model yet; no QC findings"


def test_scored_queue_is_worst_first_with_findings_folded_in(ws):
    scores = {"s00": 0.9, "s01": 0.31, "s02": 0.95, "s03": 0.6, "s04": 0.8, "s05": 0.85, "s06": 0.7}
    details = {s: {"dice": v, "hd95": 3.0, "out_of_fold": True} for s, v in scores.items()}
    ws.set_scores("oof-k3", scores, details)
    ws.add_findings(
        [
            # standings: percentiles among the 7 scored (s01 0, s03 1/6, ..., s02 1); s07 unscored: 0.5
            Finding("s02", "duplicate_mask_disagreement", "error", "masks disagree", value=0.2),  # 1 - 1.0
            Finding("s05", "mask_values", "warning", "grey noise", value=42),  # 4/6 - 0.75
            Finding("s05", "specks", "info", "1 speck", value=1),  # info: no penalty
            Finding("s04", "blurred", "warning", "blurred image"),  # image quality: no penalty
        ],
        source="qc",
    )
    queue = review_queue(ws)  # the only method is the default
    assert ids(queue) == ["s05", "s02", "s01", "s03", "s06", "s04", "s07", "s00"]
    by_id = {i.sample_id: i for i in queue}
    assert by_id["s02"].priority == pytest.approx(0.0)
    assert by_id["s05"].priority == pytest.approx(4 / 6 - 0.75)
    assert by_id["s07"].priority == pytest.approx(0.5)  # unscored: the middle, not last (issue 17)
    assert by_id["s07"].score is None and by_id["s07"].reason.startswith("no oof-k3 score")
    assert by_id["s01"].method == "oof-k3"
    assert by_id["s05"].reason == (
        "Dice 0.85 between out-of-fold prediction and label, HD95 3.0 px "
        "(label quality 0.85); 2 QC findings: grey noise (42 levels), 1 speck"
    )
    # findings of other checks left out on request: s02 and s05 fall back to their scores
    only = review_queue(ws, checks=["specks"])
    assert ids(only)[:3] == ["s01", "s03", "s06"]
    assert [f.check for f in {i.sample_id: i for i in only}["s05"].findings] == ["specks"]


def test_status_filter_and_method_choice(ws):
    ws.set_scores("checkpoint", {"s00": 0.1, "s01": 0.9}, {"s00": {"dice": 0.1, "biased": True}})
    ws.set_scores("oof-k3", {"s00": 0.8, "s01": 0.2})
    ws.set_scores("oof-k5", {"s00": 0.7, "s01": 0.3})
    assert default_method(ws.score_methods()) == "oof-k5"
    assert ids(review_queue(ws))[0] == "s01" and ids(review_queue(ws))[-1] == "s00"
    biased = review_queue(ws, method="checkpoint")
    assert ids(biased)[0] == "s00" and ids(biased)[-1] == "s01"
    assert "a model that may have seen this label" in biased[0].reason
    ws.set_status("s01", "accepted")
    ws.set_status("s03", "excluded", "image unusable")
    # oof-k5 scores s00 best of two: after the unscored samples, which stand in the middle
    assert ids(review_queue(ws, statuses=["unreviewed"])) == ["s02", "s04", "s05", "s06", "s07", "s00"]
    assert ids(review_queue(ws, statuses="accepted")) == ["s01"]
    assert review_queue(ws, statuses=["accepted", "excluded"])[1].status == "excluded"


def test_bad_filters_raise_naming_the_valid_names(ws):
    with pytest.raises(UnknownNameError, match="oof-k5"):
        review_queue(ws, method="oof-k5")
    with pytest.raises(WorkspaceError, match="unknown status 'reviewed'"):
        review_queue(ws, statuses=["reviewed"])
    with pytest.raises(UnknownNameError, match="did you mean 'specks'"):
        review_queue(ws, checks=["speck"])


def test_finding_phrases():
    assert finding_phrase(Finding("a", "mask_values", "warning", "m", value=42)) == "grey noise (42 levels)"
    assert finding_phrase(Finding("a", "mask_values", "error", "m", value=2)) == "mask ids outside the class map"
    assert finding_phrase(Finding("a", "empty_mask", "warning", "m")) == "empty mask"
    assert finding_phrase(Finding("a", "specks", "warning", "m")) == "specks"  # no value stored
    assert finding_phrase(Finding("a", "stray_file", "info", "m")) == "stray file"


def test_a_label_that_stands_out_in_its_own_group_comes_before_a_group_the_model_fails_on(tmp_path, monkeypatch):
    """Group a: the fold model fails on the whole video (scores ~0.2); group b: it does well (~0.9) except
    on s12, whose label is wrong. Ranked by raw score, all of a came first; relative to their groups, s12
    (0.5 where its video mates score 0.9) comes before a's ordinary frames, and a's own outlier first."""
    root, _ = make_planted(tmp_path / "data", n=16, size=32)
    with Workspace.create(tmp_path / "ws", root, group_by="stem") as ws:
        columns = ws.queue_columns  # the queue reads the samples' groups from these columns
        grouped = lambda: {**(c := columns()), "groups": ["a" if int(i[1:]) < 8 else "b" for i in c["ids"]]}  # noqa: E731
        monkeypatch.setattr(ws, "queue_columns", grouped)
        scores = {f"s{k:02d}": 0.2 + 0.005 * k for k in range(8)} | {f"s{k:02d}": 0.9 for k in range(8, 16)}
        scores |= {"s02": 0.05, "s12": 0.5}
        ws.set_scores("oof-k5", scores, {s: {"dice": v} for s, v in scores.items()})
        assert ids(review_queue(ws))[:2] == ["s02", "s12"]
        # groups of fewer than MIN_GROUP scored samples are set against the median of all: the raw order
        monkeypatch.setattr(ws, "queue_columns", columns)  # one group per sample
        ws.queue_cache_clear()  # the stored order came from the stand-in's groups, which the database never held
        assert ids(review_queue(ws))[:9] == ["s02", "s00", "s01", "s03", "s04", "s05", "s06", "s07", "s12"]


def test_a_score_of_an_earlier_revision_does_not_rank_the_corrected_label(ws):
    heads = {r.id: r.head_revision for r in ws.samples()}
    scores = {s: 0.3 + 0.05 * k for k, s in enumerate(sorted(heads))}
    ws.set_scores("oof-k5", scores, {s: {"dice": v, "revision": heads[s]} for s, v in scores.items()})
    assert ids(review_queue(ws))[0] == "s00"
    mask = ws.current_mask("s00").copy()
    mask[:2, :2] = 1
    rev = ws.save_revision("s00", mask, origin="manual")
    queue = review_queue(ws)
    assert ids(queue)[0] == "s01" and ids(queue)[-1] == "s00"  # now unscored: after every scored sample
    stale = queue[-1]
    assert stale.score is None and stale.method is None
    assert stale.reason.startswith(
        f"oof-k5 scored an earlier label (revision {heads['s00']}; now {rev.id}): not ranked until scored again"
    )
    ws.revert("s00", heads["s00"])  # a revert makes a new revision: still not the one scored
    assert ids(review_queue(ws))[-1] == "s00"


def test_unscored_numbered_frames_keep_number_order(tmp_path):
    from _review_data import make_review_set

    with Workspace.create(tmp_path / "ws", make_review_set(tmp_path / "set", n=11)) as ws:
        assert ids(review_queue(ws)) == [str(k) for k in range(1, 12)]


def test_average_ranks_match_scipy_rankdata():
    import numpy as np
    from scipy.stats import rankdata

    from medseg.qc.ranks import average_ranks

    rng = np.random.default_rng(0)
    for v in (rng.random(50), rng.integers(0, 5, 40).astype(float), np.array([1.0]), np.array([2.0, 2.0, 2.0])):
        assert np.allclose(average_ranks(v), rankdata(v, method="average") - 1.0)
