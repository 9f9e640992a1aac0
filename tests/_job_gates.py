"""Gates that hold a job's engine generator mid-run, so a cancel or a workspace switch lands while it runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator


class Gate:
    """An engine generator function that stops after its ``after``-th event until ``release`` is set.

    ``log`` (shared with the test) gets "engine closed" when the engine generator has been closed, in the
    worker thread."""

    def __init__(self, real, log: list, after: int = 1):
        self.real, self.log, self.after = real, log, after
        self.reached, self.release = threading.Event(), threading.Event()
        self.passed: list = []

    def __call__(self, *args, **kwargs):
        inner = self.real(*args, **kwargs)
        try:
            for n, event in enumerate(inner, 1):
                self.passed.append(event)
                yield event
                if n == self.after:
                    self.reached.set()
                    self.release.wait(60)
        finally:
            inner.close()
            self.log.append("engine closed")


def open_gates(monkeypatch) -> Iterator:
    """Yield ``gate(module, name, after)``, which puts a Gate in place of ``module.name``; every gate opens after."""
    made: list[Gate] = []
    log: list[str] = []

    def gate(module, name: str, after: int = 1) -> Gate:
        g = Gate(getattr(module, name), log, after)
        monkeypatch.setattr(module, name, g)
        made.append(g)
        return g

    gate.log = log
    yield gate
    for g in made:
        g.release.set()


def capture_infos(monkeypatch) -> list[str]:
    from napari.utils import notifications

    shown: list[str] = []
    monkeypatch.setattr(notifications, "show_info", shown.append)
    return shown


def spy_close(monkeypatch, ws, session, log: list) -> None:
    """Record when ``ws`` is closed and which jobs on it were still running then."""
    real = ws.close

    def close() -> None:
        log.append("close")
        log.append(("running at close", [j.name for j in session.jobs.running(ws)]))
        real()

    monkeypatch.setattr(ws, "close", close)
