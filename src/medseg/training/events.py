"""What the Trainer yields: the job protocol's events (:mod:`medseg.jobs`) and training's own.

``Trainer.run()`` is a job: ``Started`` (``job`` "train", ``total`` every
optimiser step of the run, ``detail`` run_dir, n_train, n_val, device,
precision, epochs, steps_per_epoch, resumed_from, config), then per optimiser
step a :class:`Step` (a ``Progress``: ``done`` the global step, stage "train"),
per epoch :class:`EpochEnd` and :class:`CheckpointSaved`, :class:`OOMRecovered`
when a step was redone smaller, and last ``Result(TrainSummary)`` or
``Cancelled`` (``partial``: checkpoint, epoch, global_step). A failure raises;
where it cannot travel (``medseg train --events jsonl``) it is a ``Failed`` line.

Every event serialises to one JSON line and comes back through :func:`read_event`
(the GUI follows a training process that way); scripts iterate to the end or call
:func:`medseg.jobs.run`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from medseg.errors import Cancelled
from medseg.jobs import Event, Failed, Progress, Result, Started, cancelled_to_dict, event_from_dict, register_event

__all__ = [
    "Cancelled",
    "CheckpointSaved",
    "EpochEnd",
    "Event",
    "Failed",
    "OOMRecovered",
    "Progress",
    "Result",
    "Started",
    "Step",
    "TrainSummary",
    "read_event",
    "to_json",
]

STAGE = "train"


@register_event
@dataclass(frozen=True)
class Step(Progress):
    """One optimiser step: ``done`` of ``total`` steps of the run (``global_step``); ``step`` within ``epoch``."""

    kind: ClassVar[str] = "step"
    epoch: int = 0
    step: int = 0
    loss: float = 0.0
    lr: float = 0.0
    terms: dict[str, float] = field(default_factory=dict)
    images_per_s: float | None = None
    grad_norm: float | None = None  # before clipping; only computed when grad_clip is set

    @property
    def global_step(self) -> int:
        return self.done


@register_event
@dataclass(frozen=True)
class EpochEnd(Event):
    kind: ClassVar[str] = "epoch"
    epoch: int
    train_loss: float
    val: dict[str, Any] = field(default_factory=dict)
    overlays: list[str] = field(default_factory=list)
    seconds: float = 0.0


@register_event
@dataclass(frozen=True)
class CheckpointSaved(Event):
    kind: ClassVar[str] = "checkpoint"
    path: str
    tag: str
    epoch: int
    metric: float | None = None


@register_event
@dataclass(frozen=True)
class OOMRecovered(Event):
    kind: ClassVar[str] = "oom"
    micro_batch: int
    accumulate: int
    message: str = ""


@dataclass(frozen=True)
class TrainSummary:
    """A finished run: the ``Result`` value of ``Trainer.run()``."""

    best_checkpoint: str | None
    last_checkpoint: str | None
    best_metric: float | None
    epochs_run: int
    stopped_early: bool = False

    @property
    def checkpoint(self) -> str | None:
        """The model to use: the best one, else the last."""
        return self.best_checkpoint or self.last_checkpoint

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainSummary:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def read_event(d: dict[str, Any]) -> Any:
    """An event of a training stream from its JSON form: ``event_from_dict``, the result's summary rebuilt."""
    event = event_from_dict(d)
    if isinstance(event, Result) and isinstance(event.value, dict):
        return Result(TrainSummary.from_dict(event.value))
    return event


def to_json(event: Any) -> str:
    """One line of a training stream: any event, ``Cancelled`` included."""
    if isinstance(event, Cancelled):
        return json.dumps(cancelled_to_dict(event), default=str, allow_nan=True)
    return event.to_json()
