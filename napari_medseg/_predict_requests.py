"""Prediction requests for the Predict widget: one thread worker at a time, the newest request wins.

A new request cancels the running one (its ``CancelToken``; the Predictor's
job stops after the current tile batch) and replaces any request still waiting,
which then never runs. A result that arrives for any but the newest request
is dropped. The worker also builds the Predictor when the model choice
changed; the built one is kept (even if its first request was cancelled) and
reused until the choice changes again. Everything here runs on the main
thread except ``_run``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from napari.qt.threading import create_worker

from medseg.errors import Cancelled
from medseg.jobs import CancelToken, Progress, Result
from napari_medseg._jobs import JobFailed
from napari_medseg._predict_layers import ImageSnapshot
from napari_medseg._predict_model import ModelChoice, build_predictor

log = logging.getLogger(__name__)


@dataclass
class Request:
    id: int
    key: tuple
    choice: ModelChoice
    snapshot: ImageSnapshot
    context: Any = None  # what the widget needs to show the result (image layer, plane, version)
    token: CancelToken = field(default_factory=CancelToken)


@dataclass
class Counts:
    requested: int = 0
    cancelled: int = 0      # stopped while running
    superseded: int = 0     # replaced before they started
    stale: int = 0          # finished, but a newer request existed: result dropped
    shown: int = 0

    @property
    def discarded(self) -> int:
        return self.cancelled + self.superseded + self.stale


def _run(request: Request, predictor):
    try:
        if predictor is None:
            predictor = build_predictor(request.choice)
            yield ("model", request.choice, predictor)
        if request.token.is_set():
            yield Cancelled("prediction cancelled before it started", 0, 0)
            return
        image = request.snapshot.image()
        yield from predictor.iter_predict(image, request.token)
    except RuntimeError as e:  # torch's errors: superqt would drop them and never end the worker
        raise JobFailed(str(e)) from e


class RequestQueue:
    """See the module docstring. ``on_result(request, prediction)``, ``on_error(request, exc, loading)``,
    ``on_status(text)`` and ``on_start(worker, request)`` (before the worker starts) are called on the main
    thread."""

    def __init__(self, on_result: Callable, on_error: Callable, on_status: Callable[[str], None],
                 on_start: Callable[[Any, Request], Any] | None = None):
        self.on_result, self.on_error, self.on_status = on_result, on_error, on_status
        self.on_start = on_start
        self.counts = Counts()
        self.latest = 0
        self.running: Request | None = None
        self.pending: Request | None = None
        self.worker = None
        self.model: tuple[ModelChoice, Any] | None = None
        self.failed_choice: ModelChoice | None = None
        self.shown_key: tuple | None = None

    @property
    def busy(self) -> bool:
        return self.worker is not None or self.pending is not None

    def predictor_for(self, choice: ModelChoice):
        return self.model[1] if self.model is not None and self.model[0] == choice else None

    def submit(self, key: tuple, choice: ModelChoice, snapshot: ImageSnapshot, context: Any = None,
               force: bool = False) -> bool:
        """Queue a request; False (nothing queued) when ``key`` is what is shown or already on its way,
        or when ``choice`` failed to load (unless ``force``: an explicit Predict always runs)."""
        if not force:
            if choice == self.failed_choice:
                return False  # the error was shown once; a settings change or an explicit Predict retries
            live = [r for r in (self.running, self.pending) if r is not None and not r.token.is_set()]
            if (key == self.shown_key and not live) or any(r.key == key for r in live):
                return False
        self.latest += 1
        self.counts.requested += 1
        if self.pending is not None:
            self.counts.superseded += 1
        self.pending = Request(self.latest, key, choice, snapshot, context)
        if self.running is not None and not self.running.token.is_set():
            self.running.token.set()
        self._start_pending()
        return True

    def cancel(self) -> None:
        """Drop the waiting request and stop the running one."""
        if self.pending is not None:
            self.counts.superseded += 1
            self.pending = None
        if self.running is not None:
            self.running.token.set()

    def model_changed(self) -> None:
        self.failed_choice = None

    def _start_pending(self) -> None:
        if self.worker is not None or self.pending is None:
            return
        request, self.pending = self.pending, None
        self.running = request
        predictor = self.predictor_for(request.choice)
        self.on_status(f"Loading {request.choice.describe()}..." if predictor is None else "Predicting...")
        worker = create_worker(_run, request, predictor, _start_thread=False, _ignore_errors=True)
        loading = [predictor is None]
        worker.yielded.connect(lambda event: self._event(request, event, loading))
        worker.errored.connect(lambda exc: self._errored(request, exc, loading[0]))
        worker.finished.connect(lambda: self._finished(request))
        self.worker = worker
        if self.on_start is not None:
            self.on_start(worker, request)
        worker.start()

    def _event(self, request: Request, event, loading: list[bool]) -> None:
        if isinstance(event, tuple) and event[0] == "model":
            self.model = (event[1], event[2])
            loading[0] = False
            if not request.token.is_set():
                self.on_status("Predicting...")
        elif isinstance(event, Progress):
            if request.id == self.latest and (event.total or 0) > 1:
                self.on_status(f"Predicting... {event.done}/{event.total} tile batches")
        elif isinstance(event, Cancelled):
            self.counts.cancelled += 1
        elif isinstance(event, Result):
            if request.id != self.latest:
                self.counts.stale += 1
                return
            self.counts.shown += 1
            self.shown_key = request.key
            self.on_result(request, event.value)

    def _errored(self, request: Request, exc: BaseException, loading: bool) -> None:
        if loading:
            self.failed_choice = request.choice
        if request.id == self.latest or loading:
            self.on_error(request, exc, loading)
        else:  # a stale request's failure still reaches the log, never silently nowhere
            log.warning("a superseded prediction failed: %s", exc, exc_info=exc)

    def _finished(self, request: Request) -> None:
        if self.running is request:
            self.running = None
        self.worker = None
        if self.pending is None and request.id == self.latest and request.token.is_set():
            self.on_status("Cancelled.")
        self._start_pending()
