"""Prediction requests for the Predict widget: one job at a time, the newest request wins.

A new request cancels the running one (its ``CancelToken``; the Predictor's
job stops after the current tile batch) and replaces any request still waiting,
which then never runs. A result that arrives for any but the newest request
is dropped. The job also builds the Predictor when the model choice
changed (a model load is too slow for the GUI thread); the built one is kept
(even if its first request was cancelled) and reused until the choice changes
again. Each request runs through :func:`napari_medseg._jobs.start_job` with the
request's own token, so the session's registry stops it with the workspace of
the sample it predicts. Everything here runs on the main thread except ``predict_job``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from medseg.jobs import CancelToken, Event, Progress
from napari_medseg._jobs import start_job
from napari_medseg._memory import postpone_trim, trim_when_idle
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
    cancelled: int = 0  # stopped while running
    superseded: int = 0  # replaced before they started
    stale: int = 0  # finished, but a newer request existed: result dropped
    shown: int = 0

    @property
    def discarded(self) -> int:
        return self.cancelled + self.superseded + self.stale


@dataclass(frozen=True)
class ModelBuilt(Event):
    """The job built the Predictor of ``choice``: the queue keeps it for the requests that follow."""

    kind: ClassVar[str] = "model"
    choice: ModelChoice
    predictor: Any


def predict_job(request: Request, predictor, cancel: CancelToken | None = None):
    """The Predictor's job on the request's image, building the Predictor first when none is given (a
    ``ModelBuilt`` event hands it over before anything can stop the job)."""
    if predictor is None:
        predictor = build_predictor(request.choice)
        yield ModelBuilt(request.choice, predictor)
    shot = request.snapshot
    if shot.volume:  # the slice of a volume: with the volume's window, and its neighbours for a 2.5-D model
        from napari_medseg._predict_volume import slice_job

        yield from slice_job(predictor, shot.data, shot.plane[0], cancel)
        return
    yield from predictor.iter_predict(shot.image(), cancel)


class RequestQueue:
    """See the module docstring. ``on_result(request, prediction)``, ``on_error(request, exc, loading)`` and
    ``on_status(text)`` are called on the main thread. ``job_of(request)`` -> (name, workspace) says what
    the registry ``jobs`` lists the request's job as; ``owner``: the dock whose end stops it."""

    def __init__(
        self,
        on_result: Callable,
        on_error: Callable,
        on_status: Callable[[str], None],
        jobs: Any = None,
        job_of: Callable[[Request], tuple[str, Any]] | None = None,
        owner: Any = None,
    ):
        self.on_result, self.on_error, self.on_status = on_result, on_error, on_status
        self.jobs, self.job_of, self.owner = jobs, job_of, owner
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

    def submit(
        self, key: tuple, choice: ModelChoice, snapshot: ImageSnapshot, context: Any = None, force: bool = False
    ) -> bool:
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
        postpone_trim()
        predictor = self.predictor_for(request.choice)
        self.on_status(f"Loading {request.choice.describe()}..." if predictor is None else "Predicting...")
        loading = [predictor is None]
        name, workspace = self.job_of(request) if self.job_of is not None else ("Prediction", None)
        # the queue reports its own errors (on_error), and a prediction has no progress bar: the status says
        self.worker = start_job(
            self.jobs,
            lambda token: predict_job(request, predictor, cancel=token),
            name,
            workspace=workspace,
            owner=self.owner,
            progress=False,
            token=request.token,
            on_event=lambda event: self._event(request, event, loading),
            on_result=lambda prediction: self._result(request, prediction),
            on_cancelled=lambda _: self._cancelled(),
            on_error=lambda exc: self._errored(request, exc, loading[0]),
            on_finished=lambda: self._finished(request),
        ).worker

    def _event(self, request: Request, event, loading: list[bool]) -> None:
        if isinstance(event, ModelBuilt):
            self.model = (event.choice, event.predictor)
            loading[0] = False
            if not request.token.is_set():
                self.on_status("Predicting...")
        elif isinstance(event, Progress):
            if request.id == self.latest and (event.total or 0) > 1:
                self.on_status(f"Predicting... {event.done}/{event.total} tile batches")

    def _cancelled(self) -> None:
        self.counts.cancelled += 1

    def _result(self, request: Request, prediction) -> None:
        if request.id != self.latest:
            self.counts.stale += 1
            return
        self.counts.shown += 1
        self.shown_key = request.key
        self.on_result(request, prediction)

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
        if self.worker is None:
            trim_when_idle()  # the forward passes' memory, kept by the worker threads (see _memory)
