"""The evaluation job: predict every chosen sample with a checkpoint (or an ensemble, with TTA) and score it.

Predictions come from the :class:`~medseg.inference.Predictor` exactly as
``medseg predict`` makes them (tiling, the training resize undone, the
ensemble's probabilities averaged before thresholding), so the scores are at
each image's own resolution and spacing. Volumes are predicted slice by slice
(:func:`~medseg.inference.iter_predict_volume`, 2.5-D neighbours where the
model wants them) and scored in 3-D with their voxel spacing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import MaskError
from medseg.evaluate.result import EvaluationResult
from medseg.evaluate.scores import score_sample
from medseg.evaluate.selection import check_classes, choose_samples, open_source
from medseg.jobs import CancelToken, Job, Message, Progress, Result, Started, check, run

CONVENTIONS = (
    "Dice/IoU: both masks empty -> 1, one empty -> 0; HD95/ASSD: both empty -> 0, one empty -> undefined "
    "(left out of means, counted as 'undefined'); objects: connected components (full connectivity) matched "
    "one to one at IoU >= min_iou; precision with no predicted object and recall with no labelled object are "
    "undefined unless both are empty (1)"
)


def _checkpoint(source: Any) -> Any:
    if isinstance(source, (str, os.PathLike)):
        from medseg.models.checkpoint import load_checkpoint

        return load_checkpoint(source)
    return source


def _predict(predictor: Any, sample: Any, image: Any, cancel: CancelToken | None) -> np.ndarray:
    if sample.is_volume:
        from medseg.inference import predict_volume

        return predict_volume(predictor, image, cancel).labels
    return predictor.predict(image, cancel).labels


def _spatial_shape(image: Any, volume: bool) -> tuple[int, ...]:
    shape = tuple(image.array.shape)
    n = 3 if volume else 2
    return shape[:n]


def iter_evaluate(
    checkpoints: Any,
    source: Any,
    *,
    sample_ids: Sequence[str] | None = None,
    split: str | None = None,
    statuses: Sequence[str] | None = None,
    layout: str | None = None,
    tta: str | Sequence[str] = (),
    threshold: float = 0.5,
    min_iou: float = 0.5,
    device: str = "auto",
    precision: str = "auto",
    cancel: CancelToken | None = None,
    **predictor_options: Any,
) -> Job:
    """The evaluation as a job of :mod:`medseg.jobs`: ``Started``, ``Message`` notes, ``Progress`` per
    sample (stage "samples", item = the sample id), then ``Result(EvaluationResult)``.

    ``checkpoints``: a checkpoint path or loaded Checkpoint, or a list of them (an ensemble). ``source``: a
    dataset folder, a workspace folder (its current labels: each sample's head revision when the job
    starts, recorded per row) or a dataset-like object. ``sample_ids`` / ``split`` ("train", "val",
    "test": see :mod:`medseg.evaluate.selection`) choose the samples; ``statuses`` the workspace review
    statuses (default: all but excluded). ``predictor_options`` go to the Predictor (tile_size, ...).
    """
    from medseg.inference import Predictor

    t0 = time.perf_counter()
    members = [_checkpoint(c) for c in (checkpoints if isinstance(checkpoints, (list, tuple)) else [checkpoints])]
    dataset = open_source(source, statuses, layout)
    check_classes(members, dataset)
    samples, notes = choose_samples(dataset, members, sample_ids, split)
    predictor = Predictor(
        members, device=device, precision=precision, tta=tta, threshold=threshold, **predictor_options
    )
    classmap = dataset.classmap
    workspace = getattr(dataset, "layout", None) == "workspace"
    yield Started("evaluate", len(samples), {"samples": len(samples), "members": len(members)})
    for note in notes:
        yield Message(note, "warning")
    scores, units = [], set()
    for i, sample in enumerate(samples):
        check(cancel, i, len(samples), "evaluation")
        image = sample.load_image()
        target = np.asarray(sample.load_mask())
        spatial = _spatial_shape(image, sample.is_volume)
        if target.shape[: len(spatial)] != spatial:
            paths = getattr(sample, "mask_paths", None) or {}
            path = next(iter(paths.values()), sample.image_path)
            raise MaskError(
                Path(path), f"sample {sample.id}: label of shape {target.shape} does not fit its image {spatial}"
            )
        prediction = _predict(predictor, sample, image, cancel)
        known = bool(image.metadata.get("spacing_known", False))
        unit = "mm" if known else "px"
        units.add(unit)
        scores += score_sample(
            sample.id,
            prediction,
            target,
            classmap,
            spacing=image.spacing if known else None,
            unit=unit,
            min_iou=min_iou,
            group=getattr(sample, "group", ""),
            revision=getattr(sample, "revision", None),
        )
        yield Progress(i + 1, len(samples), "samples", str(sample.id))
    meta = {
        "checkpoints": [str(getattr(m, "path", "") or "") for m in members],
        "source": str(dataset.root),
        "layout": getattr(dataset, "layout", None),
        "labels": (
            "workspace: each sample's current revision when the evaluation started (column 'revision')"
            if workspace
            else "the dataset's own masks"
        ),
        "split": split,
        "samples": len(samples),
        "task": classmap.task,
        "tta": [t.name for t in predictor.tta[1:]],
        "members": len(members),
        "threshold": threshold,
        "min_iou": min_iou,
        "distance_unit": units.pop() if len(units) == 1 else "mixed (see the 'unit' column)",
        "conventions": CONVENTIONS,
        "device": str(predictor.device),
        "precision": predictor.precision,
        "time_s": time.perf_counter() - t0,
    }
    if workspace:
        meta["revisions"] = {s.id: s.revision for s in samples}
    yield Result(EvaluationResult(scores, list(classmap.names), meta))


def evaluate_checkpoint(
    ckpt_path: Any,
    source: Any,
    sample_ids: Sequence[str] | None = None,
    out_dir: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    cancel: CancelToken | None = None,
    **options: Any,
) -> EvaluationResult:
    """:func:`iter_evaluate` run to its end; with ``out_dir`` its ``per_sample.csv`` and ``summary.json`` are
    written there (never into the data read). ``options`` are :func:`iter_evaluate`'s."""
    result = run(iter_evaluate(ckpt_path, source, sample_ids=sample_ids, cancel=cancel, **options), cancel)
    if out_dir is not None:
        sources = [] if hasattr(source, "samples") else [source]
        result.write(out_dir, overwrite=overwrite, sources=[*sources, result.meta["source"]])
    return result
