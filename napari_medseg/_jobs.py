"""The jobs the docks run in thread workers, per viewer session: what each is, which workspace it uses and how
to stop it, so that a workspace is closed only after every job on it has ended.

:func:`start_job` registers each worker before starting it, as::

    job = session.jobs.add(worker, "Export to /data/clean", workspace, cancel=token.set)

``cancel`` is how that job stops: set the token the engine job checks between its steps (a training job
also signals its child process). It is None for a job that must run to its end (a revision save: edits are
never dropped) or ends by itself in a moment (a read); such a job is waited for, never stopped. The
registry forgets a job when its worker's ``finished`` signal arrives (on the main thread, after its
``returned``/``errored``).

``Session.set_workspace`` is the user: it cancels the jobs on the old workspace, names them in a napari
notification, and closes the old workspace in the ``finished`` handler of the last of them (:meth:`Jobs.after`);
the GUI thread never waits for a worker.

How a dock runs a job: :func:`start_job` is the plugin's only worker wrapper (no other module creates a
thread worker; a test holds that), so every worker is registered, stoppable the same way, and its errors
reported the same way. It calls the engine's job generator in a thread worker through
:func:`medseg.jobs.drive`, maps its ``Progress`` events to a napari progress bar, its end to ``on_result`` /
``on_cancelled``, an error to ``on_error`` or a notification, and registers it here with its token's ``set``
as ``cancel``. A short read that is no generator runs through it too, wrapped by :func:`call`. What it is
not: a scheduler (each dock still starts its own jobs, one of a kind at a time: the prediction requests'
newest-wins queue is the Predict dock's) or a thread pool. The engine knows nothing of it: a job stops
because the token it was handed is set.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

_ALL = object()


class JobFailed(Exception):
    """A ``RuntimeError`` raised inside a generator worker, passed on as another type: superqt's
    ``GeneratorWorker`` takes a ``RuntimeError`` for a deleted worker, only warns, and emits neither
    ``errored`` nor ``finished`` (torch raises ``RuntimeError`` for most of its failures)."""


@dataclass(eq=False)
class Job:
    """One running worker: ``name`` as the user reads it, the ``workspace`` it uses (None: none)."""

    name: str
    workspace: Any = None
    stop: Callable[[], Any] | None = None
    cancelled: bool = False  # cancel was asked (the body may still finish its result)
    ended: bool = False

    @property
    def can_cancel(self) -> bool:
        return self.stop is not None and not self.ended

    def cancel(self) -> bool:
        """Ask the job to stop; False when it cannot be stopped (it is then waited for) or has ended."""
        if not self.can_cancel:
            return False
        if not self.cancelled:
            self.cancelled = True
            self.stop()
        return True


class Jobs:
    """The running jobs of one session (see the module docstring)."""

    def __init__(self) -> None:
        self._jobs: list[Job] = []
        self._after: list[tuple[Any, Callable[[], Any]]] = []

    def add(
        self, worker: Any, name: str, workspace: Any = None, cancel: Callable[[], Any] | None = None, owner: Any = None
    ) -> Job:
        """Register ``worker`` (not started yet) as a job; it is forgotten when its ``finished`` arrives.
        ``owner``: the dock that started it; closing the dock cancels the job (nothing would show its end)."""
        job = Job(name, workspace, cancel)
        self._jobs.append(job)
        worker.finished.connect(lambda: self._ended(job))
        if owner is not None and cancel is not None:
            owner.destroyed.connect(lambda *_: job.cancel())
        return job

    def running(self, workspace: Any = _ALL) -> list[Job]:
        """The jobs not ended, all of them or those on ``workspace``."""
        return [j for j in self._jobs if workspace is _ALL or j.workspace is workspace]

    def cancel(self, workspace: Any) -> list[Job]:
        """Cancel every job on ``workspace`` that can be stopped; those (the rest are waited for)."""
        return [j for j in self.running(workspace) if j.cancel()]

    def after(self, workspace: Any, callback: Callable[[], Any]) -> None:
        """Call ``callback`` once no job on ``workspace`` runs: now, or when the last of them ends."""
        if self.running(workspace):
            self._after.append((workspace, callback))
        else:
            callback()

    def _ended(self, job: Job) -> None:
        job.ended = True
        if job in self._jobs:
            self._jobs.remove(job)
        keep, due = [], []
        for pair in self._after:
            (keep if self.running(pair[0]) else due).append(pair)
        self._after = keep
        for _, callback in due:
            callback()


def names(jobs: list[Job]) -> str:
    return ", ".join(j.name for j in jobs)


def job_body(make_job: Callable[[Any], Any], token: Any) -> Generator[Any, None, Any]:
    """The worker's generator: ``make_job(token)`` is called in the worker thread (building a job may read
    files or load a model), its events relayed through :func:`medseg.jobs.drive`; returns the end event
    (a ``Result`` or a ``Cancelled``, in a 1-tuple) instead of yielding it, so ``returned`` says how the
    job ended."""
    from medseg.errors import Cancelled
    from medseg.jobs import Result, drive

    try:
        for event in drive(make_job(token), token):
            if isinstance(event, (Result, Cancelled)):
                return (event,)  # in a tuple: superqt raises a returned exception instance (Cancelled is one)
            yield event
    except RuntimeError as e:
        raise JobFailed(str(e)) from e
    return None  # pragma: no cover - drive() always ends with one of the two


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Generator[Any, None, Any]:
    """``fn(*args, **kwargs)`` as a job of no events whose result is its return value: a short read of the
    workspace (a sample, the review queue) runs through :func:`start_job` like any job, so the workspace
    waits for it and an error reaches the dock the same way (``progress=False``: nothing to show)."""
    return fn(*args, **kwargs)
    yield  # a generator: fn runs when the worker steps it, in the worker thread


class RunningJob:
    """What :func:`start_job` started: the ``worker``, its registry entry ``job``, its ``token``, its bar."""

    def __init__(self, worker: Any, job: Job, token: Any, bar: Any, handlers: dict[str, Any]):
        self.worker, self.job, self.token, self.bar = worker, job, token, bar
        self._on = handlers
        self.end: Any = None  # the Cancelled once returned (a Result is let go once handed on)
        self._done: set[str] = set()

    def cancel(self) -> bool:
        """Ask the job to stop at its next step; False when it cannot be stopped or has ended."""
        return self.job.cancel()

    @property
    def running(self) -> bool:
        return not self.job.ended

    def _event(self, event: Any) -> None:
        from medseg.jobs import Progress

        if self.bar is not None and isinstance(event, Progress):
            self.bar.to(event.done, event.total or 0, event.stage or None)
        if self._on["event"] is not None:
            self._on["event"](event)

    def _close_bar(self) -> None:
        # closed first: napari's bar may run queued events while it closes, and a late progress event must
        # not overwrite what the end shows
        if self.bar is not None:
            self.bar.close()

    def _returned(self, ended: tuple) -> None:
        from medseg.errors import Cancelled

        self._close_bar()
        self.end = end = ended[0]
        if isinstance(end, Cancelled):
            if self._on["cancelled"] is not None:
                self._on["cancelled"](end)
        elif self._on["result"] is not None:
            self._on["result"](end.value)
        self._let_go("outcome")

    def _errored(self, exc: BaseException) -> None:
        from napari_medseg._notify import report_error

        self._close_bar()
        if self._on["error"] is not None:
            self._on["error"](exc)
        else:
            report_error(f"{self.job.name} failed", exc)
        self._let_go("outcome")

    def _finished(self) -> None:
        self._close_bar()
        if self._on["finished"] is not None:
            self._on["finished"]()
        self._let_go("finished")

    def _let_go(self, what: str) -> None:
        """napari's task status keeps every worker it ran (through ``worker.quit``), and the worker keeps this
        handle: once the outcome and the end were handed on, the result (a decoded CT volume with its labels)
        and what the handlers hold (a prediction request's image) must not stay with it. The two may come in
        either order."""
        from medseg.errors import Cancelled

        self._done.add(what)
        if not isinstance(self.end, Cancelled):
            self.end = None
        if {"outcome", "finished"} <= self._done:
            self._on = dict.fromkeys(self._on)


def start_job(
    jobs: Jobs | None,
    make_job: Callable[[Any], Any],
    name: str,
    *,
    workspace: Any = None,
    owner: Any = None,
    stoppable: bool = True,
    progress: bool = True,
    token: Any = None,
    on_event: Callable[[Any], Any] | None = None,
    on_result: Callable[[Any], Any] | None = None,
    on_cancelled: Callable[[Any], Any] | None = None,
    on_error: Callable[[BaseException], Any] | None = None,
    on_finished: Callable[[], Any] | None = None,
) -> RunningJob:
    """Run the engine job ``make_job(token)`` in a thread worker: the plugin's one way to run a long job.

    Its :class:`~medseg.jobs.Progress` events drive a napari progress bar named ``name`` (``progress``);
    every event reaches ``on_event``; the end calls ``on_result(value)`` or ``on_cancelled(cancelled)``;
    an error calls ``on_error(exc)`` or, without one, shows a napari notification "{name} failed: ...";
    ``on_finished`` comes last in every case. All of them run on the main thread. The job is registered in
    ``jobs`` (on ``workspace``, cancelled with the ``owner`` dock's end): ``stoppable=False`` for a job that
    must run to its end (a revision save), which is then waited for, never stopped. ``jobs`` None: a job of
    no session (reading the model names when a dock is built), which no workspace waits for. ``token``: the
    :class:`~medseg.jobs.CancelToken` to hand the job, for a caller that holds it before the job starts (a
    prediction request carries its own); a new one otherwise.
    """
    from napari.qt.threading import create_worker

    from medseg.jobs import CancelToken
    from napari_medseg._progress import Bar

    jobs = Jobs() if jobs is None else jobs
    token = CancelToken() if token is None else token
    worker = create_worker(job_body, make_job, token, _start_thread=False, _ignore_errors=True)
    job = jobs.add(worker, name, workspace, token.set if stoppable else None, owner=owner)
    handle = RunningJob(
        worker,
        job,
        token,
        Bar(name) if progress else None,
        {"event": on_event, "result": on_result, "cancelled": on_cancelled, "error": on_error, "finished": on_finished},
    )
    # Qt holds a bound method's object weakly: the worker keeps the handle, so a caller may drop it
    worker.medseg_job = handle
    if owner is not None:  # a closed dock's handlers would touch deleted widgets; an error is still notified
        owner.destroyed.connect(lambda *_: handle._on.update(dict.fromkeys(handle._on)))
    worker.yielded.connect(handle._event)
    worker.returned.connect(handle._returned)
    worker.errored.connect(handle._errored)
    worker.finished.connect(handle._finished)
    worker.start()
    return handle


def read_job(jobs: Jobs | None, name: str, workspace: Any, read: Callable[[], Any], on_result, on_error) -> Any:
    """Run the quick read ``read()`` on ``workspace`` in a thread worker (no progress bar; the workspace waits
    for it, never stops it); its worker."""
    return start_job(
        jobs,
        lambda token: call(read),
        name,
        workspace=workspace,
        stoppable=False,
        progress=False,
        on_result=on_result,
        on_error=on_error,
    ).worker
