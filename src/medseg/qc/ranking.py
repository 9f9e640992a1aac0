"""Scoring a workspace's labels with a model: the events, the per-sample loop, and the single-checkpoint mode.

``iter_score_checkpoint(workspace, checkpoint)`` scores every trainable
sample (not excluded, source unchanged) with one given model and stores the
scores under ``method``. It is cheap but biased: a model that trained on a
label tends to agree with it, errors included. Every score it stores says so
(``details["biased"]``), and ``details["seen_in_training"]`` says whether the
checkpoint's provenance lists the sample among its training ids. The unbiased
mode, out-of-fold, is :func:`medseg.qc.oof.iter_rank_oof`.

A volume sample (a CT or MR case) is scored slice by slice and gets the
score of its worst slices (:mod:`medseg.qc.volume_scores`; its details name
them: ``worst_slices``). Each scored 2-D sample's probabilities are stored for
:func:`suspicion_map` (a volume's are not: a CT's probabilities for 40 classes
are gigabytes);
the scores are written in one transaction at the end (or, out-of-fold, after
each fold), so a cancel keeps what was finished and never half a fold.

Both are jobs of :mod:`medseg.jobs`: ``Started``, a :class:`SampleScored`
(a ``Progress``: ``item`` the sample id) per sample, and last
``Result(RankResult)``; a cancel raises ``Cancelled`` whose ``partial`` is the
``RankResult`` of what is stored (out-of-fold: the completed folds; here: nothing).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from medseg.errors import Cancelled, RankingError
from medseg.jobs import CancelToken, Event, Progress, Result, Started, check, register_event
from medseg.qc.label_scores import label_score
from medseg.qc.prediction_store import save_prediction
from medseg.qc.reliability_model import calibrate_model
from medseg.qc.suspicion import suspicion_map
from medseg.qc.volume_scores import score_volume

BIAS_NOTE = "scored by a model that may have seen these labels"

__all__ = [
    "BIAS_NOTE",
    "FoldScored",
    "FoldStarted",
    "RankResult",
    "SampleScored",
    "describe_fold_dice",
    "iter_score_checkpoint",
    "suspicion_map",
]


@register_event
@dataclass(frozen=True)
class FoldStarted(Event):
    kind: ClassVar[str] = "fold_started"
    fold: int
    folds: int
    n_train: int
    n_score: int


@register_event
@dataclass(frozen=True)
class SampleScored(Progress):
    """``done`` of ``total`` samples of ``stage`` scored; ``item`` is the sample, ``score`` its label's score."""

    kind: ClassVar[str] = "sample_scored"
    fold: int = 0
    score: float = 0.0

    @property
    def sample_id(self) -> str:
        return self.item


@register_event
@dataclass(frozen=True)
class FoldScored(Event):
    """Fold ``fold``'s held-out samples are predicted, scored and stored."""

    kind: ClassVar[str] = "fold_scored"
    fold: int
    folds: int
    n_scored: int
    checkpoint: str
    seconds: float
    val_dice: float | None = None  # the fold model's Dice on its inner validation split (its best epoch)


@dataclass(frozen=True)
class RankResult:
    """The scores stored under ``method`` (a cancelled out-of-fold run: those of ``folds_done`` folds).

    ``fold_dice``: {fold: its model's validation Dice} (one checkpoint: {0: the Dice its provenance
    records}, when it had a validation split)."""

    method: str
    scores: dict[str, float] = field(default_factory=dict)
    biased: bool = False
    folds_done: int = 0
    fold_dice: dict[int, float] = field(default_factory=dict)


# below this median validation Dice the models learnt too little for their scores to mean much
WEAK_DICE = 0.3


def describe_fold_dice(result: RankResult) -> str:
    """One line on how well the scoring models segment, for the CLI and the app ("" when unknown)."""
    values = [v for v in result.fold_dice.values() if v is not None]
    if not values:
        return ""
    if result.biased:
        line = f"the model's validation Dice {values[0]:.2f}"
    else:
        each = ", ".join(f"{v:.2f}" for _, v in sorted(result.fold_dice.items()))
        line = f"fold models' validation Dice {float(np.median(values)):.2f} (median; {each})"
    if float(np.median(values)) < WEAK_DICE:
        who = "it" if result.biased else "they"
        line += f": {who} learnt little, so {'its' if result.biased else 'their'} scores say little about these labels"
    return line


def open_workspace(workspace):
    """(Workspace, whether we opened it): a Workspace passes through, a path is opened."""
    if hasattr(workspace, "set_scores"):
        return workspace, False
    from medseg.workspace import Workspace

    return Workspace.open(workspace, verify="stat"), True


def trainable_samples(workspace) -> tuple[list, list]:
    """The workspace's samples pinned to their current revisions (excluded and changed ones left out)."""
    from medseg.training.workspace_source import open_workspace_dataset

    ds = open_workspace_dataset(workspace.root)
    return ds.samples, ds.problems


def check_classmap(predictor, workspace, checkpoint) -> None:
    mine, theirs = workspace.classmap, predictor.classmap
    if mine.task != theirs.task or mine.ids != theirs.ids:
        raise RankingError(
            f"{checkpoint}: the model predicts a {theirs.task} class map with ids {theirs.ids}, "
            f"the workspace {workspace.root} holds a {mine.task} one with ids {mine.ids}"
        )


