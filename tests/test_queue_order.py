"""Finding 5 of issue 16: one number orders the whole review queue, and each item says why it is there."""

from __future__ import annotations

import csv
import json

import pytest
from _rank_data import make_planted

from medseg.cli.rank import item_dict, queue_table, write_csv
from medseg.qc import Finding, review_queue
from medseg.workspace import Workspace


@pytest.fixture
def ws(tmp_path):
    root, _ = make_planted(tmp_path / "data", n=8, size=32)
    with Workspace.create(tmp_path / "ws", root, group_by="stem") as w:
        yield w


def _scored(ws) -> None:
    scores = {"s00": 0.92, "s01": 0.31, "s02": 0.95, "s03": 0.6, "s04": 0.8, "s05": 0.85}
    ws.set_scores("oof-k3", scores, {s: {"dice": v, "out_of_fold": True} for s, v in scores.items()})
    ws.add_findings(
        [
            Finding("s06", "full_mask", "error", "the whole image is foreground"),  # unscored, an error
            Finding("s05", "specks", "warning", "3 specks", value=3),  # percentile 0.6 - 0.75 = -0.15
            Finding("s00", "blurred", "warning", "blurred image"),  # image quality: no penalty
        ],
        source="qc",
    )


def test_the_queue_is_in_ascending_priority_and_an_unscored_error_is_not_last(ws):
    _scored(ws)
    queue = review_queue(ws)
    priorities = [i.priority for i in queue]
    assert priorities == sorted(priorities)
    order = [i.sample_id for i in queue]
    # the model's standing is its percentile among the scored (s01 0, s03 0.2, ... s02 1); s06 has no score
    # but an error finding (0.5 - 1.0): before every sample without one; s07, unscored and clean, stands in
    # the middle (0.5), not last (issue 17)
    assert order == ["s06", "s05", "s01", "s03", "s04", "s07", "s00", "s02"]
    by = {i.sample_id: i for i in queue}
    assert by["s06"].priority == pytest.approx(-0.5) and by["s07"].priority == pytest.approx(0.5)
    assert by["s05"].priority == pytest.approx(-0.15)


def test_signals_say_why_most_telling_first(ws):
    _scored(ws)
    by = {i.sample_id: i for i in review_queue(ws)}
    assert by["s06"].signals == ("QC error: all-foreground mask", "no oof-k3 score yet")
    assert by["s05"].signals == (
        "QC warning: 3 specks",
        "out-of-fold prediction partly agrees with the label: Dice 0.85",
    )
    assert by["s01"].signals == ("out-of-fold prediction disagrees with the label: Dice 0.31", "no QC findings")
    # an image-quality warning did not move s00: it comes after the verdict that placed it
    assert by["s00"].signals == (
        "out-of-fold prediction agrees with the label: Dice 0.92",
        "QC warning: image blurred",
    )
    assert by["s07"].signals == ("no oof-k3 score yet", "no QC findings")


def test_rank_rows_show_the_priority_and_the_signals(ws, tmp_path):
    _scored(ws)
    queue = review_queue(ws)
    table = queue_table(queue, 3, ws.score_details("oof-k3"))
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["#", "sample", "status", "priority"]
    assert lines[1].split()[:4] == ["1", "s06", "unreviewed", "-0.500"]
    assert lines[1].endswith("QC error: all-foreground mask; no oof-k3 score yet")
    assert lines[2].split()[3] == "-0.150" and "QC warning: 3 specks" in lines[2]
    row = item_dict(queue[1])
    assert row["priority"] == pytest.approx(-0.15) and row["signals"][0] == "QC warning: 3 specks"
    json.dumps(row)
    write_csv(queue, tmp_path / "q.csv")
    with open(tmp_path / "q.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["sample_id"] for r in rows] == [i.sample_id for i in queue]
    assert [float(r["score"]) for r in rows] == pytest.approx([i.priority for i in queue])  # score = priority
    assert rows[0]["reasons"] == "QC error: all-foreground mask | no oof-k3 score yet"
