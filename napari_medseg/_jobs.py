"""The jobs the docks run in thread workers, per viewer session: what each is, which workspace it uses and how
to stop it, so that a workspace is closed only after every job on it has ended.

A dock registers each worker before starting it::

    job = session.jobs.add(worker, "Export to /data/clean", workspace, cancel=token.set)

``cancel`` is how that job stops: set the token its body checks between the engine's steps
(:func:`cancellable`, or an engine generator's own ``cancel=`` token), or ask a training process to stop.
It is None for a job that must run to its end (a revision save: edits are never dropped) or ends by itself
in a moment (a read); such a job is waited for, never stopped. The registry forgets a job when its worker's
``finished`` signal arrives (on the main thread, after its ``returned``/``errored``).

``Session.set_workspace`` is the user: it cancels the jobs on the old workspace, names them in a napari
notification, and closes the old workspace in the ``finished`` handler of the last of them (:meth:`Jobs.after`);
the GUI thread never waits for a worker.

What it is not: a scheduler (each dock still starts its own workers, one job of a kind at a time), a progress
or event protocol (each dock reads its engine's events), or a thread pool. The engine knows nothing of it: a
job's body stops because a token it was handed is set. The next issue's job protocol (events, progress and
cancellation shared by the engine and the plugin) can keep this contract -- register, cancel, forget at the
end, run what waited for the end -- with the job's own token in place of ``cancel`` and its end event in
place of ``finished``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

_ALL = object()
CANCELLED = "cancelled"  # what a job body returns (or yields last) when it stopped on its token


class JobFailed(Exception):
    """A ``RuntimeError`` raised inside a generator worker, passed on as another type: superqt's
    ``GeneratorWorker`` takes a ``RuntimeError`` for a deleted worker, only warns, and emits neither
    ``errored`` nor ``finished`` (torch raises ``RuntimeError`` for most of its failures)."""


def cancellable(events: Iterator[Any], token: Any, is_result: Callable[[Any], bool] = lambda e: False
                ) -> Generator[Any, None, Any]:
    """Relay an engine generator's events until ``token.is_set()``; returns its result, or ``CANCELLED``.

    The token is looked at before each step of the engine, so the engine stops at its next ``yield``. The
    engine generator is closed here, in the worker thread, so its own cleanup (a half-made workspace
    removed, a staging folder deleted) is done before the worker's ``finished`` signal. An event
    ``is_result`` accepts is returned even when the token was set meanwhile: the work is done and in place.
    A generator that ends by ``return`` gives its return value.
    """
    try:
        while True:
            if token.is_set():
                return CANCELLED
            try:
                event = next(events)
            except StopIteration as stop:
                return stop.value
            if is_result(event):
                return event
            yield event
    except RuntimeError as e:
        raise JobFailed(str(e)) from e
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


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

    def add(self, worker: Any, name: str, workspace: Any = None, cancel: Callable[[], Any] | None = None,
            owner: Any = None) -> Job:
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
