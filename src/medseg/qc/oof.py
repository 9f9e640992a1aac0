"""Out-of-fold label-quality ranking: no sample is scored by a model that saw its label.

``iter_rank_oof(workspace, config, folds=5)`` pins every trainable sample to
its current label revision, splits the samples by group into ``folds`` folds
(``medseg.datasets.split.kfold_by_group``: a video block or a patient never
sits on both sides), and for each fold trains a fresh model on the other
folds with the :class:`~medseg.training.Trainer` (``config``: any
``TrainConfig``, normally a small fast one), predicts the held-out samples
with the :class:`~medseg.inference.Predictor`, scores them
(:mod:`medseg.qc.label_scores`) and stores the scores of every completed fold
under ``method`` (default ``"oof-k<folds>"``) with details: Dice, IoU, HD95,
cleanlab score, fold, the revision scored, the run id, ``out_of_fold: True``.
Volume workspaces (CT/MR cases) work the same way: the folds split cases
(groups), each fold's model trains on the other cases' slices, and each held-out
volume is scored slice by slice, its score from its worst slices, which its
details name (``worst_slices``; :mod:`medseg.qc.volume_scores`).

It is a job of :mod:`medseg.jobs`: ``Started``, per fold ``FoldStarted``, the
trainer's ``Step`` progress relabelled with stage "fold k/K train" (and its
``EpochEnd``), ``SampleScored`` (stage "fold k/K score"), ``FoldScored``; last
``Result(RankResult)``. A cancel (``cancel.set()``) stops the trainer after its
current step or the scoring after its current sample and raises ``Cancelled``
whose ``partial`` is the ``RankResult`` of the folds already scored, which stay
stored; the interrupted fold adds nothing. A fold whose training fails raises
``RankingError`` naming the fold and the trainer's error; earlier folds stay.

Each fold's model chooses its checkpoint on an inner validation split of its
own training groups (``data.val_fraction`` of them, :data:`INNER_VAL_FRACTION`
when the config has none; never the held-out fold): the epoch of best
validation Dice (``monitor``), not the lowest training loss (a fold trained on
fewer than :data:`MIN_INNER_VAL_GROUPS` groups keeps them all and its last
epoch). That Dice is the fold's quality, in ``FoldScored.val_dice``, ``RankResult.fold_dice`` and every
scored sample's ``details["fold_dice"]``. ``init_from`` starts every fold
model from a checkpoint (same architecture and classes), ``encoder_weights``
from a local encoder weights file (smp architectures). Bad inputs (too few
groups, all-empty masks, a fold without foreground, a checkpoint that does not
fit) raise ``RankingError`` before the first fold: nothing is stored.

The workspace records each fold's training run (which revisions it trained
on, by the trainer) and scoring run (kind "rank": which revisions it scored).
Fold run folders go under ``runs_dir`` (default ``<workspace>/runs/<method>``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medseg.errors import Cancelled, RankingError
from medseg.jobs import CancelToken, Result, Started, check
from medseg.qc.ranking import (
    FoldScored,
    FoldStarted,
    RankResult,
    check_classmap,
    open_workspace,
    run_id,
    score_samples,
    store,
)
from medseg.qc.reliability_model import calibrate_model


def make_folds(samples: list, folds: int, seed: int = 0) -> list[tuple[list, list]]:
    """``folds`` (train, held-out) pairs by group; a clear error when there are too few groups."""
    from medseg.datasets.split import kfold_by_group

    if folds < 2:
        raise RankingError(f"out-of-fold ranking needs at least 2 folds, got {folds}")
    groups = sorted({str(s.group) for s in samples})
    if len(groups) < folds:
        raise RankingError(
            f"{folds} folds need at least {folds} groups; the workspace's {len(samples)} trainable "
            f"samples form {len(groups)} ({', '.join(groups[:5])}): use fewer folds or "
            "re-create the workspace with another group_by"
        )
    return kfold_by_group(samples, folds, seed)


INNER_VAL_FRACTION = 0.2  # of a fold's training groups, when the config asks for no validation split
# a fold trained on fewer groups (a few CT cases) keeps them all for training: its last epoch, no fold Dice
MIN_INNER_VAL_GROUPS = 4


def base_config(config: Any, workspace_root: Path, init_from=None, encoder_weights=None):
    """The caller's TrainConfig (or its dict) set to train on the workspace, with an inner validation split
    (and ``init_from`` / ``encoder_weights``); errors raise before any fold."""
    import copy

    from medseg.training.config import TrainConfig

    if not isinstance(config, TrainConfig):
        d = copy.deepcopy(dict(config or {}))
        d["data"] = {**(d.get("data") or {}), "root": str(workspace_root)}
        config = TrainConfig.from_dict(d)
    val = config.data.val_fraction if config.data.val_fraction > 0 else INNER_VAL_FRACTION
    data = dataclasses.replace(config.data, root=str(workspace_root), sample_ids=None, val_fraction=val)
    model = config.model
    if init_from is not None:
        model = dataclasses.replace(model, init_checkpoint=str(init_from))
    if encoder_weights is not None:
        model = dataclasses.replace(model, encoder_weights=str(encoder_weights))
    return dataclasses.replace(config, data=data, model=model)


def preflight(ws, dataset, pairs: list, base, init_from=None, encoder_weights=None) -> None:
    """Every check that can fail before the first fold (:mod:`medseg.qc.oof_checks`)."""
    from medseg.qc import oof_checks

    if init_from is not None:
        oof_checks.check_init_from(init_from, base, ws.classmap)
    if encoder_weights is not None:
        oof_checks.check_encoder_weights(encoder_weights, base)
    content = oof_checks.mask_content(dataset.samples)
    oof_checks.check_masks(ws.root, content)
    oof_checks.check_folds(pairs, content)


def iter_rank_oof(
    workspace,
    config: Any,
    *,
    folds: int = 5,
    seed: int = 0,
    method: str | None = None,
    cancel: CancelToken | None = None,
    runs_dir: str | Path | None = None,
    predictor_options: dict | None = None,
    init_from: str | Path | None = None,
    encoder_weights: str | Path | None = None,
) -> Iterator[Any]:
    """See the module docstring; ``config`` is a TrainConfig or its dict (data.root is set here)."""
    from medseg.training.workspace_source import open_workspace_dataset

    cancel = cancel or CancelToken()  # the fold's Trainer stops on it after its current step
    method = method or f"oof-k{folds}"
    ws, opened = open_workspace(workspace)
    scored: dict[str, tuple[float, dict]] = {}  # the stored scores of the completed folds
    try:
        dataset = open_workspace_dataset(ws.root)
        if not dataset.samples:
            raise RankingError(f"{ws.root}: no sample to rank (all excluded or their sources changed)")
        pairs = make_folds(dataset.samples, folds, seed)
        runs = Path(runs_dir) if runs_dir is not None else ws.root / "runs" / method
        base = base_config(config, ws.root, init_from, encoder_weights)
        preflight(ws, dataset, pairs, base, init_from, encoder_weights)
        yield Started(
            "rank", None, {"method": method, "folds": folds, "samples": len(dataset.samples), "biased": False}
        )
        for fold, (train, held) in enumerate(pairs):
            yield from _fold(
                ws, dataset, base, runs, method, fold, folds, train, held, cancel, predictor_options, scored
            )
            check(cancel)
        calibrate_model(ws, method)  # the queue's weights with this model measured (medseg.qc.reliability)
        yield Result(RankResult(method, {s: v[0] for s, v in scored.items()}, False, folds, fold_dice(scored)))
    except Cancelled as c:  # raised here, or thrown in at a yield by medseg.jobs.drive
        kept = {s: v[0] for s, v in scored.items()}
        done = len({v[1]["fold"] for v in scored.values()})
        raise Cancelled(
            f"ranking cancelled: {len(kept)} samples of {done} completed fold(s) are stored under {method!r}",
            done,
            folds,
            RankResult(method, kept, False, done, fold_dice(scored)),
        ) from c
    finally:
        if opened:
            ws.close()


def fold_dice(scored: dict[str, tuple[float, dict]]) -> dict[int, float]:
    """{fold: its model's validation Dice} of the scored folds (those that had one)."""
    return {d["fold"]: d["fold_dice"] for _, d in scored.values() if d.get("fold_dice") is not None}


def _fold(
    ws,
    dataset,
    base,
    runs: Path,
    method: str,
    fold: int,
    folds: int,
    train: list,
    held: list,
    cancel: CancelToken,
    predictor_options: dict | None,
    scored: dict,
    biased: bool = False,
    score_field: str = "score",
    prediction_root: Path | None = None,
    members: int = 1,
) -> Iterator[Any]:
    """Train fold ``fold``'s model, score and store its held-out samples (into ``scored`` too); ``biased``:
    the held-out samples are the training ones, ranked by ``score_field`` of their label scores
    (:mod:`medseg.qc.fit_all`). With ``prediction_root`` (a fold job, :mod:`medseg.qc.fold_files`) the
    predictions go there and nothing is written into the workspace: the scores only into ``scored``.
    ``members`` > 1: that many models of the same recipe, each with its own seed (the config's + k), and the
    samples scored by their mean probabilities; the fold's Dice and best epoch are the first model's."""
    from medseg.inference import Predictor

    t0 = time.perf_counter()
    where = f"fold {fold + 1}/{folds}"
    yield FoldStarted(fold, folds, len(train), len(held))
    cfg = dataclasses.replace(base, out_dir=str(runs / f"fold-{fold}"))
    if len({str(s.group) for s in train}) < MIN_INNER_VAL_GROUPS:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, val_fraction=0.0))
    subset = dataclasses.replace(dataset, samples=list(train))
    checkpoints, best_epoch, dice_at = [], None, {}
    for k in range(members):
        cfg_k, stage, who = cfg, f"{where} train", f"fold {fold + 1} of {folds}"
        if k:
            cfg_k = dataclasses.replace(cfg, out_dir=f"{cfg.out_dir}-model-{k + 1}", seed=cfg.seed + k)
        if members > 1:
            stage, who = f"{where} model {k + 1}/{members} train", f"{who}, model {k + 1} of {members}"
        checkpoint, epoch, dice = yield from _train(cfg_k, subset, cancel, stage, who)
        if not k:
            best_epoch, dice_at = epoch, dice
        checkpoints.append(checkpoint)
    checkpoint = checkpoints[0]
    # a fold's model scores its held-out samples once and is never run again: exporting it would cost more
    predictor = Predictor(checkpoints, device=cfg.device, **{"backend": "torch", **(predictor_options or {})})
    check_classmap(predictor, ws, checkpoint)
    run = run_id("rank", f"{method}:fold{fold}")
    fold_scores: dict[str, tuple[float, dict]] = {}
    yield from score_samples(
        predictor, list(held), ws, method, run, cancel, fold, fold_scores, f"{where} score", prediction_root
    )
    val_dice = dice_at.get(best_epoch) if best_epoch is not None else None
    val_dice = None if val_dice is None or val_dice != val_dice else float(val_dice)  # NaN: no validation
    for sid, (_, details) in list(fold_scores.items()):
        if score_field != "score" and details.get(score_field) is not None:  # a volume keeps its worst slices'
            fold_scores[sid] = (float(details[score_field]), details)
            details["score_field"] = score_field
        details.update(
            out_of_fold=not biased,
            biased=biased,
            folds=folds,
            checkpoint=str(checkpoint),
            fold_dice=val_dice,
            best_epoch=best_epoch,
        )
        if members > 1:
            details["models"] = [str(c) for c in checkpoints]
    scored.update(fold_scores)
    if prediction_root is None:
        revisions = {s.id: s.revision for s in held}
        for k, c in enumerate(checkpoints):  # each member its own record: a record holds one checkpoint
            ws.record_model_run(run if not k else f"{run}-model-{k + 1}", str(c), "rank", revisions)
        store(ws, method, scored)
    yield FoldScored(fold, folds, len(fold_scores), str(checkpoint), time.perf_counter() - t0, val_dice)