def score_samples(
    predictor,
    samples: list,
    workspace,
    method: str,
    run: str,
    cancel: CancelToken | None,
    fold: int = 0,
    extra: dict | None = None,
    stage: str = "score",
    prediction_root: str | Path | None = None,
) -> Iterator[SampleScored]:
    """Predict, score and store the prediction of each sample; ``extra`` collects {id: (score, details)}.
    ``prediction_root``: where the predictions go instead of the workspace (a fold job's own folder).

    Raises ``Cancelled`` between samples when ``cancel`` is set (the caller decides what is kept).
    """
    out = extra if extra is not None else {}
    for k, s in enumerate(samples):
        check(cancel, k, len(samples), stage)
        if getattr(s, "is_volume", False):  # scored slice by slice, the volume from its worst slices
            score, details = score_volume(predictor, s, workspace.classmap, cancel)
            out[s.id] = (score, {**details, "fold": fold, "revision": s.revision, "run": run})
            yield SampleScored(k + 1, len(samples), stage, s.id, fold=fold, score=score)
            continue
        pred = predictor.predict(s.load_image())
        mask = s.load_mask()
        if tuple(mask.shape[:2]) != tuple(pred.shape):
            raise RankingError(
                f"sample {s.id}: label {mask.shape[:2]} and image {pred.shape} differ in size ({s.image_path})"
            )
        result = label_score(pred.probs, mask, workspace.classmap, threshold=predictor.threshold)
        save_prediction(prediction_root or workspace.root, method, s.id, pred.probs, run)
        out[s.id] = (result.score, {**result.to_dict(), "fold": fold, "revision": s.revision, "run": run})
        yield SampleScored(k + 1, len(samples), stage, s.id, fold=fold, score=result.score)


def run_id(kind: str, method: str) -> str:
    return f"{kind}:{method}@{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**6:06d}"


def store(workspace, method: str, scored: dict[str, tuple[float, dict]]) -> dict[str, float]:
    scores = {sid: v[0] for sid, v in scored.items()}
    workspace.set_scores(method, scores, {sid: v[1] for sid, v in scored.items()})
    return scores


def iter_score_checkpoint(
    workspace,
    checkpoint,
    *,
    device: str = "auto",
    cancel: CancelToken | None = None,
    method: str = "checkpoint",
    predictor_options: dict | None = None,
) -> Iterator[Any]:
    """Score every trainable sample with one model: ``SampleScored`` per sample, then ``Result(RankResult)``.

    Scores are stored under ``method`` only when every sample is scored; a
    cancel raises ``Cancelled`` and leaves the stored scores as they were.
    """
    from medseg.inference import Predictor
    from medseg.models.checkpoint import load_checkpoint

    ws, opened = open_workspace(workspace)
    try:
        ckpt = load_checkpoint(checkpoint)
        predictor = Predictor(ckpt, device=device, **(predictor_options or {}))
        check_classmap(predictor, ws, checkpoint)
        samples, _ = trainable_samples(ws)
        if not samples:
            raise RankingError(f"{ws.root}: no sample to score (all excluded or their sources changed)")
        data = ckpt.provenance.get("data") or {}
        # validation labels chose the checkpoint: seen too
        seen = set(data.get("ids") or ()) | set(data.get("val_ids") or ())
        run = run_id("score", method)
        scored: dict[str, tuple[float, dict]] = {}
        yield Started("rank", len(samples), {"method": method, "checkpoint": str(checkpoint), "biased": True})
        try:
            yield from score_samples(predictor, samples, ws, method, run, cancel, extra=scored)
            check(cancel, len(scored), len(samples))
        except Cancelled as c:  # raised between samples, or thrown in at a yield by medseg.jobs.drive
            raise Cancelled(
                f"scoring with {Path(checkpoint).name} cancelled after {len(scored)} of {len(samples)} "
                f"samples: the scores stored under {method!r} are as they were",
                len(scored),
                len(samples),
                RankResult(method, {}, biased=True),
            ) from c
        for sid, (_, details) in scored.items():
            details.update(
                biased=True,
                bias=BIAS_NOTE,
                out_of_fold=False,
                checkpoint=str(Path(checkpoint)),
                seen_in_training=sid in seen,
            )
        ws.record_model_run(run, str(checkpoint), "score", {s.id: s.revision for s in samples})
        dice = checkpoint_val_dice(ckpt)
        stored = store(ws, method, scored)
        calibrate_model(ws, method)  # the queue's weights with this model measured (medseg.qc.reliability)
        yield Result(RankResult(method, stored, True, 0, {} if dice is None else {0: dice}))
    finally:
        if opened:
            ws.close()


def checkpoint_val_dice(ckpt) -> float | None:
    """The validation Dice a checkpoint's provenance records (None when it trained without validation)."""
    metrics = (ckpt.provenance or {}).get("metrics") or {}
    value = metrics.get("dice")
    return float(value) if isinstance(value, (int, float)) and metrics.get("monitor") != "train_loss" else None
