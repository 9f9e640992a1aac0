"""The end of ``medseg train``: the final evaluation of the run's best checkpoint on its validation split.

:mod:`medseg.evaluate` sits above the Trainer (it scores with the training metrics), so the Trainer
cannot call it; what drives a run does, here, once the Trainer's ``Result`` came and before it is passed
on (the Fine-tune dock, following ``--events jsonl``, finds the files when the run ends). The scores are
the Predictor's, at each image's own resolution and spacing (``medseg evaluate``'s, not the epoch-end
validation at the training size), against the labels the run trained on: the dataset's masks, or the
workspace revisions the run pinned. ``<run>/evaluation/`` gets ``per_sample.csv`` and ``summary.json``.

On the stream: ``Progress`` events of stage "final evaluation" (one per sample) and ``Message`` lines; an
evaluation that cannot run (unreadable data, a cancel) is a warning, not a failed run: the checkpoints
are written and stay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

STAGE = "final evaluation"


def final_evaluation(trainer: Any, summary: Any, show: Callable[[Any], Any], cancel: Any) -> Any:
    """Evaluate ``summary.best_checkpoint`` on ``trainer``'s validation samples into
    ``<run>/evaluation/``; ``show`` gets the ``Progress`` and ``Message`` events. Returns the
    :class:`~medseg.evaluate.EvaluationResult`, or None when there is nothing to evaluate or it could not
    run (said in a warning)."""
    from medseg.errors import Cancelled, MedsegError
    from medseg.evaluate import iter_evaluate
    from medseg.jobs import Message, Progress, run
    from medseg.runs.files import EVALUATION_DIR

    ids = [s.id for s in trainer.val_samples]
    best = summary.best_checkpoint
    if not ids or best is None:
        show(Message("no validation split: the run has no final evaluation", "info"))
        return None
    out = trainer.run_dir / EVALUATION_DIR
    show(Message(f"final evaluation of {best} on the {len(ids)} validation sample(s) -> {out}", "info"))

    def progress(event: Any) -> None:
        if isinstance(event, Progress):
            show(Progress(event.done, event.total, STAGE, event.item))

    try:
        # evaluate_checkpoint's job, with its progress shown; the run's dataset object: the labels the run
        # trained on (a workspace's pinned revisions), indexed as the run indexed them
        # on PyTorch: an ONNX export would add seconds to every run's end, and the app warms its own up
        job = iter_evaluate(
            best, trainer.dataset, sample_ids=ids, device=str(trainer.device), cancel=cancel, backend="torch"
        )
        result = run(job, cancel, progress)
        # a resumed run's evaluation replaces the files an earlier end wrote; never into the data read
        result.write(out, overwrite=True, sources=[result.meta["source"]])
    except (Cancelled, MedsegError, OSError) as e:
        show(Message(f"the final evaluation did not run to its end: {type(e).__name__}: {e}", "warning"))
        return None
    return result