def _train(cfg, subset, cancel: CancelToken, stage: str, who: str):
    """Train one model on ``subset`` (the trainer's steps relabelled ``stage``); returns (checkpoint, the
    epoch of its best validation Dice or None, {epoch: validation Dice})."""
    from medseg.training import Trainer
    from medseg.training.events import CheckpointSaved, EpochEnd, Step

    trainer = Trainer(cfg, cancel=cancel, dataset=subset)
    summary, best_epoch, dice_at = None, None, {}
    events = trainer.run()
    try:
        for event in events:
            if isinstance(event, Cancelled):
                raise event
            if isinstance(event, Result):
                summary = event.value
            elif isinstance(event, Step):
                yield dataclasses.replace(event, stage=stage)
            elif isinstance(event, EpochEnd):
                dice_at[event.epoch] = event.val.get("dice")
                yield event
            elif isinstance(event, CheckpointSaved) and event.tag == "best":
                best_epoch = event.epoch
    except Cancelled:
        raise
    except Exception as e:
        raise RankingError(f"{who}: training failed: {type(e).__name__}: {e} (run folder {cfg.out_dir})") from e
    finally:
        events.close()
    if summary is None or not summary.checkpoint:
        raise RankingError(f"{who}: training ended without a checkpoint (run folder {cfg.out_dir})")
    return summary.checkpoint, best_epoch, dice_at
