"""The queue as CSV (issue 17): ``medseg qc WORKSPACE --queue-csv`` (model-free), ``medseg rank --csv``, read back."""

from __future__ import annotations

import pytest
from test_reliability import make_set, queue_auroc

from medseg.cli import main
from medseg.cli.queue_csv import read_queue_csv, write_queue_csv
from medseg.qc import Finding, review_queue
from medseg.workspace import Workspace


@pytest.fixture
def data(tmp_path):
    return make_set(tmp_path / "data", n=30, wrong=8, seed=3)


def test_qc_queue_csv_reads_back_in_queue_order_with_standings_and_reasons(data, tmp_path, capsys):
    root, planted = data
    Workspace.create(tmp_path / "ws", root, group_by="stem").close()
    out = tmp_path / "out" / "queue.csv"
    assert main(["qc", str(tmp_path / "ws"), "--quiet", "--queue-csv", str(out)]) == 0
    assert f"queue: {out}" in capsys.readouterr().err
    rows = read_queue_csv(out)
    with Workspace.open(tmp_path / "ws") as ws:
        queue = review_queue(ws, models=False)
    assert [r["sample_id"] for r in rows] == [i.sample_id for i in queue]
    assert [r["rank"] for r in rows] == list(range(1, len(queue) + 1))
    # the score column is the priority: sorting by it alone gives the queue's order
    assert [r["score"] for r in rows] == pytest.approx([i.priority for i in queue], abs=1e-6)
    assert all(a["score"] <= b["score"] for a, b in zip(rows, rows[1:]))
    assert "outline-fit" in rows[0]["standings"]
    for r, item in zip(rows, queue):
        assert r["reasons"] == list(item.signals)
        assert r["standings"] == pytest.approx({m: v for m, v in item.standings.items()}, abs=1e-4)
        assert r["fold"] is None and r["fold_dice"] is None  # no model: no training
        assert r["method"] in (None, "outline-fit") and r["method_score"] == r["standings"].get(r["method"])
    assert queue_auroc(queue, planted) > 0.7  # the model-free queue finds the planted errors


def test_queue_csv_needs_a_workspace(data, tmp_path, capsys):
    root, _ = data
    out = tmp_path / "q.csv"
    assert main(["qc", str(root), "--quiet", "--queue-csv", str(out)]) == 2
    assert "not a workspace" in capsys.readouterr().err and not out.exists()


def test_rank_csv_carries_the_fold_and_its_dice(tmp_path):
    root, _ = make_set(tmp_path / "data", n=6, wrong=1)
    with Workspace.create(tmp_path / "ws", root, group_by="stem") as ws:
        ids = ws.sample_ids()
        scores = {s: 0.5 + 0.08 * k for k, s in enumerate(ids)}
        details = {
            s: {"dice": v, "fold": k % 2, "fold_dice": (0.61, 0.73)[k % 2]} for k, (s, v) in enumerate(scores.items())
        }
        ws.set_scores("oof-k2", scores, details)
        ws.add_findings([Finding(ids[3], "full_mask", "error", "the whole image is foreground")], source="qc")
        queue = review_queue(ws)
        write_queue_csv(queue, tmp_path / "q.csv", ws.score_details("oof-k2"))
    rows = read_queue_csv(tmp_path / "q.csv")
    assert rows[0]["sample_id"] == ids[3] and rows[0]["n_findings"] == 1
    by = {r["sample_id"]: r for r in rows}
    assert by[ids[1]]["fold"] == 1 and by[ids[1]]["fold_dice"] == pytest.approx(0.73)
    assert by[ids[0]]["method_score"] == pytest.approx(0.5) and by[ids[0]]["standings"]["oof-k2"] == 0.0
    with pytest.raises(ValueError, match="not a medseg queue CSV"):
        (tmp_path / "other.csv").write_text("a,b\n1,2\n")
        read_queue_csv(tmp_path / "other.csv")
