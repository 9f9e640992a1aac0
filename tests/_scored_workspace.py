"""A small workspace holding what the review queue orders by, shared by the queue's tests: two model-free
signals and a model score (ties on purpose, a few samples unjudged), findings of every severity with a
disagreeing-duplicate pair, a label corrected since it was scored (its scores and signals stale) and some
accepted samples."""

from __future__ import annotations

import random
from pathlib import Path

from _rank_data import make_planted

from medseg.qc import Finding
from medseg.workspace import Workspace
from medseg.workspace.records import ACCEPTED


def scored_workspace(base: Path, n: int = 24) -> Workspace:
    """The workspace (open) over ``n`` planted frames in ``base``."""
    root, _ = make_planted(base / "data", n=n, size=24)
    w = Workspace.create(base / "ws", root, group_by="stem")
    rng = random.Random(3)
    ids = w.sample_ids()
    heads = {r.id: r.head_revision for r in w.samples()}
    told = {ids[13]: 0.97, ids[17]: 0.03}  # a pair of copies whose other signals tell which label is wrong
    for m in ("outline-fit", "neighbour-fit"):
        judged = ids[: -2 if m == "outline-fit" else -5]
        values = {s: rng.random() for s in judged} | told
        w.set_scores(m, values, {s: {"revision": heads[s], "raw": 1} for s in judged})
    model = {s: round(rng.random(), 1) for s in ids[1:]} | {ids[13]: 0.9, ids[17]: 0.1}  # ties on purpose
    w.set_scores("oof-k3", model, {s: {"dice": v, "revision": heads[s]} for s, v in model.items()})
    pair = [(ids[8], ids[20]), (ids[20], ids[8]), (ids[13], ids[17]), (ids[17], ids[13])]
    w.add_findings(
        [
            Finding(ids[4], "full_mask", "error", "the whole image is foreground"),
            Finding(ids[5], "specks", "warning", "3 specks", value=3),
            Finding(ids[5], "holes", "info", "a hole"),
            Finding(ids[6], "blurred", "warning", "blurred image"),
            Finding(ids[7], "too_dark", "error", "too dark"),
            *(
                Finding(
                    a,
                    "duplicate_mask_disagreement",
                    "error",
                    "masks disagree",
                    details={"others": [{"id": b, "severity": "error"}]},
                )
                for a, b in pair
            ),
        ],
        source="qc",
    )
    correct(w, ids[2])  # its scores and signals are stale now
    for s in ids[::4]:
        w.set_status(s, ACCEPTED)
    return w


def correct(w: Workspace, sample_id: str) -> int:
    """Save a corrected label of ``sample_id`` (its top rows flipped); the new revision's id."""
    mask = w.current_mask(sample_id).copy()
    mask[:3] = 1 - mask[:3]
    return w.save_revision(sample_id, mask, origin="manual", author="t", note="corrected")
