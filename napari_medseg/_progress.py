"""napari's progress bar, driven safely from worker events: throttled, and never closed from inside itself.

napari's Qt progress bar processes events whenever its value or description
changes (``QApplication.processEvents`` in ``QtLabeledProgressBar``). Updated
from a worker's event handler, that runs further queued events, the job's
end among them, inside the update: the handler that closes the bar then runs
while the bar is still being updated, and Qt may destroy a widget that is
being painted (seen as "QPaintDevice: Cannot destroy paint device that is
being painted" and a crash). And one update per training step or per sample
means hundreds of nested event loops a minute.

:class:`Bar` therefore records what the bar should show and applies it at
most every ``INTERVAL_MS`` from a timer; a close asked for while the bar is
busy inside napari happens right after, and the last recorded value is
shown before it closes.
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import QTimer

INTERVAL_MS = 200


class Bar:
    """One napari progress bar: ``to(done, total, desc)`` records, a timer applies, ``close()`` ends it."""

    def __init__(self, desc: str, total: int = 0):
        from napari.utils import progress

        self._bar = None
        self._busy = self._close_asked = False
        self._done, self._total, self._desc = 0, int(total), desc
        self._shown_desc = desc
        self.last: tuple[int, int] | None = None  # (done, total) shown when it closed
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(INTERVAL_MS)
        self._timer.timeout.connect(self._apply)
        self._inside(lambda: setattr(self, "_bar", progress(total=int(total), desc=desc)))

    @property
    def closed(self) -> bool:
        return self.last is not None

    @property
    def n(self) -> int:
        """The latest value recorded (shown within ``INTERVAL_MS``)."""
        return self._done

    def to(self, done: int, total: int | None = None, desc: str | None = None) -> None:
        if self.closed:
            return  # a late event after the job's end
        self._done = int(done)
        if total is not None:
            self._total = int(total)
        if desc is not None:
            self._desc = desc
        if not self._timer.isActive():
            self._timer.start()

    def close(self) -> None:
        if self.closed:
            return
        if self._busy:  # inside napari's own update: close once it returns
            self._close_asked = True
            return
        self._timer.stop()
        self._apply()
        if self._bar is not None:
            self.last = (int(self._bar.n), int(self._bar.total))
            bar, self._bar = self._bar, None
            self._inside(bar.close)
        else:
            self.last = (self._done, self._total)

    def _apply(self) -> None:
        bar = self._bar
        if bar is None:
            return

        def show() -> None:
            if bar.total != self._total:
                bar.total = self._total
            if self._shown_desc != self._desc:
                self._shown_desc = self._desc
                bar.set_description(self._desc)
            if self._done != bar.n:
                bar.update(self._done - bar.n)

        self._inside(show)

    def _inside(self, call: Callable[[], object]) -> None:
        self._busy = True
        try:
            call()
        finally:
            self._busy = False
        if self._close_asked:
            self._close_asked = False
            self.close()
