"""The one job protocol: what every long job of the engine yields, and how it is stopped.

A *job* is a generator (QC, ranking, training, prediction over a dataset, export, opening a dataset,
creating a workspace). It takes a ``cancel: CancelToken | None`` argument and yields events of one
vocabulary, lowest layer first so that nothing here imports torch or a GUI:

* :class:`Started` -- once, first: what runs and how many steps it expects (``total`` may be None).
* :class:`Progress` -- ``done`` of ``total`` steps of ``stage``; the one progress type (a job may yield a
  subclass carrying more, e.g. training's ``Step``; consumers read ``done``/``total``/``stage``).
* :class:`Message` -- a line for the user (``level`` "info" or "warning"): a skipped file, a fallback taken.
* :class:`Result` -- last, when the job finished: ``value`` is what it made.
* :class:`medseg.errors.Cancelled` -- last, when the token was set: the job raises it (``token.check()``)
  or yields it; :func:`drive` turns a raised one into the last event, so consumers see one shape.
* :class:`Failed` -- an error as data, only where an exception cannot travel (a training process streams
  its events as JSON lines); in-process jobs simply raise their :class:`~medseg.errors.MedsegError`.

Jobs may also yield events of their own domain (training's epoch metrics, a fold scored): subclasses of
:class:`Event`, which consumers that do not know them ignore.

Consumers never loop over a job by hand: scripts and tests call :func:`run` (the result, or ``Cancelled``
raised), the CLI uses ``medseg.cli.progress.run_job`` (tqdm, Ctrl-C, exit codes) and the plugin
``napari_medseg._jobs.start_job`` (a thread worker, napari progress, notifications, a cancel button).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Generator, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from medseg.errors import Cancelled, MedsegError

__all__ = [
    "CancelToken",
    "Cancelled",
    "Event",
    "Started",
    "Progress",
    "Message",
    "Result",
    "Failed",
    "Job",
    "drive",
    "run",
    "event_from_dict",
    "register_event",
]


class CancelToken:
    """Thread-safe stop flag: any thread calls :meth:`set`; the job stops at its next :meth:`check`."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._on_set: list[Any] = []

    def set(self) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            calls, self._on_set = self._on_set, []
        for call in calls:
            call()

    cancel = set

    def on_set(self, callback: Any) -> None:
        """Call ``callback()`` once, in the thread that sets the token (now, if it is set already): for a job
        that waits where no check can run, e.g. on a training child's output (the child is signalled at once,
        not at its next event; the viewer may be gone by then)."""
        with self._lock:
            if not self._event.is_set():
                self._on_set.append(callback)
                return
        callback()

    def is_set(self) -> bool:
        return self._event.is_set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self, done: int | None = None, total: int | None = None, what: str = "", partial: Any = None) -> None:
        """Raise :class:`Cancelled` (with how far the job got) when the token is set."""
        if self._event.is_set():
            where = f" after {done} of {total}" if done is not None and total is not None else ""
            raise Cancelled(f"{what or 'job'} cancelled{where}", done=done, total=total, partial=partial)

    def __repr__(self) -> str:
        return f"CancelToken(cancelled={self.cancelled})"


def check(
    token: CancelToken | None, done: int | None = None, total: int | None = None, what: str = "", partial: Any = None
) -> None:
    """:meth:`CancelToken.check` for an optional token (a job run without one cannot be stopped)."""
    if token is not None:
        token.check(done, total, what, partial)


_KINDS: dict[str, type[Event]] = {}


def register_event(cls: type[Event]) -> type[Event]:
    """Class decorator: ``cls`` can be rebuilt from its JSON form by :func:`event_from_dict`."""
    _KINDS[cls.kind] = cls
    return cls


@dataclass(frozen=True)
class Event:
    """Base of every job event; ``kind`` names it in JSON (``{"event": kind, ...fields}``)."""

    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.kind, **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=str, allow_nan=True)


@register_event
@dataclass(frozen=True)
class Started(Event):
    kind: ClassVar[str] = "started"
    job: str
    total: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@register_event
@dataclass(frozen=True)
class Progress(Event):
    """``done`` of ``total`` steps of ``stage`` (``total`` None: unknown); ``item`` names the step's subject."""

    kind: ClassVar[str] = "progress"
    done: int
    total: int | None
    stage: str = ""
    item: str | None = None

    @property
    def fraction(self) -> float | None:
        return None if not self.total else min(1.0, self.done / self.total)


@register_event
@dataclass(frozen=True)
class Message(Event):
    kind: ClassVar[str] = "message"
    text: str
    level: str = "info"  # "info" or "warning"


@register_event
@dataclass(frozen=True)
class Result(Event):
    """The job finished; ``value`` is its result (not serialised beyond ``str`` for JSON streams)."""

    kind: ClassVar[str] = "result"
    value: Any = None

    def to_dict(self) -> dict[str, Any]:  # asdict would deep-copy an arbitrary value
        value = self.value.to_dict() if callable(getattr(self.value, "to_dict", None)) else self.value
        return {"event": self.kind, "value": value}


