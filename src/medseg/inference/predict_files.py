"""Predicting many files as one job: each input predicted and written, each one that cannot be is listed.

:func:`iter_predict_files` is a job of :mod:`medseg.jobs` (``medseg predict`` runs it): ``Started``; a
``Message`` "skipped PATH: why" for each input that was refused before (``skipped``); then per input a
``Progress`` (stage "predict", ``item`` the input, ``done`` the inputs handled before it) followed by a
:class:`Predicted` once its files are written or a ``Message`` when it is skipped; a last ``Progress`` and
``Result(PredictSummary)``. A refused destination stops the job (it is the same for every input); an
unreadable input or a failed prediction is skipped. A cancel stops between inputs or between the tile
batches of one: every file written is complete (an input's files are written after its prediction, never
cut short) and nothing of the input being predicted is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from medseg.errors import Cancelled, DestinationError, MedsegError, ReadError, one_line
from medseg.inference.batch import InputItem, Skipped, predict_image, prediction_names, write_prediction
from medseg.inference.predict_volume import VolumePrediction
from medseg.inference.rle_csv import prediction_rows
from medseg.inference.volume_outputs import write_volume_prediction
from medseg.jobs import CancelToken, Event, Job, Message, Progress, Result, Started, register_event


@register_event
@dataclass(frozen=True)
class Predicted(Event):
    """One input predicted: the files written (mask first) and the prediction's run details."""

    kind: ClassVar[str] = "predicted"
    input: str
    outputs: list[str]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class PredictSummary:
    """What the job did: ``done`` inputs predicted into ``out``, the ``skipped`` ones with their reasons."""

    out: Path
    done: int = 0
    skipped: list[Skipped] = field(default_factory=list)


def iter_predict_files(
    predictor,
    items: list[InputItem],
    out,
    *,
    skipped: list[Skipped] = (),
    mask_format: str = "ids",
    probs: bool = False,
    probs_format: str = "tif",
    uncertainty: bool = False,
    rle_rows: list | None = None,
    cancel: CancelToken | None = None,
) -> Job:
    """Predict ``items`` (:func:`medseg.inference.batch.collect_inputs`) with ``predictor`` into ``out`` (an
    :class:`medseg.ownership.OutputFolder`); see the module docstring. Every output name is checked before the
    first input is predicted: a refusal comes before hours of work, not after them. ``rle_rows``, when given,
    gathers each predicted input's Kaggle-style RLE rows (:func:`medseg.inference.rle_csv.prediction_rows`)."""
    from medseg.io import load

    variance = uncertainty and len(predictor.members) * len(predictor.tta) > 1
    for item in items:
        out.check(
            *prediction_names(
                predictor.classmap,
                item.stem,
                probs=probs,
                probs_format=probs_format,
                uncertainty=uncertainty,
                variance=variance,
            )
        )
    summary = PredictSummary(Path(out.root), 0, list(skipped))
    n = len(items)
    yield Started("predict", n, {"out": str(out.root)})
    for s in summary.skipped:
        yield Message(f"skipped {s.path}: {s.reason}")
    for i, item in enumerate(items):
        _check(cancel, i, n, summary)
        yield Progress(i, n, "predict", str(item.path))
        try:
            pred = predict_image(predictor, load(item.path), cancel, probs=probs, uncertainty=uncertainty)
            write = write_volume_prediction if isinstance(pred, VolumePrediction) else write_prediction
            written = write(
                pred,
                out,
                item.stem,
                mask_format=mask_format,
                probs=probs,
                probs_format=probs_format,
                uncertainty=uncertainty,
            )
        except Cancelled:
            _check(cancel, i, n, summary)
            raise
        except DestinationError:
            raise  # a refused output is the request's fault, the same for every image: stop
        except (MedsegError, OSError) as e:
            same = isinstance(e, ReadError) and e.path == item.path  # the reason names the file already
            summary.skipped.append(Skipped(item.path, e.reason if same else one_line(e, item.path)))
            yield Message(f"skipped {item.path}: {summary.skipped[-1].reason}")
        else:
            if rle_rows is not None:
                rle_rows.extend(prediction_rows(item.stem, pred, predictor.classmap))
            summary.done += 1
            meta = (pred[0] if isinstance(pred, list) else pred).meta
            yield Predicted(str(item.path), [str(w) for w in written], meta)
    yield Progress(n, n, "predict")
    yield Result(summary)


def _check(cancel: CancelToken | None, i: int, n: int, summary: PredictSummary) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled(
            f"prediction cancelled after {i} of {n} inputs ({summary.done} predicted into {summary.out})",
            done=i,
            total=n,
            partial=summary,
        )
