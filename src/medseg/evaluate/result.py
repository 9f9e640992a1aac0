"""What an evaluation produced: the per-sample rows, the per-class summary, and the files they go to.

``EvaluationResult.summary`` is a JSON-able dict, one entry per class::

    {class: {"dice": {"mean", "median", "std", "min", "max", "n", "undefined", "worst": [[id, value], ...]},
             "iou": {...}, "hd95": {...}, "assd": {...},
             "objects": {"precision", "recall", "predicted", "labelled", "matched",
                         "mean_precision", "mean_recall"},
             "samples": n, "labelled_samples": n, "predicted_samples": n}}

Means and medians skip undefined values (NaN, written as null); "worst" lists
the lowest Dice / IoU and the highest distances, worst first. Object precision
and recall are pooled over the samples (summed counts, see
:mod:`medseg.evaluate.objects`); ``mean_precision`` / ``mean_recall`` average
the per-sample values instead. ``write(out_dir)`` writes ``per_sample.csv``
(one row per sample and class, :data:`medseg.evaluate.scores.COLUMNS`) and
``summary.json`` (``{"classes": summary, "meta": meta}``), recorded as
medseg's own files so a later ``overwrite=True`` may replace them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medseg.evaluate.objects import ObjectCounts
from medseg.evaluate.scores import COLUMNS, LOWER_IS_BETTER, METRICS, SampleScore
from medseg.folder_swap import write_text_atomic

WORST = 3
CSV_NAME, SUMMARY_NAME = "per_sample.csv", "summary.json"


def _number(v: float) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def metric_summary(values: Sequence[float], ids: Sequence[str], metric: str, worst: int = WORST) -> dict[str, Any]:
    a = np.asarray(values, dtype=np.float64)
    defined = ~np.isnan(a)
    d = a[defined]
    order = np.argsort(-d if metric in LOWER_IS_BETTER else d, kind="stable") if d.size else []
    defined_ids = [i for i, ok in zip(ids, defined) if ok]
    return {
        "mean": _number(float(d.mean())) if d.size else None,
        "median": _number(float(np.median(d))) if d.size else None,
        "std": _number(float(d.std())) if d.size else None,
        "min": _number(float(d.min())) if d.size else None,
        "max": _number(float(d.max())) if d.size else None,
        "n": int(d.size),
        "undefined": int((~defined).sum()),
        "worst": [[defined_ids[k], float(d[k])] for k in list(order)[:worst]],
    }


def summarise(scores: Iterable[SampleScore], class_names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The per-class summary (see the module docstring) of ``scores``, classes in ``class_names`` order."""
    by_class: dict[str, list[SampleScore]] = {c: [] for c in class_names}
    for s in scores:
        by_class.setdefault(s.class_name, []).append(s)
    out = {}
    for name, rows in by_class.items():
        ids = [r.sample_id for r in rows]
        entry: dict[str, Any] = {m: metric_summary([r.value(m) for r in rows], ids, m) for m in METRICS}
        pooled = sum((r.objects for r in rows), ObjectCounts(0, 0, 0))
        precisions = [r.objects.precision for r in rows]
        recalls = [r.objects.recall for r in rows]
        entry["objects"] = {
            "precision": _number(pooled.precision),
            "recall": _number(pooled.recall),
            "predicted": pooled.predicted,
            "labelled": pooled.labelled,
            "matched": pooled.matched,
            "mean_precision": _number(float(np.nanmean(precisions))) if not np.all(np.isnan(precisions)) else None,
            "mean_recall": _number(float(np.nanmean(recalls))) if not np.all(np.isnan(recalls)) else None,
        }
        entry["samples"] = len(rows)
        entry["labelled_samples"] = sum(r.labelled_pixels > 0 for r in rows)
        entry["predicted_samples"] = sum(r.predicted_pixels > 0 for r in rows)
        out[name] = entry
    return out


@dataclass
class EvaluationResult:
    """Rows (one per sample and class), their summary per class, and how they were made (``meta``:
    checkpoints, source, labels and revisions, split, TTA, distance unit, conventions)."""

    scores: list[SampleScore]
    class_names: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, dict[str, Any]]:
        return summarise(self.scores, self.class_names)

    @property
    def sample_ids(self) -> list[str]:
        return list(dict.fromkeys(s.sample_id for s in self.scores))

    def mean(self, metric: str = "dice") -> float | None:
        """The mean over classes of the per-class means of ``metric`` (classes never labelled nor predicted
        left out, as they score 1 by the empty-mask rule and would say nothing about the model)."""
        seen = [v for v in self.summary.values() if v["labelled_samples"] or v["predicted_samples"]]
        means = [v[metric]["mean"] for v in seen if v[metric]["mean"] is not None]
        return float(np.mean(means)) if means else None

    def csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
        w.writeheader()
        for s in self.scores:
            w.writerow(s.row())
        return buf.getvalue()

    def summary_json(self) -> dict[str, Any]:
        return {"classes": self.summary, "meta": self.meta}

    def write(
        self, out_dir: str | os.PathLike, *, overwrite: bool = False, sources: Iterable = (), workspaces: Iterable = ()
    ) -> list[Path]:
        """``per_sample.csv`` and ``summary.json`` in ``out_dir`` (created); never into ``sources`` (the data
        read) nor over a file medseg did not write (DestinationError naming it). Returns the two paths."""
        from medseg.ownership import OutputFolder

        folder = OutputFolder(
            out_dir, purpose="evaluation results", sources=sources, workspaces=workspaces, overwrite=overwrite
        )
        csv_path, json_path = folder.check(CSV_NAME, SUMMARY_NAME)
        folder.mkdir()
        write_text_atomic(csv_path, self.csv_text())
        write_text_atomic(json_path, json.dumps(self.summary_json(), indent=2, default=str) + "\n")
        folder.record(csv_path, json_path)
        return [csv_path, json_path]


def read_per_sample(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a ``per_sample.csv`` as strings (empty cell: undefined)."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
