"""The Fine-tune dock's jobs, run in thread workers: following the training child, re-scoring the queue.

Each is a generator of :mod:`medseg.jobs` events that :func:`napari_medseg._jobs.start_job` runs; torch
and the engine's training and ranking packages are loaded in the worker, never on the GUI thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def follow_training(config: Any, resume: str | Path | None, env: dict[str, str], cancel: Any = None):
    """The training job: start the child and relay its events; it ends as the child ended (a ``Result``
    of its ``TrainSummary``, its ``Cancelled`` whose ``partial`` names the checkpoint it kept, or its
    ``Failed`` raised as :class:`~medseg.errors.TrainingFailed`).

    ``cancel`` asks the child to stop after its step the moment it is set (``on_set``: the worker may be
    waiting for the child's next line, and the viewer may be closing); ``drive`` then throws ``Cancelled``
    in at a ``yield``, which is caught here: the events go on until the child has written its checkpoint
    and ended. The child's stream is read to its end (never killed after its last word)."""
    from napari_medseg._torch_guard import load_torch

    load_torch()
    from medseg.errors import Cancelled, TrainingFailed
    from medseg.jobs import Failed, Result
    from medseg.training.runner import TrainingProcess

    end = None
    with TrainingProcess(config, resume=resume, env=env) as proc:
        if cancel is not None:
            cancel.on_set(proc.cancel)
        for event in proc.events():
            if isinstance(event, (Result, Cancelled, Failed)):
                end = event
                continue
            try:
                yield event
            except Cancelled:
                if not proc.cancel_requested:
                    proc.cancel()
    if isinstance(end, Failed):
        raise TrainingFailed(end)
    if isinstance(end, Cancelled):
        raise end
    yield end  # a Result, also when the child finished although it was asked to stop


def score_queue(workspace: Any, checkpoint: str, device: str, cancel: Any):
    """The re-score job, built in the worker thread: the ranking engine's per-sample scores with one
    checkpoint, ending with ``Result(RankResult)``; a cancel leaves the stored scores as they were (they are
    written only once all are scored)."""
    from napari_medseg._torch_guard import load_torch

    load_torch()
    from medseg.qc import ranking

    return ranking.iter_score_checkpoint(workspace, checkpoint, device=device, cancel=cancel)
