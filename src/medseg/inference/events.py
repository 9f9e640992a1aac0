"""What ``Predictor.iter_predict`` yields, and the token that stops it.

The generator yields ``ProgressEvent``s between tile batches and ends with
exactly one ``Done`` (holding the ``Prediction``) or, when the ``CancelToken``
was set, one ``Cancelled``; it never raises for a cancel. That makes it a drop-in
body for napari's ``thread_worker``: forward the events through ``yielded`` and
discard a ``Cancelled`` one. ``Predictor.predict`` raises ``PredictionCancelled``
instead.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medseg.inference.outputs import Prediction


class CancelToken:
    """Thread-safe flag: one thread calls ``set()``, the predicting thread stops after its current batch."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    cancel = set

    def is_set(self) -> bool:
        return self._event.is_set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def __repr__(self) -> str:
        return f"CancelToken(cancelled={self.cancelled})"


@dataclass(frozen=True)
class ProgressEvent:
    """``done`` of ``total`` tile batches have been through every model and TTA transform."""

    done: int
    total: int


@dataclass(frozen=True)
class Done:
    prediction: Prediction


@dataclass(frozen=True)
class Cancelled:
    """The token was set; ``done`` of ``total`` batches had run."""

    done: int
    total: int
