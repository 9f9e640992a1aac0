"""The CLI's one job runner: a job's events to a tqdm bar on stderr, Ctrl-C to its cancel token.

Every long sub-command runs its engine job through :func:`run_job`::

    report = run_job(lambda token: iter_qc(ds, cancel=token), what="qc", unit="sample", quiet=args.quiet)

:class:`~medseg.jobs.Progress` moves the bar (a new ``stage`` or ``total`` restarts it, labelled with the
stage), :class:`~medseg.jobs.Message` prints a line above it, the :class:`~medseg.jobs.Result`'s value is
returned. The first SIGINT/SIGTERM sets the job's token (the job stops at its next step and cleans up),
a second SIGINT aborts at once; a stopped job raises :class:`~medseg.errors.Cancelled`, which
``medseg.cli.main`` turns into exit 130 like every other error's ``exit_code``.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from medseg.jobs import CancelToken, Message, Progress, Started, run


class Bar:
    """tqdm on stderr when installed and not ``quiet`` (``enabled``); otherwise nothing but the notes. The
    tqdm bar itself (``bar``) appears with the job's first ``Started`` or ``Progress``, not as an empty one."""

    def __init__(self, what: str = "", unit: str = "it", quiet: bool = False):
        self.what, self.unit, self.quiet = what, unit, quiet
        self.bar = None
        self._key: tuple | None = None
        self._tqdm = None
        if not quiet:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self._tqdm = tqdm

    @property
    def enabled(self) -> bool:
        return self._tqdm is not None

    def _ensure(self, total: int | None) -> bool:
        if self.bar is None and self._tqdm is not None:
            self.bar = self._tqdm(
                total=total, unit=self.unit, file=sys.stderr, dynamic_ncols=True, desc=self.what or None
            )
        return self.bar is not None

    def note(self, message: str) -> None:
        """A line on stderr above the bar (tqdm.write keeps the bar intact)."""
        (self.bar.write if self.bar is not None else print)(message, file=sys.stderr)

    def progress(self, event: Progress) -> None:
        if not self._ensure(event.total):
            return
        key = (event.stage, event.total)
        if key != self._key:  # a new stage (fold 2's training after fold 1's scoring) starts a new bar
            self._key = key
            label = " ".join(t for t in (self.what, event.stage) if t and t != self.what) or self.what
            self.bar.set_description_str(label or None, refresh=False)  # tqdm adds the ": " itself
            self.bar.reset(total=event.total)
        self.bar.n = event.done
        if event.item:
            self.bar.set_postfix_str(str(event.item)[-40:], refresh=False)
        self.bar.refresh()

    def __call__(self, event: Any) -> None:
        if isinstance(event, Progress):
            self.progress(event)
        elif isinstance(event, Started) and event.total and self._key is None and self._ensure(event.total):
            self.bar.reset(total=event.total)  # the size is known before the first step ends
        elif isinstance(event, Message) and not (self.quiet and event.level == "info"):
            self.note(event.text if event.level == "info" else f"{event.level}: {event.text}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self._tqdm = None  # closed for good: later notes are plain lines


@contextlib.contextmanager
def cancel_on_signals(
    note: Callable[[str], Any], message: str = "stopping after the current step (Ctrl-C again to abort at once)"
) -> Iterator[CancelToken]:
    """A token the first SIGINT/SIGTERM sets; a second SIGINT raises KeyboardInterrupt. Off the main thread
    (where signal handlers cannot be set) the token is only the caller's to set."""
    token = CancelToken()
    if threading.current_thread() is not threading.main_thread():
        yield token
        return

    def handler(signum, frame):
        if token.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        token.set()
        note(f"{signal.Signals(signum).name}: {message}")

    previous = {}
    for name in ("SIGINT", "SIGTERM", "SIGBREAK"):  # SIGBREAK: what a Windows parent can send to a child
        if hasattr(signal, name):
            sig = getattr(signal, name)
            previous[sig] = signal.signal(sig, handler)
    try:
        yield token
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_job(
    make_job: Callable[[CancelToken], Iterable[Any]],
    what: str = "",
    unit: str = "it",
    quiet: bool = False,
    on_event: Callable[[Any], Any] | None = None,
    bar: Bar | None = None,
) -> Any:
    """Run the job ``make_job(token)`` to its end with a bar and Ctrl-C handling; returns its result.

    ``on_event`` sees every event (the command's own lines, e.g. one per predicted file); ``bar`` lets the
    command print through the same bar before and after. Raises :class:`Cancelled` when stopped.
    """
    own = bar is None
    bar = bar if bar is not None else Bar(what, unit, quiet)
    try:
        with cancel_on_signals(bar.note) as token:

            def show(event: Any) -> None:
                bar(event)
                if on_event is not None:
                    on_event(event)

            return run(make_job(token), token, show)
    finally:
        if own:
            bar.close()
