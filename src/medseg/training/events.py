"""Typed events the Trainer yields; each serialises to one JSON line.

The GUI follows a training run through these events (read from the CLI's
``--events jsonl`` stream in a subprocess); scripts simply iterate to the end.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar


@dataclass
class Event:
    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.kind, **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=str, allow_nan=True)


@dataclass
class Started(Event):
    kind: ClassVar[str] = "started"
    run_dir: str
    n_train: int
    n_val: int
    device: str
    precision: str
    epochs: int
    steps_per_epoch: int
    resumed_from: str | None = None
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class Step(Event):
    kind: ClassVar[str] = "step"
    epoch: int
    step: int
    global_step: int
    loss: float
    lr: float
    terms: dict[str, float] = field(default_factory=dict)
    images_per_s: float | None = None
    grad_norm: float | None = None  # before clipping; only computed when grad_clip is set


@dataclass
class EpochEnd(Event):
    kind: ClassVar[str] = "epoch"
    epoch: int
    train_loss: float
    val: dict[str, Any] = field(default_factory=dict)
    overlays: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class CheckpointSaved(Event):
    kind: ClassVar[str] = "checkpoint"
    path: str
    tag: str
    epoch: int
    metric: float | None = None


@dataclass
class OOMRecovered(Event):
    kind: ClassVar[str] = "oom"
    micro_batch: int
    accumulate: int
    message: str = ""


@dataclass
class Finished(Event):
    kind: ClassVar[str] = "finished"
    best_checkpoint: str | None
    last_checkpoint: str | None
    best_metric: float | None
    epochs_run: int
    stopped_early: bool = False


@dataclass
class Cancelled(Event):
    kind: ClassVar[str] = "cancelled"
    checkpoint: str | None
    epoch: int
    global_step: int


@dataclass
class Failed(Event):
    kind: ClassVar[str] = "failed"
    error: str
    traceback: str = ""
    last_checkpoint: str | None = None
    input_error: bool = False  # a MedsegError (bad data or request: ``medseg train`` exits 2), else a bug (1)


EVENT_TYPES: dict[str, type[Event]] = {
    c.kind: c for c in (Started, Step, EpochEnd, CheckpointSaved, OOMRecovered, Finished, Cancelled, Failed)
}


def event_from_dict(d: dict[str, Any]) -> Event:
    """Rebuild an event from its JSON form (the plugin reads the trainer's stream with this)."""
    d = dict(d)
    kind = d.pop("event", None)
    if kind not in EVENT_TYPES:
        raise ValueError(f"unknown event {kind!r}; known: {', '.join(EVENT_TYPES)}")
    cls = EVENT_TYPES[kind]
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})
