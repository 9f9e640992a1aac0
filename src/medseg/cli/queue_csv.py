"""The review queue as a CSV file (``medseg rank --csv``, ``medseg qc WORKSPACE --queue-csv``), and read back.

One row per sample in queue order. ``method`` / ``method_score``: the score
method the queue shows (the model's, else ``outline-fit``) and its score. ``score`` is the queue's priority (lower
= look first; sorting by it gives the queue's order, ties aside: the same
number the app's Review panel orders by); ``standing:<method>`` is each
signal's standing in [0, 1] (0 = the most suspect in the dataset; empty where
it could not judge the sample); ``reasons`` the row's signals in plain words,
most telling first, separated by `` | `` (a phrase may hold "; "); ``fold`` / ``fold_dice`` the out-of-fold
model that scored it and that fold's validation Dice (empty without a model).
"""

from __future__ import annotations

import csv
from pathlib import Path

COLUMNS = ("rank", "sample_id", "score", "status", "method", "method_score", "fold", "fold_dice", "n_findings")
TAIL = ("slices", "reasons", "reason")
STANDING = "standing:"
SEPARATOR = " | "


def _num(v) -> str:
    return "" if v is None else f"{float(v):.4f}"


def signal_columns(queue) -> list[str]:
    """The signals any item has a standing for, in the order the queue met them."""
    return list(dict.fromkeys(m for item in queue for m in item.standings))


def write_queue_csv(queue, path: Path, details: dict | None = None) -> None:
    """Write ``queue`` (review_queue's items) to ``path``; ``details``: the model method's score details."""
    details = details or {}
    methods = signal_columns(queue)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([*COLUMNS, *(STANDING + m for m in methods), *TAIL])
        for k, item in enumerate(queue, 1):
            d = details.get(item.sample_id, {}) if item.score is not None else {}
            w.writerow(
                [
                    k,
                    item.sample_id,
                    f"{item.priority:.6f}",
                    item.status,
                    item.method or "",
                    _num(item.score),
                    "" if d.get("fold") is None else int(d["fold"]),
                    _num(d.get("fold_dice")),
                    len(item.findings),
                    *(_num(item.standings.get(m)) for m in methods),
                    " ".join(str(z) for z in item.slices),
                    SEPARATOR.join(item.signals),
                    item.reason,
                ]
            )


def read_queue_csv(path: Path) -> list[dict]:
    """The rows of a queue CSV: numbers as floats (None where empty), ``standings`` {method: value},
    ``reasons`` a list; raises ValueError naming the file when it is not one."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in (*COLUMNS, *TAIL) if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: not a medseg queue CSV (no column {', '.join(missing)})")
        rows = []
        for r in reader:
            rows.append(
                {
                    "rank": int(r["rank"]),
                    "sample_id": r["sample_id"],
                    "score": float(r["score"]),
                    "status": r["status"],
                    "method": r["method"] or None,
                    "method_score": _float(r["method_score"]),
                    "fold": None if r["fold"] == "" else int(r["fold"]),
                    "fold_dice": _float(r["fold_dice"]),
                    "n_findings": int(r["n_findings"]),
                    "standings": {k[len(STANDING) :]: _float(v) for k, v in r.items() if k.startswith(STANDING)},
                    "slices": [int(z) for z in r["slices"].split()],
                    "reasons": [s for s in r["reasons"].split(SEPARATOR) if s],
                    "reason": r["reason"],
                }
            )
    return rows


def _float(text: str) -> float | None:
    return None if text == "" else float(text)