@register_event
@dataclass(frozen=True)
class Failed(Event):
    """An error as data (see the module docstring); ``exit_code`` as the error class declares it."""

    kind: ClassVar[str] = "error"
    message: str
    error_type: str = "Exception"
    exit_code: int = 1
    traceback: str = ""

    @classmethod
    def from_exception(cls, e: BaseException, traceback: str = "") -> Failed:
        return cls(str(e) or type(e).__name__, type(e).__name__, exit_code_of(e), traceback)


def exit_code_of(e: BaseException) -> int:
    """The CLI exit code of an exception: its class's ``exit_code``; 130 for Ctrl-C; 1 (a bug) otherwise."""
    if isinstance(e, KeyboardInterrupt):
        return 130
    code = getattr(type(e), "exit_code", None)
    if isinstance(code, int):
        return code
    return 2 if isinstance(e, MedsegError) else 1


def event_from_dict(d: dict[str, Any]) -> Event | Cancelled:
    """Rebuild an event from :meth:`Event.to_dict` (unknown keys dropped, so newer writers stay readable)."""
    kind = d.get("event")
    if kind == "cancelled":
        return Cancelled(d.get("message", "cancelled"), d.get("done"), d.get("total"), d.get("partial"))
    cls = _KINDS.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown job event {kind!r}")
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


def cancelled_to_dict(c: Cancelled) -> dict[str, Any]:
    """``partial`` travels only as a mapping (a training run's checkpoint); anything else stays in-process."""
    d = {"event": "cancelled", "message": str(c), "done": c.done, "total": c.total}
    if isinstance(c.partial, dict):
        d["partial"] = c.partial
    return d


Job = Generator[Any, None, Any]


def drive(job: Iterable[Any], token: CancelToken | None = None) -> Iterator[Any]:
    """Relay ``job``'s events so that it always ends with one :class:`Result` or one :class:`Cancelled`.

    A ``Cancelled`` the job raises becomes its last event; a job that ends by ``return value`` without a
    ``Result`` gets ``Result(value)``. ``token``, when given, is also looked at between events, so a job
    that forgot to check it still stops at its next ``yield``. The job is closed here (its ``finally``
    blocks run in the calling thread) whether it finished, failed or was stopped. Other exceptions pass.
    """
    it = iter(job)
    last: Progress | None = None
    try:
        while True:
            if token is not None and token.is_set():
                yield from _stop(it, last)
                return
            try:
                event = next(it)
            except StopIteration as stop:
                yield Result(stop.value)
                return
            except Cancelled as c:
                yield c
                return
            if isinstance(event, Progress):
                last = event
            yield event
            if isinstance(event, (Result, Cancelled)):
                return
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()


def _stop(it: Iterator[Any], last: Progress | None) -> Iterator[Any]:
    """The token was set between two events: ``Cancelled`` is thrown into a generator job at its ``yield``, so
    the job can say what it kept (re-raise it with ``partial=``) before it is closed. A job that must wind
    down first (a training child asked to stop still writes its checkpoint) catches it and goes on yielding:
    those events are relayed up to the job's own ``Result`` or ``Cancelled``. Any other end is the
    ``Cancelled`` thrown."""
    if last is None:
        stop = Cancelled("cancelled before the first step")
    else:
        of = f" of {last.total}" if last.total else ""
        stop = Cancelled(f"{last.stage or 'job'} cancelled after {last.done}{of}", done=last.done, total=last.total)
    throw = getattr(it, "throw", None)
    if throw is None:
        yield stop
        return
    try:
        event = throw(stop)
        while not isinstance(event, (Result, Cancelled)):
            yield event
            event = next(it)
    except Cancelled as c:
        event = c
    except StopIteration:
        event = stop
    yield event


def run(job: Iterable[Any], token: CancelToken | None = None, on_event=None) -> Any:
    """Run ``job`` to its end: its :class:`Result`'s value; raises :class:`Cancelled` when stopped.

    ``on_event`` (optional) sees every event, the last included.
    """
    for event in drive(job, token):
        if on_event is not None:
            on_event(event)
        if isinstance(event, Result):
            return event.value
        if isinstance(event, Cancelled):
            raise event
    raise AssertionError("drive() ends with a Result or Cancelled")  # pragma: no cover


def ordered_map(fn, items: list, workers: int, name: str = "medseg") -> Iterator[tuple]:
    """(item, fn(item)) in input order from a pool of ``workers`` threads, at most ``2 * workers`` in flight,
    so a job reading files keeps its memory bounded and can stop between items; closing the generator early
    cancels what has not started."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    if workers <= 1:
        for x in items:
            yield x, fn(x)
        return
    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        try:
            for x in items:
                pending.append((x, pool.submit(fn, x)))
                if len(pending) >= 2 * workers:
                    x0, f0 = pending.popleft()
                    yield x0, f0.result()
            while pending:
                x0, f0 = pending.popleft()
                yield x0, f0.result()
        finally:
            for _, f in pending:
                f.cancel()
