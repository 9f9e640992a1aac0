"""Label-quality ranking by a small model fitted to every label: the labels it cannot fit are the suspects.

A small network trained for a limited time on a dataset whose labels are
mostly right learns what the right labels share (the object's look, where its
outline runs in the picture, what the neighbouring frames' labels say) well
before it can memorise the exceptions: at the end of training it still
disagrees with a wrong label, and agrees with a right one (the "small-loss"
observation behind co-teaching and training-dynamics label cleaning). Unlike
out-of-fold models (:mod:`medseg.qc.oof`), it learns from every frame of a
video, so its prediction for a frame is backed by that frame's own
neighbours; unlike ``--checkpoint`` scoring, its capacity and training time
are chosen so that it does not catch up with the wrong labels.

Two trainings of the recipe (``MODELS``, seeds ``config.seed`` and the next) are run and each label is
scored by their mean probabilities: two trainings of one recipe differ by a few points of the queue's first
fifth, and the mean of two varies less. It ranks by its training loss on each label (``LabelScore.fit``: pixel
cross-entropy + soft Dice loss, as ``exp(-loss)``). Measured on CVC-ClinicDB
frames 1-297 with planted errors (the choosing side of
``benchmarks/bench_rank.py``, seed 0), that score alone ranked them at AUROC
0.91 (shifted outlines 0.93, dilated 0.94; the agreement score of out-of-fold
ranking 0.87 on the same model) after 60 passes over the data, against 0.64
for out-of-fold models of the same recipe whose folds interleave every
video's frames, and 0.80 for the best model-free signal.

It is biased by design, and says so (``details["biased"]``); its scores join
the queue only through the reliability calibration, which measures them on
errors planted in copies of the workspace's own labels like any other
signal (:mod:`medseg.qc.reliability_model`). The job's events and its
cancelling are those of :func:`medseg.qc.oof.iter_rank_oof` with one "fold"
that trains on and scores every trainable sample.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medseg.errors import Cancelled, RankingError
from medseg.jobs import CancelToken, Result, Started
from medseg.qc.oof import _fold, base_config, preflight
from medseg.qc.ranking import RankResult, open_workspace
from medseg.qc.reliability_model import calibrate_model

METHOD = "fit-all"
EPOCHS = 60  # passes: in a plain loop on CVC frames 1-297, 30 ranked planted errors at AUROC 0.89, 60 at 0.93
# a large dataset's epoch is cut at this many steps (batches of 8): the training steps are nearly all of the
# time (1,000 frames: 4,800 steps at 80 made the rank 796 s, over the 10-minute target), so 60 epochs stay
# within 2,400 steps; 1,000 frames still get 19 passes, and up to 320 frames (the benchmark's protocols) lose none
MAX_STEPS_PER_EPOCH = 40
# two models of the recipe (seeds 0 and 1), scored by their mean probabilities: two trainings of one recipe differ
# by a few points of the queue's first fifth, and their mean is steadier than either. Chosen on the choosing sides
# of benchmarks/bench_rank.py (frames 1-297 seeds 0-9, frames 298-408 eight sets; 766 planted errors): first 20 %
# 711 (seed 0) / 706 (seed 1) -> 715 found, AUROC 0.9934 / 0.9925 -> 0.9945; twice the training time (1,000
# frames on 2 CPU threads: 2.7 -> 4.5 minutes for workspace, QC and rank, run one after the other)
MODELS = 2


def fit_config(config: Any) -> dict | Any:
    """``config`` (a TrainConfig dict) made to pass over every sample each epoch (up to
    ``MAX_STEPS_PER_EPOCH`` batches) without validation, channels_last unless it says otherwise."""
    if not isinstance(config, dict):
        return config
    d = dict(config)
    d["data"] = {**(d.get("data") or {}), "val_fraction": 0.0}
    d["max_steps_per_epoch"] = MAX_STEPS_PER_EPOCH
    d.setdefault("channels_last", True)  # 0.75-0.8x the step time on the CPU
    d.setdefault("epochs", EPOCHS)
    return d


def iter_rank_fit(
    workspace,
    config: Any,
    *,
    method: str | None = None,
    cancel: CancelToken | None = None,
    runs_dir: str | Path | None = None,
    predictor_options: dict | None = None,
    init_from: str | Path | None = None,
    encoder_weights: str | Path | None = None,
    models: int | None = None,
) -> Iterator[Any]:
    """See the module docstring; ``config`` is a TrainConfig or its dict (data.root is set here); ``models``:
    how many models of the recipe (seeds ``config.seed`` + k) score each label by their mean probabilities
    (None: ``MODELS``)."""
    from medseg.training.workspace_source import open_workspace_dataset

    cancel = cancel or CancelToken()
    method = method or METHOD
    ws, opened = open_workspace(workspace)
    scored: dict[str, tuple[float, dict]] = {}
    try:
        dataset = open_workspace_dataset(ws.root)
        if not dataset.samples:
            raise RankingError(f"{ws.root}: no sample to rank (all excluded or their sources changed)")
        everything = list(dataset.samples)
        pairs = [(everything, everything)]
        runs = Path(runs_dir) if runs_dir is not None else ws.root / "runs" / method
        base = base_config(fit_config(config), ws.root, init_from, encoder_weights)
        base = dataclasses.replace(base, data=dataclasses.replace(base.data, val_fraction=0.0))
        models = MODELS if models is None else models
        if models < 1:
            raise RankingError(f"--models {models}: the fitted ranking needs at least one model")
        preflight(ws, dataset, pairs, base, init_from, encoder_weights)
        yield Started(
            "rank", None, {"method": method, "folds": 1, "samples": len(everything), "biased": True, "models": models}
        )
        yield from _fold(
            ws,
            dataset,
            base,
            runs,
            method,
            0,
            1,
            everything,
            everything,
            cancel,
            predictor_options,
            scored,
            biased=True,
            score_field="fit",
            members=models,
        )
        calibrate_model(ws, method)
        yield Result(RankResult(method, {s: v[0] for s, v in scored.items()}, True, 1, {}))
    except Cancelled as c:
        raise Cancelled(
            f"ranking cancelled: nothing new is stored under {method!r}", 0, 1, RankResult(method, {}, True, 0, {})
        ) from c
    finally:
        if opened:
            ws.close()
