"""Measure a checkpoint (or an ensemble) on labelled data: per-sample, per-class scores and their summary.

``evaluate_checkpoint(ckpt_path, source, sample_ids=None, out_dir=None, **options) -> EvaluationResult``
predicts every chosen sample of ``source`` (a dataset folder, a workspace's current labels, or a
dataset-like object) and scores it per class: Dice, IoU, HD95 and ASSD (physical units when the image
states its spacing, else pixels), object precision / recall (connected components matched at IoU >= 0.5).
``EvaluationResult.summary`` is ``{class: {"dice": {"mean", "median", ...}, "iou", "hd95", "assd",
"objects", ...}}``; ``EvaluationResult.write(out_dir)`` writes ``per_sample.csv`` and ``summary.json``.
``iter_evaluate`` is the same as a job of :mod:`medseg.jobs` (progress per sample, cancellable);
``score_sample`` scores one prediction against its label without a model.

This package sits above :mod:`medseg.training` (it reuses its metrics and workspace snapshot), so the
training layer cannot import it: a run's final evaluation is called by what drives the Trainer (the
``medseg train`` command, which the app's fine-tune also runs).
"""

from medseg.evaluate.objects import ObjectCounts, match_objects
from medseg.evaluate.result import EvaluationResult, read_per_sample, summarise
from medseg.evaluate.run import evaluate_checkpoint, iter_evaluate
from medseg.evaluate.scores import COLUMNS, METRICS, SampleScore, score_sample
from medseg.evaluate.selection import SPLITS

__all__ = [
    "COLUMNS",
    "METRICS",
    "SPLITS",
    "EvaluationResult",
    "ObjectCounts",
    "SampleScore",
    "evaluate_checkpoint",
    "iter_evaluate",
    "match_objects",
    "read_per_sample",
    "score_sample",
    "summarise",
]
